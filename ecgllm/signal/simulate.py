"""A fast 12-lead ECG simulator with known truth, in the spirit of ECGSYN's dipole model.

    from ecgllm.signal.simulate import sample_condition, simulate
    rng = np.random.default_rng(0)
    cond = sample_condition(rng)                   # labels + physiological parameters
    sim = simulate(cond, rng, fs=500, seconds=10)  # sim.signal [12, 5000] mV, sim.truth

The heart is a 3-D dipole (x left, y inferior, z anterior). Each wave (P, septal q, main R,
terminal s, ST, T, ...) is a smooth bump in time times a 3-D vector; the 12 leads are
projections: I and II onto frontal lead vectors (III, aVR, aVL, aVF then follow Einthoven and
Goldberger exactly), V1-V6 onto horizontal-plane vectors. Bumps are raised cosines with compact
support, so the truth (onsets, offsets, PR, QRS, QT) is exact by construction.
Conditions change the vectors and timings the way the diagnostic criteria in REFERENCE.md say
(e.g. LAFB: axis -45..-75 deg with qR in aVL; CLBBB: QRS >= 120 ms, no septal q, notched
lateral R, discordant T).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.signal import sawtooth

from .record import STANDARD_12

# Precordial lead vectors: horizontal-plane angle from +x (left) toward +z (anterior), in degrees,
# a small inferior tilt, and a gain (chest electrodes sit closer to the heart).
_PRECORDIAL = {"V1": (118, 0.05, 1.5), "V2": (95, 0.08, 1.9), "V3": (75, 0.12, 1.9),
               "V4": (55, 0.18, 1.8), "V5": (30, 0.2, 1.5), "V6": (5, 0.2, 1.2)}  # fmt: skip


def lead_matrix() -> np.ndarray:
    """[12, 3] projection from dipole (x left, y inferior, z anterior) to STANDARD_12 leads."""
    i_vec = np.array([1.0, 0.0, 0.0])
    ii_vec = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
    rows = [i_vec, ii_vec, ii_vec - i_vec, -(i_vec + ii_vec) / 2, i_vec - ii_vec / 2,
            ii_vec - i_vec / 2]  # fmt: skip
    for name in STANDARD_12[6:]:
        ang, tilt, gain = _PRECORDIAL[name]
        a = np.deg2rad(ang)
        v = np.array([np.cos(a), tilt, np.sin(a)])
        rows.append(gain * v / np.linalg.norm(v))
    return np.stack(rows)


LEAD_MATRIX = lead_matrix()


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def frontal(deg: float, z: float = 0.0) -> np.ndarray:
    """Unit vector at frontal-plane angle `deg` (0 = lead I, +90 = aVF) with anterior part z."""
    a = np.deg2rad(deg)
    return _unit(np.cos(a), np.sin(a), z)


@dataclass
class Wave:
    """A raised-cosine bump from `start` to `end` (s, relative to QRS onset) peaking at
    start + peak * (end - start), times `vec` (mV along x, y, z)."""

    start: float
    end: float
    vec: np.ndarray
    peak: float = 0.5
    kind: str = "qrs"  # p, qrs, st, t


@dataclass
class Condition:
    """Everything the simulator needs for one record; `labels` are PTB-XL SCP codes."""

    labels: dict[str, float]
    rhythm: str = "SR"  # SR, SBRAD, STACH, SARRH, AFIB, AFLT
    hr: float = 70.0
    pr: float = 0.16  # s
    p_dur: float = 0.10
    qrs: float = 0.09
    qtc: float = 0.41  # Bazett, s
    axis: float = 50.0  # main depolarisation, frontal deg
    r_amp: float = 1.3  # mV
    t_amp: float = 0.35
    scale: float = 1.0
    extras: list[str] = field(default_factory=list)  # PVC, PAC
    noise: dict[str, float] = field(default_factory=dict)  # baseline_drift, static, burst
    mods: set[str] = field(default_factory=set)  # morphology codes applied


@dataclass
class Simulated:
    signal: np.ndarray  # [12, n] float32 mV, STANDARD_12 order
    fs: float
    truth: dict[str, Any]


# --- condition sampling ---------------------------------------------------------------------

RHYTHMS = {"SR": 0.58, "SBRAD": 0.09, "STACH": 0.09, "SARRH": 0.07, "AFIB": 0.12, "AFLT": 0.05}
# named rhythm mixes: "ptbxl" is SR-dominant like a clinical database (the default); "balanced"
# draws each rhythm equally often, so a model cannot score on rhythm questions by always saying
# "sinus rhythm" (the embedded default uses it to show the model reads the signal)
RHYTHM_MIXES = {"ptbxl": RHYTHMS, "balanced": {k: 1 / len(RHYTHMS) for k in RHYTHMS}}


def rhythm_mix(spec: str | dict[str, float] | None) -> dict[str, float]:
    """A rhythm distribution from a name in RHYTHM_MIXES, "SR=0.4,AFIB=0.3,..." (rhythms not
    named get 0; weights are normalised), or a dict."""
    if spec is None:
        return dict(RHYTHMS)
    if isinstance(spec, str):
        if spec in RHYTHM_MIXES:
            return dict(RHYTHM_MIXES[spec])
        try:
            spec = {
                k.strip(): float(v) for k, v in (p.split("=") for p in spec.split(",") if p.strip())
            }
        except ValueError:
            raise ValueError(
                f"rhythm mix {spec!r}: give one of {sorted(RHYTHM_MIXES)} or CODE=weight pairs "
                f"like 'SR=0.4,AFIB=0.3' (codes: {', '.join(RHYTHMS)})"
            ) from None
    bad = sorted(set(spec) - set(RHYTHMS))
    if bad:
        raise ValueError(
            f"rhythm mix: unknown rhythm code(s) {bad}; the simulator has {list(RHYTHMS)}"
        )
    if any(v < 0 for v in spec.values()) or sum(spec.values()) <= 0:
        raise ValueError(f"rhythm mix {spec}: weights must be >= 0 and not all zero")
    total = sum(spec.values())
    return {k: spec.get(k, 0.0) / total for k in RHYTHMS}


# morphology/diagnosis codes, their probability, and codes they exclude
MORPHOLOGY: dict[str, tuple[float, set[str]]] = {
    "1AVB": (0.07, set()),
    "CLBBB": (0.05, {"CRBBB", "IRBBB", "LAFB", "LVH", "IMI", "ASMI", "AMI", "INVT", "STD_"}),
    "CRBBB": (0.06, {"CLBBB", "IRBBB"}),
    "IRBBB": (0.05, {"CLBBB", "CRBBB"}),
    "LAFB": (0.06, {"CLBBB"}),
    "LVH": (0.06, {"CLBBB", "LVOLT"}),
    "IMI": (0.06, {"CLBBB"}),
    "ASMI": (0.05, {"CLBBB", "AMI"}),
    "AMI": (0.03, {"CLBBB", "ASMI"}),
    "STD_": (0.05, {"CLBBB"}),
    "NDT": (0.04, {"INVT", "CLBBB"}),
    "INVT": (0.04, {"NDT", "CLBBB"}),
    "LNGQT": (0.05, set()),
    "LVOLT": (0.04, {"LVH"}),
}


def sample_condition(
    rng: np.random.Generator, sex: str = "M", rhythms: dict[str, float] | None = None
) -> Condition:
    """Draw a rhythm (from `rhythms`, default RHYTHMS), 0-2 morphology findings, extra beats and
    noise, with their parameters."""
    mix = rhythms or RHYTHMS
    rhythm = rng.choice(list(mix), p=np.array(list(mix.values())))
    mods: set[str] = set()
    for code, (p, excl) in MORPHOLOGY.items():
        if (
            rng.random() < p
            and not (mods & excl)
            and not any(code in MORPHOLOGY[m][1] for m in mods)
        ):
            mods.add(code)
        if len(mods) == 2:
            break
    if rhythm in ("AFIB", "AFLT"):
        mods.discard("1AVB")
    c = Condition(labels={}, rhythm=str(rhythm), mods=mods)
    c.hr = {"SR": rng.uniform(58, 98), "SBRAD": rng.uniform(42, 56), "STACH": rng.uniform(104, 128),
            "SARRH": rng.uniform(58, 90), "AFIB": rng.uniform(75, 130),
            "AFLT": 0.0}[c.rhythm]  # fmt: skip
    # PR shortens as the rate rises (and a P wave must not sit on the previous T wave)
    if "1AVB" in mods:
        c.hr = min(c.hr, 78.0)
        c.pr = rng.uniform(0.22, 0.30)
    else:
        c.pr = rng.uniform(0.13, 0.19) if c.hr < 100 else rng.uniform(0.12, 0.15)
    c.p_dur = rng.uniform(0.085, 0.11)
    c.qrs = rng.uniform(0.08, 0.10)
    c.qtc = rng.uniform(0.39, 0.43) + (0.01 if sex == "F" else 0.0)
    c.axis = rng.uniform(15, 75)
    c.r_amp = rng.uniform(1.0, 1.5)
    c.t_amp = rng.uniform(0.28, 0.42)
    c.scale = rng.uniform(0.85, 1.15)
    if "CLBBB" in mods:
        c.qrs = rng.uniform(0.13, 0.17)
        c.axis = rng.uniform(-20, 40)
    elif "CRBBB" in mods:
        c.qrs = rng.uniform(0.125, 0.16)
    elif "IRBBB" in mods:
        c.qrs = rng.uniform(0.105, 0.116)
    if "LAFB" in mods:
        c.axis = rng.uniform(-75, -48)
        c.qrs = max(c.qrs, rng.uniform(0.095, 0.11)) if "CRBBB" not in mods else c.qrs
    if "LVH" in mods:
        c.r_amp = rng.uniform(2.4, 3.0)
    if "LVOLT" in mods:
        c.r_amp = rng.uniform(0.3, 0.38)
        c.t_amp *= 0.5
        c.scale = 1.0
    if "LNGQT" in mods:
        c.qtc = rng.uniform(0.49, 0.54)
    if c.rhythm in ("SR", "SBRAD", "SARRH") and rng.random() < 0.08:
        c.extras.append("PVC")
    elif c.rhythm == "AFIB" and rng.random() < 0.06:
        c.extras.append("PVC")
    if c.rhythm in ("SR", "SBRAD", "SARRH") and "PVC" not in c.extras and rng.random() < 0.07:
        c.extras.append("PAC")
    for kind, p in (("baseline_drift", 0.08), ("static_noise", 0.08), ("burst_noise", 0.04)):
        if rng.random() < p:
            c.noise[kind] = 1.0
    c.labels = condition_labels(c)
    return c


def condition_labels(c: Condition) -> dict[str, float]:
    """PTB-XL-style scp_codes: diagnostic statements with likelihood, rhythm with 0.0."""
    labels: dict[str, float] = {}
    diag = [m for m in sorted(c.mods) if m not in ("LVOLT",)]
    for m in diag:
        labels[m] = 100.0
    if "LVH" in c.mods:
        labels["VCLVH"] = 0.0
    if "LVOLT" in c.mods:
        labels["LVOLT"] = 0.0
    if "STD_" in c.mods:
        labels["ISC_"] = 50.0
    if "INVT" in c.mods or "NDT" in c.mods:
        labels["NT_"] = 0.0
    for e in c.extras:
        labels[e] = 0.0 if e == "PAC" else 100.0
    if not labels and c.rhythm in ("SR", "SBRAD", "STACH", "SARRH"):
        labels["NORM"] = 100.0
    labels[c.rhythm] = 0.0
    return labels


# --- beat morphology --------------------------------------------------------------------------


def beat_waves(c: Condition, qt: float) -> list[Wave]:
    """Waves of one conducted beat (relative to its QRS onset), without the P wave."""
    d, amp = c.qrs, c.r_amp * c.scale
    m = c.mods
    main = frontal(c.axis, -0.35)
    waves: list[Wave] = []
    if "CLBBB" in m:
        # septum activates right-to-left: no septal q in I/V6, QS/rS in V1; broad notched R
        lat = frontal(c.axis, -0.55)
        waves += [Wave(0.0, 0.55 * d, 0.8 * amp * lat, 0.5),
                  Wave(0.38 * d, d, 0.95 * amp * lat, 0.6),
                  Wave(0.0, 0.3 * d, 0.1 * amp * _unit(0.3, 0.2, -1.0), 0.5)]  # fmt: skip
    else:
        septal = _unit(-0.55, 0.25, 0.8)
        if "LAFB" in m:
            septal = _unit(-0.2, 0.95, 0.3)  # initial inferior: q in I/aVL, r in II/III/aVF
        first = min(0.3 * d, 0.032)
        # with a right bundle branch block the left-ventricular part keeps its normal length and
        # the late right-ventricular wave makes the QRS wide
        core = min(d, 0.09) if ("CRBBB" in m or "IRBBB" in m) else d
        waves += [Wave(0.0, first, 0.18 * amp * septal, 0.5),
                  Wave(0.12 * core, 0.78 * core, amp * main, 0.52),
                  Wave(0.55 * core, core, 0.25 * amp * _unit(-0.45, -0.55, -0.7), 0.5)]  # fmt: skip
        if "CRBBB" in m or "IRBBB" in m:
            k = 1.0 if "CRBBB" in m else 0.55
            waves.append(Wave(0.62 * core, d, k * 0.55 * amp * _unit(-0.75, 0.05, 0.65), 0.6))
    # infarction: initial forces away from the dead territory -> pathological Q waves there
    if "IMI" in m:
        waves.append(Wave(0.0, 0.045, 0.55 * c.scale * _unit(0.1, -1.0, 0.0), 0.5))
    if "ASMI" in m or "AMI" in m:
        w = 0.045 if "ASMI" in m else 0.05
        v = _unit(0.0, 0.0, -1.0) if "ASMI" in m else _unit(-0.3, 0.0, -1.0)
        waves.append(Wave(0.0, w, 0.6 * c.scale * v, 0.5))
    # repolarisation
    st_start = d
    t_start = d + max(0.05, 0.32 * (qt - d))
    t_dir = frontal(c.axis * 0.6 + 15, 0.25)
    t_amp = c.t_amp * c.scale
    if "CLBBB" in m:
        t_dir = -frontal(c.axis, -0.55)  # discordant
        waves.append(Wave(st_start, qt, 0.12 * c.scale * t_dir, 0.3, "st"))
    if "INVT" in m:
        t_dir = -t_dir
    if "NDT" in m:
        t_amp *= 0.25
    if "IMI" in m:
        t_dir = _unit(t_dir[0], -0.9, t_dir[2])
    if "ASMI" in m or "AMI" in m:
        t_dir = _unit(t_dir[0] + 0.2, t_dir[1], -0.9)
    if "LVH" in m:
        t_dir = _unit(-0.5, t_dir[1] * 0.3, 0.3)  # lateral strain
        waves.append(Wave(st_start, qt, 0.1 * c.scale * t_dir, 0.35, "st"))
    if "STD_" in m:
        waves.append(Wave(st_start, qt, 0.14 * c.scale * -_unit(0.6, 0.6, 0.2), 0.35, "st"))
    waves.append(Wave(t_start, qt, t_amp * t_dir, 0.62, "t"))
    return waves


def pvc_waves(rng: np.random.Generator, c: Condition, qt: float) -> list[Wave]:
    """A ventricular ectopic: wide (>= 140 ms) bizarre QRS, no P, discordant T."""
    d = rng.uniform(0.14, 0.16)
    v = _unit(*rng.normal(size=3))
    amp = rng.uniform(1.4, 2.0) * c.scale
    return [Wave(0.0, 0.6 * d, 0.7 * amp * v, 0.45), Wave(0.3 * d, d, amp * v, 0.55),
            Wave(d + 0.04, qt + 0.04, -0.5 * c.scale * v, 0.55, "t")]  # fmt: skip


# --- timing -----------------------------------------------------------------------------------


def beat_times(c: Condition, rng: np.random.Generator, seconds: float) -> tuple[list, float]:
    """QRS onsets (s) with beat type ('N', 'V', 'A'), starting before 0 so the window is full.
    Returns (beats, flutter_hz)."""
    beats: list[tuple[float, str]] = []
    flutter_hz = 0.0
    if c.rhythm == "AFLT":
        flutter_hz = rng.uniform(4.6, 5.4)
        ratio = 2 if rng.random() < 0.6 else 4
        c.hr = 60.0 * flutter_hz / ratio
        rr = ratio / flutter_hz
        t = -rng.uniform(0.5, 1.0)
        phase = rng.uniform(0.15, 0.5) / flutter_hz
        while t < seconds + 1:
            beats.append((np.floor(t * flutter_hz) / flutter_hz + phase, "N"))
            t += rr
        return beats, flutter_hz
    rr0 = 60.0 / c.hr
    t = -rng.uniform(0.6, 1.2) * rr0
    resp_hz, resp_phase = rng.uniform(0.18, 0.3), rng.uniform(0, 2 * np.pi)
    extra_at = rng.integers(2, max(3, int(seconds / rr0) - 1), size=2) if c.extras else []
    i = 0
    while t < seconds + 1:
        kind = "N"
        if c.extras and i in set(int(e) for e in extra_at):
            kind = "V" if c.extras[0] == "PVC" else "A"
        beats.append((t, kind))
        if c.rhythm == "AFIB":
            rr = rr0 * float(np.clip(rng.gamma(16, 1 / 16), 0.62, 1.6))
        elif c.rhythm == "SARRH":
            rr = rr0 * (1 + 0.16 * np.sin(2 * np.pi * resp_hz * t + resp_phase))
        else:
            rr = rr0 * (
                1 + 0.02 * np.sin(2 * np.pi * resp_hz * t + resp_phase) + rng.normal(0, 0.008)
            )
        if i + 1 in set(int(e) for e in extra_at) and c.rhythm != "AFIB":
            coupling = 0.62 if c.extras[0] == "PVC" else 0.7
            beats.append((t + coupling * rr, "V" if c.extras[0] == "PVC" else "A"))
            # PVC: full compensatory pause; PAC resets the sinus node
            t = t + 2 * rr if c.extras[0] == "PVC" else t + coupling * rr + rr
            i += 2
            continue
        t += rr
        i += 1
    return beats, flutter_hz


# --- rendering waves into the dipole ----------------------------------------------------------


def _render(waves: list[tuple[float, Wave]], n: int, fs: float) -> np.ndarray:
    """Sum every (beat time, wave) into a [3, n] dipole signal in one vectorised pass: each wave
    is evaluated on its own sample grid and scattered with bincount (a Python loop over ~100
    waves a record was a third of the simulator's time)."""
    if not waves:
        return np.zeros((3, n))
    a = np.array([t0 + w.start for t0, w in waves])
    b = np.array([t0 + w.end for t0, w in waves])
    frac = np.array([w.peak for _, w in waves])
    vec = np.stack([w.vec for _, w in waves])  # [W, 3]
    plateau = np.array([w.kind == "st" for _, w in waves])
    i0 = np.ceil(a * fs).astype(int)
    length = int(np.max(np.floor(b * fs) + 1 - i0)) if len(a) else 0
    idx = i0[:, None] + np.arange(max(length, 1))[None, :]  # [W, L]
    t = idx / fs
    pk = (a + frac * (b - a))[:, None]
    rise = np.maximum(pk - a[:, None], 1e-6)
    fall = np.maximum(b[:, None] - pk, 1e-6)
    shape = np.where(
        t < pk,
        0.5 - 0.5 * np.cos(np.pi * (t - a[:, None]) / rise),
        0.5 + 0.5 * np.cos(np.pi * (t - pk) / fall),
    )
    shape[plateau] = np.minimum(1.0, 3 * shape[plateau])  # ST: quick rise, slow fall into T end
    valid = (t >= a[:, None]) & (t <= b[:, None]) & (idx >= 0) & (idx < n)
    flat_idx = idx[valid]
    out = np.empty((3, n))
    for d in range(3):
        out[d] = np.bincount(flat_idx, weights=(shape * vec[:, d : d + 1])[valid], minlength=n)[:n]
    return out


def simulate(
    c: Condition, rng: np.random.Generator, fs: float = 500.0, seconds: float = 10.0
) -> Simulated:
    """Render one record. Truth (ms, bpm, deg) describes the dominant (normal) beats."""
    n = int(round(fs * seconds))
    beats, flutter_hz = beat_times(c, rng, seconds)
    onsets = np.array([b[0] for b in beats])
    rrs = np.diff(onsets)
    rr_mean = (
        float(np.mean(rrs[(onsets[1:] > 0) & (onsets[1:] < seconds)]))
        if len(rrs) > 2
        else 60 / c.hr
    )
    p_vec = 0.17 * c.scale * frontal(rng.uniform(40, 70), 0.15)
    resp_hz, resp_phase = rng.uniform(0.18, 0.3), rng.uniform(0, 2 * np.pi)
    qts, qrs_list = [], []
    placed: list[tuple[float, Wave]] = []
    for k, (t0, kind) in enumerate(beats):
        # QT follows the rate with a lag of minutes: the mean RR sets it, the previous RR only
        # nudges it (restitution); so even in AF the QT is nearly constant beat to beat
        rr_prev = rrs[k - 1] if k > 0 else rrs[0]
        qt = c.qtc * np.sqrt(rr_mean) * (np.clip(rr_prev, 0.3, 2.0) / rr_mean) ** 0.1
        gain = 1 + 0.05 * np.sin(2 * np.pi * resp_hz * t0 + resp_phase)
        if kind == "V":
            waves = pvc_waves(rng, c, qt)
        else:
            waves = beat_waves(c, qt)
            if c.rhythm not in ("AFIB", "AFLT"):
                pv = p_vec if kind == "N" else 0.15 * c.scale * frontal(rng.uniform(-80, -40), -0.2)
                waves.append(Wave(-c.pr, -c.pr + c.p_dur, pv, 0.5, "p"))
        placed += [(t0, Wave(w.start, w.end, gain * w.vec, w.peak, w.kind)) for w in waves]
        if kind == "N" and 0 <= t0 and t0 + qt < seconds:
            qts.append(qt)
            qrs_list.append(t0)
    vcg = _render(placed, n, fs)
    t = np.arange(n) / fs
    if c.rhythm == "AFIB":
        f_wave = np.zeros(n)
        for _ in range(3):
            hz = rng.uniform(4.5, 7.5)
            drift = np.cumsum(rng.normal(0, 0.05, n)) / np.sqrt(fs)
            f_wave += rng.uniform(0.015, 0.04) * np.sin(
                2 * np.pi * hz * t + rng.uniform(0, 6.28) + drift
            )
        vcg += np.outer(_unit(-0.3, 0.6, 0.8), f_wave)
    elif c.rhythm == "AFLT":
        saw = sawtooth(2 * np.pi * flutter_hz * t, width=0.8)
        vcg += np.outer(rng.uniform(0.1, 0.16) * _unit(0.05, -0.85, 0.5), saw)
    leads = (LEAD_MATRIX @ vcg).astype(np.float32)
    leads += _noise(c, rng, n, fs, t)
    inside = (onsets >= 0) & (onsets < seconds)
    rr_in = np.diff(onsets[inside])
    truth = _truth(c, fs, beats, onsets, inside, rr_in, qts)
    return Simulated(signal=leads, fs=fs, truth=truth)


def _noise(c: Condition, rng: np.random.Generator, n: int, fs: float, t: np.ndarray) -> np.ndarray:
    """Small sensor noise always; PTB-XL's noise fields when the condition has them.
    baseline_drift: slow wander < 0.5 Hz; static_noise: 50 Hz mains + broadband; burst_noise:
    short high-amplitude bursts."""
    noise = rng.standard_normal((12, n), dtype=np.float32) * np.float32(0.008)
    slow = rng.uniform(0.02, 0.06) * np.sin(
        2 * np.pi * rng.uniform(0.05, 0.15) * t + rng.uniform(0, 6.28)
    )
    noise += slow.astype(np.float32)
    if "baseline_drift" in c.noise:
        for i in range(12):
            w = sum(rng.uniform(0.3, 0.7) * np.sin(2 * np.pi * rng.uniform(0.08, 0.4) * t + rng.uniform(0, 6.28))
                    for _ in range(2))  # fmt: skip
            noise[i] += w.astype(np.float32)
    if "static_noise" in c.noise:
        mains = np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 6.28)).astype(np.float32)
        noise += np.outer(rng.uniform(0.08, 0.15, 12), mains).astype(np.float32)
        noise += rng.normal(0, 0.03, (12, n)).astype(np.float32)
    if "burst_noise" in c.noise:
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.uniform(0.2, 0.8) * fs)
            start = int(rng.integers(0, n - length))
            env = np.hanning(length).astype(np.float32)
            noise[:, start : start + length] += (
                rng.uniform(0.4, 1.0) * env * rng.normal(0, 1, (12, length)).astype(np.float32)
            )
    # a 12-lead machine records 8 channels (I, II, V1-V6) and computes III, aVR, aVL, aVF from
    # I and II, so the noise of those four follows Einthoven/Goldberger too
    noise[2:6] = (LEAD_MATRIX[2:6, :2] @ np.linalg.inv(LEAD_MATRIX[:2, :2]) @ noise[:2]).astype(
        np.float32
    )
    return noise


def _truth(c, fs, beats, onsets, inside, rr_in, qts) -> dict[str, Any]:
    rr_ms = float(np.mean(rr_in) * 1000) if len(rr_in) else None
    regular_p = c.rhythm not in ("AFIB", "AFLT")
    qt = float(np.median(qts) * 1000) if qts else None
    rr_dom = float(np.median(rr_in)) if len(rr_in) else None
    # frontal axis from the net QRS area projected on I and aVF (the conventional definition)
    area = sum((w.end - w.start) * 0.5 * w.vec for w in beat_waves(c, 0.4) if w.kind == "qrs")
    proj = LEAD_MATRIX[[0, 5]] @ area
    return {
        "hr_bpm": round(60000.0 / rr_ms, 2) if rr_ms else None,
        "rr_ms": round(rr_ms, 2) if rr_ms else None,
        "rr_sd_ms": round(float(np.std(rr_in) * 1000), 2) if len(rr_in) > 1 else None,
        "pr_ms": round(c.pr * 1000, 2) if regular_p else None,
        "p_ms": round(c.p_dur * 1000, 2) if regular_p else None,
        "qrs_ms": round(c.qrs * 1000, 2),
        # in flutter the T wave is buried in F waves: QT is not measured clinically
        "qt_ms": round(qt, 2) if qt and c.rhythm != "AFLT" else None,
        "qtc_ms": round(float(qt / np.sqrt(rr_dom)), 2)
        if qt and rr_dom and c.rhythm != "AFLT"
        else None,
        "axis_deg": round(float(np.degrees(np.arctan2(proj[1], proj[0]))), 1),
        "rhythm": c.rhythm,
        "beats": [
            {"onset": int(round(b[0] * fs)), "type": b[1]}
            for b, ok in zip(beats, inside, strict=True)
            if ok
        ],
    }
