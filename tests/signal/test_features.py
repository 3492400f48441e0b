"""The measurement vector behind the ECG encoder's measurement tokens, and rhythm by rule."""

from __future__ import annotations

import numpy as np

from ecgllm.signal import STANDARD_12, ECGRecord, measure, standardize
from ecgllm.signal.features import (
    FEATURE_NAMES,
    MEASUREMENT_DIM,
    MeasurementCache,
    measurement_vector,
)
from ecgllm.signal.ludb import LUDB
from ecgllm.signal.rhythm import rhythm_features, rule_rhythm
from ecgllm.signal.simulate import Condition, simulate


def test_vector_layout_values_and_validity(real):
    rec = standardize(next(r for r in LUDB(real / "ludb").records() if r.record_id == "123"))
    v = measurement_vector(rec.signal, rec.fs, rec.lead_mask)
    n = len(FEATURE_NAMES)
    assert v.shape == (MEASUREMENT_DIM,) == (2 * n,) and v.dtype == np.float32
    m = measure(rec)
    hr = FEATURE_NAMES.index("hr_bpm")
    assert (
        v[n + hr] == 1.0 and abs(v[hr] - (m["hr_bpm"] - 75.0) / 20.0) < 1e-5
    )  # (value - typical) / spread
    assert v[n + FEATURE_NAMES.index("p_waves")] == 1.0 and v[FEATURE_NAMES.index("p_waves")] == 1.0
    assert v[n + FEATURE_NAMES.index("V1.r_mv")] == 1.0
    assert np.all(np.abs(v[:n]) <= 6.0)


def test_blank_and_missing_leads():
    assert not measurement_vector(np.zeros((12, 5000), np.float32)).any()  # the blank-ECG ablation
    sim = simulate(Condition(labels={}, rhythm="SR", hr=70), np.random.default_rng(0))
    mask = np.zeros(12, bool)
    mask[1] = True  # lead II only
    v = measurement_vector(sim.signal * mask[:, None], 500.0, mask)
    n = len(FEATURE_NAMES)
    assert v[n + FEATURE_NAMES.index("hr_bpm")] == 1.0
    assert v[n + FEATURE_NAMES.index("V1.r_mv")] == 0.0 and v[FEATURE_NAMES.index("V1.r_mv")] == 0.0
    cache = MeasurementCache(max_items=2)
    a = cache(sim.signal, 500.0, None)
    assert cache(sim.signal.copy(), 500.0, None) is a  # same bytes: measured once
    assert not np.array_equal(cache(sim.signal, 500.0, mask), a)


def test_rule_rhythm_on_simulated_rhythms():
    rng = np.random.default_rng(1)
    for rhythm, hr in (("SR", 72), ("SBRAD", 48), ("STACH", 115), ("AFIB", 95)):
        sim = simulate(Condition(labels={}, rhythm=rhythm, hr=hr, pr=0.14), rng)
        m = measure(ECGRecord(sim.signal, 500.0, list(STANDARD_12), "x"))
        assert rule_rhythm(m) == rhythm, (rhythm, rhythm_features(m))
    assert rule_rhythm({"beats": [], "hr_bpm": None}) is None


def test_rr_mad_tells_premature_beats_from_af():
    """A few premature beats raise the RR spread as AF does; the median beat-to-beat change
    (rr_mad, in the measurement vector) stays low for them and high for AF."""
    rr_pac = [600.0] * 5 + [420.0, 780.0] + [600.0] * 5
    rr_af = [520.0, 810.0, 640.0, 930.0, 560.0, 700.0, 480.0, 860.0, 610.0, 750.0, 500.0, 680.0]

    def feats(rr):
        r = np.concatenate([[0.0], np.cumsum(rr)]) * 0.5  # ms -> samples at 500 Hz
        return rhythm_features({"beats": [{"r": x} for x in r], "hr_bpm": 100.0, "pr_ms": 150.0})

    pac, af = feats(rr_pac), feats(rr_af)
    assert pac["rr_range_ms"] > 300 and af["rr_range_ms"] > 300  # the spread alike
    assert pac["rr_mad"] == 0.0 and af["rr_mad"] > 0.2
    assert "rr_mad" in FEATURE_NAMES


def test_a_model_of_the_earlier_layout_gets_its_vector(real, tiny_dir):
    """Values added to the measurement vector go last (features.LATE): a model trained on the
    earlier 152-value layout (before rr_mad) still gets exactly the values and flags it knew,
    through its processor; a size no layout had is a clear error."""
    import pytest
    from transformers import AutoProcessor

    from ecgllm.model import EcgLlmProcessor  # noqa: F401 - registers the Auto class
    from ecgllm.signal.features import GLOBAL, LATE, PER_LEAD, columns_for

    rec = standardize(next(r for r in LUDB(real / "ludb").records() if r.record_id == "123"))
    v = measurement_vector(rec.signal, rec.fs, rec.lead_mask)
    n, k = len(FEATURE_NAMES), len(GLOBAL) + 12 * len(PER_LEAD)
    assert k == 76 and n == k + len(LATE) and FEATURE_NAMES[k:] == ("rr_mad",)
    old = v[columns_for(2 * k)]
    assert np.array_equal(old, np.r_[v[:k], v[n : n + k]])
    assert np.array_equal(v[columns_for(MEASUREMENT_DIM)], v)
    proc = AutoProcessor.from_pretrained(tiny_dir)
    proc.ecg_measurement_dim = 2 * k
    got = proc.measurements([rec.signal], rec.lead_mask[None])
    assert got.shape == (1, 2 * k) and np.array_equal(got[0].numpy(), old)
    proc.ecg_measurement_dim = 100
    with pytest.raises(ValueError, match="no ecgllm measurement layout has 100 values"):
        proc.measurements([rec.signal], rec.lead_mask[None])
