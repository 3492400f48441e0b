"""PTB-XL, MIMIC-IV-ECG and WFDB-folder readers: labels, splits, reports, skipped records."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pytest

from ecgllm.signal import MIMICIVECG, PTBXL, ECGReadError, SCPStatements, WFDBFolder, open_database
from ecgllm.signal.databases import hashed_split, parse_scp_codes, ptbxl_split
from ecgllm.signal.wfdb_write import write_record16


def test_real_statement_table_label_sets(real):
    st = SCPStatements(real / "ptbxl/scp_statements.csv")
    sizes = {
        a: len(st.codes(a))
        for a in ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
    }
    assert sizes == {
        "all": 71,
        "diagnostic": 44,
        "subdiagnostic": 23,
        "superdiagnostic": 5,
        "form": 19,
        "rhythm": 12,
    }
    assert st.codes("superdiagnostic") == ["CD", "HYP", "MI", "NORM", "STTC"]
    codes = parse_scp_codes("{'IMI': 100.0, 'LVOLT': 0.0, 'SR': 0.0, 'ASMI': 50.0}")
    assert st.aggregate(codes, "superdiagnostic") == ["MI"]
    assert st.aggregate(codes, "subdiagnostic") == ["AMI", "IMI"]
    assert st.aggregate(codes, "form") == ["LVOLT"]
    assert st.aggregate(codes, "rhythm") == ["SR"]
    assert st.aggregate(codes, "diagnostic") == ["ASMI", "IMI"]
    with pytest.raises(ValueError):
        parse_scp_codes("NORM, SR")


def test_ptbxl_reader_on_simulated_database(sim_db):
    db = PTBXL(sim_db, sampling_rate=500)
    assert len(db) == 60
    recs = list(db.records())
    assert len(recs) == 60 and db.rejects.total == 0
    r = recs[0]
    assert r.record_id == "00001" and r.source == "ptbxl" and r.signal.shape == (12, 5000)
    assert r.patient_id and r.report and r.labels and 1 <= r.meta["strat_fold"] <= 10
    assert r.meta["split"] == ptbxl_split(r.meta["strat_fold"])
    assert {ptbxl_split(f) for f in (1, 8)} == {"train"} and ptbxl_split(9) == "validation"
    assert ptbxl_split(10) == "test"
    by = db.patients_by_split()
    assert not (by["train"] & by["test"]) and not (by["train"] & by["validation"])
    test = list(db.records(split="test"))
    assert all(x.meta["split"] == "test" for x in test)
    assert len(list(db.records(limit=5))) == 5
    lr = PTBXL(sim_db, sampling_rate=100)
    assert next(lr.records()).signal.shape == (12, 1000)
    assert open_database("synthetic", sim_db).source == "synthetic"


def test_bad_rows_and_bad_records_are_skipped_and_counted(sim_db, tmp_path):
    root = tmp_path / "db"
    shutil.copytree(sim_db, root)
    df = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    df.loc[2, "scp_codes"] = "NORM; SR"  # unparseable
    df.loc[3, "strat_fold"] = np.nan
    df.to_csv(root / "ptbxl_database.csv")
    dat = root / (df.loc[4, "filename_hr"] + ".dat")
    dat.write_bytes(dat.read_bytes()[:100])  # truncated signal
    (root / (df.loc[5, "filename_hr"] + ".hea")).unlink()  # missing header
    rejects = tmp_path / "rejects.csv"
    db = PTBXL(root, rejects_path=str(rejects))
    assert len(db) == 58
    recs = list(db.records())
    assert len(recs) == 56
    assert db.rejects.counts == {"bad_row": 2, "truncated": 1, "missing_file": 1}
    rows = list(csv.DictReader(open(rejects)))
    assert [r["reason"] for r in rows] == ["bad_row", "bad_row", "truncated", "missing_file"]
    assert rows[0]["record"] == "ptbxl_database.csv:ecg_id=2" and "scp_codes" in rows[0]["detail"]
    with pytest.raises(ECGReadError, match="scp_codes"):
        PTBXL(root, strict=True)


def test_not_a_ptbxl_folder(real, tmp_path):
    with pytest.raises(ECGReadError, match="no ptbxl_database.csv"):
        PTBXL(tmp_path)
    (tmp_path / "ptbxl_database.csv").write_text("ecg_id,patient_id\n1,2\n")
    shutil.copy(real / "ptbxl/scp_statements.csv", tmp_path)
    with pytest.raises(ECGReadError, match="missing column"):
        PTBXL(tmp_path)


@pytest.fixture
def mimic_root(tmp_path):
    return make_mimic(tmp_path)


def make_mimic(tmp_path):
    """A two-study MIMIC-IV-ECG layout with machine measurements (29999 = not measured) and one
    record_list row without ids."""
    from ecgllm.fuzz import write_mimic

    return write_mimic(tmp_path, samples=5000, bad_row=True)


def test_mimic_reader(mimic_root):
    db = MIMICIVECG(mimic_root)
    assert len(db) == 2 and db.rejects.counts == {"bad_row": 1}
    recs = list(db.records())
    r = recs[0]
    assert r.record_id == "40689238" and r.patient_id == "10000032" and r.source == "mimic"
    assert r.report == "Sinus rhythm. Left axis deviation."
    mach = r.meta["machine"]
    assert mach["pr_ms"] == 160 and mach["qrs_ms"] == 90 and mach["qt_ms"] == 400
    assert mach["hr_bpm"] == 75.0 and mach["qrs_axis"] is None and mach["p_ms"] == 100
    assert r.meta["split"] == hashed_split("10000032")


def test_wfdb_folder(real, tmp_path):
    shutil.copytree(real / "wfdb_misc", tmp_path / "misc")
    x = np.random.default_rng(0).normal(0, 0.2, (12, 5000)).astype(np.float32)
    write_record16(
        tmp_path / "misc/sub/cinc",
        x,
        500.0,
        comments=["Age: 61", "Sex: Female", "Dx: 426783006,164889003"],
    )
    (tmp_path / "misc/broken.hea").write_text(
        "broken 1 500 100\nbroken.dat 16 200/mV 16 0 0 0 0 I\n"
    )
    db = WFDBFolder(tmp_path / "misc")
    assert sorted(e.record_id for e in db.entries) == [
        "100_3chan",
        "broken",
        "sub/cinc",
        "test01_00s",
        "v102s",
    ]
    recs = {r.record_id: r for r in db.records()}
    assert set(recs) == {"100_3chan", "sub/cinc", "test01_00s", "v102s"}
    assert db.rejects.counts == {"missing_file": 1}
    c = recs["sub/cinc"]
    assert c.labels == {"426783006": 100.0, "164889003": 100.0} and c.meta["sex"] == "F"
    assert all(r.meta["split"] in ("train", "validation", "test") for r in recs.values())
