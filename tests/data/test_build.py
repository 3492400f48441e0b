"""The instruction-data builder: splits, validation, determinism, resume, modalities, sources."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from datasets import load_from_disk

from ecgllm.data import BuildConfig, SampleError, build_dataset, validate_sample
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.data.tasks import RecordInfo, detect_task, ground_task, measure_task
from ecgllm.signal import PTBXL
from ecgllm.text.reports import english_report
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def built(sim_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("inst")
    report = build_dataset(
        BuildConfig(source="synthetic", root=str(sim_db), out=str(out), chunk_size=16),
        progress=False,
    )
    return out, report


def _all_samples(out):
    dd = load_from_disk(str(out / "samples"))
    return [s for split in dd.values() for s in split]


def test_report_counts_and_every_task(built):
    out, r = built
    assert r["records"] == 60 and r["rejects"] == {} and r["invalid_samples"] == {}
    assert set(r["samples_by_task"]) == {
        "report",
        "detect",
        "mcq",
        "ecgqa",
        "measure",
        "ground",
        "multiturn",
    }
    assert sum(r["samples_by_split"].values()) == r["samples"]
    assert {"single-verify", "single-query", "single-choose"} <= set(r["samples_by_question_type"])
    assert any(k.startswith("comparison_consecutive") for k in r["samples_by_question_type"])
    assert any(k.startswith("comparison_irrelevant") for k in r["samples_by_question_type"])
    assert json.loads((out / "build_report.json").read_text())["samples"] == r["samples"]


def test_verify_rows_ask_the_detection_question_evenly(built, sim_db, tmp_path):
    """The verify family asks what the detect benchmark asks ("Does this ECG show symptoms of
    <label>?" about a label of its sets), each question as often "yes" as "no" per split; added
    last, it leaves every other family's samples as they were."""
    from collections import Counter

    from ecgllm.data.tasks import DETECT_SETS, TASKS, VERIFY
    from ecgllm.text.vocab import label_set, scp_name

    out, _ = built  # the default build: no verify rows
    assert not [s for s in _all_samples(out) if s["task"] == "verify"]
    with_verify = tmp_path / "with"
    build_dataset(BuildConfig(source="synthetic", root=str(sim_db), out=str(with_verify), chunk_size=16,
                              tasks=(*TASKS, "verify")), progress=False)  # fmt: skip
    rows = [s for s in _all_samples(with_verify) if s["task"] == "verify"]
    names = {scp_name(c) for n in DETECT_SETS for c in label_set(n)}
    asked = Counter()
    for s in rows:
        q = s["messages"][0]["content"][-1]["text"]
        label = q.removeprefix("Does this ECG show symptoms of ").removesuffix("?")
        assert VERIFY.format(label=label) == q and label in names, q
        assert s["answer"] in (["yes"], ["no"]) and s["attribute_type"] in DETECT_SETS
        truth = scp_name_in_record(s, label)
        assert s["answer"] == (["yes"] if truth else ["no"]), (s["id"], label)
        asked[(s["split"], q, s["answer"][0])] += 1
    assert len(rows) > 60 and {a for *_, a in asked} == {"yes", "no"}
    for (split, q, _), n in asked.items():
        assert asked[(split, q, "yes")] == asked[(split, q, "no")] == n
    key = lambda s: (s["id"], json.dumps(s["messages"], sort_keys=True))  # noqa: E731
    assert sorted(map(key, _all_samples(out))) == sorted(
        key(s) for s in _all_samples(with_verify) if s["task"] != "verify"
    )


def scp_name_in_record(s: dict, label: str) -> bool:
    from ecgllm.text.vocab import codes_in_set, scp_name

    labels = {c: 100.0 for c in s["labels"]}
    return label in {scp_name(c) for c in codes_in_set(labels, s["attribute_type"])}


def test_splits_follow_strat_fold_and_never_share_a_patient(built, sim_db):
    out, _ = built
    db = PTBXL(sim_db)
    split_of = {e.record_id: e.split for e in db.entries}
    patient_split: dict[str, str] = {}
    for s in _all_samples(out):
        for rid in s["record_ids"]:
            assert split_of[rid] == s["split"], s["id"]
        assert patient_split.setdefault(s["patient_id"], s["split"]) == s["split"]


def test_every_sample_valid_and_placeholders_match(built):
    out, _ = built
    for s in _all_samples(out):
        validate_sample(s)
        first = s["messages"][0]["content"]
        n = len(s["record_ids"])
        assert (
            sum(c["type"] == "ecg" for c in first) == n
            and sum(c["type"] == "image" for c in first) == n
        )
        assert s["answer"] and all(m["content"] for m in s["messages"])
        if s["options"]:
            assert set(s["answer"]) <= set(s["options"])


def test_joined_rows_have_signal_and_image(built):
    out, _ = built
    ds = EcgInstructionDataset(out, "train")
    row = ds[0]
    assert row["signal"].shape == (1, 12, 5000) and row["signal"].dtype == np.float32
    assert row["images"][0].size == (2200, 1700) and row["lead_mask"].all()
    cmp = next(i for i in range(len(ds)) if len(ds.samples[i]["record_ids"]) == 2)
    assert ds[cmp]["signal"].shape == (2, 12, 5000) and len(ds[cmp]["images"]) == 2
    # the stored signal is the standardized record in mV (float16)
    db = PTBXL(ds.report["root"])
    rec = next(r for r in db.records() if r.record_id == row["record_ids"][0])
    np.testing.assert_allclose(row["signal"][0], rec.signal, atol=2e-3)


def test_same_seed_same_rows_any_workers_and_resume(built, sim_db, tmp_path):
    out, _ = built
    other = tmp_path / "b"
    build_dataset(
        BuildConfig(source="synthetic", root=str(sim_db), out=str(other), workers=2, chunk_size=16),
        progress=False,
    )
    a, b = _all_samples(out), _all_samples(other)
    assert a == b
    ra, rb = load_from_disk(str(out / "records")), load_from_disk(str(other / "records"))
    assert ra["record_id"] == rb["record_id"] and ra[5]["signal"] == rb[5]["signal"]
    # an interrupted build: pass 1 stopped after two of four chunks -> the rerun completes it
    third = tmp_path / "c"
    cfg = BuildConfig(source="synthetic", root=str(sim_db), out=str(third), chunk_size=16)
    from ecgllm.data import build as B

    B._init_worker(cfg)
    (third / "_work").mkdir(parents=True)
    (third / "_work" / "config.json").write_text(json.dumps({"fingerprint": cfg.fingerprint()}))
    B._process_chunk((0, list(range(0, 16))))
    B._process_chunk((2, list(range(32, 48))))
    report = build_dataset(cfg, progress=False)
    assert report["records"] == 60 and _all_samples(third) == a
    assert not (third / "_work").exists()
    again = build_dataset(cfg, progress=False)
    assert again["resumed"] == "complete"
    with pytest.raises(ValueError, match="other settings"):
        (third / "_work").mkdir()
        (third / "_work" / "config.json").write_text(json.dumps({"fingerprint": "x"}))
        B.build_records(cfg, progress=False)


def test_signal_only_and_bad_records(sim_db, tmp_path):
    root = tmp_path / "db"
    shutil.copytree(sim_db, root)
    (root / "records500/00000/00007_hr.dat").write_bytes(b"\x00")
    out = tmp_path / "sig"
    r = build_dataset(BuildConfig(source="synthetic", root=str(root), out=str(out), modalities=("signal",),
                                  tasks=("report", "ecgqa"), limit=20), progress=False)  # fmt: skip
    assert r["records"] == 19 and r["rejects"] == {"truncated": 1}
    assert "00007" in (out / "rejects.csv").read_text()
    recs = load_from_disk(str(out / "records"))
    assert "image" not in recs.column_names and "signal" in recs.column_names
    for s in _all_samples(out):
        assert all(c["type"] != "image" for c in s["messages"][0]["content"])
        assert s["task"] in ("report", "ecgqa")


def test_wfdb_and_mimic_sources(real, tmp_path):
    r = build_dataset(BuildConfig(source="wfdb", root=str(real / "wfdb_misc"), out=str(tmp_path / "w"),
                                  tasks=("report", "measure")), progress=False)  # fmt: skip
    # test01_00s names its channels "ECG 1".."ECG 4": no standard lead -> rejected with the reason
    assert r["rejects"] == {"no_standard_leads": 1} and r["records"] == 2
    from tests.signal.test_databases import make_mimic

    mroot = tmp_path / "m"
    mroot.mkdir()
    make_mimic(mroot)
    r = build_dataset(BuildConfig(source="mimic", root=str(mroot), out=str(tmp_path / "mo"), modalities=("signal",),
                                  tasks=("report", "measure")), progress=False)  # fmt: skip
    assert r["records"] == 2 and r["rejects"] == {"bad_row": 1}
    samples = _all_samples(tmp_path / "mo")
    report = next(s for s in samples if s["task"] == "report")
    assert report["messages"][1]["content"][0]["text"] == "Sinus rhythm. Left axis deviation."
    pr = [s for s in samples if s["task"] == "measure" and s["attribute_type"] == "pr_ms"]
    assert all(s["value"] == 160.0 for s in pr)  # the machine's measurement


def test_validate_sample_rejects_broken_samples():
    rec = RecordInfo("1", "synthetic", "p1", "train", {"NORM": 100.0, "SR": 0.0})
    good = detect_task(rec, np.random.default_rng(0), ("signal", "image"))[0]
    validate_sample(good)
    bad = json.loads(json.dumps(good))
    bad["messages"][0]["content"] = bad["messages"][0]["content"][1:]  # an ECG placeholder lost
    with pytest.raises(SampleError, match="placeholders"):
        validate_sample(bad)
    bad = json.loads(json.dumps(good))
    bad["answer"] = ["pacemaker rhythm"]
    with pytest.raises(SampleError, match="not among the options"):
        validate_sample(bad)
    bad = json.loads(json.dumps(good))
    bad["messages"][1]["content"][0]["text"] = "  "
    with pytest.raises(SampleError, match="empty"):
        validate_sample(bad)


def test_task_contents():
    feats = {"summary": {"hr_bpm": 72.4, "pr_ms": 150.0, "qrs_ms": 148.0, "qt_ms": 420.0, "qtc_ms": 460.0,
                         "axis_deg": -10.0, "rr_sd_ms": 20.0},
             "leads": {"II": {"q_mv": -0.3}, "III": {"q_mv": -0.4}, "aVF": {"q_mv": -0.02}}}  # fmt: skip
    rec = RecordInfo(
        "9", "synthetic", "p9", "test", {"SR": 0.0, "CLBBB": 100.0, "IMI": 100.0}, features=feats
    )
    rng = np.random.default_rng(1)
    sup = detect_task(rec, rng, ("signal",))[0]
    assert sup["answer"] == ["myocardial infarction", "conduction disturbance"]
    ms = measure_task(rec, rng, ("signal",), n=6)
    hr = next(m for m in ms if m["attribute_type"] == "hr_bpm")
    assert hr["answer"] == ["72"] and hr["tolerance"] == 2.0 and hr["unit"] == "bpm"
    g = ground_task(rec, rng, ("signal",))[0]
    ev = {e["finding"]: e for e in json.loads(g["evidence"])["findings"]}
    assert ev["CLBBB"]["measurements"]["qrs_ms"] == 148.0 and "V6" in ev["CLBBB"]["leads"]
    assert ev["IMI"]["leads"] == ["II", "III"]  # Q waves where they were measured
    text = g["messages"][1]["content"][0]["text"]
    assert "QRS 148 ms" in text and "II, III" in text


def test_english_report_from_scp_codes():
    assert english_report({"IMI": 100.0, "SR": 0.0, "LAFB": 100.0, "NORM": 0.0}) == (
        "sinus rhythm. inferior myocardial infarction. left anterior fascicular block. normal ecg."
    )
    assert english_report({}) == ""


def test_build_cli(sim_db, tmp_path):
    cmd = [sys.executable, str(ROOT / "data_builders/build.py"), "--source", "synthetic", "--root", str(sim_db),
           "--out", str(tmp_path / "o"), "--limit", "12", "--modalities", "signal", "--tasks", "report,detect", "--quiet"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert r.stdout.startswith("built ") and "from 12 of 12 records" in r.stdout
    bad = subprocess.run([*cmd[:-5], "--tasks", "reprt", "--quiet"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown tasks ['reprt']" in bad.stderr


def test_real_ptbxl_record_at_100hz(real, tmp_path):
    """PTB-XL record 1 in a one-row PTB-XL folder: the German report stays on the record, the
    report target is the normalised English of its SCP statements."""
    import pandas as pd

    from ecgllm.signal.synthetic_db import PTBXL_COLUMNS

    root = tmp_path / "ptbxl"
    shutil.copytree(real / "ptbxl", root)
    row = dict.fromkeys(PTBXL_COLUMNS, "")
    row.update(ecg_id=1, patient_id=15709.0, age=56.0, sex=1, report="sinusrhythmus periphere niederspannung",
               scp_codes="{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", strat_fold=3,
               filename_lr="records100/00000/00001_lr", filename_hr="records500/00000/00001_hr")  # fmt: skip
    pd.DataFrame([row]).set_index("ecg_id").to_csv(root / "ptbxl_database.csv")
    r = build_dataset(BuildConfig(source="ptbxl", root=str(root), out=str(tmp_path / "o"), sampling_rate=100,
                                  tasks=("report", "detect")), progress=False)  # fmt: skip
    assert r["records"] == 1 and r["rejects"] == {}
    rec = load_from_disk(str(tmp_path / "o" / "records"))[0]
    assert rec["report"] == "sinusrhythmus periphere niederspannung" and rec["fs"] == 500.0
    s = _all_samples(tmp_path / "o")
    report = next(x for x in s if x["task"] == "report")
    assert report["messages"][1]["content"][0]["text"] == (
        "sinus rhythm. low qrs voltages in the frontal and horizontal leads. normal ecg."
    )
    assert json.loads(rec["features"])["source"] == "measured"


def test_tiny_tokenizer_is_rebuilt_from_built_instruction_text(tmp_path):
    """data_builders/tiny_tokenizer.py (the shipped tokenizer's recipe; the model package does not
    import the data builders): a byte-level BPE with our placeholders as single tokens and the
    chat template."""
    from transformers import PreTrainedTokenizerFast

    out = tmp_path / "tok"
    r = subprocess.run([sys.executable, str(ROOT / "data_builders" / "tiny_tokenizer.py"), "--out", str(out),
                        "--records", "12", "--vocab-size", "400"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1].startswith("done: ")
    tok = PreTrainedTokenizerFast.from_pretrained(str(out))
    assert len(tok) <= 400 and tok.chat_template
    for t in ("<ecg>", "<image>"):
        assert tok.tokenize(f"a {t} b").count(t) == 1
