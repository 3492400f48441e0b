"""LUDB (Lobachevsky University Database): 12-lead records with cardiologists' wave delineation.

    db = LUDB("/data/ludb")                     # N.hea/N.dat, N.i ... N.v6 annotations, ludb.csv
    rec = next(db.records())                    # labels as PTB-XL SCP codes, meta["heart_axis"]
    ref = db.delineation(rec.record_id)         # cardiologists' fiducials (samples at 500 Hz)
    ref.intervals()                             # {"pr_ms": ..., "qrs_ms": ..., "qt_ms": ..., ...}

Statements come from ludb.csv when it is in the folder (its cells are one statement per line),
otherwise from the header comments; both are parsed by ecgllm.text.ludb (unmapped statements
kept in meta["unmapped_statements"] and counted in `unmapped`). Every LUDB record is a different
subject: the split is hashed from the record id (80/10/10).

Delineation: each lead's annotation file marks every P, QRS and T wave as `(` onset, peak symbol
(`p`, `N`, `t`), `)` offset. Cardiologists delineated each lead on its own, so a wave's onset
differs between leads by a few samples. `Delineation.beats()` groups the 12 leads' QRS complexes
into beats and gives each beat global fiducials as the median over the leads that mark the wave:
the median is robust to one lead marked far off, where the earliest/latest lead (the CSE
definition of a global onset/offset) would take the most extreme annotation. `intervals()` gives
the record's PR, QRS, QT, QTc (Bazett) and P duration as medians over its beats, in ms.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..text.ludb import parse_ludb_statements
from .databases import ECGDatabase, Entry, hashed_split
from .record import STANDARD_12, ECGReadError

# annotation file extension of each lead
LEAD_EXT = {"I": "i", "II": "ii", "III": "iii", "aVR": "avr", "aVL": "avl", "aVF": "avf",
            **{f"V{i}": f"v{i}" for i in range(1, 7)}}  # fmt: skip
WAVE_OF = {"p": "p", "N": "qrs", "t": "t"}
CSV_STATEMENT_COLUMNS = ("Rhythms", "Electric axis of the heart", "Conduction abnormalities",
                         "Extrasystolies", "Hypertrophies", "Cardiac pacing", "Ischemia",
                         "Non-specific repolarization abnormalities", "Other states")  # fmt: skip


@dataclass
class Wave:
    kind: str  # p, qrs, t
    onset: int | None
    peak: int
    offset: int | None


def read_lead_waves(path: str | os.PathLike, lead: str) -> list[Wave]:
    """One lead's delineation (`N.<ext>` next to the record) as waves in time order."""
    import wfdb

    base = Path(path)
    ext = LEAD_EXT.get(lead, lead.lower())
    f = base.with_name(f"{base.name}.{ext}")
    if not f.exists():
        raise ECGReadError(f, "missing_file", f"no delineation for lead {lead}")
    try:
        ann = wfdb.rdann(str(base), ext)
    except Exception as e:  # wfdb raises many types for a malformed annotation file
        raise ECGReadError(f, "bad_annotation", f"cannot read the annotation: {e}") from e
    sym, smp = list(ann.symbol), [int(s) for s in ann.sample]
    out = []
    for k, s in enumerate(sym):
        if s in WAVE_OF:
            on = smp[k - 1] if k > 0 and sym[k - 1] == "(" else None
            off = smp[k + 1] if k + 1 < len(sym) and sym[k + 1] == ")" else None
            out.append(Wave(WAVE_OF[s], on, smp[k], off))
    return out


@dataclass
class Delineation:
    """Per-lead waves of one record (sample indices at `fs`)."""

    record_id: str
    fs: float
    leads: dict[str, list[Wave]]

    def beats(self, group_ms: float = 100.0) -> list[dict[str, Any]]:
        """Beats with global fiducials: qrs_on/qrs_off/r (medians over leads), the P wave before
        (p_on/p_off, None when no lead marks one within 400 ms) and the T wave after (t_end,
        None when none before the next QRS). Samples, sorted by time."""
        tol = group_ms / 1000 * self.fs
        qrs = sorted(
            (w.peak, lead, w) for lead, ws in self.leads.items() for w in ws if w.kind == "qrs"
        )
        groups: list[list[Wave]] = []
        centers: list[float] = []
        for peak, _, w in qrs:
            if groups and abs(peak - centers[-1]) <= tol:
                groups[-1].append(w)
                centers[-1] = float(np.median([x.peak for x in groups[-1]]))
            else:
                groups.append([w])
                centers.append(float(peak))
        beats = []
        for k, g in enumerate(groups):
            med = lambda xs: int(round(float(np.median(xs)))) if xs else None  # noqa: E731
            on = med([w.onset for w in g if w.onset is not None])
            off = med([w.offset for w in g if w.offset is not None])
            lo = on if on is not None else int(centers[k])
            prev_off = beats[-1]["qrs_off"] if beats else None
            nxt = int(centers[k + 1]) if k + 1 < len(groups) else None
            p = [w for ws in self.leads.values() for w in ws if w.kind == "p" and w.peak < lo
                 and lo - w.peak <= 0.4 * self.fs and (prev_off is None or w.peak > prev_off)]  # fmt: skip
            t = [w for ws in self.leads.values() for w in ws if w.kind == "t" and w.peak > (off or lo)
                 and (nxt is None or w.peak < nxt)]  # fmt: skip
            beats.append({
                "r": int(centers[k]), "qrs_on": on, "qrs_off": off, "n_leads": len(g),
                "p_on": med([w.onset for w in p if w.onset is not None]),
                "p_off": med([w.offset for w in p if w.offset is not None]),
                "t_end": med([w.offset for w in t if w.offset is not None]),
            })  # fmt: skip
        return beats

    def intervals(self, min_leads: int = 6) -> dict[str, float | None]:
        """Record-level PR, P, QRS, QT, QTc (Bazett) in ms and HR in bpm: medians over the beats
        marked in at least `min_leads` leads (a complex only a few leads mark is ectopic or at
        the window's edge). None where no beat has the wave."""
        beats = [b for b in self.beats() if b["n_leads"] >= min_leads]
        ms = 1000.0 / self.fs

        def med(vals: list[float]) -> float | None:
            return round(float(np.median(vals)), 1) if vals else None

        rr = np.diff([b["r"] for b in beats]) * ms if len(beats) > 1 else np.zeros(0)
        out = {
            "hr_bpm": round(60000.0 / float(np.median(rr)), 1) if len(rr) else None,
            "rr_ms": med(list(rr)),
            "pr_ms": med([(b["qrs_on"] - b["p_on"]) * ms for b in beats if b["p_on"] is not None and b["qrs_on"] is not None]),
            "p_ms": med([(b["p_off"] - b["p_on"]) * ms for b in beats if b["p_on"] is not None and b["p_off"] is not None]),
            "qrs_ms": med([(b["qrs_off"] - b["qrs_on"]) * ms for b in beats if b["qrs_on"] is not None and b["qrs_off"] is not None]),
            "qt_ms": med([(b["t_end"] - b["qrs_on"]) * ms for b in beats if b["t_end"] is not None and b["qrs_on"] is not None]),
        }  # fmt: skip
        out["qtc_ms"] = (
            round(out["qt_ms"] / np.sqrt(out["rr_ms"] / 1000.0), 1)
            if out["qt_ms"] is not None and out["rr_ms"]
            else None
        )
        return out


def read_delineation(path: str | os.PathLike, fs: float = 500.0, record_id: str | None = None,
                     leads: tuple[str, ...] = STANDARD_12) -> Delineation:  # fmt: skip
    """All leads' delineation of a LUDB record (path without suffix). Leads whose annotation
    file is missing are left out; a record with none raises ECGReadError."""
    base = Path(path)
    out: dict[str, list[Wave]] = {}
    for lead in leads:
        try:
            out[lead] = read_lead_waves(base, lead)
        except ECGReadError as e:
            if e.reason != "missing_file":
                raise
    if not out:
        raise ECGReadError(
            base, "missing_file", "no delineation files (N.i, N.ii, ...) for this record"
        )
    return Delineation(record_id or base.name, fs, out)


def _csv_statements(path: Path) -> dict[str, list[str]]:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        raise ECGReadError(path, "bad_csv", f"cannot read: {e}") from e
    if rows and "ID" not in rows[0]:
        raise ECGReadError(path, "bad_csv", "missing column 'ID'")
    out = {}
    for r in rows:
        lines = [
            ln
            for col in CSV_STATEMENT_COLUMNS
            for ln in (r.get(col) or "").split("\n")
            if ln.strip()
        ]
        out[str(r["ID"]).strip()] = lines
    return out


class LUDB(ECGDatabase):
    source = "ludb"

    def __init__(
        self, root: str | os.PathLike, rejects_path: str | None = None, strict: bool = False
    ):
        super().__init__(rejects_path, strict, root)
        table = self.root / "ludb.csv"
        statements = _csv_statements(table) if table.exists() else {}
        self.unmapped: Counter = Counter()
        heads = sorted(self.root.glob("*.hea"), key=lambda p: (len(p.stem), p.stem))
        for hea in heads:
            rid = hea.stem
            lines = statements.get(rid)
            if lines is None:
                try:
                    lines = [
                        ln.lstrip("#")
                        for ln in hea.read_text(errors="replace").splitlines()
                        if ln.startswith("#")
                    ]
                except OSError as e:
                    self._bad_row(str(hea), "unreadable", f"cannot read header: {e}")
                    continue
            parsed = parse_ludb_statements(lines)
            self.unmapped.update(parsed.unmapped)
            meta = {"heart_axis": parsed.axis, "unmapped_statements": parsed.unmapped,
                    "statements": [s.strip() for s in lines if s.strip()]}  # fmt: skip
            self.entries.append(Entry(record_id=rid, path=hea.with_suffix(""), patient_id=f"ludb-{rid}",
                                      split=hashed_split(f"ludb-{rid}"), labels=parsed.labels, meta=meta))  # fmt: skip

    def delineation(self, record_id: str) -> Delineation:
        """The cardiologists' delineation of one record (LUDB is 500 Hz)."""
        return read_delineation(self.root / record_id, 500.0, record_id)


INTERVALS = ("pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "p_ms", "hr_bpm")


def compare_with_reference(db: LUDB, limit: int | None = None) -> list[dict[str, Any]]:
    """Every readable record measured by `ecgllm.signal.measure` next to its delineation:
    [{"record_id", "labels", "axis_code", "reference": intervals, "measured": {...}, "flags",
    "quality_ok"}]. Records whose delineation cannot be read are skipped (and counted in
    db.rejects)."""
    from .measure import measure
    from .preprocess import standardize

    out = []
    for rec in db.records(limit=limit):
        try:
            ref = db.delineation(rec.record_id).intervals()
        except ECGReadError as e:
            db.rejects.add(rec.record_id, e)
            continue
        s = standardize(rec)
        m = measure(s)
        out.append({"record_id": rec.record_id, "labels": dict(rec.labels),
                    "axis_code": rec.meta.get("heart_axis"), "reference": ref,
                    "measured": {k: m.get(k) for k in (*INTERVALS, "axis_deg")}, "flags": list(m.get("flags", [])),
                    "quality_ok": bool(s.meta["quality"]["ok"]), "measurement": m})  # fmt: skip
    return out


def measurement_agreement(
    rows: list[dict[str, Any]], key: str, outlier: float = 80.0
) -> dict[str, Any]:
    """Measured minus reference for one interval over `compare_with_reference` rows: n, bias
    (mean), sd, mae, missed (reference has it, the measurement none), extra (the reverse),
    outliers (|error| > `outlier`) and how many of those carry no flag (neither a measurement
    flag nor a failed quality check)."""
    err, missed, extra, unflagged = [], 0, 0, 0
    for r in rows:
        ref, got = r["reference"].get(key), r["measured"].get(key)
        if ref is None and got is None:
            continue
        if ref is None:
            extra += 1
            continue
        if got is None:
            missed += 1
            continue
        e = float(got) - float(ref)
        err.append(e)
        if abs(e) > outlier and not r["flags"] and r["quality_ok"]:
            unflagged += 1
    a = np.array(err)
    nan = float("nan")
    return {"n": len(a), "bias": float(a.mean()) if len(a) else nan, "sd": float(a.std()) if len(a) else nan,
            "mae": float(np.abs(a).mean()) if len(a) else nan, "missed": missed, "extra": extra,
            "outliers": int((np.abs(a) > outlier).sum()), "outliers_unflagged": unflagged}  # fmt: skip
