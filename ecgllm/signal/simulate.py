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


def lead_matrix(
    precordial_gain: tuple[float, ...] = (1.0,) * 6, precordial_turn: float = 0.0
) -> np.ndarray:
    """[12, 3] projection from dipole (x left, y inferior, z anterior) to STANDARD_12 leads.
    `precordial_gain` and `precordial_turn` (deg) move the chest electrodes the way placement
    and body shape do from one recording to the next."""
    i_vec = np.array([1.0, 0.0, 0.0])
    ii_vec = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
    rows = [i_vec, ii_vec, ii_vec - i_vec, -(i_vec + ii_vec) / 2, i_vec - ii_vec / 2,
            ii_vec - i_vec / 2]  # fmt: skip
    for name, g in zip(STANDARD_12[6:], precordial_gain, strict=True):
        ang, tilt, gain = _PRECORDIAL[name]
        a = np.deg2rad(ang + precordial_turn)
        v = np.array([np.cos(a), tilt, np.sin(a)])
        rows.append(g * gain * v / np.linalg.norm(v))
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
    # record-to-record variation that real ECGs have and the criteria above do not fix (see
    # VARIATION): wave shapes, electrode placement, P/T vectors, heart-rate variability, noise,
    # the recording device's filters and sampling rate. Empty: the textbook beat of each condition.
    var: dict[str, Any] = field(default_factory=dict)


@dataclass
class Simulated:
    signal: np.ndarray  # [12, n] float32 mV, STANDARD_12 order
    fs: float
    truth: dict[str, Any]


# --- condition sampling ---------------------------------------------------------------------

# bumped whenever the same seed simulates other records: folders stamped with another version
# (the quickstart's simulation.json) are simulated again instead of reused
SIMULATOR_VERSION = 3
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
    # resting rates as adults have them: sinus rhythm mostly 60-80 bpm (not uniform up to 100),
    # bradycardia mostly just below 60, tachycardia mostly just above 100
    c.hr = {"SR": float(np.clip(rng.normal(70, 10), 58, 98)), "SBRAD": float(np.clip(rng.normal(52, 4), 40, 56.5)),
            "STACH": float(np.clip(102 + rng.exponential(12), 102, 150)),
            "SARRH": float(np.clip(rng.normal(70, 10), 58, 95)), "AFIB": rng.uniform(60, 140),
            "AFLT": 0.0}[c.rhythm]  # fmt: skip
    # PR shortens a little as the rate rises; in tachycardia the P wave may start on the end of
    # the previous T wave (version 3: 0.12-0.18 s, was 0.12-0.15, which kept every simulated P
    # wave clear of the T; the Challenge's sinus tachycardias have PR 130-180 ms and P waves that
    # the measurement finds in half of them)
    if "1AVB" in mods:
        c.hr = min(c.hr, 78.0)
        c.pr = rng.uniform(0.22, 0.30)
    else:
        c.pr = rng.uniform(0.13, 0.19) if c.hr < 100 else rng.uniform(0.12, 0.18)
    c.p_dur = rng.uniform(0.085, 0.12)
    c.qrs = rng.uniform(0.075, 0.105)
    # QTc of healthy adults spreads over ~360-450 ms: a narrower range made QT a rate cue
    c.qtc = rng.uniform(0.365, 0.44) + (0.01 if sex == "F" else 0.0)
    # frontal axes of normal adults reach from about -30 to +90 degrees (a third of LUDB's
    # records are below +15); amplitudes from 0.6 to 1.6 mV without the voltage criteria of LVH
    c.axis = rng.uniform(-25, 90)
    c.r_amp = rng.uniform(0.6, 1.6)
    c.t_amp = rng.uniform(0.15, 0.5)
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
    # premature beats in every sinus rhythm, tachycardia too (most of the Challenge's sinus
    # tachycardias carry premature atrial beats; without them the encoder read those as AF)
    sinus = ("SR", "SBRAD", "SARRH", "STACH")
    if c.rhythm in sinus and rng.random() < 0.08:
        c.extras.append("PVC")
    elif c.rhythm == "AFIB" and rng.random() < 0.06:
        c.extras.append("PVC")
    # (version 3) a third of sinus tachycardias: the Challenge's Chapman sinus tachycardias are
    # mostly coded with PACs, and every model read those as AF or flutter when its simulated
    # tachycardias were regular
    p_pac = 0.35 if c.rhythm == "STACH" else 0.10
    if c.rhythm in sinus and "PVC" not in c.extras and rng.random() < p_pac:
        c.extras.append("PAC")
    for kind, p in (("baseline_drift", 0.08), ("static_noise", 0.08), ("burst_noise", 0.04)):
        if rng.random() < p:
            c.noise[kind] = 1.0
    c.var = draw_variation(rng, c)
    c.labels = condition_labels(c)
    return c


# Where a recording varies beyond its diagnosis (domain randomisation for sim-to-real transfer):
# each entry is drawn per record by draw_variation; simulate() reads them with these defaults,
# which are the textbook beat the criteria describe (an empty `var`).
VARIATION_DEFAULTS: dict[str, Any] = {
    "qrs_z": -0.35,  # anterior part of the main QRS vector: R-wave progression in V1-V6
    "septal": 0.18,  # septal q / r size (share of the R amplitude)
    "terminal_s": 0.25,  # terminal S size
    "sharp": 1.0,  # exponent on the QRS bumps: > 1 narrows the R peak the way real R waves are
    "t_axis_gain": 0.6, "t_axis_offset": 15.0, "t_z": 0.25, "t_peak": 0.62,
    "p_amp": 0.17, "p_axis": 55.0, "p_round": 1.0,  # P: < 1 rounds the dome (real P waves)
    "precordial_gain": (1.0,) * 6, "precordial_turn": 0.0,  # electrode placement (deg)
    "resp_rr": 0.02, "rr_jitter": 0.008,  # sinus heart-rate variability (share of RR)
    "sarrh_rr": 0.16,  # sinus arrhythmia: respiratory modulation of RR (share of RR)
    "af_shape": 16.0, "f_amp": 1.0,  # AF: gamma shape of RR (lower = more irregular), f waves
    "flutter_block": "fixed",  # AFLT: fixed 2:1/4:1 or variable conduction
    # PACs: coupling (share of the RR), chance of a couplet, the ectopic focus's P axis and size
    "pac_coupling": 0.7, "pac_couplet": 0.0, "pac_p_axis": -60.0, "pac_p_amp": 0.15,
    "emg_mv": 0.0, "wander_mv": 0.0, "offset_mv": 0.0, "mains_mv": 0.0, "mains_hz": 50.0,
    "highpass_hz": 0.0, "lowpass_hz": 0.0, "source_fs": 0.0,  # device filters and sampling rate
}  # fmt: skip


def draw_variation(rng: np.random.Generator, c: Condition) -> dict[str, Any]:
    """Per-record variation (see VARIATION_DEFAULTS) within what real 12-lead ECGs show, kept
    inside each label's criteria: the background noise stays below the quality thresholds that
    PTB-XL's noise labels (and ecgllm.signal.preprocess.quality_flags) mark, sinus
    variability below sinus arrhythmia's, and QRS amplitudes inside the voltage criteria."""
    v: dict[str, Any] = {
        # (the septal q and terminal s stay visible, and the R-peak sharpening mild, so that a
        # QRS still starts and ends where the truth says)
        "qrs_z": rng.uniform(-0.65, -0.1), "septal": rng.uniform(0.1, 0.3),
        "terminal_s": rng.uniform(0.15, 0.45), "sharp": rng.uniform(1.0, 1.4),
        "t_axis_gain": rng.uniform(0.3, 0.9), "t_axis_offset": rng.uniform(-5, 35),
        "t_z": rng.uniform(0.0, 0.5), "t_peak": rng.uniform(0.55, 0.72),
        "p_amp": rng.uniform(0.08, 0.25), "p_axis": rng.uniform(15, 80), "p_round": rng.uniform(0.4, 0.9),
        "precordial_gain": tuple(float(g) for g in rng.uniform(0.8, 1.2, 6)),
        "precordial_turn": rng.uniform(-12, 12),
        # real sinus rhythm varies up to ~150 ms over 10 s (LUDB: median 60 ms, 90th
        # percentile 170 ms); sinus arrhythmia modulates RR by 10-20%
        "resp_rr": rng.uniform(0.005, 0.05), "rr_jitter": rng.uniform(0.003, 0.02),
        "sarrh_rr": rng.uniform(0.1, 0.2),
        "af_shape": rng.uniform(7, 30), "f_amp": float(np.exp(rng.uniform(np.log(0.5), np.log(2.5)))),
        "flutter_block": "variable" if rng.random() < 0.35 else "fixed",
        "pac_coupling": rng.uniform(0.55, 0.85), "pac_couplet": rng.uniform(0.0, 0.3),
        "pac_p_axis": rng.uniform(-90, 90), "pac_p_amp": rng.uniform(0.05, 0.2),
        "emg_mv": rng.uniform(0.002, 0.025), "wander_mv": rng.uniform(0.0, 0.08),
        "offset_mv": rng.uniform(0.0, 0.3), "mains_mv": rng.uniform(0.0, 0.012) if rng.random() < 0.4 else 0.0,
        "mains_hz": 50.0 if rng.random() < 0.6 else 60.0,
        # (a 0.5 Hz high-pass would take out a labelled baseline drift: those records get 0.05 Hz)
        "highpass_hz": float(rng.choice([0.0, 0.05, 0.5], p=[0.4, 0.4, 0.2])),
        # diagnostic bandwidth (AHA: 0.05-150 Hz); monitor filters (40 Hz) would move the visible
        # QRS edges away from the truth the measure task teaches
        "lowpass_hz": float(rng.choice([0.0, 150.0, 100.0], p=[0.35, 0.35, 0.3])),
        "source_fs": float(rng.choice([0.0, 1000.0, 360.0, 250.0], p=[0.55, 0.15, 0.1, 0.2])),
    }  # fmt: skip
    if "baseline_drift" in c.noise and v["highpass_hz"] > 0.05:
        v["highpass_hz"] = 0.05
    if "LVOLT" in c.mods:  # low voltage must stay low whatever the electrode gains
        v["precordial_gain"] = tuple(min(g, 1.0) for g in v["precordial_gain"])
    return v


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


def _var(c: Condition, key: str) -> Any:
    return c.var.get(key, VARIATION_DEFAULTS[key])


def beat_waves(c: Condition, qt: float) -> list[Wave]:
    """Waves of one conducted beat (relative to its QRS onset), without the P wave."""
    d, amp = c.qrs, c.r_amp * c.scale
    m = c.mods
    main = frontal(c.axis, _var(c, "qrs_z"))
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
        waves += [Wave(0.0, first, _var(c, "septal") * amp * septal, 0.5),
                  Wave(0.12 * core, 0.78 * core, amp * main, 0.52),
                  Wave(0.55 * core, core, _var(c, "terminal_s") * amp * _unit(-0.45, -0.55, -0.7), 0.5)]  # fmt: skip
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
    t_dir = frontal(c.axis * _var(c, "t_axis_gain") + _var(c, "t_axis_offset"), _var(c, "t_z"))
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
    waves.append(Wave(t_start, qt, t_amp * t_dir, _var(c, "t_peak"), "t"))
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
        variable = _var(c, "flutter_block") == "variable"  # 2:1 to 4:1 changing beat to beat
        c.hr = 60.0 * flutter_hz / (3.0 if variable else ratio)
        t = -rng.uniform(0.5, 1.0)
        phase = rng.uniform(0.15, 0.5) / flutter_hz
        while t < seconds + 1:
            beats.append((np.floor(t * flutter_hz) / flutter_hz + phase, "N"))
            t += (int(rng.choice([2, 3, 4], p=[0.4, 0.3, 0.3])) if variable else ratio) / flutter_hz
        return beats, flutter_hz
    rr0 = 60.0 / c.hr
    t = -rng.uniform(0.6, 1.2) * rr0
    resp_hz, resp_phase = rng.uniform(0.18, 0.3), rng.uniform(0, 2 * np.pi)
    extra_at: set[int] = set()
    if c.extras:  # 1-2 premature beats, or in 40 % of such records 3-6 (frequent ectopy)
        n_extra = int(rng.integers(3, 7)) if rng.random() < 0.4 else int(rng.integers(1, 3))
        extra_at = {int(e) for e in rng.integers(2, max(3, int(seconds / rr0) - 1), size=n_extra)}
    i = 0
    while t < seconds + 1:
        # an ectopic on the beat's own time: AF's PVCs (its RR has no premature slot) and the
        # second of two adjacent draws
        kind = ("V" if c.extras[0] == "PVC" else "A") if i in extra_at else "N"
        beats.append((t, kind))
        if c.rhythm == "AFIB":
            k = _var(c, "af_shape")
            rr = rr0 * float(np.clip(rng.gamma(k, 1 / k), 0.5, 1.8))
        elif c.rhythm == "SARRH":
            rr = rr0 * (1 + _var(c, "sarrh_rr") * np.sin(2 * np.pi * resp_hz * t + resp_phase))
        else:
            rr = rr0 * (1 + _var(c, "resp_rr") * np.sin(2 * np.pi * resp_hz * t + resp_phase)
                        + rng.normal(0, _var(c, "rr_jitter")))  # fmt: skip
        if i + 1 in extra_at and c.rhythm != "AFIB":
            if c.extras[0] == "PVC":  # full compensatory pause
                beats.append((t + 0.62 * rr, "V"))
                t, i = t + 2 * rr, i + 2
                continue
            # PAC (version 3): coupling 55-85 % of the RR (real PACs are often early enough that
            # their P wave sits on the T wave), sometimes a couplet; the sinus node is reset, so
            # the pause after is one RR or a little longer, not compensatory
            t += _var(c, "pac_coupling") * rr * rng.uniform(0.93, 1.07)
            beats.append((t, "A"))
            if rng.random() < _var(c, "pac_couplet"):
                t += _var(c, "pac_coupling") * rr * rng.uniform(0.93, 1.07)
                beats.append((t, "A"))
            t += rr * rng.uniform(1.0, 1.15)
            i += 2
            continue
        t += rr
        i += 1
    return beats, flutter_hz


# --- rendering waves into the dipole ----------------------------------------------------------


def _render(
    waves: list[tuple[float, Wave]], n: int, fs: float, sharp: float = 1.0, p_round: float = 1.0
) -> np.ndarray:
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
    if sharp != 1.0:  # narrower QRS peaks, same onset and end
        qrs = np.array([w.kind == "qrs" for _, w in waves])
        shape[qrs] = shape[qrs] ** sharp
    if p_round != 1.0:  # a rounder P dome, same onset and end
        p = np.array([w.kind == "p" for _, w in waves])
        shape[p] = shape[p] ** p_round
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
    p_axis = c.var["p_axis"] if "p_axis" in c.var else rng.uniform(40, 70)
    p_vec = _var(c, "p_amp") * c.scale * frontal(p_axis, 0.15)
    # one ectopic atrial focus per record: its P waves share an axis that is not the sinus one
    pac_vec = _var(c, "pac_p_amp") * c.scale * frontal(_var(c, "pac_p_axis"), -0.2)
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
                pv = p_vec if kind == "N" else pac_vec
                waves.append(Wave(-c.pr, -c.pr + c.p_dur, pv, 0.5, "p"))
        placed += [(t0, Wave(w.start, w.end, gain * w.vec, w.peak, w.kind)) for w in waves]
        if kind == "N" and 0 <= t0 and t0 + qt < seconds:
            qts.append(qt)
            qrs_list.append(t0)
    vcg = _render(placed, n, fs, _var(c, "sharp"), _var(c, "p_round"))
    t = np.arange(n) / fs
    if c.rhythm == "AFIB":
        f_wave = np.zeros(n)
        for _ in range(3):
            hz = rng.uniform(4.5, 7.5)
            drift = np.cumsum(rng.normal(0, 0.05, n)) / np.sqrt(fs)
            f_wave += (
                _var(c, "f_amp")
                * rng.uniform(0.015, 0.04)
                * np.sin(2 * np.pi * hz * t + rng.uniform(0, 6.28) + drift)
            )
        vcg += np.outer(_unit(-0.3, 0.6, 0.8), f_wave)
    elif c.rhythm == "AFLT":
        saw = sawtooth(2 * np.pi * flutter_hz * t, width=0.8)
        vcg += np.outer(rng.uniform(0.1, 0.16) * _unit(0.05, -0.85, 0.5), saw)
    matrix = LEAD_MATRIX
    if c.var:
        matrix = lead_matrix(_var(c, "precordial_gain"), _var(c, "precordial_turn"))
    leads = (matrix @ vcg).astype(np.float32)
    leads += _noise(c, rng, n, fs, t)
    if c.var:
        leads = _device(leads, fs, c)
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
            # two slow sines can cancel over 10 s: a labelled drift moves at least 0.6 mV
            # peak to peak (above quality_flags' 0.5 mV wander threshold), as a human-marked one does
            w = w * max(1.0, 0.6 / max(float(np.ptp(w)), 1e-6))
            noise[i] += w.astype(np.float32)
    if "static_noise" in c.noise:
        mains = np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 6.28)).astype(np.float32)
        noise += np.outer(rng.uniform(0.08, 0.15, 12), mains).astype(np.float32)
        noise += rng.normal(0, 0.03, (12, n)).astype(np.float32)
    if c.var:  # a real recording's background: muscle noise, breathing, electrode offsets, mains
        emg = rng.standard_normal((12, n)).astype(np.float32)
        emg -= _smooth(emg, max(1, int(fs / 40)))  # muscle noise has little power below ~20 Hz
        noise += np.float32(_var(c, "emg_mv")) * emg / max(float(emg.std()), 1e-6)
        f_resp = rng.uniform(0.12, 0.4)
        for i in range(12):
            noise[i] += (_var(c, "wander_mv") * rng.uniform(0.3, 1.0)
                         * np.sin(2 * np.pi * f_resp * t + rng.uniform(0, 6.28))).astype(np.float32)  # fmt: skip
        noise += rng.uniform(-1, 1, (12, 1)).astype(np.float32) * np.float32(_var(c, "offset_mv"))
        if _var(c, "mains_mv"):
            mains = np.sin(2 * np.pi * _var(c, "mains_hz") * t + rng.uniform(0, 6.28))
            noise += np.outer(_var(c, "mains_mv") * rng.uniform(0.3, 1.0, 12), mains).astype(
                np.float32
            )
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


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    """Moving average over the last axis (same length)."""
    if k <= 1:
        return x
    c = np.cumsum(
        np.pad(x, ((0, 0), (k // 2, k - 1 - k // 2)), mode="edge"), axis=1, dtype=np.float64
    )
    c = np.concatenate([np.zeros((x.shape[0], 1)), c], axis=1)
    return ((c[:, k:] - c[:, :-k]) / k).astype(x.dtype)


def _device(leads: np.ndarray, fs: float, c: Condition) -> np.ndarray:
    """The recording device: its high-pass (0.05 or 0.5 Hz) and low-pass (100 or 150 Hz) filters,
    zero-phase, and its sampling rate (the signal taken down to 250-1000 Hz and back). All are
    linear and act on every lead alike, so Einthoven's and Goldberger's relations still hold."""
    from fractions import Fraction

    from scipy.signal import butter, resample_poly, sosfiltfilt

    x = leads.astype(np.float64)
    hp, lp, src = _var(c, "highpass_hz"), _var(c, "lowpass_hz"), _var(c, "source_fs")
    if hp:
        x = sosfiltfilt(butter(1, hp, "highpass", fs=fs, output="sos"), x, axis=1)
    if lp and lp < fs / 2:
        x = sosfiltfilt(butter(2, lp, "lowpass", fs=fs, output="sos"), x, axis=1)
    if src and src != fs:
        r = Fraction(src / fs).limit_denominator(100)
        y = resample_poly(x, r.numerator, r.denominator, axis=1)
        x = resample_poly(y, r.denominator, r.numerator, axis=1)[:, : leads.shape[1]]
        if x.shape[1] < leads.shape[1]:
            x = np.pad(x, ((0, 0), (0, leads.shape[1] - x.shape[1])), mode="edge")
    return x.astype(np.float32)


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
