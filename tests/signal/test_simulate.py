"""The simulator: PTB-XL layout, determinism, Einthoven consistency, conditions that look like
their criteria when measured."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ecgllm.signal import PTBXL, STANDARD_12, ECGRecord, measure, read_record, standardize
from ecgllm.signal.simulate import Condition, rhythm_mix, sample_condition, simulate
from ecgllm.signal.synthetic_db import PTBXL_COLUMNS, scp_statements_path
from tests.conftest import ROOT


def _tree_digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_ptbxl_layout(sim_db):
    df = pd.read_csv(sim_db / "ptbxl_database.csv")
    assert list(df.columns) == PTBXL_COLUMNS
    assert len(df) == 60 and df["ecg_id"].tolist() == list(range(1, 61))
    assert (sim_db / "scp_statements.csv").read_bytes() == scp_statements_path().read_bytes()
    row = df.iloc[0]
    assert row["filename_hr"] == "records500/00000/00001_hr"
    hr = read_record(sim_db / row["filename_hr"])
    lr = read_record(sim_db / row["filename_lr"])
    assert hr.signal.shape == (12, 5000) and lr.signal.shape == (12, 1000)
    header = (sim_db / (row["filename_hr"] + ".hea")).read_text().splitlines()
    assert header[0] == "00001_hr 12 500 5000" and header[4].endswith(" AVR")
    assert " 1000.0(0)/mV 16 0 " in header[1]
    codes = set(pd.read_csv(scp_statements_path(), index_col=0).index)
    for text in df["scp_codes"]:
        assert set(eval(text)) <= codes  # noqa: S307 - our own file, PTB-XL's dict format
    # several records per patient, one fold per patient
    assert df["patient_id"].nunique() < len(df)
    assert (df.groupby("patient_id")["strat_fold"].nunique() == 1).all()
    truth = [json.loads(x) for x in (sim_db / "simulation_truth.jsonl").read_text().splitlines()]
    assert [t["ecg_id"] for t in truth] == list(range(1, 61))


def test_same_seed_same_bytes_any_workers(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "data_builders/synthetic.py"),
        "--n",
        "40",
        "--seed",
        "5",
        "--quiet",
    ]
    subprocess.run(
        [*cmd, "--out", str(tmp_path / "a"), "--workers", "1"], check=True, capture_output=True
    )
    r = subprocess.run([*cmd, "--out", str(tmp_path / "b"), "--workers", "2"], check=True,
                       capture_output=True, text=True)  # fmt: skip
    assert "simulated 40 records" in r.stdout
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    subprocess.run([*cmd[:-3], "--seed", "6", "--quiet", "--out", str(tmp_path / "c")], check=True)
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_cli_rejects_bad_arguments(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "data_builders/synthetic.py"), "--out", str(tmp_path),
                        "--n", "0"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "--n must be >= 1" in r.stderr


def test_rhythm_mix(tmp_path):
    from collections import Counter

    from ecgllm.signal.simulate import RHYTHMS

    assert rhythm_mix(None) == RHYTHMS and rhythm_mix("ptbxl") == RHYTHMS
    assert set(rhythm_mix("balanced").values()) == {1 / 6}
    assert rhythm_mix("SR=1,AFIB=3") == {**dict.fromkeys(RHYTHMS, 0.0), "SR": 0.25, "AFIB": 0.75}
    for bad, msg in (
        ("SR=1,VTAC=1", "unknown rhythm code"),
        ("SR", "CODE=weight"),
        ("SR=0", "not all zero"),
    ):
        with pytest.raises(ValueError, match=msg):
            rhythm_mix(bad)
    rng = np.random.default_rng(0)
    counts = Counter(
        sample_condition(rng, rhythms=rhythm_mix("balanced")).rhythm for _ in range(1200)
    )
    assert set(counts) == set(RHYTHMS) and min(counts.values()) > 150
    counts = Counter(sample_condition(rng, rhythms=rhythm_mix("AFLT=1")).rhythm for _ in range(20))
    assert counts == {"AFLT": 20}
    r = subprocess.run([sys.executable, str(ROOT / "data_builders/synthetic.py"), "--out", str(tmp_path), "--n", "3",
                        "--rhythms", "SR=1,XX=2"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "--rhythms: rhythm mix: unknown rhythm code(s) ['XX']" in r.stderr


def test_einthoven_and_goldberger_hold():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = simulate(sample_condition(rng), rng).signal.astype(np.float64)
        i, ii, iii, avr, avl, avf = x[:6]
        np.testing.assert_allclose(iii, ii - i, atol=1e-5)
        np.testing.assert_allclose(avr + avl + avf, 0, atol=1e-5)
        np.testing.assert_allclose(avf, ii - i / 2, atol=1e-5)


def _measure(mods=(), rhythm="SR", seed=0, **kw):
    rng = np.random.default_rng(seed)
    c = Condition(labels={}, rhythm=rhythm, mods=set(mods), **kw)
    sim = simulate(c, rng)
    return measure(ECGRecord(sim.signal, sim.fs, list(STANDARD_12), "x")), sim


@pytest.mark.parametrize("seed", [0, 1])
def test_conditions_meet_their_criteria(seed):
    m, _ = _measure(["CLBBB"], qrs=0.15, axis=10, seed=seed)
    assert m["qrs_ms"] >= 120 and m["leads"]["V6"]["q_mv"] > -0.05  # wide, no septal q in V6
    m, _ = _measure(["CRBBB"], qrs=0.14, seed=seed)
    assert m["qrs_ms"] >= 120 and m["leads"]["V1"]["r_mv"] > abs(m["leads"]["V1"]["s_mv"]) * 0.5
    m, _ = _measure(["LAFB"], axis=-60, qrs=0.1, seed=seed)
    assert m["axis_deg"] < -30 and m["qrs_ms"] < 120
    m, _ = _measure(["LVH"], r_amp=2.7, seed=seed)
    assert m["sokolow_lyon_mv"] > 3.5
    m, _ = _measure(["LVOLT"], r_amp=0.32, t_amp=0.15, seed=seed)
    limb = [
        m["leads"][k]["r_mv"] - m["leads"][k]["s_mv"]
        for k in ("I", "II", "III", "aVR", "aVL", "aVF")
    ]
    assert max(limb) < 0.5
    m, _ = _measure(["1AVB"], pr=0.26, hr=65, seed=seed)
    assert m["pr_ms"] > 200
    m, _ = _measure(["LNGQT"], qtc=0.52, seed=seed)
    assert m["qtc_ms"] > 470
    m, _ = _measure(["IMI"], seed=seed)
    assert min(m["leads"][k]["q_mv"] for k in ("III", "aVF")) < -0.1
    m, _ = _measure(rhythm="SBRAD", hr=48, seed=seed)
    assert m["hr_bpm"] < 60
    m, _ = _measure(rhythm="STACH", hr=115, pr=0.13, seed=seed)
    assert m["hr_bpm"] > 100


def test_af_is_irregular_without_p_waves():
    m, sim = _measure(rhythm="AFIB", hr=95, seed=3)
    assert sim.truth["pr_ms"] is None and m["pr_ms"] is None
    assert m["rr_sd_ms"] > 60
    m, _ = _measure(rhythm="SR", hr=70, seed=3)
    assert m["rr_sd_ms"] < 30 and m["pr_ms"] is not None


def test_noise_fields_are_in_the_signal(sim_db):
    db = PTBXL(sim_db)
    seen = {"baseline_drift": 0, "static_noise": 0}
    quiet_ok = []
    for rec in db.records():
        q = standardize(rec).meta["quality"]
        if rec.meta["baseline_drift"]:
            seen["baseline_drift"] += 1
            assert q["baseline_wander"], rec.record_id
        if rec.meta["static_noise"]:
            seen["static_noise"] += 1
            assert q["powerline_noise"] or q["powerline_ratio"] > 0.05, rec.record_id
        if not (rec.meta["baseline_drift"] or rec.meta["static_noise"] or rec.meta["burst_noise"]):
            quiet_ok.append(q["ok"])
    assert all(seen.values()), seen
    # records without noise labels carry only a real recording's background (muscle noise,
    # breathing, electrode offsets): nearly all pass the quality check (a broad T wave or
    # coarse fibrillatory waves can read as wander, as on real records: 10 of LUDB's 100 fail it)
    assert np.mean(quiet_ok) >= 0.9, np.mean(quiet_ok)


def test_reports_are_ptbxl_style_english(sim_db):
    df = pd.read_csv(sim_db / "ptbxl_database.csv")
    for report, codes in zip(df["report"], df["scp_codes"], strict=True):
        assert report.endswith(".") and report == report.lower()
        if "AFIB" in codes:
            assert "atrial fibrillation" in report
        if "'NORM'" in codes:
            assert report.endswith("normal ecg.")


def test_premature_beats_in_every_sinus_rhythm():
    """Premature beats occur in all four sinus rhythms (tachycardia too: real sinus tachycardias
    often carry premature atrial beats), and some records have several."""
    from ecgllm.signal.simulate import beat_times

    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(400):
        c = sample_condition(rng)
        if c.extras:
            seen.setdefault(c.rhythm, []).append(c.extras[0])
    assert {"SR", "SBRAD", "SARRH", "STACH"} <= set(seen) and "PAC" in seen["STACH"]
    counts = []
    for s in range(40):
        c = Condition(labels={}, rhythm="STACH", hr=110, extras=["PAC"])
        beats, _ = beat_times(c, np.random.default_rng(s), 10.0)
        counts.append(sum(k == "A" for t, k in beats if 0 <= t < 10))
    assert min(counts) >= 1 and max(counts) >= 3


def test_sinus_tachycardia_premature_atrial_beats_as_real_ones():
    """Simulator version 3: a third of sinus tachycardias carry PACs (the Challenge's Chapman
    tachycardias mostly do), coupled at 55-85 % of the RR so their P wave can sit on the T wave,
    sometimes in couplets, followed by a reset (not compensatory) pause; the RR is then as
    irregular as AF's by RMSSD while the P waves are still found."""
    from ecgllm.signal.simulate import beat_times, draw_variation

    rng = np.random.default_rng(5)
    stach = [sample_condition(rng, rhythms=rhythm_mix("STACH=1")) for _ in range(400)]
    share = np.mean(["PAC" in c.extras for c in stach])
    assert 0.25 < share < 0.45
    couplings, pauses, couplets = [], [], 0
    for s in range(60):
        r = np.random.default_rng(s)
        c = Condition(labels={}, rhythm="STACH", hr=110, extras=["PAC"])
        c.var = draw_variation(r, c)
        beats, _ = beat_times(c, r, 10.0)
        rr0 = 60 / 110
        for k in range(1, len(beats) - 1):
            (t0, k0), (t1, k1), (t2, k2) = beats[k - 1], beats[k], beats[k + 1]
            if k1 == "A" and k0 == "N":
                couplings.append((t1 - t0) / rr0)
                couplets += k2 == "A"
            if k1 == "A" and k2 == "N":
                pauses.append((t2 - t1) / rr0)
    assert 0.45 < min(couplings) and max(couplings) < 0.95 and np.ptp(couplings) > 0.2
    assert 0.85 < min(pauses) and max(pauses) < 1.3  # reset: about one RR, never two
    assert couplets >= 1
    # measured as a real record would be: the RR irregular beyond the AF rule's threshold, P waves found
    from ecgllm.signal.rhythm import AF_NRMSSD, rhythm_features

    nrmssd, p_found = [], []
    for c in [c for c in stach if "PAC" in c.extras][:30]:
        sim = simulate(c, rng)
        m = measure(standardize(ECGRecord(sim.signal, sim.fs, list(STANDARD_12), "pac")))
        nrmssd.append(rhythm_features(m)["rr_nrmssd"] or 0.0)
        p_found.append(m["pr_ms"] is not None)
    assert np.median(nrmssd) > AF_NRMSSD and np.mean(p_found) >= 0.75
