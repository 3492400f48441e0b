"""Readers for the real database layouts: PTB-XL, MIMIC-IV-ECG and any folder of WFDB records.

    db = PTBXL("/data/ptb-xl", sampling_rate=500)
    for rec in db.records(split="test"):            # ECGRecord with labels, report, patient_id
        ...
    db.rejects.counts                                 # Counter of skipped records by reason

Each reader lists its entries cheaply (no signal I/O) and reads records lazily. A bad record is
skipped, counted by reason and, with `rejects_path`, appended to a CSV (record, reason, detail);
`strict=True` raises the ECGReadError instead.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .record import ECGReadError, ECGRecord, read_record

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def ptbxl_split(strat_fold: int) -> str:
    """The Strodthoff et al. protocol: folds 1-8 train, 9 validation, 10 test."""
    return "test" if strat_fold == 10 else "validation" if strat_fold == 9 else "train"


def hashed_split(key: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic split from a patient key (same patient, same split on every machine)."""
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < fractions[0] else "validation" if h < sum(fractions) else "test"


@dataclass
class Rejects:
    """Skipped records, counted by reason; optionally appended to a CSV file as they happen."""

    path: str | None = None
    counts: Counter = field(default_factory=Counter)

    def add(self, record: str, err: ECGReadError) -> None:
        self.counts[err.reason] += 1
        log.warning("skipping %s: %s", record, err)
        if self.path:
            new = not os.path.exists(self.path)
            with open(self.path, "a", newline="") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(["record", "reason", "detail"])
                w.writerow([record, err.reason, err.detail])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Entry:
    """One listed record before its signal is read."""

    record_id: str
    path: Path
    patient_id: str | None
    split: str
    labels: dict[str, float] = field(default_factory=dict)
    report: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ECGDatabase:
    """Base reader: subclasses fill `self.entries`; `records()` reads them lazily."""

    source = "wfdb"

    def __init__(
        self,
        rejects_path: str | None = None,
        strict: bool = False,
        root: str | os.PathLike | None = None,
    ):
        self.entries: list[Entry] = []
        self.rejects = Rejects(rejects_path)
        self.strict = strict
        if root is not None:  # a folder reader: the folder must exist
            self.root = Path(root)
            if not self.root.is_dir():
                raise ECGReadError(self.root, "missing_file", "not a folder")

    def __len__(self) -> int:
        return len(self.entries)

    def read(self, entry: Entry) -> ECGRecord:
        rec = read_record(entry.path, record_id=entry.record_id)
        meta = {**rec.meta, **entry.meta, "split": entry.split}
        return rec.replace(
            patient_id=entry.patient_id,
            labels=dict(entry.labels),
            report=entry.report,
            source=self.source,
            meta=meta,
        )

    def records(self, split: str | None = None, limit: int | None = None) -> Iterator[ECGRecord]:
        """Yield readable records (of one split if given), skipping and counting bad ones."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        n = 0
        for entry in self.entries:
            if split is not None and entry.split != split:
                continue
            if limit is not None and n >= limit:
                return
            try:
                rec = self.read(entry)
            except ECGReadError as e:
                if self.strict:
                    raise
                self.rejects.add(entry.record_id, e)
                continue
            n += 1
            yield rec

    def patients_by_split(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {s: set() for s in SPLITS}
        for e in self.entries:
            if e.patient_id is not None:
                out[e.split].add(e.patient_id)
        return out

    def _bad_row(self, where: str, reason: str, detail: str) -> None:
        err = ECGReadError(where, reason, detail)
        if self.strict:
            raise err
        self.rejects.add(where, err)


# --- PTB-XL -----------------------------------------------------------------------------------

AGGREGATIONS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")


class SCPStatements:
    """PTB-XL's scp_statements.csv: which code belongs to which label set."""

    def __init__(self, path: str | os.PathLike):
        try:
            df = pd.read_csv(path, index_col=0)
        except Exception as e:
            raise ECGReadError(path, "bad_csv", f"cannot read statement table: {e}") from e
        need = {"description", "diagnostic", "form", "rhythm", "diagnostic_class",
                "diagnostic_subclass"}  # fmt: skip
        if missing := need - set(df.columns):
            raise ECGReadError(path, "bad_csv", f"missing columns {sorted(missing)}")
        self.table = df
        self.description = df["description"].to_dict()

    def codes(self, aggregation: str = "all") -> list[str]:
        """The label vocabulary of an aggregation, sorted (71/44/23/5/19/12 on real PTB-XL)."""
        df = self.table
        if aggregation == "all":
            return sorted(df.index)
        if aggregation == "diagnostic":
            return sorted(df.index[df["diagnostic"] == 1])
        if aggregation == "subdiagnostic":
            return sorted(df.loc[df["diagnostic"] == 1, "diagnostic_subclass"].dropna().unique())
        if aggregation == "superdiagnostic":
            return sorted(df.loc[df["diagnostic"] == 1, "diagnostic_class"].dropna().unique())
        if aggregation in ("form", "rhythm"):
            return sorted(df.index[df[aggregation] == 1])
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {aggregation!r}")

    def aggregate(self, scp_codes: dict[str, float], aggregation: str) -> list[str]:
        """Labels of one record under an aggregation (all likelihoods count, as in the
        benchmark code of Strodthoff et al.). Unknown codes are ignored."""
        df = self.table
        out: set[str] = set()
        for code in scp_codes:
            if code not in df.index:
                continue
            row = df.loc[code]
            if aggregation == "all":
                out.add(code)
            elif aggregation in ("diagnostic", "form", "rhythm"):
                if row[aggregation] == 1:
                    out.add(code)
            elif aggregation == "subdiagnostic" and row["diagnostic"] == 1:
                if isinstance(row["diagnostic_subclass"], str):
                    out.add(row["diagnostic_subclass"])
            elif aggregation == "superdiagnostic" and row["diagnostic"] == 1:
                if isinstance(row["diagnostic_class"], str):
                    out.add(row["diagnostic_class"])
            elif aggregation not in AGGREGATIONS:
                raise ValueError(f"aggregation must be one of {AGGREGATIONS}")
        return sorted(out)


def parse_scp_codes(text: Any) -> dict[str, float]:
    """ "{'NORM': 100.0, 'SR': 0.0}" -> dict. Raises ValueError on anything else."""
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"scp_codes is not a dict of code -> likelihood: {text!r}")
    return {k: float(v) for k, v in value.items()}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _id(v: Any) -> int | None:
    """A record/subject id from a CSV cell: a whole, non-negative number ("123", 123.0), else None."""
    f = _num(v)
    return int(f) if f is not None and f >= 0 and f == int(f) else None


class PTBXL(ECGDatabase):
    """PTB-XL (real or simulated): ptbxl_database.csv + scp_statements.csv + records100/500."""

    source = "ptbxl"
    NOISE_FIELDS = ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems",
                    "extra_beats", "pacemaker")  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike,
        sampling_rate: int = 500,
        rejects_path: str | None = None,
        strict: bool = False,
    ):
        super().__init__(rejects_path, strict)
        if sampling_rate not in (100, 500):
            raise ValueError(f"PTB-XL has 100 and 500 Hz records, not {sampling_rate}")
        self.root = Path(root)
        db_csv = self.root / "ptbxl_database.csv"
        if not db_csv.exists():
            raise ECGReadError(
                db_csv, "missing_file", "not a PTB-XL folder (no ptbxl_database.csv)"
            )
        self.statements = SCPStatements(self.root / "scp_statements.csv")
        try:
            df = pd.read_csv(db_csv, index_col="ecg_id", dtype={"report": str})
        except Exception as e:
            raise ECGReadError(db_csv, "bad_csv", f"cannot read: {e}") from e
        col = "filename_hr" if sampling_rate == 500 else "filename_lr"
        for name in ("patient_id", "scp_codes", "strat_fold", col):
            if name not in df.columns:
                raise ECGReadError(db_csv, "bad_csv", f"missing column {name!r}")
        self.table = df
        seen: set[int] = set()
        for ecg_id, row in df.iterrows():
            where = f"{db_csv.name}:ecg_id={ecg_id}"
            eid = _num(ecg_id)
            if eid is None or eid != int(eid) or eid < 0:
                self._bad_row(where, "bad_row", f"ecg_id {ecg_id!r} is not a record number")
                continue
            if int(eid) in seen:
                self._bad_row(
                    where, "duplicate_id", "a second row with this ecg_id (the first is kept)"
                )
                continue
            seen.add(int(eid))
            try:
                labels = parse_scp_codes(row["scp_codes"])
            except ValueError as e:
                self._bad_row(where, "bad_row", str(e))
                continue
            fold, pid = _num(row["strat_fold"]), _num(row["patient_id"])
            if fold is None or not 1 <= fold <= 10 or pid is None:
                self._bad_row(where, "bad_row", f"strat_fold={row['strat_fold']!r} "
                              f"patient_id={row['patient_id']!r} must be numbers (fold 1-10)")  # fmt: skip
                continue
            if not isinstance(row[col], str) or not row[col]:
                self._bad_row(where, "bad_row", f"{col} is empty")
                continue
            meta = {"strat_fold": int(fold), "age": _num(row.get("age")),
                    "sex": {0: "M", 1: "F"}.get(_num(row.get("sex"))),
                    "heart_axis": row.get("heart_axis") if isinstance(row.get("heart_axis"), str) else None}  # fmt: skip
            for k in ("infarction_stadium1", "infarction_stadium2"):
                v = row.get(k)
                meta[k] = v if isinstance(v, str) and v.strip() else None
            for k in self.NOISE_FIELDS:
                v = row.get(k)
                meta[k] = v.strip() if isinstance(v, str) and v.strip() else None
            report = row.get("report")
            self.entries.append(
                Entry(
                    record_id=f"{int(eid):05d}",
                    path=self.root / row[col],
                    patient_id=str(int(pid)),
                    split=ptbxl_split(int(fold)),
                    labels=labels,
                    report=report if isinstance(report, str) else None,
                    meta=meta,
                )
            )

    def labels(self, record: ECGRecord, aggregation: str = "superdiagnostic") -> list[str]:
        return self.statements.aggregate(record.labels, aggregation)


# --- MIMIC-IV-ECG -----------------------------------------------------------------------------

MIMIC_INTERVAL_MISSING = 29999  # the machine's "not measured" value


class MIMICIVECG(ECGDatabase):
    """MIMIC-IV-ECG: record_list.csv + machine_measurements.csv + files/pNNNN/p.../s.../N.hea.

    The report is the machine statements report_0..report_17 joined; machine intervals (ms) and
    axes (deg) go to meta["machine"]. MIMIC has no official split: it is hashed by subject.
    """

    source = "mimic"

    def __init__(
        self, root: str | os.PathLike, rejects_path: str | None = None, strict: bool = False
    ):
        super().__init__(rejects_path, strict)
        self.root = Path(root)
        rl = self.root / "record_list.csv"
        if not rl.exists():
            raise ECGReadError(rl, "missing_file", "not a MIMIC-IV-ECG folder (no record_list.csv)")
        try:
            records = pd.read_csv(rl)
        except Exception as e:
            raise ECGReadError(rl, "bad_csv", f"cannot read: {e}") from e
        for name in ("subject_id", "study_id", "path"):
            if name not in records.columns:
                raise ECGReadError(rl, "bad_csv", f"missing column {name!r}")
        mm_path = self.root / "machine_measurements.csv"
        machine: dict[int, dict] = {}
        if mm_path.exists():
            try:
                mm = pd.read_csv(mm_path, low_memory=False)
            except Exception as e:
                raise ECGReadError(mm_path, "bad_csv", f"cannot read: {e}") from e
            machine = {
                _id(r.get("study_id")): r
                for r in mm.to_dict("records")
                if _id(r.get("study_id")) is not None
            }
        seen: set[int] = set()
        for row in records.to_dict("records"):
            sid, subj = _id(row.get("study_id")), _id(row.get("subject_id"))
            where = f"{rl.name}:study_id={row.get('study_id')}"
            if sid is None or subj is None or not isinstance(row.get("path"), str):
                self._bad_row(where, "bad_row", "study_id/subject_id/path missing or not numeric")
                continue
            if sid in seen:
                self._bad_row(
                    where, "duplicate_id", "a second row with this study_id (the first is kept)"
                )
                continue
            seen.add(sid)
            m = machine.get(sid, {})
            report_parts = [str(m[f"report_{i}"]).strip() for i in range(18)
                            if isinstance(m.get(f"report_{i}"), str) and str(m[f"report_{i}"]).strip()]  # fmt: skip
            self.entries.append(
                Entry(
                    record_id=str(sid),
                    path=self.root / row["path"],
                    patient_id=str(subj),
                    split=hashed_split(str(subj)),
                    report=". ".join(p.rstrip(".") for p in report_parts) + "."
                    if report_parts
                    else None,
                    meta={"ecg_time": row.get("ecg_time"), "machine": mimic_intervals(m)},
                )
            )


def mimic_intervals(m: dict) -> dict[str, float | None]:
    """Machine measurements -> hr_bpm, rr_ms, pr_ms, qrs_ms, qt_ms, p_ms and axes (None if absent)."""

    def get(k: str) -> float | None:
        v = _num(m.get(k))
        return None if v is None or v >= MIMIC_INTERVAL_MISSING else v

    def diff(a: str, b: str) -> float | None:
        x, y = get(a), get(b)
        return y - x if x is not None and y is not None and y > x else None

    rr = get("rr_interval")
    return {
        "rr_ms": rr,
        "hr_bpm": round(60000.0 / rr, 1) if rr else None,
        "pr_ms": diff("p_onset", "qrs_onset"),
        "p_ms": diff("p_onset", "p_end"),
        "qrs_ms": diff("qrs_onset", "qrs_end"),
        "qt_ms": diff("qrs_onset", "t_end"),
        "p_axis": get("p_axis"),
        "qrs_axis": get("qrs_axis"),
        "t_axis": get("t_axis"),
    }


# --- any WFDB folder ----------------------------------------------------------------------------


class WFDBFolder(ECGDatabase):
    """Every single-segment WFDB record under a folder (recursively). Record ids are relative
    paths; each record is its own patient unless header comments name one; labels come from the
    header's Dx codes when present; splits are hashed by patient."""

    def __init__(
        self, root: str | os.PathLike, rejects_path: str | None = None, strict: bool = False
    ):
        super().__init__(rejects_path, strict, root)
        for hea in sorted(self.root.rglob("*.hea")):
            rid = str(hea.relative_to(self.root).with_suffix(""))
            self.entries.append(Entry(record_id=rid, path=hea.with_suffix(""), patient_id=rid,
                                      split=hashed_split(rid)))  # fmt: skip

    def read(self, entry: Entry) -> ECGRecord:
        rec = super().read(entry)
        pid = rec.meta.get("comments_kv", {}).get("patient") or entry.patient_id
        labels = {code: 100.0 for code in rec.meta.get("dx", [])}
        return rec.replace(patient_id=pid, labels=labels)


SOURCES = ("ptbxl", "synthetic", "mimic", "wfdb", "ludb", "challenge")


def open_database(source: str, root: str | os.PathLike, **kwargs: Any) -> ECGDatabase:
    """`source` in SOURCES -> the matching reader; `kwargs` go to its constructor (an option
    it does not take is a ValueError naming the options it does)."""
    import inspect

    if source in ("ptbxl", "synthetic"):
        cls: type[ECGDatabase] = PTBXL
    elif source == "mimic":
        cls = MIMICIVECG
    elif source == "wfdb":
        cls = WFDBFolder
    elif source == "ludb":
        from .ludb import LUDB as cls
    elif source == "challenge":
        from .challenge import Challenge as cls
    else:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root")]
    bad = sorted(set(kwargs) - set(takes))
    if bad:
        raise ValueError(f"source {source!r} has no option(s) {bad}; it takes {takes}")
    db = cls(root, **kwargs)
    if source == "synthetic":
        db.source = "synthetic"
    return db
