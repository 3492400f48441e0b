"""LUDB's diagnosis statements -> PTB-XL SCP codes and the heart-axis code.

    parse_ludb_statements(["Rhythm: Sinus bradycardia.", "Electric axis of the heart: left axis deviation.",
                           "Left ventricular hypertrophy.", "Stemi: anterior wall"])
    # LudbLabels(labels={'SBRAD': 0.0, 'LVH': 100.0, 'AMI': 100.0}, axis='LAD', unmapped=[], rhythm='SBRAD')

LUDB (Kalyakulina et al. 2020) writes its statements from a closed vocabulary, one per line, in
the header comments and in ludb.csv (columns Rhythms, Electric axis of the heart, Conduction
abnormalities, Extrasystolies, Hypertrophies, Cardiac pacing, Ischemia, Non-specific
repolarization abnormalities, Other states). Each rule below is one auditable line: a pattern
over the lower-cased statement and the SCP code(s) it means. Decisions:
- "vertical" and "horizontal" electrical axes are within the normal range (LUDB's convention):
  heart_axis MID, as PTB-XL codes a normal axis;
- "irregular sinus rhythm" is sinus arrhythmia (SARRH);
- STEMI and scar by wall map to PTB-XL's infarction statement of that territory (septal ->
  ASMI, anterior/apical -> AMI, lateral -> LMI, inferior -> IMI, posterior -> PMI); ischemia by
  wall to PTB-XL's ischemic statement of that territory, "undefined ischemia/scar/supp.nstemi"
  to ISC_;
- "left ventricular overload" (a strain pattern), "wandering atrial pacemaker", "aberrant
  conduction", "sinoatrial blockade", "early repolarization" have no PTB-XL statement: unmapped,
  kept and counted by the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .snomed import _likelihood
from .vocab import RHYTHM_CLASSES

# (pattern, codes); first match wins, so specific patterns come before general ones
RULES: list[tuple[str, tuple[str, ...]]] = [
    # rhythm
    (r"\bsinus bradycardia\b", ("SBRAD",)),
    (r"\bsinus tachycardia\b", ("STACH",)),
    (r"\b(sinus arrhythmia|irregular sinus rhythm)\b", ("SARRH",)),
    (r"\batrial fibrillation\b", ("AFIB",)),
    (r"\batrial flutter\b", ("AFLT",)),
    (r"\bsinus rhythm\b", ("SR",)),
    # conduction
    (r"\bincomplete right bundle branch block\b", ("IRBBB",)),
    (r"\bincomplete left bundle branch block\b", ("ILBBB",)),
    (r"\b(complete )?right bundle branch block\b", ("CRBBB",)),
    (r"\b(complete )?left bundle branch block\b", ("CLBBB",)),
    (r"\bleft anterior (hemiblock|fascicular block)\b", ("LAFB",)),
    (r"\bleft posterior (hemiblock|fascicular block)\b", ("LPFB",)),
    (r"\b(i|1st|first) degree av[- ]block\b", ("1AVB",)),
    (r"\b(ii|2nd|second) degree av[- ]block\b", ("2AVB",)),
    (r"\b(iii|3rd|third) degree av[- ]block\b", ("3AVB",)),
    (r"\bintrav[ei]ntricular conduction (delay|disturbance)\b", ("IVCD",)),
    (r"\bwpw\b|\bwolff", ("WPW",)),
    # extrasystoles (a bigeminal type adds BIGU)
    (r"\bventricular extrasystole\b.*\bbigemin", ("PVC", "BIGU")),
    (r"\batrial extrasystole\b.*\bbigemin", ("PAC", "BIGU")),
    (r"\bventricular extrasystole\b", ("PVC",)),
    (r"\b(atrial|supraventricular) extrasystole\b", ("PAC",)),
    # hypertrophy / overload
    (r"\bleft ventricular hypertrophy\b", ("LVH",)),
    (r"\bright ventricular hypertrophy\b", ("RVH",)),
    (r"\bleft atrial (hypertrophy|overload|enlargement)\b", ("LAO/LAE",)),
    (r"\bright atrial (hypertrophy|overload|enlargement)\b", ("RAO/RAE",)),
    # pacing
    (r"\bpacing\b|\bpacemaker presence\b", ("PACE",)),
    # infarction / ischemia by wall
    (r"^(stemi|scar formation): septal\b", ("ASMI",)),
    (r"^(stemi|scar formation): (anterior wall|apical)\b", ("AMI",)),
    (r"^(stemi|scar formation): lateral wall\b", ("LMI",)),
    (r"^(stemi|scar formation): inferior wall\b", ("IMI",)),
    (r"^(stemi|scar formation): posterior wall\b", ("PMI",)),
    (r"^ischemia: (anterior wall|apical)\b", ("ISCAN",)),
    (r"^ischemia: septal\b", ("ISCAS",)),
    (r"^ischemia: lateral wall\b", ("ISCLA",)),
    (r"^ischemia: inferior wall\b", ("ISCIN",)),
    (r"^ischemia: posterior wall\b", ("ISC_",)),
    (r"^undefined ischemia", ("ISC_",)),
    (r"^non-specific repolarization abnormalities\b", ("NST_",)),
]
_RULES = [(re.compile(p), codes) for p, codes in RULES]

AXES = {"normal": "MID", "vertical": "MID", "horizontal": "MID", "left axis deviation": "LAD",
        "right axis deviation": "RAD"}  # fmt: skip
# header lines that are not statements
_SKIP = re.compile(r"^(<age>|<sex>|<diagnoses>|age|sex)\s*:", re.I)


@dataclass
class LudbLabels:
    labels: dict[str, float] = field(default_factory=dict)
    axis: str | None = None
    unmapped: list[str] = field(default_factory=list)
    rhythm: str | None = None  # the first rhythm statement, as an SCP code


def _clean(line: str) -> str:
    s = line.strip().lstrip("#").strip().rstrip(".").strip()
    s = re.sub(r"\s+", " ", s)
    return re.sub(r"^rhythm:\s*", "", s, flags=re.I)


def parse_ludb_statements(lines: list[str]) -> LudbLabels:
    """Statement lines (header comments or ludb.csv cells split on newlines) -> LudbLabels."""
    out = LudbLabels()
    for line in lines:
        s = _clean(line)
        if not s or _SKIP.match(s):
            continue
        low = s.lower()
        if low.startswith("electric axis of the heart"):
            axis = low.split(":", 1)[-1].strip()
            if axis in AXES:
                out.axis = AXES[axis]
            else:
                out.unmapped.append(s)
            continue
        for rx, codes in _RULES:
            if rx.search(low):
                for c in codes:
                    out.labels[c] = _likelihood(c)
                    if c in RHYTHM_CLASSES and out.rhythm is None:
                        out.rhythm = c
                break
        else:
            out.unmapped.append(s)
    return out
