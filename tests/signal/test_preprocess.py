"""standardize, derived leads, filters and quality flags."""

from __future__ import annotations

import numpy as np
import pytest

from ecgllm.signal import STANDARD_12, ECGReadError, ECGRecord, read_record, standardize
from ecgllm.signal.preprocess import bandpass, derive_limb_leads, highpass, notch, quality_flags
from ecgllm.signal.simulate import Condition, simulate


def _sim(seed: int = 0, **kw) -> ECGRecord:
    rng = np.random.default_rng(seed)
    c = Condition(labels={}, **kw)
    s = simulate(c, rng)
    return ECGRecord(s.signal, s.fs, list(STANDARD_12), f"sim{seed}")


def test_real_100hz_record_to_500hz_window(real):
    rec = standardize(read_record(real / "ptbxl/records100/00000/00001_lr"))
    assert rec.signal.shape == (12, 5000) and rec.fs == 500.0
    assert rec.lead_mask.all() and not rec.derived.any()
    assert rec.meta["source_fs"] == 100.0 and rec.meta["pad_samples"] == 0


def test_resample_preserves_a_sinusoid():
    t = np.arange(3600) / 360.0
    x = np.sin(2 * np.pi * 5 * t)[None].astype(np.float32)
    rec = standardize(ECGRecord(x, 360.0, ["II"], "s"), fs=500, seconds=10.0, derive=False)
    t5 = np.arange(5000) / 500
    ii = rec.lead("II")
    np.testing.assert_allclose(ii[200:-200], np.sin(2 * np.pi * 5 * t5)[200:-200], atol=0.01)
    assert rec.lead_mask.sum() == 1 and rec.leads[1] == "II"


def test_crop_center_start_and_pad():
    x = np.arange(8000, dtype=np.float32)[None] / 1000
    rec = ECGRecord(x, 500.0, ["I"], "r")
    c = standardize(rec, seconds=10.0, crop="center", derive=False, leads=["I"])
    assert c.signal.shape == (1, 5000) and c.signal[0, 0] == pytest.approx(1.5)
    s = standardize(rec, seconds=10.0, crop="start", derive=False, leads=["I"])
    assert s.signal[0, 0] == 0.0
    p = standardize(rec, seconds=20.0, derive=False, leads=["I"])
    assert p.signal.shape == (1, 10000) and p.meta["pad_samples"] == 2000 and p.signal[0, -1] == 0


def test_lead_order_and_derived_limb_leads():
    full = _sim(1)
    keep = [
        "V3",
        "II",
        "V1",
        "I",
        "V6",
        "V2",
        "V4",
        "V5",
    ]  # shuffled, limb leads III/aVR/aVL/aVF gone
    idx = [STANDARD_12.index(k) for k in keep]
    partial = ECGRecord(full.signal[idx], 500.0, keep, "p")
    rec = standardize(partial)
    assert rec.leads == list(STANDARD_12)
    assert rec.derived.tolist() == [False, False, True, True, True, True] + [False] * 6
    assert rec.lead_mask.all()
    np.testing.assert_allclose(rec.signal, full.signal, atol=2e-5)  # Einthoven/Goldberger exact
    no_derive = standardize(partial, derive=False)
    assert no_derive.lead_mask.tolist()[:6] == [True, True, False, False, False, False]
    assert not no_derive.signal[2].any()


def test_derive_from_augmented_leads_only():
    full = _sim(2).signal
    present = np.array([False, False, False, False, True, True] + [False] * 6)
    x = full * present[:, None]
    out, derived = derive_limb_leads(x, list(STANDARD_12), present)
    np.testing.assert_allclose(out[:6], full[:6], atol=2e-5)
    assert derived[:4].all() and not derived[4:].any()


def test_nan_samples_interpolated_and_counted():
    rec = _sim(3)
    x = rec.signal.copy()
    x[4, 1000:1010] = np.nan
    x[7] = np.nan  # a whole lead lost
    out = standardize(rec.replace(signal=x, lead_mask=np.isfinite(x).any(axis=1)))
    assert np.isfinite(out.signal).all()
    assert out.meta["nan_count"] == 10 + 5000
    assert out.meta["quality"]["nan_fraction"] == pytest.approx(5010 / 60000, abs=1e-6)
    assert not out.lead_mask[7] and out.lead_mask[4]


def test_no_standard_lead_is_a_clear_error():
    rec = ECGRecord(np.zeros((2, 1000), np.float32), 500.0, ["PLETH", "X"], "odd", path="x/odd")
    with pytest.raises(ECGReadError, match="none of the channels"):
        standardize(rec)


def test_filters_are_zero_phase_and_do_their_job():
    fs = 500.0
    t = np.arange(5000) / fs
    spike = np.exp(-(((t - 5.0) / 0.01) ** 2))
    x = (spike + 0.8 * np.sin(2 * np.pi * 0.2 * t) + 0.2 * np.sin(2 * np.pi * 50 * t))[None]
    y = bandpass(x, fs, powerline=50.0)[0]
    assert abs(int(np.argmax(y)) - 2500) <= 1  # peak not shifted
    assert np.abs(highpass(0.8 * np.sin(2 * np.pi * 0.2 * t)[None], fs)[0, 500:-500]).max() < 0.2
    mains = notch(0.2 * np.sin(2 * np.pi * 50 * t)[None], fs, 50.0)[0]
    assert np.abs(mains[500:-500]).max() < 0.01


def test_quality_flags_clean_and_broken():
    rec = _sim(4)
    q = quality_flags(rec.signal, 500.0, rec.leads, rec.lead_mask)
    assert q["ok"], q
    x = rec.signal.copy()
    x[3] = 0.0  # flat
    x[0] = np.clip(x[0], -0.1, 0.1)  # clipped
    t = np.arange(5000) / 500
    x[5] += 1.2 * np.sin(2 * np.pi * 0.15 * t)  # wander
    q = quality_flags(x, 500.0, rec.leads, rec.lead_mask)
    assert q["flat_leads"] == ["aVR"] and "I" in q["clipped_leads"]
    assert q["baseline_wander"] and not q["ok"]
    x = rec.signal + 0.15 * np.sin(2 * np.pi * 60 * t)[None]
    assert quality_flags(x, 500.0, rec.leads, rec.lead_mask)["powerline_noise"]
    x = rec.signal.copy()
    x[9] *= 40
    assert "V4" in quality_flags(x, 500.0, rec.leads, rec.lead_mask)["implausible_leads"]
