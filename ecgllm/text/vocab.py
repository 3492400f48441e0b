"""Label vocabularies: PTB-XL SCP statements, their ECG-QA names, label sets, and the PTB-XL
metadata fields ECG-QA asks about (noise, infarction stage, extra beats, heart axis, numeric
features with their normal ranges).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..signal.databases import SCPStatements
from ..signal.record import STANDARD_12

# ECG-QA's names where they differ from scp_statements.csv's description (lower-cased)
ECGQA_NAMES = {
    "DIG": "digitalis effect", "IMI": "myocardial infarction in inferior leads",
    "ASMI": "myocardial infarction in anteroseptal leads", "AMI": "myocardial infarction in anterior leads",
    "ALMI": "myocardial infarction in anterolateral leads", "ILMI": "myocardial infarction in inferolateral leads",
    "IPMI": "myocardial infarction in inferoposterior leads",
    "IPLMI": "myocardial infarction in inferoposterolateral leads", "LMI": "myocardial infarction in lateral leads",
    "PMI": "myocardial infarction in posterior leads", "LOWT": "low amplitude t-wave",
    "BIGU": "bigeminal pattern (unknown origin, supraventricular, or ventricular)",
}  # fmt: skip

# The six rhythms the simulator draws and the real-records benchmark asks about, and the findings
# it simulates (a model trained on the embedded default can only be asked about these)
RHYTHM_CLASSES = ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT")
FINDING_CLASSES = ("1AVB", "CLBBB", "CRBBB", "IRBBB", "LAFB", "LVH", "IMI", "ASMI", "AMI", "STD_", "NDT",
                   "INVT", "LNGQT", "LVOLT", "PVC", "PAC")  # fmt: skip

SUPERCLASS_NAMES = {"NORM": "normal ecg", "MI": "myocardial infarction", "STTC": "st/t change",
                    "CD": "conduction disturbance", "HYP": "hypertrophy"}  # fmt: skip
SUPERCLASS_ORDER = ["NORM", "MI", "STTC", "CD", "HYP"]

NOISE_KINDS = {"baseline_drift": "baseline drift", "static_noise": "static noise",
               "burst_noise": "burst noise", "electrodes_problems": "electrodes problems"}  # fmt: skip

# Normal ranges used for ECG-QA-style "numeric feature" answers (REFERENCE.md's adult ranges;
# QTc upper limit by sex). Values in ms.
NUMERIC_FEATURES = {
    "rr interval": ("rr_ms", 600.0, 1000.0),
    "p duration": ("p_ms", 60.0, 120.0),
    "pr interval": ("pr_ms", 120.0, 200.0),
    "qrs duration": ("qrs_ms", 60.0, 120.0),
    "qt interval": ("qt_ms", 300.0, 450.0),
    "qt corrected": ("qtc_ms", 350.0, 450.0),
}


@lru_cache(maxsize=4)
def statements(path: str | None = None) -> SCPStatements:
    """The PTB-XL statement table (the real one shipped with ecgllm unless a path is given)."""
    p = path or str(resources.files("ecgllm") / "resources" / "scp_statements.csv")
    return SCPStatements(Path(p))


def scp_name(code: str) -> str:
    """The ECG-QA (lower-case English) name of an SCP code, e.g. IMI -> 'myocardial infarction in
    inferior leads', 1AVB -> 'first degree av block'."""
    if code in ECGQA_NAMES:
        return ECGQA_NAMES[code]
    if code in SUPERCLASS_NAMES:
        return SUPERCLASS_NAMES[code]
    desc = statements().description.get(code)
    return desc.lower() if isinstance(desc, str) else code.lower()


def label_set(name: str) -> list[str]:
    """Codes of a named label set: superdiagnostic, subdiagnostic, diagnostic, form, rhythm, all."""
    if name == "superdiagnostic":
        return list(SUPERCLASS_ORDER)
    return statements().codes(name)


def codes_in_set(labels: dict[str, float], name: str) -> list[str]:
    """The record's labels under a label set, in the set's order."""
    have = set(statements().aggregate(labels, name))
    return [c for c in label_set(name) if c in have]


def parse_leads(spec: str | None) -> list[str]:
    """PTB-XL noise-field lead spec -> leads. 'alles' (German: all) and ranges like 'I-AVF',
    'V1-V6' or lists 'I,II,V2'; unknown tokens are ignored. Empty -> []."""
    if not spec or not isinstance(spec, str):
        return []
    text = spec.strip().lower()
    if "alles" in text or text in ("all", "yes", "1"):
        return list(STANDARD_12)
    upper = [n.upper() for n in STANDARD_12]
    out: list[str] = []
    for token in re.split(r"[,;\s]+", spec.strip().upper()):
        token = token.strip(" .")
        if not token:
            continue
        if "-" in token:
            a, _, b = token.partition("-")
            if a in upper and b in upper:
                i, j = sorted((upper.index(a), upper.index(b)))
                out += [STANDARD_12[k] for k in range(i, j + 1)]
        elif token in upper:
            out.append(STANDARD_12[upper.index(token)])
    return [ld for ld in STANDARD_12 if ld in set(out)]


def infarction_stages(stadium1: str | None, stadium2: str | None, has_mi: bool) -> list[str]:
    """PTB-XL infarction_stadium1/2 -> ECG-QA stage names (Stadium I early, II middle, III old)."""
    names = {"I": "early stage of myocardial infarction", "II": "middle stage of myocardial infarction",
             "III": "old stage of myocardial infarction"}  # fmt: skip
    out: list[str] = []
    for s in (stadium1, stadium2):
        if not isinstance(s, str) or not s.strip():
            continue
        m = re.search(r"stadium\s+([IV]+)(?:\s*-\s*([IV]+))?", s, re.I)
        if m:
            for g in m.groups():
                if g and g.upper() in names and names[g.upper()] not in out:
                    out.append(names[g.upper()])
        elif "unknown" in s.lower():
            out.append("unknown stage of myocardial infarction")
    if not out:
        out = (
            ["unknown stage of myocardial infarction"]
            if has_mi
            else ["none of myocardial infarction"]
        )
    return out


def extra_systoles(extra_beats: str | None, labels: dict[str, float]) -> list[str]:
    """PTB-XL extra_beats ('1VES', 'SVES', ...) and PVC/PAC labels -> ECG-QA names."""
    text = (extra_beats or "").upper()
    out = []
    if "SVES" in text or "PAC" in labels:
        out.append("supraventricular extrasystoles")
    if re.search(r"(?<!S)VES", text) or "PVC" in labels:
        out.append("ventricular extrasystoles")
    if not out and text.strip():
        out.append("extrasystoles")
    return out


def axis_name(heart_axis: str | None, axis_deg: float | None) -> str | None:
    """PTB-XL heart_axis code, else the measured frontal axis -> ECG-QA heart-axis name."""
    code = (heart_axis or "").upper()
    if code == "MID":
        return "normal heart axis"
    if code in ("LAD", "ALAD", "AXL"):
        return "left axis deviation"
    if code in ("RAD", "ARAD", "AXR"):
        return "right axis deviation"
    if axis_deg is None:
        return None
    if -30 <= axis_deg <= 90:
        return "normal heart axis"
    if -90 <= axis_deg < -30:
        return "left axis deviation"
    if 90 < axis_deg <= 180:
        return "right axis deviation"
    return "extreme axis deviation"


def numeric_range(feature: str, value: float | None, sex: str | None = None) -> str | None:
    """'below the normal range' / 'within the normal range' / 'above the normal range'."""
    if value is None:
        return None
    _, lo, hi = NUMERIC_FEATURES[feature]
    if feature == "qt corrected" and sex == "F":
        hi = 460.0
    if value < lo:
        return "below the normal range"
    if value > hi:
        return "above the normal range"
    return "within the normal range"
