"""Rhythm from measurements: RR irregularity, P waves and rate -> one of the six rhythms.

    m = measure(standardize(rec))
    rhythm_features(m)     # {"hr_bpm": 72.0, "rr_nrmssd": 0.03, "rr_range_ms": 60.0, "p_waves": True, ...}
    rule_rhythm(m)         # "SR" | "SBRAD" | "STACH" | "SARRH" | "AFIB" | None

A transparent baseline, not a model: the textbook criteria of REFERENCE.md applied to
`ecgllm.signal.measure`'s output. Atrial fibrillation: no P wave of its own before every QRS and
an irregular RR (normalised RMSSD above AF_NRMSSD); otherwise, with P waves, sinus rhythm split by
rate (< 60 bradycardia, > 100 tachycardia) and by RR variation (range > SARRH_RANGE_MS and above
SARRH_REL of the mean RR: sinus arrhythmia). Atrial flutter is not told apart from the rest
(its flutter waves need a frequency analysis this baseline does not do): a regular rhythm without
P waves returns None (undetermined), as does a record with fewer than 4 beats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

AF_NRMSSD = 0.1  # RMSSD / mean RR above this: irregularly irregular (AF detectors use 0.08-0.12)
SARRH_RANGE_MS = 120.0  # sinus arrhythmia: max - min RR above this ...
SARRH_REL = 0.1  # ... and above this share of the mean RR
RULE_RHYTHMS = ("SR", "SBRAD", "STACH", "SARRH", "AFIB")


def rhythm_features(m: dict[str, Any], fs: float = 500.0) -> dict[str, Any]:
    """RR statistics (ms) from `measure()`'s beats and whether P waves precede the QRS."""
    r = np.array([b["r"] for b in m.get("beats") or []], dtype=float)
    rr = np.diff(r) * 1000.0 / fs
    out: dict[str, Any] = {"hr_bpm": m.get("hr_bpm"), "n_beats": len(r), "p_waves": m.get("pr_ms") is not None,
                           "rr_nrmssd": None, "rr_range_ms": None, "rr_cv": None, "rr_mad": None}  # fmt: skip
    if len(rr) >= 3:
        out["rr_nrmssd"] = round(float(np.sqrt(np.mean(np.diff(rr) ** 2)) / rr.mean()), 4)
        out["rr_range_ms"] = round(float(rr.max() - rr.min()), 1)
        out["rr_cv"] = round(float(rr.std() / rr.mean()), 4)
        # the typical beat-to-beat change (median |dRR| / median RR): high in AF, where every
        # interval differs from the last, low in sinus rhythm with a few premature beats (which
        # raise the three above as much as AF does) and in sinus arrhythmia's smooth swings
        out["rr_mad"] = round(float(np.median(np.abs(np.diff(rr))) / np.median(rr)), 4)
    return out


def rule_rhythm(m: dict[str, Any], fs: float = 500.0) -> str | None:
    """The rhythm by the criteria above (SCP code), or None when undetermined."""
    f = rhythm_features(m, fs)
    if f["n_beats"] < 4 or f["hr_bpm"] is None or f["rr_nrmssd"] is None:
        return None
    irregular = f["rr_nrmssd"] > AF_NRMSSD
    if not f["p_waves"]:
        return "AFIB" if irregular else None
    if f["hr_bpm"] < 60:
        return "SBRAD"
    if f["hr_bpm"] > 100:
        return "STACH"
    rr_mean = 60000.0 / f["hr_bpm"]
    if f["rr_range_ms"] > SARRH_RANGE_MS and f["rr_range_ms"] > SARRH_REL * rr_mean:
        return "SARRH"
    return "SR"
