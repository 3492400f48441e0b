"""The ECG tokenizer: quantisation, BPE merges, round trip in mV, files, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ecgllm.model.ecg_tokenizer import EcgTokenizer, EcgTokenizerConfig
from ecgllm.signal.record import STANDARD_12


def _ecgs(n=12, seed=0):
    """Periodic beat-like signals (a spike and a slow wave each second), 12 leads, 10 s, 500 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    out = []
    for _ in range(n):
        rate = rng.uniform(0.8, 1.6)
        phase = (t * rate) % 1.0
        beat = 1.2 * np.exp(-(((phase - 0.3) / 0.012) ** 2)) + 0.25 * np.exp(
            -(((phase - 0.6) / 0.06) ** 2)
        )
        gains = rng.uniform(0.3, 1.2, size=(12, 1))
        out.append((gains * beat[None]).astype(np.float32))
    return np.stack(out)


def test_quantisation_steps_and_mu_law():
    tok = EcgTokenizer(EcgTokenizerConfig(mu=0.0, levels=50, clip_mv=2.5), None)
    x = np.linspace(-2.5, 2.5, 1001)
    err = np.abs(tok.dequantise(tok.quantise(x)) - x)
    assert err.max() <= 2 * 2.5 / 50 / 2 + 1e-6  # within half a uniform step
    assert tok.quantise(np.array([-9.0, 9.0])).tolist() == [0, 49]  # saturates
    mu = EcgTokenizer(EcgTokenizerConfig(mu=32.0, levels=50), None)
    small = np.linspace(-0.1, 0.1, 201)  # near the baseline mu-law steps are finer
    assert (
        np.abs(mu.dequantise(mu.quantise(small)) - small).max()
        < np.abs(tok.dequantise(tok.quantise(small)) - small).max()
    )


def test_train_encode_decode_round_trip_and_files(tmp_path):
    x = _ecgs()
    masks = np.ones((len(x), 12), bool)
    cfg = EcgTokenizerConfig(leads=("II", "V2"), vocab_size=300)
    tok = EcgTokenizer.train(x[:10], masks[:10], cfg)
    assert cfg.levels < tok.vocab_size <= 300  # merges were learned
    ids = tok.encode(x[10], masks[10])
    assert len(ids) == 2 and all(0 <= i < tok.vocab_size for i in ids[0])
    assert len(ids[0]) < 500  # 10 s at 50 Hz = 500 symbols, fewer tokens
    r = tok.round_trip_error(x[10:], masks[10:])
    assert r["rmse_mv"] < 0.08 and r["tokens_per_lead"] < r["symbols_per_lead"] == 500
    back = tok.decode(ids, 5000)
    assert back.shape == (2, 5000)
    # a missing lead: a marker, no symbols; decoded as zeros
    m = masks[10].copy()
    m[STANDARD_12.index("V2")] = False
    ids_m = tok.encode(x[10], m)
    assert ids_m[1] is None and ids_m[0] == ids[0]
    assert not tok.decode(ids_m, 5000)[1].any()
    s = tok.token_strings(ids_m)
    assert s.startswith("<ecg_lead_II><ecg_") and s.endswith("<ecg_lead_V2_missing>")
    added = tok.added_tokens()
    assert len(added) == len(set(added)) == tok.vocab_size + 4
    assert all(
        t in added
        for t in ("<ecg_lead_II>", "<ecg_lead_V2_missing>", f"<ecg_{tok.vocab_size - 1}>")
    )
    # saved and loaded: the same tokens
    tok.save_pretrained(tmp_path / "t")
    again = EcgTokenizer.from_pretrained(tmp_path / "t")
    assert again.config == tok.config and again.encode(x[11], masks[11]) == tok.encode(
        x[11], masks[11]
    )


def test_bad_input():
    with pytest.raises(ValueError, match="leads must be distinct names"):
        EcgTokenizerConfig(leads=("II", "X"))
    with pytest.raises(ValueError, match="fs must be in"):
        EcgTokenizerConfig(fs=1000.0)
    with pytest.raises(ValueError, match="vocab_size"):
        EcgTokenizerConfig(levels=64, vocab_size=10)
    tok = EcgTokenizer.train(_ecgs(4), None, EcgTokenizerConfig(vocab_size=100))
    with pytest.raises(ValueError, match=r"signal must be \[12, samples\]"):
        tok.encode(np.zeros((3, 5000), np.float32))
    bad = _ecgs(1)[0]
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(bad)
    with pytest.raises(ValueError, match="no lead to learn"):
        EcgTokenizer.train(_ecgs(2), np.zeros((2, 12), bool))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ECG tokenizer here"):
        EcgTokenizer.from_pretrained(tmp_path)
    (tmp_path / "ecg_tokenizer.json").write_text('{"config": {"leads": ["II"]}}')
    with pytest.raises(ValueError, match="not an ECG tokenizer file"):
        EcgTokenizer.from_pretrained(tmp_path)


# --- the LLM side: the vocabulary route -----------------------------------------------------------
@pytest.fixture(scope="module")
def token_model():
    from ecgllm.model.factory import build_model

    tok = EcgTokenizer.train(
        _ecgs(12), None, EcgTokenizerConfig(leads=("II", "V2"), vocab_size=300)
    )
    model, proc = build_model(vision=None, ecg=None, ecg_tokenizer=tok)
    return tok, model, proc


def _row(x, masks, text="What rhythm?", answer="A. sinus rhythm"):
    user = [{"type": "ecg"}] * len(x) + [{"type": "image"}, {"type": "text", "text": text}]
    return {"id": "r1", "record_ids": [f"e{i}" for i in range(len(x))], "modalities": ["signal", "image"],
            "signal": np.stack(x), "lead_mask": np.stack(masks), "images": [None],
            "messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}]}  # fmt: skip


def test_llm_vocabulary_grows_and_ecgs_become_tokens(token_model, tmp_path):
    """The ECG tokens are added to the LLM's vocabulary (rows drawn the same way every time); the
    processor (generation) and the collator (training, scoring) give identical ids; a missing lead
    is its marker; saved and reloaded the processor tokenizes the same."""
    import torch
    from transformers import AutoProcessor

    import ecgllm.model  # noqa: F401 - Auto classes
    from ecgllm.data.collator import EcgCollator
    from ecgllm.model.factory import TINY_LLAMA, build_model

    tok, model, proc = token_model
    assert proc.tokenizes_ecgs and proc.takes_ecgs and proc.num_ecg_tokens == 0
    n_new = len(tok.added_tokens())
    emb = model.language_model.get_input_embeddings().weight
    assert emb.shape[0] == len(proc.tokenizer) == TINY_LLAMA["vocab_size"] + n_new
    lo, hi = proc.ecg_token_id_range()
    assert hi - lo + 1 == n_new and lo == TINY_LLAMA["vocab_size"]
    # the new rows depend on the base alone, not on the random state (a rebuilt hub base matches)
    import copy

    from ecgllm.model.factory import grow_embeddings

    base, _ = build_model(vision=None, ecg=None)
    grown = []
    for seed in (1, 2):
        lm = copy.deepcopy(base.language_model)
        torch.manual_seed(seed)
        grow_embeddings(lm, lo + n_new)
        grown.append(lm)
    for get in ("get_input_embeddings", "get_output_embeddings"):
        a, b = (getattr(g, get)().weight for g in grown)
        assert a.shape[0] == lo + n_new and torch.equal(a, b)
        assert torch.equal(a[:lo], getattr(base.language_model, get)().weight)
    x = _ecgs(3, seed=5)
    masks = np.ones((3, 12), bool)
    masks[2, STANDARD_12.index("V2")] = False
    runs = proc.ecg_token_ids(list(x), list(masks))
    want0 = tok.encode(x[0], masks[0])
    vocab = proc.tokenizer.get_vocab()
    assert runs[0] == [vocab["<ecg_lead_II>"]] + [vocab[f"<ecg_{i}>"] for i in want0[0]] + [
        vocab["<ecg_lead_V2>"]] + [vocab[f"<ecg_{i}>"] for i in want0[1]]  # fmt: skip
    assert runs[2][-1] == vocab["<ecg_lead_V2_missing>"] and all(
        lo <= t <= hi for r in runs for t in r
    )
    # collator (training) == processor (generation) on the prompt; the ECG tokens are not labels
    col = EcgCollator(proc, max_length=4096)
    row = _row([x[0], x[2]], [masks[0], masks[2]])
    batch = col([row])
    ids = batch["input_ids"][0].tolist()
    assert "ecg_values" not in batch and "pixel_values" not in batch
    assert (
        all(t in ids for t in runs[0])
        and (batch["labels"][0][torch.tensor(ids) >= lo] == -100).all()
    )
    prompt = col.prompt_batch([row])
    p_ids = prompt["input_ids"][0][prompt["attention_mask"][0] == 1].tolist()
    assert ids[: len(p_ids)] == p_ids
    # forecasting: the ECG tokens supervised too
    fc = EcgCollator(proc, max_length=4096, ecg_token_loss=True)([row])
    ecg_pos = torch.tensor(ids) >= lo
    assert torch.equal(fc["labels"][0][ecg_pos], batch["input_ids"][0][ecg_pos])
    # the blank-ECG ablation: flat lines, the same tokens for every record
    blank = EcgCollator(proc, max_length=4096, blank_ecg=True)
    b1 = blank([_row([x[0]], [masks[0]])])["input_ids"]
    b2 = blank([_row([x[1]], [masks[1]])])["input_ids"]
    assert torch.equal(b1, b2) and b1.shape[1] < len(ids)
    # a cut inside an ECG's tokens drops the sample (counted), never a partial ECG
    short = EcgCollator(proc, max_length=20)
    with pytest.raises(ValueError, match="every sample of the batch was dropped"):
        short([row])
    assert short.dropped["placeholder_run_cut"] == 1
    # saved and reloaded (processor_config.json carries the ECG tokenizer): the same ids
    proc.save_pretrained(tmp_path)
    back = AutoProcessor.from_pretrained(tmp_path)
    text = proc.apply_chat_template(row["messages"][:1], add_generation_prompt=True)
    assert torch.equal(back(text=[text], ecgs=[x[0], x[2]], lead_masks=[masks[0], masks[2]])["input_ids"],
                       proc(text=[text], ecgs=[x[0], x[2]], lead_masks=[masks[0], masks[2]])["input_ids"])  # fmt: skip
    out = model(**proc(text=[text], ecgs=[x[0], x[2]]))
    assert out.logits.shape[-1] == len(proc.tokenizer)


def test_llm_route_bad_input(token_model):
    from ecgllm.data.augment import SignalAugment
    from ecgllm.data.collator import EcgCollator
    from ecgllm.model.factory import TINY_ECG, build_model

    tok, _, proc = token_model
    with pytest.raises(ValueError, match="replace the ECG encoder"):
        build_model(vision=None, ecg=TINY_ECG, ecg_tokenizer=tok)
    with pytest.raises(ValueError, match="takes signals at 500 Hz, the model at 250 Hz"):
        build_model(vision=None, ecg=None, ecg_tokenizer=tok, ecg_fs=250.0)
    with pytest.raises(ValueError, match="a model that reads ECG tokens has none"):
        EcgCollator(proc, augment=SignalAugment())
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "ecg"}, {"type": "text", "text": "Rhythm?"}]}],
        add_generation_prompt=True,
    )
    with pytest.raises(ValueError, match="would cut into an ECG's tokens"):
        proc(text=[text], ecgs=[_ecgs(1)[0]], truncation=True, max_length=30)
    with pytest.raises(ValueError, match="1 <ecg> placeholders but 0 ECGs"):
        proc(text=[text])
    from ecgllm.model.factory import build_model as bm

    _, plain = bm(vision=None)
    with pytest.raises(ValueError, match="ecg_token_loss needs"):
        EcgCollator(plain, ecg_token_loss=True)


def test_lora_trains_only_the_new_token_rows(token_model):
    """A pretrained backbone (no train_modules): LoRA plus PEFT trainable tokens on the ECG rows;
    the old vocabulary's rows do not move."""
    import torch

    from ecgllm.model.lora import prepare_for_training

    tok, _, _ = token_model
    from ecgllm.model.factory import build_model

    model, proc = build_model(vision=None, ecg=None, ecg_tokenizer=tok)
    lo, hi = proc.ecg_token_id_range()
    before = model.language_model.get_input_embeddings().weight.detach().clone()
    model = prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0,
                                 trainable_token_ids=list(range(lo, hi + 1)))  # fmt: skip
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "ecg"}, {"type": "text", "text": "Rhythm?"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "sinus"}]}])  # fmt: skip
    b = proc(text=[text], ecgs=[_ecgs(1)[0]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(**b, labels=b["input_ids"])
    out.loss.backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is not None]
    assert any("trainable_tokens" in n for n in names) and any("lora_A" in n for n in names)
    opt.step()
    merged = model.merge_and_unload()
    after = merged.language_model.get_input_embeddings().weight
    assert torch.equal(after[:lo], before[:lo]) and not torch.equal(after[lo:], before[lo:])
