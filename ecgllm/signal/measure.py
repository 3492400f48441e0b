"""Measurements for grounding: R peaks, delineation, intervals, axis and per-lead amplitudes.

    peaks = find_r_peaks(rec.signal, rec.fs)   # sample indices, 1-D or multi-lead input
    m = measure(rec)                            # {"hr_bpm": 71.2, "pr_ms": 158.0, ..., "leads": {...}}

Method (what the classic programs do, e.g. Pan & Tompkins 1985 for detection and the
"global" multi-lead delineation of the CSE/Glasgow tradition):
1. QRS detection: 5-15 Hz band-pass, derivative, squaring summed over leads, 150 ms moving-window
   integration, adaptive signal/noise thresholds with search-back (Pan-Tompkins).
2. A median beat per lead from the beats that resemble each other (ectopics excluded).
3. Global fiducials on the median beat: QRS onset/offset from the spatial velocity (norm over
   leads of the derivative) falling to a few percent of its peak, with the amplitude back near
   baseline (so a notch inside a wide QRS does not end it); T end by the tangent method per lead
   (median over leads); P as the peak of the spatial magnitude after removing each lead's
   TP-to-PR baseline line, accepted only when every beat has the same P wave (median
   correlation), so the averaged fibrillatory waves of AF are not called a P wave.
4. Intervals from those fiducials; axis from the net QRS area in I and aVF.
Every value is None when it cannot be measured (no P waves in AF, too few beats, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal as sps

from .preprocess import bandpass, highpass, lowpass
from .record import ECGRecord, canonical_lead

QRS_VELOCITY_FRAC = 0.04  # QRS edges: spatial velocity below this fraction of its peak
QRS_LOCAL_MIN_FRAC = 0.1  # ... or a local minimum of it below this fraction
QRS_ONSET_MAG_FRAC = 0.05  # onset: the amplitude still below this fraction of the QRS peak
QRS_MAG_FRAC = 0.3  # offset: the amplitude (ST level) below this fraction of the QRS peak
P_MIN_MV = 0.03  # a P wave needs this spatial amplitude on the median beat ...
P_MIN_RATIO = 2.0  # ... and this ratio to the flat level before it ...
P_MIN_CONSISTENCY = 0.7  # ... and to be there, the same, before every beat (median correlation)
P_EDGE_FRAC = 0.13  # P onset/end: this share of the way from the flat level up to the P peak
T_MIN_MV = 0.05  # leads whose T wave is lower do not vote on the end of T
T_MIN_LEADS = 3  # fewer voting leads flag the QT "t_end_few_leads"
T_MAX_SPREAD_MS = 40.0  # votes spread wider (IQR) flag it "t_end_spread"
LOWPASS_HZ = 60.0  # delineation bandwidth: narrower smears the QRS edges, wider adds noise


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None] if x.ndim == 1 else x


def _max_slope(slope: np.ndarray, c: int, fs: float) -> float:
    return float(slope[max(0, c - int(0.15 * fs)) : c + 1].max())


def find_r_peaks(x: np.ndarray, fs: float, refractory_s: float = 0.25) -> np.ndarray:
    """QRS complexes in a 1-D [samples] or multi-lead [leads, samples] signal (mV).

    Returns int sample indices of each complex's largest absolute deflection (the R or S peak of
    the lead with the most energy), Pan-Tompkins style with adaptive thresholds and search-back.
    """
    x = _as_2d(x)
    x = np.nan_to_num(x)
    if x.shape[1] < int(fs):
        return np.zeros(0, dtype=int)
    band = sps.sosfiltfilt(sps.butter(2, [5, 15], "bandpass", fs=fs, output="sos"), x, axis=1)
    energy = (np.diff(band, axis=1, prepend=band[:, :1]) ** 2).sum(axis=0)
    slope = np.sqrt(energy)
    win = max(1, int(0.15 * fs))
    mwi = np.convolve(energy, np.ones(win) / win, mode="same")
    cand, _ = sps.find_peaks(mwi, distance=max(1, int(0.2 * fs)))
    if len(cand) == 0:
        return np.zeros(0, dtype=int)
    # the starting QRS level: the median of the record's per-second maxima (mostly one QRS each),
    # not the first 2 s's maximum, which a premature ventricular beat there would set at several
    # times a normal complex's energy, leaving every normal beat below the threshold
    sec = int(fs)
    per_second = mwi[: len(mwi) // sec * sec].reshape(-1, sec).max(axis=1)
    first = mwi[: int(2 * fs)]
    spki, npki = 0.25 * float(np.median(per_second)), 0.5 * first.mean()
    qrs: list[int] = []
    rr_avg: float | None = None
    for c in cand:
        thr = npki + 0.25 * (spki - npki)
        if (
            mwi[c] > thr
            and qrs
            and c - qrs[-1] < 0.36 * fs
            and _max_slope(slope, c, fs) < 0.5 * _max_slope(slope, qrs[-1], fs)
        ):
            npki = 0.125 * mwi[c] + 0.875 * npki  # a T wave (Pan-Tompkins: half the slope)
            continue
        if mwi[c] > thr and (not qrs or c - qrs[-1] > refractory_s * fs):
            if rr_avg is not None and qrs and c - qrs[-1] > 1.66 * rr_avg:
                # search back for a missed beat with half the threshold
                between = [
                    b for b in cand if qrs[-1] + refractory_s * fs < b < c - refractory_s * fs
                ]
                if between:
                    b = max(between, key=lambda i: mwi[i])
                    if mwi[b] > thr / 2:
                        qrs.append(int(b))
                        spki = 0.25 * mwi[b] + 0.75 * spki
            qrs.append(int(c))
            spki = 0.125 * mwi[c] + 0.875 * spki
            if len(qrs) >= 3:
                rr_avg = float(np.mean(np.diff(qrs[-9:])))
        else:
            npki = 0.125 * mwi[c] + 0.875 * npki
    # the MWI peak trails the complex: refine to the largest band-passed deflection nearby
    mag = np.abs(band).max(axis=0)
    half = int(0.1 * fs)
    out = []
    for c in qrs:
        lo, hi = max(0, c - half), min(len(mag), c + half // 2)
        out.append(lo + int(np.argmax(mag[lo:hi])))
    return np.unique(np.asarray(out, dtype=int))


def _median_beat(
    x: np.ndarray, peaks: np.ndarray, pre: int, post: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median over beats [leads, pre+post] and which beats were used (ectopics left out)."""
    ok = [p for p in peaks if p - pre >= 0 and p + post <= x.shape[1]]
    if not ok:
        return np.zeros((x.shape[0], 0)), np.zeros(0, dtype=int)
    beats = np.stack([x[:, p - pre : p + post] for p in ok])  # [beats, leads, samples]
    template = np.median(beats, axis=0)
    # keep beats whose QRS region correlates with the template
    q = slice(max(0, pre - int(0.3 * pre)), min(pre + post, pre + int(0.3 * pre)))
    t = template[:, q].ravel()
    keep = []
    for i, b in enumerate(beats):
        r = np.corrcoef(b[:, q].ravel(), t)[0, 1] if t.std() > 0 else 1.0
        if r > 0.85:
            keep.append(i)
    if len(keep) >= max(2, len(ok) // 3):
        template = np.median(beats[keep], axis=0)
    else:
        keep = list(range(len(ok)))
    return template, np.asarray(ok)[keep]


def measure(record: ECGRecord) -> dict[str, Any]:
    """Intervals (ms), rate (bpm), axis (deg) and per-lead median-beat values (mV) of a record.

    Keys: hr_bpm, rr_ms, rr_sd_ms, pr_ms, p_ms, qrs_ms, qt_ms, qtc_ms (Bazett), qtc_fridericia_ms,
    axis_deg, n_beats, beats (per-beat fiducials in samples: r, qrs_on, qrs_off, p_on, t_end; the
    median beat's offsets placed at each beat's R), leads (per lead: q_mv, r_mv, s_mv, t_mv,
    st_j60_mv, qrs_ms), sokolow_lyon_mv, cornell_mv, p_consistency (how alike the P-wave
    segments of the beats are, when a P wave was found), and `flags`: measurements to trust less
    ("t_end_few_leads", "t_end_spread": the QT). Any value that cannot be measured is None.
    """
    fs = float(record.fs)
    mask = np.asarray(record.lead_mask, dtype=bool)
    names = [n for n, m in zip(record.leads, mask, strict=True) if m]
    raw = np.nan_to_num(np.asarray(record.signal, dtype=np.float64)[mask])
    out: dict[str, Any] = dict.fromkeys(
        ["hr_bpm", "rr_ms", "rr_sd_ms", "pr_ms", "p_ms", "qrs_ms", "qt_ms", "qtc_ms",
         "qtc_fridericia_ms", "axis_deg", "sokolow_lyon_mv", "cornell_mv"]
    )  # fmt: skip
    out.update(n_beats=0, beats=[], leads={}, flags=[], p_consistency=None)
    if raw.shape[0] == 0 or raw.shape[1] < 2 * fs:
        return out
    x = lowpass(highpass(raw, fs, 0.5), fs, LOWPASS_HZ).astype(np.float64)
    peaks = find_r_peaks(x, fs)
    out["n_beats"] = int(len(peaks))
    if len(peaks) < 2:
        return out
    rr = np.diff(peaks) / fs * 1000.0
    out["rr_ms"] = round(float(rr.mean()), 1)
    out["hr_bpm"] = round(60000.0 / float(rr.mean()), 1)
    out["rr_sd_ms"] = round(float(rr.std()), 1) if len(rr) > 1 else None
    rr_med = float(np.median(rr)) / 1000.0
    pre = int(min(0.5, 0.65 * rr_med) * fs)
    post = int(min(0.8, 0.8 * rr_med) * fs)
    tpl, used = _median_beat(x, peaks, pre, post)
    if tpl.shape[1] == 0 or len(used) < 2:
        return out
    fid = _delineate(tpl, fs, pre, int(round(rr_med * fs)))
    if fid is None:
        return out
    out["flags"] = fid.pop("flags", [])
    if fid["p_on"] is not None:
        out["p_consistency"] = round(_p_consistency(x, used, tpl, pre, fid, fs), 3)
        if out["p_consistency"] < P_MIN_CONSISTENCY:
            fid["p_on"] = fid["p_end"] = None  # no P wave of its own before each QRS (AF, flutter)
    on, off = fid["qrs_on"], fid["qrs_off"]
    out["qrs_ms"] = round((off - on) / fs * 1000, 1)
    if fid.get("t_end") is not None:
        qt = (fid["t_end"] - on) / fs * 1000
        out["qt_ms"] = round(qt, 1)
        out["qtc_ms"] = round(qt / np.sqrt(rr_med), 1)
        out["qtc_fridericia_ms"] = round(qt / np.cbrt(rr_med), 1)
    if fid.get("p_on") is not None:
        out["pr_ms"] = round((on - fid["p_on"]) / fs * 1000, 1)
        out["p_ms"] = round((fid["p_end"] - fid["p_on"]) / fs * 1000, 1)
    base = tpl[:, max(0, on - int(0.01 * fs)) : on + 1].mean(axis=1, keepdims=True)
    tb = tpl - base
    idx = {canonical_lead(n) or n: i for i, n in enumerate(names)}
    if "I" in idx and "aVF" in idx:
        area_i = tb[idx["I"], on:off].sum()
        area_f = tb[idx["aVF"], on:off].sum()
        out["axis_deg"] = round(float(np.degrees(np.arctan2(area_f, area_i))), 1)
    out["leads"] = _per_lead(tb, names, fs, fid)
    lv = out["leads"]
    if "V1" in lv and ("V5" in lv or "V6" in lv):
        r_lat = max(lv.get(k, {}).get("r_mv") or 0.0 for k in ("V5", "V6"))
        out["sokolow_lyon_mv"] = round(abs(lv["V1"]["s_mv"]) + r_lat, 3)
    if "aVL" in lv and "V3" in lv:
        out["cornell_mv"] = round(lv["aVL"]["r_mv"] + abs(lv["V3"]["s_mv"]), 3)
    rel = {k: (v - pre if v is not None else None) for k, v in fid.items()}
    out["beats"] = [
        {"r": int(p), **{k: (int(p + v) if v is not None else None) for k, v in rel.items()},
         "typical": bool(p in set(used.tolist()))}
        for p in peaks
    ]  # fmt: skip
    return out


def _low_velocity(vel: np.ndarray, i: int, vmax: float) -> bool:
    if vel[i] < QRS_VELOCITY_FRAC * vmax:
        return True
    return vel[i] < QRS_LOCAL_MIN_FRAC * vmax and vel[i] <= vel[i - 1] and vel[i] <= vel[i + 1]


def _delineate(tpl: np.ndarray, fs: float, r0: int, rr: int) -> dict[str, int | None] | None:
    """Global fiducials (sample indices into the median beat) from spatial velocity/magnitude."""
    n = tpl.shape[1]
    vel = np.sqrt((np.gradient(tpl, axis=1) ** 2).sum(axis=0))
    w = int(0.06 * fs)
    vmax = vel[max(0, r0 - w) : r0 + w].max()
    if vmax <= 0:
        return None

    # QRS onset: walk back from R until velocity is low (below a few percent of its peak, or a
    # local minimum below 10%) and the signal is back at the level just before it
    on = None
    for i in range(r0, max(1, r0 - int(0.15 * fs)), -1):
        if _low_velocity(vel, i, vmax):
            ref = tpl[:, max(0, i - int(0.02 * fs)) : i + 1].mean(axis=1)
            seg = np.linalg.norm(tpl[:, i : min(n, i + int(0.12 * fs))] - ref[:, None], axis=0)
            if seg[:3].max() < QRS_ONSET_MAG_FRAC * seg.max():
                on = i
                break
    if on is None:
        return None
    base = tpl[:, max(0, on - int(0.01 * fs)) : on + 1].mean(axis=1)
    mag = np.linalg.norm(tpl - base[:, None], axis=0)
    qrs_peak = mag[on : min(n, on + int(0.2 * fs))].max()
    off = None
    for i in range(r0 + 1, min(n - 1, on + int(0.22 * fs))):
        if _low_velocity(vel, i, vmax) and mag[i] < QRS_MAG_FRAC * qrs_peak:
            off = i
            break
    if off is None:
        return None
    fid: dict[str, int | None] = {"qrs_on": on, "qrs_off": off, "t_end": None, "p_on": None,
                                  "p_end": None}  # fmt: skip
    fid["t_end"], fid["flags"] = _t_end(tpl, fs, on, off, rr)
    # P: in the diastolic window before the QRS, not into the previous beat's T wave
    p_lo = max(0, on - int(0.4 * fs))
    if fid["t_end"] is not None:
        p_lo = max(p_lo, fid["t_end"] - rr + int(0.04 * fs))
    p = _p_wave(tpl, fs, on, p_lo)
    if p is not None:
        fid["p_on"], fid["p_end"] = p
    return fid


def _t_end(tpl: np.ndarray, fs: float, on: int, off: int, rr: int) -> tuple[int | None, list[str]]:
    """End of T by the tangent method (the steepest descent of T extended to the isoelectric
    level, the PR segment's), per lead, the median over the leads whose T wave is at least
    T_MIN_MV high (None when no lead has one). Why not a threshold on the wave's magnitude: on
    real records the level after T differs from the PR level by a few hundredths of a mV and a
    low T (or a U wave) never falls below a fraction of its peak; the tangent does not care.
    Like the manual method it mirrors, it ends T ~10 ms before the last visible deflection.
    Returns (end, flags): "t_end_few_leads" when fewer than T_MIN_LEADS leads vote,
    "t_end_spread" when their votes spread (IQR) over more than T_MAX_SPREAD_MS."""
    n = tpl.shape[1]
    rr_s = rr / fs
    x = tpl - tpl[:, max(0, on - int(0.01 * fs)) : on + 1].mean(axis=1, keepdims=True)
    t_lo = off + int(0.06 * fs)
    # T within physiological bounds (QTc up to ~0.65 s), not into the next beat's P wave
    t_hi = min(n - 1, on + rr - int(0.05 * fs), on + int(0.7 * np.sqrt(rr_s) * fs))
    t_peak_hi = min(t_hi, on + int(0.5 * np.sqrt(rr_s) * fs))
    if t_lo >= t_peak_hi - int(0.02 * fs):
        return None, []
    k = max(1, int(0.008 * fs))
    smooth = np.apply_along_axis(lambda v: np.convolve(v, np.ones(k) / k, mode="same"), 1, x)
    ends = []
    for y in smooth:
        pk = t_lo + int(np.argmax(np.abs(y[t_lo:t_peak_hi])))
        if abs(y[pk]) < T_MIN_MV:
            continue
        z = np.sign(y[pk]) * y  # the wave made upright
        # the steepest point of T's own descent: stop where it has fallen to 10% of its peak or
        # turns up again (not on a following P wave's downslope)
        stop = pk
        while stop < min(t_hi, pk + int(0.25 * fs)) and z[stop + 1] <= z[stop] + 1e-4 \
                and z[stop] > 0.1 * z[pk]:  # fmt: skip
            stop += 1
        if stop - pk < 3:
            continue
        dz = np.gradient(z[pk : stop + 1])
        j = int(np.argmin(dz))
        if dz[j] >= 0:
            continue
        end = pk + j - z[pk + j] / dz[j]  # where the tangent meets the isoelectric level
        if pk + j <= end <= t_hi + int(0.05 * fs):  # (a T crossing below it: biphasic, no vote)
            ends.append(end)
    if not ends:
        return None, []
    q1, q3 = np.percentile(ends, [25, 75])
    flags = ["t_end_few_leads"] if len(ends) < T_MIN_LEADS else []
    if q3 - q1 > T_MAX_SPREAD_MS * fs / 1000:
        flags.append("t_end_spread")
    return int(round(float(np.median(ends)))), flags


def _p_wave(tpl: np.ndarray, fs: float, on: int, p_lo: int) -> tuple[int, int] | None:
    """P onset and end in the window [p_lo, on] of the median beat, or None.

    Each lead's baseline is the straight line from the window's start (TP segment) to the QRS
    onset (PR segment), so a slope or offset between the two levels (wander, an ST-T tail) is no
    wave; P is the peak of the detrended spatial magnitude, its edges where that magnitude falls
    to P_EDGE_FRAC of the way from the flat level on that side up to the peak."""
    k = max(1, int(0.01 * fs))
    if on - p_lo < int(0.1 * fs):
        return None
    seg = tpl[:, p_lo : on + 1]
    a, b = seg[:, :k].mean(axis=1), seg[:, -k:].mean(axis=1)
    d = seg - (a[:, None] + (b - a)[:, None] * np.linspace(0.0, 1.0, seg.shape[1])[None])
    mag = np.convolve(np.linalg.norm(d, axis=0), np.ones(k) / k, mode="same")
    hi = len(mag) - int(0.02 * fs)
    if hi <= k + 1:
        return None
    pk = k + int(np.argmax(mag[k:hi]))
    amp = float(mag[pk])
    g = pk - int(0.06 * fs)
    flat_before = float(np.median(mag[:g])) if g >= int(0.02 * fs) else float(mag[: pk + 1].min())
    flat_after = float(mag[pk:].min())
    if amp < P_MIN_MV or amp < P_MIN_RATIO * flat_before:
        return None

    def edge(start: int, step: int, flat: float) -> int:
        # stop at the threshold, or at a dip that is already low (a notch between P and other
        # activity, which the walk must not cross)
        i = start
        while 0 < i < len(mag) - 1:
            low = mag[i] <= flat + P_EDGE_FRAC * (amp - flat)
            dip = mag[i] <= mag[i - step] and mag[i] < mag[i + step]
            if low or (dip and mag[i] <= flat + 2 * P_EDGE_FRAC * (amp - flat)):
                break
            i += step
        return i

    return p_lo + edge(pk, -1, flat_before), p_lo + edge(pk, 1, flat_after)


def _p_consistency(x: np.ndarray, beats: np.ndarray, tpl: np.ndarray, pre: int, fid: dict,
                   fs: float) -> float:  # fmt: skip
    """Median correlation, over the beats, of each beat's P-wave segment (all leads, P onset -
    20 ms to P end + 20 ms) with the median beat's: close to 1 when every QRS has its own P wave,
    near 0 when the "P" of the median beat is fibrillatory or flutter activity that happened to
    survive the median."""
    lo = fid["p_on"] - int(0.02 * fs)
    hi = fid["p_end"] + int(0.02 * fs)
    if lo < 0:
        return 0.0
    ref = tpl[:, lo:hi]
    ref = (ref - ref.mean(axis=1, keepdims=True)).ravel()
    rs = []
    for r in beats:
        a, b = r - pre + lo, r - pre + hi
        if a < 0 or b > x.shape[1]:
            continue
        seg = x[:, a:b]
        seg = (seg - seg.mean(axis=1, keepdims=True)).ravel()
        den = np.linalg.norm(seg) * np.linalg.norm(ref)
        rs.append(float(seg @ ref / den) if den > 0 else 0.0)
    return float(np.median(rs)) if rs else 0.0


def _per_lead(tb: np.ndarray, names: list[str], fs: float, fid: dict) -> dict[str, dict[str, Any]]:
    on, off = fid["qrs_on"], fid["qrs_off"]
    j60 = off + int(0.06 * fs)
    t_end = fid.get("t_end")
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        seg = tb[i, on : off + 1]
        r_i = int(np.argmax(seg))
        r = float(seg[r_i])
        q = float(min(0.0, seg[: r_i + 1].min())) if r_i > 0 else 0.0
        s = float(min(0.0, seg[r_i:].min()))
        t_seg = tb[i, off + int(0.06 * fs) : t_end] if t_end else tb[i, :0]
        t_amp = float(t_seg[np.argmax(np.abs(t_seg))]) if t_seg.size else None
        v = np.abs(np.gradient(tb[i]))
        vpk = v[on : off + 1].max()
        lead_on = next((k for k in range(on, off) if v[k] >= QRS_VELOCITY_FRAC * 2 * vpk), on)
        lead_off = next(
            (k for k in range(off, lead_on, -1) if v[k] >= QRS_VELOCITY_FRAC * 2 * vpk), off
        )
        out[canonical_lead(name) or name] = {
            "q_mv": round(q, 3),
            "r_mv": round(max(r, 0.0), 3),
            "s_mv": round(s, 3),
            "t_mv": round(t_amp, 3) if t_amp is not None else None,
            "st_j60_mv": round(float(tb[i, j60]), 3) if j60 < tb.shape[1] else None,
            "qrs_ms": round((lead_off - lead_on) / fs * 1000, 1),
        }
    return out


__all__ = ["find_r_peaks", "measure", "bandpass"]
