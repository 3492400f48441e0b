"""Labels on assistant turns only, placeholder expansion, truncation rules, length grouping."""

from __future__ import annotations

import pytest
import torch

from ecgllm.data.collator import EcgCollator, length_grouped_order, padding_fraction
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.model import build_model


@pytest.fixture(scope="module")
def proc():
    return build_model()[1]


def test_labels_cover_exactly_the_assistant_replies(instruct, proc):
    ds = EcgInstructionDataset(instruct, "train")
    multi = next(i for i in range(len(ds)) if ds.samples[i]["task"] == "multiturn")
    rows = [ds[0], ds[multi]]
    batch = EcgCollator(proc)(rows)
    tok = proc.tokenizer
    for r, row in enumerate(rows):
        lab = batch["labels"][r]
        supervised = tok.decode(lab[lab != -100])
        replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        assert supervised == "".join(f"{t}<|end|>\n" for t in replies)
        ids = batch["input_ids"][r]
        n_ecg = int((ids == tok.convert_tokens_to_ids("<ecg>")).sum())
        assert n_ecg == len(row["record_ids"]) * proc.num_ecg_tokens
        assert (lab[ids == tok.convert_tokens_to_ids("<ecg>")] == -100).all()
    assert batch["ecg_values"].shape[0] == 2 and batch["pixel_values"].shape[0] == 2
    assert batch["attention_mask"][0].sum() == (batch["input_ids"][0] != tok.pad_token_id).sum()


def test_truncation_never_cuts_a_placeholder_run(instruct, proc):
    ds = EcgInstructionDataset(instruct, "train")
    col = EcgCollator(proc, max_length=5)  # inside the first ECG's run of 25 tokens
    with pytest.raises(ValueError, match="every sample of the batch was dropped"):
        col([ds[0]])
    assert col.dropped["placeholder_run_cut"] == 1


def test_a_batch_without_targets_is_an_error(proc):
    col = EcgCollator(proc)
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "x"}]}],
           "record_ids": [], "modalities": []}  # fmt: skip
    proc.chat_template = proc.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    try:
        with pytest.raises(ValueError, match="assistant spans are missing"):
            col([row, row])
    finally:
        proc.chat_template = build_model()[1].chat_template


def test_length_grouping_cuts_padding():
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randint(20, 400, (2000,), generator=g)).tolist()
    plain = list(range(len(lengths)))
    grouped = length_grouped_order(lengths, 8, seed=1)
    assert sorted(grouped) == plain and grouped == length_grouped_order(lengths, 8, seed=1)
    assert padding_fraction(lengths, grouped, 8) < 0.25 * padding_fraction(lengths, plain, 8)


def _native_proc(parts):
    from transformers import PreTrainedTokenizerFast

    from ecgllm.model import EcgLlmProcessor
    from ecgllm.model.chat_templates import CHAT_TEMPLATES
    from ecgllm.model.tokenizer import TINY_DIR
    from tests.model.test_model import _native

    tok, spec, image_processor, cls, kwargs, family, _ = parts(PreTrainedTokenizerFast, TINY_DIR)
    torch.manual_seed(0)
    model = _native(spec)
    model.config.ecg_token_id = tok.convert_tokens_to_ids("<ecg>")
    proc = EcgLlmProcessor(image_processor, tok, chat_template=CHAT_TEMPLATES[family], num_ecg_tokens=model.config.num_ecg_tokens,
                           ecg_measurement_dim=model.config.ecg_config.measurement_dim,
                           native_processor_class=cls, native_kwargs=kwargs)  # fmt: skip
    return model, proc


@pytest.mark.parametrize("which", ["gemma3", "mllama"])
def test_native_vlm_batches_use_the_backbones_processor(instruct, which):
    """Gemma 3 / Llama 3.2 Vision: pages go through the backbone's own processor (its image
    token expansion and extra inputs), mixed with signal-only rows; labels are exactly the
    assistant replies and the model trains on the batch."""
    from tests.model.test_model import _gemma3_parts, _mllama_parts

    model, proc = _native_proc(_gemma3_parts if which == "gemma3" else _mllama_parts)
    ds = EcgInstructionDataset(instruct, "train")
    multi = next(i for i in range(len(ds)) if ds.samples[i]["task"] == "multiturn")
    signal_only = dict(ds[1], modalities=["signal"])
    signal_only["messages"] = [{**m, "content": [c for c in m["content"] if c["type"] != "image"]}
                               for m in signal_only["messages"]]  # fmt: skip
    rows = [ds[0], ds[multi], signal_only]
    batch = EcgCollator(proc, max_length=4096)(rows)
    extra = {"gemma3": "token_type_ids", "mllama": "cross_attention_mask"}[which]
    assert extra in batch and "pixel_values" in batch
    tok = proc.tokenizer
    end = {"gemma3": "<end_of_turn>", "mllama": "<|eot_id|>"}[which]
    for r, row in enumerate(rows):
        lab = batch["labels"][r]
        replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        got = tok.decode(lab[lab != -100])
        assert got.replace("\n", "") == "".join(f"{t}{end}" for t in replies).replace("\n", "")
        n_ecg = int((batch["input_ids"][r] == tok.convert_tokens_to_ids("<ecg>")).sum())
        assert n_ecg == len(row["record_ids"]) * proc.num_ecg_tokens
    assert batch["ecg_values"].shape[0] == sum(len(r["record_ids"]) for r in rows)
    model.train()
    out = model(**batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.ecg_projector.net[0].weight.grad is not None
    # an image after an answer cannot be aligned through the native expansion: a clear error
    late = dict(ds[0])
    late["messages"] = [*ds[multi]["messages"][:2], *ds[0]["messages"]]
    with pytest.raises(ValueError, match="an assistant turn comes before an image"):
        EcgCollator(proc)([late])
    # likelihood scoring (evaluation) goes through the same batches: log p = -loss * tokens
    from ecgllm.evaluation import loglik_batch

    model.eval()
    pair = [dict(r, messages=r["messages"][:2]) for r in (ds[0], signal_only)]
    col = EcgCollator(proc, max_length=4096)
    ll = loglik_batch(model, col, pair, batch_size=2)
    with torch.no_grad():
        for row, value in zip(pair, ll, strict=True):
            b = col([row])
            n = int((b["labels"][:, 1:] != -100).sum())
            assert value == pytest.approx(-model(**b).loss.item() * n, rel=1e-4)
    col = EcgCollator(proc, max_length=30)
    with pytest.raises(ValueError, match="every sample of the batch was dropped"):
        col([ds[0]])
    assert col.dropped["too_long_native_vlm"] == 1
    with pytest.raises(ValueError, match="packing is not supported with a native VLM"):
        EcgCollator(proc, packing=True)


@pytest.mark.parametrize("backbone", ["llama", "gemma3"])
def test_packing_gives_the_unpacked_loss_in_fewer_rows(instruct, backbone):
    """Packed rows (position ids restart per sample, block-diagonal attention, no attention
    mask) give the same loss and gradients as the padded batch; ECGs/images follow their
    placeholders' new order."""
    from ecgllm.model.factory import TINY_GEMMA3, TINY_LLAMA
    from ecgllm.model.lora import prepare_for_training

    torch.manual_seed(0)
    model, proc = build_model(backbone=TINY_LLAMA if backbone == "llama" else TINY_GEMMA3)
    model = prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0)
    model.train()
    ds = EcgInstructionDataset(instruct, "train")
    rows = [ds[i] for i in range(8)]
    plain = EcgCollator(proc, max_length=1024)(rows)
    packed = EcgCollator(proc, max_length=1024, packing=True)(rows)
    assert packed["input_ids"].shape[0] < plain["input_ids"].shape[0]
    assert (
        "attention_mask" not in packed and packed["position_ids"].shape == packed["input_ids"].shape
    )
    assert (packed["labels"] != -100).sum() == (plain["labels"] != -100).sum()
    assert packed["ecg_values"].shape == plain["ecg_values"].shape
    n = (plain["labels"][:, 1:] != -100).sum()
    runs = []
    for b in (plain, packed):
        model.zero_grad()
        loss = model(**b, num_items_in_batch=n, supervised_logits_only=True).loss
        loss.backward()
        runs.append(
            (
                loss.detach(),
                {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
            )
        )
    (l1, g1), (l2, g2) = runs
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=0)
    assert g1.keys() == g2.keys()
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], atol=1e-5, rtol=1e-4, msg=k)
    # the samples' ECGs are really reordered with them: a packed batch with the ECGs left in
    # the original order gives a different loss
    wrong = dict(packed, ecg_values=plain["ecg_values"], lead_mask=plain["lead_mask"])
    assert not torch.allclose(model(**wrong, num_items_in_batch=n).loss, l2)


def test_expert_features_as_text(instruct, tmp_path):
    """model.expert_features: each ECG's measurements follow it as text, in training and scoring
    batches alike; the blank-ECG ablation blanks the text's source too; saved with the processor."""
    from transformers import AutoProcessor

    from ecgllm.signal import STANDARD_12, ECGRecord, measure
    from ecgllm.signal.features import expert_text, measurement_vector

    proc = build_model(expert_features="rhythm")[1]
    ds = EcgInstructionDataset(instruct, "train")
    multi = next(i for i in range(len(ds)) if len(ds.samples[i]["record_ids"]) > 1)
    rows = [ds[0], ds[multi]]
    batch = EcgCollator(proc)(rows)
    tok = proc.tokenizer
    for r, row in enumerate(rows):
        text = tok.decode(batch["input_ids"][r])
        assert text.count("Measured: heart rate") == len(row["record_ids"])
        lab = batch["labels"][r]  # the supervised text is the replies alone, as without the text
        replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        assert tok.decode(lab[lab != -100]) == "".join(f"{t}<|end|>\n" for t in replies)
    # the text states what measure() measures
    sig = rows[0]["signal"][0]
    hr = measure(ECGRecord(sig, proc.ecg_fs, list(STANDARD_12), "x"))["hr_bpm"]
    assert f"heart rate {hr:.0f} bpm" in tok.decode(batch["input_ids"][0])
    blank = tok.decode(EcgCollator(proc, blank_ecg=True)([rows[0]])["input_ids"][0])
    assert "Measured: no beats detected." in blank and "heart rate" not in blank
    # the text-only ablation: the ECG blanked, its measurements' text kept
    text_only = EcgCollator(proc, blank_ecg=True, keep_expert_text=True)([rows[0]])
    assert f"heart rate {hr:.0f} bpm" in tok.decode(text_only["input_ids"][0])
    assert not text_only["ecg_values"].any() and batch["ecg_values"][0].any()
    with pytest.raises(ValueError, match="ablation of blank_ecg"):
        EcgCollator(proc, keep_expert_text=True)
    with pytest.raises(ValueError, match="ecg_expert_features is none"):
        EcgCollator(build_model()[1], blank_ecg=True, keep_expert_text=True)
    # generation prompts carry it too
    prompt = tok.decode(EcgCollator(proc).prompt_batch([rows[0]])["input_ids"][0])
    assert "Measured: heart rate" in prompt
    full = expert_text(measurement_vector(sig, proc.ecg_fs), "all")
    assert " QRS " in full and " axis " in full and "RR variation" in full
    with pytest.raises(ValueError, match="rhythm or all"):
        expert_text(measurement_vector(sig, proc.ecg_fs), "none")
    with pytest.raises(ValueError, match="2 ECG items but 1 signals"):
        proc.add_expert_text(rows[1]["messages"], [sig], [None])
    proc.save_pretrained(tmp_path)
    assert AutoProcessor.from_pretrained(tmp_path).ecg_expert_features == "rhythm"
    assert build_model()[1].add_expert_text(rows[0]["messages"], [], []) is rows[0]["messages"]


def test_expert_features_config_is_checked():
    from ecgllm.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="model.expert_features must be none, rhythm or all"):
        load_config(None, ["model.expert_features=some"])
    with pytest.raises(
        ConfigError, match="model.ecg_projector must be linear, mlp2x_gelu or qformer"
    ):
        load_config(None, ["model.ecg_projector=perceiver"])
    assert (
        load_config(
            None, ["model.ecg_projector=qformer", "model.ecg_query_tokens=8"]
        ).model.ecg_query_tokens
        == 8
    )
