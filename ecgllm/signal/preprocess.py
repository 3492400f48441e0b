"""Preprocessing: resample, fixed window, lead order, derived limb leads, filters, quality flags.

    rec = standardize(read_record(path))            # [12, 5000] at 500 Hz, STANDARD_12 order
    rec.lead_mask, rec.derived, rec.meta["quality"]
    clean = bandpass(rec.signal, rec.fs)             # zero-phase, 0.5-100 Hz + notch if asked

All filters are zero-phase (forward-backward), so wave timings are not shifted.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

from .record import STANDARD_12, ECGReadError, ECGRecord, canonical_lead

# Each limb lead as a * I + b * II (Einthoven and Goldberger's definitions).
LIMB_COEFFS: dict[str, tuple[float, float]] = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}

# Quality thresholds (mV unless named otherwise), chosen on simulated and real PTB-XL records.
FLAT_P2P_MV = 0.02
IMPLAUSIBLE_P2P_MV = 15.0
WANDER_MV = 0.5
POWERLINE_RATIO = 0.1
CLIP_FRACTION = 0.01


def _sos_filter(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    pad = min(x.shape[-1] - 1, 3 * 200)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=pad).astype(np.float32)


def highpass(x: np.ndarray, fs: float, cutoff: float = 0.5, order: int = 2) -> np.ndarray:
    """Baseline-wander removal: zero-phase Butterworth high-pass. x: [..., samples] mV."""
    return _sos_filter(x, sps.butter(order, cutoff, "highpass", fs=fs, output="sos"))


def lowpass(x: np.ndarray, fs: float, cutoff: float = 100.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass; a cutoff at or above Nyquist returns x unchanged."""
    if cutoff >= fs / 2:
        return np.asarray(x, dtype=np.float32)
    return _sos_filter(x, sps.butter(order, cutoff, "lowpass", fs=fs, output="sos"))


def notch(x: np.ndarray, fs: float, freq: float = 50.0, quality: float = 30.0) -> np.ndarray:
    """Zero-phase powerline notch at `freq` Hz (50 Europe, 60 Americas) and its 2nd harmonic."""
    out = np.asarray(x, dtype=np.float64)
    for f in (freq, 2 * freq):
        if f < fs / 2:
            b, a = sps.iirnotch(f, quality, fs=fs)
            out = sps.filtfilt(b, a, out, axis=-1)
    return out.astype(np.float32)


def bandpass(
    x: np.ndarray,
    fs: float,
    low: float = 0.5,
    high: float = 100.0,
    powerline: float | None = None,
) -> np.ndarray:
    """High-pass + low-pass (+ notch when `powerline` is 50 or 60), all zero-phase."""
    y = lowpass(highpass(x, fs, low), fs, high)
    return notch(y, fs, powerline) if powerline else y


def resample(x: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased)."""
    if abs(fs - target_fs) < 1e-9:
        return np.asarray(x, dtype=np.float32)
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def _fill_nan(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear interpolation over NaN/inf gaps per lead; returns the filled copy and the count."""
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if not count:
        return x, 0
    x = x.copy()
    idx = np.arange(x.shape[1])
    for i in np.flatnonzero(bad.any(axis=1)):
        ok = ~bad[i]
        x[i] = np.interp(idx, idx[ok], x[i, ok]) if ok.any() else 0.0
    return x, count


def derive_limb_leads(
    signal: np.ndarray, leads: list[str], present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fill missing limb leads from any two independent present ones (III = II - I, ...).

    Solves for (I, II) by least squares over the present limb leads, then writes each missing
    limb lead. Returns (signal, derived mask). Leaves everything alone with < 2 independent leads.
    """
    derived = np.zeros(len(leads), dtype=bool)
    limb = [i for i, n in enumerate(leads) if n in LIMB_COEFFS]
    have = [i for i in limb if present[i]]
    miss = [i for i in limb if not present[i]]
    if not miss or len(have) < 2:
        return signal, derived
    a = np.array([LIMB_COEFFS[leads[i]] for i in have])
    if np.linalg.matrix_rank(a) < 2:
        return signal, derived
    basis, *_ = np.linalg.lstsq(a, signal[have], rcond=None)  # [2, samples]: I and II
    signal = signal.copy()
    for i in miss:
        signal[i] = np.asarray(LIMB_COEFFS[leads[i]]) @ basis
        derived[i] = True
    return signal, derived


def quality_flags(signal: np.ndarray, fs: float, leads: list[str], mask: np.ndarray) -> dict:
    """Per-record quality report. signal [leads, samples] mV.

    flat_leads, clipped_leads, implausible_leads: lead names; baseline_wander_mv: largest
    slow-wave (< 0.5 Hz) excursion; powerline_ratio: 50/60 Hz power over 5-40 Hz power; plus
    booleans `baseline_wander`, `powerline_noise` and `ok` (nothing flagged).
    """
    x = signal[mask] if mask.any() else signal[:0]
    names = [n for n, m in zip(leads, mask, strict=True) if m]
    flags: dict = {"flat_leads": [], "clipped_leads": [], "implausible_leads": []}
    if x.shape[0] == 0:
        flags.update(ok=False, baseline_wander_mv=0.0, powerline_ratio=0.0,
                     baseline_wander=False, powerline_noise=False)  # fmt: skip
        return flags
    p2p = np.percentile(x, 99.9, axis=1) - np.percentile(x, 0.1, axis=1)
    for name, row, amp in zip(names, x, p2p, strict=True):
        if amp < FLAT_P2P_MV:
            flags["flat_leads"].append(name)
            continue
        if amp > IMPLAUSIBLE_P2P_MV:
            flags["implausible_leads"].append(name)
        hi, lo = row.max(), row.min()
        # a saturated amplifier holds its rail: runs of identical extreme samples
        at_rail = (row >= hi - 1e-6) | (row <= lo + 1e-6)
        runs = at_rail[1:] & at_rail[:-1] & (np.diff(row) == 0)
        if runs.mean() > CLIP_FRACTION:
            flags["clipped_leads"].append(name)
    # baseline: the classic 200 ms + 600 ms median filters, on a 50 Hz copy for speed
    step = max(1, int(fs // 50))
    coarse = x[:, ::step]
    fs_c = fs / step
    k1, k2 = int(0.2 * fs_c) | 1, int(0.6 * fs_c) | 1
    base = sps.medfilt(sps.medfilt(coarse, [1, k1]), [1, k2])
    edge = k2
    wander = base[:, edge:-edge] if base.shape[1] > 3 * edge else base
    wander_mv = float((wander.max(axis=1) - wander.min(axis=1)).max()) if wander.size else 0.0
    ratio = 0.0
    if fs >= 130 and x.shape[1] >= int(2 * fs):
        f, pxx = sps.welch(x, fs=fs, nperseg=int(2 * fs), axis=1)
        band = pxx[:, (f >= 5) & (f <= 40)].sum(axis=1) + 1e-12
        pl = np.zeros(x.shape[0])
        for hz in (50.0, 60.0):
            if hz < fs / 2:
                pl = np.maximum(pl, pxx[:, np.abs(f - hz) <= 1.0].sum(axis=1))
        ratio = float(np.median(pl / band))
    flags["baseline_wander_mv"] = round(wander_mv, 4)
    flags["powerline_ratio"] = round(ratio, 4)
    flags["baseline_wander"] = wander_mv > WANDER_MV
    flags["powerline_noise"] = ratio > POWERLINE_RATIO
    flags["ok"] = not (
        flags["flat_leads"] or flags["clipped_leads"] or flags["implausible_leads"]
        or flags["baseline_wander"] or flags["powerline_noise"]
    )  # fmt: skip
    return flags


def standardize(
    record: ECGRecord,
    fs: float = 500.0,
    seconds: float = 10.0,
    leads: tuple[str, ...] | list[str] = STANDARD_12,
    crop: str = "center",
    derive: bool = True,
    filters: str | None = None,
    powerline: float | None = None,
) -> ECGRecord:
    """A record in the model's frame: `leads` order at `fs` Hz for exactly `seconds`.

    - resample (polyphase) to `fs`; crop ("center" or "start") or zero-pad at the end;
    - order the leads; absent leads are zeros with lead_mask False; missing limb leads are
      derived from two present ones when `derive` (marked in `derived`);
    - NaN samples are interpolated, their count kept in meta["nan_count"]; an all-NaN lead
      becomes missing; flat leads stay but are flagged;
    - `filters`: None, "baseline" (0.5 Hz high-pass) or "bandpass" (0.5-100 Hz); `powerline`
      50/60 adds a notch;
    - meta["quality"] holds `quality_flags` of the result; meta["pad_samples"] any padding.
    """
    if crop not in ("center", "start"):
        raise ValueError(f"crop must be 'center' or 'start', not {crop!r}")
    src, nan_count = _fill_nan(record.signal)
    src_mask = record.lead_mask.copy()
    x = resample(src, record.fs, fs)
    n = int(round(fs * seconds))
    pad = 0
    if x.shape[1] >= n:
        start = (x.shape[1] - n) // 2 if crop == "center" else 0
        x = x[:, start : start + n]
    else:
        pad = n - x.shape[1]
        x = np.pad(x, ((0, 0), (0, pad)))
    if filters == "baseline":
        x = highpass(x, fs)
    elif filters == "bandpass":
        x = bandpass(x, fs, powerline=powerline)
    elif filters is not None:
        raise ValueError(f"filters must be None, 'baseline' or 'bandpass', not {filters!r}")
    if powerline and filters != "bandpass":
        x = notch(x, fs, powerline)

    out = np.zeros((len(leads), n), dtype=np.float32)
    mask = np.zeros(len(leads), dtype=bool)
    lookup = {canonical_lead(name) or name: i for i, name in enumerate(record.leads)}
    for j, name in enumerate(leads):
        i = lookup.get(canonical_lead(name) or name)
        if i is not None and src_mask[i]:
            out[j] = x[i]
            mask[j] = True
    if not mask.any():
        raise ECGReadError(
            record.path or record.record_id,
            "no_standard_leads",
            f"none of the channels {record.leads} is one of the leads {list(leads)}",
        )
    derived = np.zeros(len(leads), dtype=bool)
    if derive:
        out, derived = derive_limb_leads(out, list(leads), mask)
        mask |= derived
    meta = dict(record.meta)
    meta["nan_count"] = int(record.meta.get("nan_count", 0)) if not nan_count else nan_count
    meta["pad_samples"] = pad
    meta["source_fs"] = record.fs
    meta["quality"] = quality_flags(out, fs, list(leads), mask)
    meta["quality"]["nan_fraction"] = round(nan_count / max(1, record.signal.size), 6)
    return record.replace(
        signal=out, fs=float(fs), leads=list(leads), lead_mask=mask, derived=derived, meta=meta
    )
