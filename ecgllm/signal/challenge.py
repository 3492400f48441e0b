"""PhysioNet/CinC Challenge 2020/2021 folders: `NAME.mat` + `NAME.hea` with `#Dx` SNOMED-CT codes.

    db = Challenge("/data/challenge2021/training", rejects_path="rejects.csv")
    for rec in db.records():        # ECGRecord, labels as PTB-XL SCP codes
        rec.labels, rec.meta["dx"], rec.meta["unmapped_dx"], rec.meta["challenge_source"]
    db.unmapped                     # Counter of SNOMED codes with no SCP statement

Any of the Challenge's sources, in one folder or nested (the 2021 layout is
`training/<source>/gNN/NAME.hea`): CPSC (A*, Q*), INCART (I*), PTB (S*), PTB-XL (HR*), Georgia (E*),
Chapman-Shaoxing and Ningbo (JS*). Labels: the `#Dx` codes through ecgllm.text.snomed (the
packaged SNOMED-CT -> SCP table); codes without an SCP equivalent are kept in meta["unmapped_dx"]
and counted in `unmapped`; axis codes become meta["heart_axis"] (PTB-XL's codes).

Splits. Challenge headers carry no patient id, so each record is its own patient and the split
is hashed from the record name (80/10/10), except:
- PTB-XL records (HR*): with `ptbxl_database=` pointing at PTB-XL's ptbxl_database.csv, HRnnnnn is
  PTB-XL ecg_id nnnnn and takes that row's patient_id and strat_fold split, so no PTB-XL patient
  is split across folds (without it, HR records are hashed like the others);
- `patients=` a CSV (record, patient) for any other source whose patients you know (INCART's 75
  records come from 32 patients, PTB's 516 from 290): records of one patient share its hashed split.
Headers are scanned as text when listing (no signal I/O), so listing 88k records takes seconds.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from ..text.snomed import snomed_to_scp
from .databases import ECGDatabase, Entry, hashed_split, ptbxl_split
from .record import ECGReadError

PREFIXES = {"HR": "ptbxl", "JS": "chapman_ningbo", "A": "cpsc", "Q": "cpsc_extra", "I": "incart",
            "S": "ptb", "E": "georgia"}  # fmt: skip


def challenge_source(name: str) -> str:
    """Challenge record name -> its source database ("ptbxl", "georgia", ...; "unknown")."""
    for p in sorted(PREFIXES, key=len, reverse=True):
        if name.startswith(p) and name[len(p) :][:1].isdigit():
            return PREFIXES[p]
    return "unknown"


def header_dx(hea: Path) -> list[str] | None:
    """The `#Dx:` codes of a header read as text (None when the header has no Dx line)."""
    for line in hea.read_text(errors="replace").splitlines():
        s = line.strip().lstrip("#").strip()
        if s.lower().startswith("dx:"):
            return [c.strip() for c in s[3:].split(",") if c.strip()]
    return None


def _read_patients(path: str | os.PathLike) -> dict[str, str]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ECGReadError(path, "bad_csv", f"cannot read the patients table: {e}") from e
    if rows and not {"record", "patient"} <= set(rows[0]):
        raise ECGReadError(path, "bad_csv", "the patients table needs columns record, patient")
    return {r["record"].strip(): r["patient"].strip() for r in rows if r.get("record")}


def _ptbxl_rows(path: str | os.PathLike) -> dict[int, tuple[str, int]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, index_col="ecg_id", usecols=["ecg_id", "patient_id", "strat_fold"])
    except Exception as e:
        raise ECGReadError(path, "bad_csv", f"cannot read ecg_id/patient_id/strat_fold: {e}") from e
    out = {}
    for ecg_id, row in df.iterrows():
        try:
            out[int(ecg_id)] = (str(int(row["patient_id"])), int(row["strat_fold"]))
        except (TypeError, ValueError):
            continue
    return out


class Challenge(ECGDatabase):
    source = "challenge"

    def __init__(
        self,
        root: str | os.PathLike,
        rejects_path: str | None = None,
        strict: bool = False,
        ptbxl_database: str | os.PathLike | None = None,
        patients: str | os.PathLike | None = None,
    ):
        super().__init__(rejects_path, strict, root)
        self.unmapped: Counter = Counter()
        ptbxl = _ptbxl_rows(ptbxl_database) if ptbxl_database else {}
        known = _read_patients(patients) if patients else {}
        for hea in sorted(self.root.rglob("*.hea")):
            name = hea.stem
            try:
                dx = header_dx(hea)
            except OSError as e:
                self._bad_row(str(hea), "unreadable", f"cannot read header: {e}")
                continue
            if dx is None:
                self._bad_row(
                    str(hea), "no_labels", "header has no '#Dx:' line (not a Challenge record)"
                )
                continue
            labels, axis, unmapped = snomed_to_scp(dx)
            self.unmapped.update(unmapped)
            src = challenge_source(name)
            patient, split = known.get(name, name), None
            if src == "ptbxl" and ptbxl:
                row = ptbxl.get(int(name[2:]))
                if row is not None:
                    patient, split = f"ptbxl-{row[0]}", ptbxl_split(row[1])
            meta = {"dx": dx, "unmapped_dx": unmapped, "heart_axis": axis, "challenge_source": src}
            self.entries.append(Entry(record_id=name, path=hea.with_suffix(""), patient_id=patient,
                                      split=split or hashed_split(patient), labels=labels, meta=meta))  # fmt: skip
