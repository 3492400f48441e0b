"""ECGRecord and reading any WFDB record into it.

    from ecgllm.signal import read_record
    rec = read_record("records500/00000/00001_hr")   # .hea path with or without suffix
    rec.signal.shape, rec.fs, rec.leads               # (12, 5000) float32 mV, 500.0, ['I', ..., 'V6']

Every failure to read becomes one exception type, `ECGReadError`, whose message names the file
and the problem, so a database iterator can count rejects by `reason`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from scipy.signal import resample_poly

STANDARD_12: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip

# Spellings seen in WFDB headers (PTB-XL upper case, MIT-BIH modified limb leads, European
# D1/D2/D3 and C1..C6) -> canonical name. Keys are upper case with spaces/underscores removed.
_LEAD_ALIASES: dict[str, str] = {}
for _name in STANDARD_12:
    _LEAD_ALIASES[_name.upper()] = _name
    _LEAD_ALIASES["LEAD" + _name.upper()] = _name
for _i, _name in enumerate(("I", "II", "III"), start=1):
    _LEAD_ALIASES["D" + _name] = _name
    _LEAD_ALIASES[f"D{_i}"] = _name
    _LEAD_ALIASES["ML" + _name] = _name  # MIT-BIH "modified limb lead"
for _i in range(1, 7):
    _LEAD_ALIASES[f"C{_i}"] = f"V{_i}"

# Physical units -> factor to millivolts. WFDB writes "uV" and sometimes "µV"/"μV".
# Keys are upper case: both micro sign and Greek mu upper-case to "Μ".
_TO_MV = {"MV": 1.0, "UV": 1e-3, "ΜV": 1e-3, "NV": 1e-6, "V": 1e3}

# Beyond this, a 10 s ECG is not in millivolts: the header's gain or units are wrong.
MAX_PLAUSIBLE_MV = 30.0

# Bytes per sample (per channel) of the WFDB storage formats, for the truncation check.
_FMT_BYTES = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "24": 3, "32": 4,
              "310": 4 / 3, "311": 4 / 3}  # fmt: skip


class ECGReadError(ValueError):
    """A record or table that cannot be read. `path` names the file, `reason` a short
    machine-countable tag (e.g. "truncated", "bad_gain"), `detail` the human explanation."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {detail} [{reason}]")


@dataclass
class ECGRecord:
    """One ECG recording.

    signal:    float32 [n_leads, n_samples], millivolts.
    fs:        sampling rate in Hz.
    leads:     lead names, canonical (`STANDARD_12` spelling) for standard leads.
    lead_mask: bool [n_leads], False where a lead is missing (zeros in `signal`).
    derived:   bool [n_leads], True where a lead was computed from others (e.g. III = II - I).
    labels:    statement code -> likelihood (0..100), e.g. {"NORM": 100.0, "SR": 0.0}.
    meta:      everything else: age, sex, header comments, quality flags, NaN counts, ...
    """

    signal: np.ndarray
    fs: float
    leads: list[str]
    record_id: str
    patient_id: str | None = None
    lead_mask: np.ndarray | None = None
    derived: np.ndarray | None = None
    labels: dict[str, float] = field(default_factory=dict)
    report: str | None = None
    source: str = "wfdb"
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2 or self.signal.shape[0] != len(self.leads):
            raise ValueError(
                f"record {self.record_id}: signal shape {self.signal.shape} does not match "
                f"{len(self.leads)} lead names"
            )
        n = len(self.leads)
        if self.lead_mask is None:
            self.lead_mask = np.ones(n, dtype=bool)
        if self.derived is None:
            self.derived = np.zeros(n, dtype=bool)

    @property
    def n_samples(self) -> int:
        return self.signal.shape[1]

    @property
    def seconds(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples (mV) by name, any spelling."""
        key = canonical_lead(name) or name
        if key not in self.leads:
            raise KeyError(f"record {self.record_id} has no lead {name!r}; leads: {self.leads}")
        return self.signal[self.leads.index(key)]

    def replace(self, **changes: Any) -> ECGRecord:
        return replace(self, **changes)


def canonical_lead(name: str) -> str | None:
    """Canonical standard-lead name for a header's channel name, or None if not a standard lead.

    >>> canonical_lead("AVR"), canonical_lead("MLII"), canonical_lead("v5"), canonical_lead("PLETH")
    ('aVR', 'II', 'V5', None)
    """
    key = re.sub(r"[\s_\-]", "", name).upper()
    return _LEAD_ALIASES.get(key)


def units_to_mv(units: str | None) -> float | None:
    """Factor that converts a WFDB physical unit to millivolts, None if not a voltage."""
    if units is None or units.strip() == "":
        return 1.0  # WFDB's default unit for a channel with none given is mV
    return _TO_MV.get(units.strip().upper())


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix in (".hea", ".dat", ".mat"):
        p = p.with_suffix("")
    return p


def _header_gains(hea: Path) -> list[float | None]:
    """The gain field of each signal line as written (wfdb replaces 0 by its default of 200)."""
    lines = [
        ln
        for ln in hea.read_text(errors="replace").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    gains: list[float | None] = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 3:
            gains.append(None)
            continue
        m = re.match(r"^([-+0-9.eE]+)", fields[2])
        try:
            gains.append(float(m.group(1)) if m else None)
        except ValueError:  # "1.2.3": not a gain; wfdb's own parse decides
            gains.append(None)
    return gains


def _check_files(base: Path, header: Any) -> None:
    """Compare each signal file's size with what the header promises (wfdb pads silently)."""
    if not header.sig_len:
        raise ECGReadError(f"{base}.hea", "empty", "header declares zero samples")
    by_file: dict[str, list[int]] = {}
    for i, fname in enumerate(header.file_name):
        by_file.setdefault(fname, []).append(i)
    for fname, chans in by_file.items():
        f = base.parent / fname
        if not f.exists():
            raise ECGReadError(f, "missing_file", "signal file named in the header is missing")
        fmts = {header.fmt[i] for i in chans}
        if len(fmts) != 1 or next(iter(fmts)) not in _FMT_BYTES:
            continue
        spf = sum((header.samps_per_frame[i] or 1) for i in chans)
        need = math.ceil(_FMT_BYTES[next(iter(fmts))] * spf * header.sig_len)
        offset = header.byte_offset[chans[0]] or 0
        have = f.stat().st_size - offset
        if have < need:
            raise ECGReadError(
                f,
                "truncated",
                f"signal file has {have} bytes of samples, header promises {need} "
                f"({header.sig_len} samples x {spf} channels, format {next(iter(fmts))})",
            )


_KV = re.compile(r"<?([A-Za-z][A-Za-z _]*?)>?\s*:\s*([^<]*?)(?=\s*<|$)")


def parse_comments(comments: list[str]) -> dict[str, Any]:
    """Header comments that follow known conventions -> meta.

    WFDB `<age>: 25 <sex>: M` pairs, PhysioNet/CinC `Age: 74`, `Sex: Male`, `Dx: 164889003,...`.
    Unknown keys are kept lower-cased under `comments_kv`; raw lines under `comments`.
    """
    meta: dict[str, Any] = {"comments": list(comments)}
    kv: dict[str, str] = {}
    for line in comments:
        for key, value in _KV.findall(line.strip().lstrip("#")):
            kv[key.strip().lower()] = value.strip()
    age = kv.pop("age", None)
    if age is not None:
        try:
            a = float(age)
            meta["age"] = int(a) if math.isfinite(a) and 0 <= a < 130 else None
        except ValueError:
            meta["age"] = None
    sex = kv.pop("sex", None) or kv.pop("gender", None)
    if sex is not None:
        s = sex.strip().upper()[:1]
        meta["sex"] = s if s in ("M", "F") else None
    dx = kv.pop("dx", None)
    if dx is not None:
        meta["dx"] = [c.strip() for c in dx.split(",") if c.strip()]
    if kv:
        meta["comments_kv"] = kv
    return meta


def _expand_multifrequency(base: Path, rec: Any, policy: str) -> tuple[np.ndarray, float]:
    """Channels at different rates (samps_per_frame differ) -> one array at the highest rate."""
    spf = [s or 1 for s in rec.samps_per_frame]
    if policy == "reject":
        raise ECGReadError(
            f"{base}.hea", "multifrequency", f"channels have different rates (samples/frame {spf})"
        )
    top = max(spf)
    chans = []
    for x, s in zip(rec.e_p_signal, spf, strict=True):
        x = np.asarray(x, dtype=np.float64)
        if s != top:
            ratio = Fraction(top, s)
            x = resample_poly(x, ratio.numerator, ratio.denominator)
        chans.append(x[: rec.sig_len * top])
    n = min(len(c) for c in chans)
    return np.stack([c[:n] for c in chans]), float(rec.fs) * top


def read_record(
    path: str | os.PathLike,
    *,
    other_channels: str = "drop",
    multifrequency: str = "resample",
    record_id: str | None = None,
) -> ECGRecord:
    """Read a WFDB record (header + .dat/.mat, any format wfdb reads: 16, 212, 24, 80, ...).

    The signal comes back in millivolts whatever the header's units (uV, mV, V), with canonical
    lead names. `other_channels`: "drop" non-voltage channels (PLETH, RESP, ...; listed in
    meta["dropped_channels"]) or "keep" them under their own names and units (meta["units"]).
    `multifrequency`: "resample" channels sampled faster than the frame rate to one common rate
    (polyphase), or "reject" such records.
    Raises ECGReadError naming the file and the problem.
    """
    if other_channels not in ("drop", "keep"):
        raise ValueError(f"other_channels must be 'drop' or 'keep', not {other_channels!r}")
    base = _resolve(path)
    hea = base.with_name(base.name + ".hea")
    if not hea.exists():
        raise ECGReadError(hea, "missing_file", "header file not found")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as e:  # wfdb raises many types for a malformed header
        raise ECGReadError(hea, "bad_header", f"cannot parse header: {e}") from e
    if not header.n_sig:
        raise ECGReadError(hea, "no_signals", "header declares no signals")
    if header.fs is None or not header.fs or header.fs <= 0:
        raise ECGReadError(hea, "bad_fs", f"sampling frequency {header.fs!r} is not positive")
    segmented = hasattr(header, "seg_name")  # a multi-segment record: wfdb joins the segments
    if not segmented:
        if not header.file_name or len(header.file_name) != header.n_sig:
            got = len(header.file_name or [])
            raise ECGReadError(
                hea,
                "bad_header",
                f"the record line declares {header.n_sig} signals but {got} signal lines follow",
            )
        _check_files(base, header)
        for i, g in enumerate(_header_gains(hea)):
            if g == 0:  # WFDB reads a zero gain as "uncalibrated" and substitutes 200 adu/unit
                raise ECGReadError(
                    hea, "bad_gain", f"channel {header.sig_name[i]!r} is uncalibrated (gain 0)"
                )
        for i, g in enumerate(header.adc_gain):
            if g is None or not np.isfinite(g) or g <= 0:
                raise ECGReadError(
                    hea, "bad_gain", f"channel {header.sig_name[i]!r} has gain {g} (must be > 0)"
                )
    multi = not segmented and any((s or 1) != 1 for s in header.samps_per_frame)
    try:
        rec = wfdb.rdrecord(str(base), physical=True, smooth_frames=not multi)
    except Exception as e:
        raise ECGReadError(hea, "unreadable", f"wfdb cannot read the samples: {e}") from e
    if multi:
        values, fs = _expand_multifrequency(base, rec, multifrequency)
    else:
        values, fs = np.asarray(rec.p_signal, dtype=np.float64).T, float(rec.fs)
    if values.shape[1] == 0:
        raise ECGReadError(hea, "empty", "record has zero samples")

    names = [str(n) for n in (rec.sig_name or [f"ch{i}" for i in range(values.shape[0])])]
    units = list(rec.units or ["mV"] * len(names))
    keep, leads, out_units, dropped = [], [], [], []
    for i, (name, unit) in enumerate(zip(names, units, strict=True)):
        factor = units_to_mv(unit)
        canon = canonical_lead(name)
        if factor is not None:
            values[i] *= factor
            keep.append(i)
            leads.append(canon or name)
            out_units.append("mV")
        elif other_channels == "keep":
            keep.append(i)
            leads.append(name)
            out_units.append(unit)
        else:
            dropped.append(name)
    if not any(u == "mV" for u in out_units):
        raise ECGReadError(
            hea, "no_ecg", f"no ECG (voltage) channels: {list(zip(names, units, strict=True))}"
        )
    dupes = {n for n in leads if leads.count(n) > 1}
    if dupes:
        raise ECGReadError(hea, "duplicate_leads", f"lead names repeat: {sorted(dupes)}")
    with np.errstate(over="ignore"):  # beyond float32 (an absurd gain): inf, i.e. not finite
        signal = values[keep].astype(np.float32)
    ecg = np.array([u == "mV" for u in out_units])
    finite = np.isfinite(signal[ecg])
    if not finite.any():
        raise ECGReadError(hea, "all_nan", "every ECG sample is NaN")
    lead_ok = finite.any(axis=1)
    with np.errstate(all="ignore"):
        p2p = np.nanpercentile(signal[ecg][lead_ok], 99.5, axis=1) - np.nanpercentile(
            signal[ecg][lead_ok], 0.5, axis=1
        )
    if np.median(p2p) > MAX_PLAUSIBLE_MV:
        gains = sorted({header.adc_gain[i] for i in keep if out_units[keep.index(i)] == "mV"})
        raise ECGReadError(
            hea,
            "implausible_amplitude",
            f"median peak-to-peak {np.median(p2p):.1f} mV exceeds {MAX_PLAUSIBLE_MV} mV: check the "
            f"header's gain ({gains} adu per unit) and units ({sorted(set(units))})",
        )
    meta = parse_comments(rec.comments or [])
    if dropped:
        meta["dropped_channels"] = dropped
    if other_channels == "keep":
        meta["units"] = out_units
    if rec.base_date is not None or rec.base_time is not None:
        meta["base_datetime"] = f"{rec.base_date or ''} {rec.base_time or ''}".strip()
    nan_count = int((~np.isfinite(signal)).sum())
    if nan_count:
        meta["nan_count"] = nan_count
    leads_mask = np.ones(len(leads), dtype=bool)
    leads_mask[np.flatnonzero(ecg)[~lead_ok]] = False
    return ECGRecord(
        signal=signal,
        fs=fs,
        leads=leads,
        record_id=record_id or base.name,
        lead_mask=leads_mask,
        path=str(base),
        meta=meta,
    )
