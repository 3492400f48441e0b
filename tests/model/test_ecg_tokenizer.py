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
