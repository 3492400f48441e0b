"""The LUDB and PhysioNet/CinC Challenge readers, their label mappings, and LUDB's delineation."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgllm.signal.challenge import Challenge, challenge_source
from ecgllm.signal.databases import open_database
from ecgllm.signal.ludb import LUDB, compare_with_reference, measurement_agreement, read_delineation
from ecgllm.signal.record import ECGReadError
from ecgllm.text.ludb import parse_ludb_statements
from ecgllm.text.snomed import snomed_table, snomed_to_scp
from ecgllm.text.vocab import statements

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def test_snomed_table_maps_to_real_scp_codes():
    table = statements().table
    for code, entry in snomed_table().items():
        assert entry.scp is None or entry.scp in table.index, code
        assert entry.scp or entry.axis, f"{code}: a row must map to an SCP code or an axis"
    labels, axis, unmapped = snomed_to_scp(["164889003", "164909002", "426783006", "39732003",
                                            "365413008", " ", "251199005"])  # fmt: skip
    # AF -> AFIB (rhythm: likelihood 0 as in PTB-XL), LBBB = CLBBB (diagnostic: 100), SR
    assert labels == {"AFIB": 0.0, "CLBBB": 100.0, "SR": 0.0}
    assert axis == "LAD"
    assert unmapped == ["365413008", "251199005"]  # poor R progression, counterclockwise rotation


@pytest.mark.parametrize(
    ("lines", "labels", "axis", "unmapped"),
    [
        (["Rhythm: Sinus bradycardia.", "Electric axis of the heart: left axis deviation.",
          "Left ventricular hypertrophy.", "Left ventricular overload."],
         {"SBRAD": 0.0, "LVH": 100.0}, "LAD", ["Left ventricular overload"]),
        (["Atrial flutter, typical", "Electric axis of the heart: vertical", "Iii degree av-block",
          "Non-specific intravintricular conduction delay", "Stemi: septal", "Scar formation: inferior wall"],
         {"AFLT": 0.0, "3AVB": 100.0, "IVCD": 100.0, "ASMI": 100.0, "IMI": 100.0}, "MID", []),
        (["Sinus rhythm", "Ventricular extrasystole, type: single pvc", "Atrial extrasystole: sa-nodal extrasystole",
          "Incomplete right bundle branch block", "Left anterior hemiblock", "I degree av block",
          "Ischemia: inferior wall", "Undefined ischemia/scar/supp.nstemi: lateral wall", "Wandering atrial pacemaker"],
         {"SR": 0.0, "PVC": 0.0, "PAC": 0.0, "IRBBB": 100.0, "LAFB": 100.0, "1AVB": 100.0, "ISCIN": 100.0,
          "ISC_": 100.0}, None, ["Wandering atrial pacemaker"]),
    ],
)  # fmt: skip
def test_ludb_statements(lines, labels, axis, unmapped):
    p = parse_ludb_statements(lines)
    assert p.labels == labels and p.axis == axis and p.unmapped == unmapped


def test_ludb_reader(real):
    db = open_database("ludb", real / "ludb")
    assert [e.record_id for e in db.entries] == ["1", "51", "123"]
    by = {e.record_id: e for e in db.entries}
    assert by["1"].labels == {"SBRAD": 0.0, "LVH": 100.0, "NST_": 100.0}
    assert by["51"].labels["AFIB"] == 0.0 and by["123"].labels == {"SR": 0.0}
    assert by["1"].meta["heart_axis"] == "LAD" and db.unmapped["Left ventricular overload"] == 1
    assert all(e.patient_id == f"ludb-{e.record_id}" and e.split in ("train", "validation", "test")
               for e in db.entries)  # fmt: skip
    rec = next(db.records())
    assert rec.signal.shape == (12, 5000) and rec.fs == 500.0 and rec.leads[3] == "aVR"


def test_ludb_reader_without_csv_reads_the_header(real, tmp_path):
    for f in (real / "ludb").glob("1.*"):
        shutil.copy(f, tmp_path)
    db = LUDB(tmp_path)
    assert db.entries[0].labels == {"SBRAD": 0.0, "LVH": 100.0, "NST_": 100.0}
    assert db.entries[0].meta["heart_axis"] == "LAD"


def test_ludb_delineation(real):
    d = read_delineation(real / "ludb" / "1")
    assert set(d.leads) == {
        "I",
        "II",
        "III",
        "aVR",
        "aVL",
        "aVF",
        "V1",
        "V2",
        "V3",
        "V4",
        "V5",
        "V6",
    }
    beats = [b for b in d.beats() if b["n_leads"] >= 6]
    # record 1: sinus bradycardia ~46 bpm; the first beat's P wave lies before the marked part
    assert len(beats) == 6 and beats[0]["p_on"] is None and beats[1]["p_on"] is not None
    iv = d.intervals()
    assert 44 < iv["hr_bpm"] < 48 and 130 <= iv["pr_ms"] <= 150 and 70 <= iv["qrs_ms"] <= 90
    assert 470 <= iv["qt_ms"] <= 495
    af = read_delineation(real / "ludb" / "51").intervals()
    assert af["pr_ms"] is None  # no P waves in atrial fibrillation


def test_ludb_bad_annotation(real, tmp_path):
    for f in (real / "ludb").glob("123.*"):
        shutil.copy(f, tmp_path)
    (tmp_path / "123.ii").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ECGReadError, match=r"123\.ii.*\[bad_annotation\]"):
        read_delineation(tmp_path / "123")
    for f in tmp_path.glob("123.[iva]*"):
        f.unlink()
    with pytest.raises(ECGReadError, match="no delineation files"):
        read_delineation(tmp_path / "123")


def test_measurements_against_cardiologists_fixture(real):
    rows = compare_with_reference(LUDB(real / "ludb"))
    assert len(rows) == 3
    for r in rows:
        ref, got = r["reference"], r["measured"]
        assert abs(got["qrs_ms"] - ref["qrs_ms"]) <= 20, r["record_id"]
        assert abs(got["qt_ms"] - ref["qt_ms"]) <= 40, r["record_id"]
        if ref["pr_ms"] is not None:
            assert abs(got["pr_ms"] - ref["pr_ms"]) <= 20, r["record_id"]
    by = {r["record_id"]: r for r in rows}
    assert by["51"]["measured"]["pr_ms"] is None  # AF: no P wave found
    a = measurement_agreement(rows, "pr_ms")
    assert a["n"] == 2 and a["extra"] == 0 and a["missed"] == 0


@pytest.mark.skipif(
    not (SHARED / "ludb").is_dir(), reason=f"no shared LUDB records at {SHARED / 'ludb'}"
)
def test_measurements_meet_the_cse_style_targets_on_ludb():
    """bench/measure.py's LUDB section as a regression test: PR and QRS |bias| <= 5 ms and SD <= 10
    ms, QT SD <= 30 ms, no error above 80 ms without a flag (measured: see the note of issue 15)."""
    rows = compare_with_reference(LUDB(SHARED / "ludb"))
    assert len(rows) >= 90
    for key, max_sd in (("pr_ms", 10.0), ("qrs_ms", 10.0)):
        a = measurement_agreement(rows, key)
        assert abs(a["bias"]) <= 5.0 and a["sd"] <= max_sd, (key, a)
        assert a["outliers_unflagged"] == 0
    qt = measurement_agreement(rows, "qt_ms")
    assert qt["sd"] <= 30.0 and qt["outliers_unflagged"] == 0, qt
    assert measurement_agreement(rows, "pr_ms")["missed"] <= 3


def test_challenge_reader(real):
    db = open_database("challenge", real / "cinc2021")
    by = {e.record_id: e for e in db.entries}
    assert set(by) == {"E07501", "HR06001", "JS20001", "JS20017"}
    assert by["E07501"].labels == {"LAO/LAE": 100.0, "STACH": 0.0}
    assert by["E07501"].meta["challenge_source"] == "georgia"
    assert by["HR06001"].labels == {"SR": 0.0, "NST_": 100.0}
    assert by["JS20017"].meta["unmapped_dx"] == ["365413008"] and db.unmapped == {"365413008": 1}
    rec = next(r for r in db.records() if r.record_id == "JS20001")
    assert rec.signal.shape == (12, 5000) and rec.labels == {
        "PAC": 0.0,
        "STACH": 0.0,
        "IVCD": 100.0,
    }
    assert challenge_source("HR00001") == "ptbxl" and challenge_source("Q0001") == "cpsc_extra"
    assert challenge_source("JS00001") == "chapman_ningbo" and challenge_source("XYZ") == "unknown"


def test_challenge_patients_and_ptbxl_splits(real, tmp_path):
    db_csv = tmp_path / "ptbxl_database.csv"
    db_csv.write_text("ecg_id,patient_id,strat_fold\n6001,123.0,10\n")
    pat = tmp_path / "patients.csv"
    pat.write_text("record,patient\nJS20001,P1\nJS20017,P1\n")
    db = Challenge(real / "cinc2021", ptbxl_database=db_csv, patients=pat)
    by = {e.record_id: e for e in db.entries}
    assert (
        by["HR06001"].patient_id == "ptbxl-123" and by["HR06001"].split == "test"
    )  # strat_fold 10
    assert by["JS20001"].patient_id == by["JS20017"].patient_id == "P1"
    assert by["JS20001"].split == by["JS20017"].split
    with pytest.raises(ValueError, match=r"source 'challenge' has no option\(s\) \['fold'\]"):
        open_database("challenge", real / "cinc2021", fold=1)


def test_challenge_skips_and_counts_bad_headers(real, tmp_path):
    for f in (real / "cinc2021").glob("E07501.*"):
        shutil.copy(f, tmp_path)
    (tmp_path / "X1.hea").write_text("X1 12 500 5000\n")  # no signal lines, no Dx
    shutil.copy(real / "cinc2021" / "HR06001.hea", tmp_path / "T1.hea")  # its .mat is missing
    rejects = tmp_path / "rejects.csv"
    db = Challenge(tmp_path, rejects_path=str(rejects))
    assert [e.record_id for e in db.entries] == ["E07501", "T1"] and db.rejects.counts[
        "no_labels"
    ] == 1
    recs = list(db.records())
    assert [r.record_id for r in recs] == ["E07501"] and db.rejects.counts["missing_file"] == 1
    rows = list(csv.DictReader(open(rejects)))
    assert {r["reason"] for r in rows} == {"no_labels", "missing_file"}


def test_build_real_records_as_a_test_set(real, tmp_path):
    from ecgllm.data import BuildConfig, build_dataset

    r = build_dataset(BuildConfig(source="challenge", root=str(real / "cinc2021"), out=str(tmp_path / "d"),
                                  tasks=("rhythm", "findings"), single_split="test"), progress=False)  # fmt: skip
    assert r["records_by_split"] == {"test": 4} and r["unmapped_labels"] == {"365413008": 1}
    assert r["samples_by_task"] == {"rhythm": 4, "findings": 4}
    from ecgllm.data.dataset import EcgInstructionDataset

    ds = EcgInstructionDataset(tmp_path / "d", "test")
    rows = [ds[i] for i in range(len(ds))]
    rh = [x for x in rows if x["task"] == "rhythm"]
    assert all(
        len(x["options"]) == 6 and len(x["answer"]) == 1 and x["answer"][0] in x["options"]
        for x in rh
    )
    assert {x["answer"][0] for x in rh} == {"sinus tachycardia", "sinus rhythm"}
    assert len({tuple(x["options"]) for x in rh}) > 1  # the option order is rotated
    fi = next(x for x in rows if x["task"] == "findings" and x["record_id"] == "JS20017")
    assert (
        "ventricular premature complex" not in fi["answer"]
        and "atrial premature complex" in fi["answer"]
    )
    assert np.asarray(fi["signal"]).shape == (1, 12, 5000)
