"""Measurement accuracy against simulator truth (the issue's tolerances) and on real records."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import wfdb.processing

from ecgllm.signal import STANDARD_12, ECGRecord, find_r_peaks, measure, read_record, standardize
from ecgllm.signal.simulate import rhythm_mix, sample_condition, simulate
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from measure import TOL, beat_match  # noqa: E402


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(2024)
    errs: dict[str, list[float]] = {k: [] for k in TOL}
    tp = fn = fp = 0
    for i in range(150):
        cond = sample_condition(rng)
        sim = simulate(cond, rng)  # with the recording variation: R peaks must survive it
        ref = np.array([b["onset"] for b in sim.truth["beats"]]) + 20
        a, b, c = beat_match(ref, find_r_peaks(sim.signal, sim.fs), sim.fs, sim.signal.shape[1])
        tp, fn, fp = tp + a, fn + b, fp + c
        if cond.noise:
            continue
        # interval precision on the textbook beat of each condition (no recording variation), where
        # the truth is exact; on real records it is tested against cardiologists (test_sources.py)
        cond.var = {}
        sim = simulate(cond, np.random.default_rng(i))
        m = measure(ECGRecord(sim.signal, sim.fs, list(STANDARD_12), f"s{i}"))
        for k in TOL:
            if sim.truth[k] is not None:
                errs[k].append(abs(m[k] - sim.truth[k]) if m[k] is not None else np.inf)
    return errs, tp, fn, fp


@pytest.mark.parametrize("key", list(TOL))
def test_within_tolerance_on_95_percent_of_clean_records(results, key):
    errs = np.array(results[0][key])
    assert len(errs) > 80
    # QRS: 90%, since the simulator's QRS amplitudes reach down to 0.6 mV (as real ones do), where
    # an infarct's initial Q forces blur the onset; on real LUDB records the QRS duration agrees
    # with cardiologists to a bias of -1 ms and an SD of 9 ms (test_sources.py)
    want = 0.9 if key == "qrs_ms" else 0.95
    assert np.mean(errs <= TOL[key]) >= want, (key, np.mean(errs <= TOL[key]))


def test_r_peak_sensitivity_and_predictivity(results):
    _, tp, fn, fp = results
    # on the simulator's recording variation: coarse AF waves and tiny QRS complexes (low voltage)
    # at tachycardia cost a few false detections
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.98


def test_single_lead_input_and_few_beats():
    rng = np.random.default_rng(0)
    sim = simulate(sample_condition(rng), rng)
    one = find_r_peaks(sim.signal[1], sim.fs)
    many = find_r_peaks(sim.signal, sim.fs)
    assert abs(len(one) - len(many)) <= 1
    short = measure(ECGRecord(sim.signal[:, :400], sim.fs, list(STANDARD_12), "short"))
    assert short["hr_bpm"] is None and short["qrs_ms"] is None
    flat = measure(ECGRecord(np.zeros((12, 5000), np.float32), 500.0, list(STANDARD_12), "flat"))
    assert flat["hr_bpm"] is None


def test_real_ptbxl_record_agrees_with_wfdb_xqrs(real):
    rec = standardize(read_record(real / "ptbxl/records100/00000/00001_lr"))
    ours = find_r_peaks(rec.signal, rec.fs)
    xqrs = wfdb.processing.xqrs_detect(rec.lead("II").astype(np.float64), fs=rec.fs, verbose=False)
    tp, fn, fp = beat_match(xqrs, ours, rec.fs, rec.signal.shape[1])
    assert fn == 0 and fp == 0 and tp >= 7
    m = measure(rec)
    # record 1: sinus rhythm, normal ECG with low limb-lead voltage (LVOLT)
    assert 50 < m["hr_bpm"] < 80 and 60 < m["qrs_ms"] < 120 and 100 < m["pr_ms"] < 220
    assert 330 < m["qt_ms"] < 460 and -30 <= m["axis_deg"] <= 90


def test_real_mitbih_excerpt_and_vt_alarm_record(real):
    rec = read_record(real / "wfdb_misc/v102s")
    x = np.nan_to_num(rec.signal[:, : 60 * 250])
    ours = find_r_peaks(x, rec.fs)
    xqrs = wfdb.processing.xqrs_detect(np.nan_to_num(rec.lead("II")[: 60 * 250]).astype(np.float64),
                                       fs=rec.fs, verbose=False)  # fmt: skip
    tp, fn, fp = beat_match(xqrs, ours, rec.fs, x.shape[1])
    assert tp / (tp + fn) >= 0.95 and tp / (tp + fp) >= 0.95


def test_premature_ventricular_beats_early_do_not_hide_the_normal_ones():
    """A tachycardia whose first 2 s hold two premature ventricular beats (each several times a
    normal complex's energy): every beat is found, not only the three ventricular ones (the
    starting QRS level was the first 2 s's maximum)."""
    for seed in range(2000):  # the first seed that simulates the case (not tied to one version)
        rng = np.random.default_rng(seed)
        cond = sample_condition(rng, rhythms=rhythm_mix("STACH=1"))
        if cond.extras != ["PVC"]:
            continue
        sim = simulate(cond, rng)
        if [b["type"] for b in sim.truth["beats"]][:6].count("V") == 2:
            break
    else:
        pytest.fail("no seed below 2000 simulates a tachycardia with two early PVCs")
    ref = np.array([b["onset"] for b in sim.truth["beats"]]) + 20
    tp, fn, fp = beat_match(ref, find_r_peaks(sim.signal, sim.fs), sim.fs, sim.signal.shape[1])
    assert fn == 0 and fp == 0 and tp >= 16  # over 100 bpm for 10 s
