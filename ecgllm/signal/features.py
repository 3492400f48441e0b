"""A fixed-length vector of an ECG's measurements, for models: what an ECG cart's program prints.

    v = measurement_vector(signal, fs=500.0, lead_mask=mask)   # float32 [2 * len(FEATURE_NAMES)]

The values of FEATURE_NAMES (rate, RR irregularity, P waves, intervals, axis, voltages, and each
lead's Q/R/S/T amplitudes and ST level) from `ecgllm.signal.measure` and
`ecgllm.signal.rhythm.rhythm_features`, each as (value - typical) / spread, followed by one
validity flag per value (1 measured, 0 not measurable: the value is then 0). A zero (blanked) or flat
signal gives all zeros. Why a model needs this: the learned ECG encoder trained on the simulator
reads rate and rhythm from simulator-specific detail (on real LUDB records it underestimated the
rate by 9 bpm and missed every atrial fibrillation), while these measurements, taken by a
classical delineation program, agree with cardiologists on real records (bench/measure.py). The
encoder embeds the vector as extra tokens beside its learned ones (EcgEncoderConfig.measurement_tokens;
the rhythm measurements alone as EcgEncoderConfig.rhythm_tokens).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np

from .record import STANDARD_12, ECGRecord

# (name, typical value, typical spread): each value enters as (value - typical) / spread, so a
# rate of 57 vs 63 bpm is -0.9 vs -0.6, not 0.57 vs 0.63 (networks resolve thresholds on unit-scale
# inputs far faster; on the raw scale a rate regression had not converged in 1000 steps)
GLOBAL = (
    ("hr_bpm", 75.0, 20.0), ("rr_nrmssd", 0.05, 0.05), ("rr_range_ms", 100.0, 100.0), ("rr_cv", 0.05, 0.05),
    ("p_waves", 0.5, 0.5), ("p_consistency", 0.7, 0.3), ("pr_ms", 160.0, 30.0), ("p_ms", 100.0, 20.0),
    ("qrs_ms", 95.0, 20.0), ("qt_ms", 380.0, 50.0), ("qtc_ms", 420.0, 40.0), ("axis_sin", 0.0, 0.7),
    ("axis_cos", 0.0, 0.7), ("sokolow_lyon_mv", 2.0, 1.0), ("cornell_mv", 1.2, 0.6), ("n_beats", 12.0, 4.0),
)  # fmt: skip
PER_LEAD = (("q_mv", -0.1, 0.15), ("r_mv", 0.8, 0.6), ("s_mv", -0.5, 0.5), ("t_mv", 0.2, 0.2),
            ("st_j60_mv", 0.0, 0.05))  # fmt: skip
# values added since the first layout go last, after the per-lead ones: a model trained on an
# earlier, shorter vector then finds every value it knows at the same place (columns_for)
LATE = (("rr_mad", 0.05, 0.05),)  # rr_mad: simulator v2
_SPECS = (
    *GLOBAL,
    *((f"{lead}.{k[0]}", k[1], k[2]) for lead in STANDARD_12 for k in PER_LEAD),
    *LATE,
)
FEATURE_NAMES: tuple[str, ...] = tuple(s[0] for s in _SPECS)
CENTERS = np.array([s[1] for s in _SPECS], np.float32)
SCALES = np.array([s[2] for s in _SPECS], np.float32)
MEASUREMENT_DIM = 2 * len(FEATURE_NAMES)


def columns_for(dim: int) -> np.ndarray:
    """The columns of today's measurement vector that make the vector of `dim` values a model
    trained with an earlier ecgllm reads (its values, then its flags: every layout is a prefix of
    the next, LATE above). ValueError for a size no layout had."""
    n, k = len(FEATURE_NAMES), dim // 2
    first = len(GLOBAL) + len(STANDARD_12) * len(PER_LEAD)  # the first layout's values
    if dim % 2 or not first <= k <= n:
        raise ValueError(
            f"no ecgllm measurement layout has {dim} values (this one: {MEASUREMENT_DIM}; "
            f"the first: {2 * first}): use the ecgllm version the model was trained with"
        )
    return np.r_[0:k, n : n + k]


# the measurements that define a rhythm (rate, RR irregularity, P waves): the encoder's rhythm tokens
# (EcgEncoderConfig.rhythm_tokens) read these alone. Why apart: on LUDB a classifier trained on the
# simulator reads the six rhythms at balanced accuracy 0.81-0.82 from the first 7 of these but
# 0.72-0.80 from all 76 values of that layout (the morphology measurements of real records lie
# where the simulator's never do, and a network trained on all of them uses them for rhythm too).
# What the LLM made of it: see EcgEncoderConfig (off by default).
RHYTHM_FEATURES = (
    "hr_bpm",
    "rr_nrmssd",
    "rr_range_ms",
    "rr_cv",
    "p_waves",
    "p_consistency",
    "n_beats",
    "rr_mad",
)
RHYTHM_INDEX: tuple[int, ...] = tuple(FEATURE_NAMES.index(f) for f in RHYTHM_FEATURES)
CLIP = 6.0  # scaled values beyond +-6 are clipped (an implausible measurement stays bounded)


def _values(m: dict, fs: float) -> list[float | None]:
    from .rhythm import rhythm_features

    f = rhythm_features(m, fs)
    axis = m.get("axis_deg")
    g = {
        **{k: m.get(k) for k in ("hr_bpm", "pr_ms", "p_ms", "qrs_ms", "qt_ms", "qtc_ms", "sokolow_lyon_mv",
                                 "cornell_mv", "p_consistency")},
        "rr_nrmssd": f["rr_nrmssd"], "rr_range_ms": f["rr_range_ms"], "rr_cv": f["rr_cv"],
        "rr_mad": f["rr_mad"],
        "p_waves": (1.0 if f["p_waves"] else 0.0) if f["n_beats"] >= 2 else None,
        "axis_sin": math.sin(math.radians(axis)) if axis is not None else None,
        "axis_cos": math.cos(math.radians(axis)) if axis is not None else None,
        "n_beats": float(f["n_beats"]) if f["n_beats"] else None,
    }  # fmt: skip
    if g["p_consistency"] is None and g["p_waves"] is not None:
        g["p_consistency"] = 0.0  # no P wave found at all
    out: list[float | None] = [g[k[0]] for k in GLOBAL]
    leads = m.get("leads") or {}
    for lead in STANDARD_12:
        d = leads.get(lead) or {}
        out += [d.get(k[0]) for k in PER_LEAD]
    return out + [g[k[0]] for k in LATE]


def measurement_vector(
    signal: np.ndarray, fs: float = 500.0, lead_mask: np.ndarray | None = None
) -> np.ndarray:
    """signal [12, n] mV in STANDARD_12 order (lead_mask [12]: present leads) -> float32
    [MEASUREMENT_DIM]: scaled values, then validity flags. Never raises on a bad signal: what
    cannot be measured is marked invalid."""
    from .measure import measure

    x = np.nan_to_num(np.asarray(signal, dtype=np.float32))
    mask = np.ones(len(STANDARD_12), bool) if lead_mask is None else np.asarray(lead_mask, bool)
    out = np.zeros(MEASUREMENT_DIM, np.float32)
    if (
        x.ndim != 2
        or x.shape[0] != len(STANDARD_12)
        or not mask.any()
        or not np.abs(x[mask]).max() > 0
    ):
        return out
    try:
        m = measure(ECGRecord(x, fs, list(STANDARD_12), "ecg", lead_mask=mask))
    except (ValueError, FloatingPointError, IndexError):  # a signal the delineation cannot take
        return out
    vals = _values(m, fs)
    n = len(FEATURE_NAMES)
    for i, v in enumerate(vals):
        if v is not None and math.isfinite(float(v)):
            out[i] = float(np.clip((float(v) - CENTERS[i]) / SCALES[i], -CLIP, CLIP))
            out[n + i] = 1.0
    return out


class MeasurementCache:
    """measurement_vector memoised by the signal's bytes (the same record is measured once per
    process however many samples and epochs show it: ~20 ms a record otherwise)."""

    def __init__(self, max_items: int = 50_000):
        self.max_items = max_items
        self._d: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def __call__(self, signal: np.ndarray, fs: float, lead_mask: np.ndarray | None) -> np.ndarray:
        x = np.ascontiguousarray(signal, dtype=np.float32)
        h = hashlib.blake2b(x.tobytes(), digest_size=16)
        h.update(np.asarray(lead_mask if lead_mask is not None else [], bool).tobytes())
        h.update(str(float(fs)).encode())
        key = h.digest()
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        v = measurement_vector(x, fs, lead_mask)
        self._d[key] = v
        if len(self._d) > self.max_items:
            self._d.popitem(last=False)
        return v


# --- expert features: the measurements as text in the prompt ------------------------------------
# Why: an LLM can be handed what an ECG cart's program prints, as VILA-M3 hands its LLM the output
# of expert models, and must still be shown to read the ECG without it (the blank-ECG ablation
# blanks the text's source too: a zero signal reads "no beats detected"). Numbers are written as
# whole numbers (a rate of 62, RR variation 3 %): one or two tokens each, no decimals to parse.
EXPERT_MODES = ("none", "rhythm", "all")


def _unscaled(vector: np.ndarray, name: str) -> float | None:
    """A measurement's value back from its scaled entry, or None when not measured."""
    i, n = FEATURE_NAMES.index(name), len(FEATURE_NAMES)
    if vector[n + i] < 0.5:
        return None
    return float(vector[i]) * float(SCALES[i]) + float(CENTERS[i])


def expert_text(vector: np.ndarray, mode: str = "rhythm") -> str:
    """A measurement vector (measurement_vector()) as one line of text. mode "rhythm": rate, beat
    count, RR variation (RMSSD of successive RR differences / mean RR, %) and range, P waves and
    how alike they are beat to beat;
    "all": also PR, P, QRS, QT, QTc, frontal axis and Sokolow-Lyon voltage."""
    if mode not in EXPERT_MODES or mode == "none":
        raise ValueError(f"expert features mode must be rhythm or all, not {mode!r}")
    v = np.asarray(vector, dtype=np.float32)
    if v.shape != (MEASUREMENT_DIM,):
        raise ValueError(
            f"expected a measurement vector of {MEASUREMENT_DIM} values, got shape {v.shape}"
        )
    get = lambda name: _unscaled(v, name)  # noqa: E731
    hr, beats = get("hr_bpm"), get("n_beats")
    if hr is None or beats is None:
        return "Measured: no beats detected."
    parts = [f"heart rate {hr:.0f} bpm", f"{beats:.0f} beats"]
    nrmssd, rr_range = get("rr_nrmssd"), get("rr_range_ms")
    if nrmssd is not None:
        parts.append(f"RR variation {100 * nrmssd:.0f} %")
    if rr_range is not None:
        parts.append(f"RR range {rr_range:.0f} ms")
    p, cons = get("p_waves"), get("p_consistency")
    if p is not None:
        # consistency: how alike the beats' P-wave segments are (median correlation, measure())
        parts.append(
            f"P waves present, consistency {100 * cons:.0f} %"
            if p > 0.5 and cons is not None
            else ("P waves present" if p > 0.5 else "no P waves")
        )
    if mode == "all":
        for name, label in (("pr_ms", "PR"), ("p_ms", "P"), ("qrs_ms", "QRS"), ("qt_ms", "QT"),
                            ("qtc_ms", "QTc")):  # fmt: skip
            x = get(name)
            if x is not None:
                parts.append(f"{label} {x:.0f} ms")
        s, c = get("axis_sin"), get("axis_cos")
        if s is not None and c is not None:
            parts.append(f"axis {math.degrees(math.atan2(s, c)):.0f} degrees")
        sl = get("sokolow_lyon_mv")
        if sl is not None:
            parts.append(f"Sokolow-Lyon {sl:.1f} mV")
    return "Measured: " + ", ".join(parts) + "."
