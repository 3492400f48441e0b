"""SCP statements from report text, English and PTB-XL German, with negations.

    extract_scp_codes("sinus rhythm. left anterior fascicular block. no evidence of infarction.")
    # {'SR', 'LAFB'}

Phrases: every statement's description from scp_statements.csv, the wordings our reports use,
common clinical synonyms, and the German terms of PTB-XL's own reports. Matching is on word
boundaries, longest phrase first (so "incomplete right bundle branch block" is IRBBB, not also
CRBBB), and a phrase is skipped when a negation ("no", "without", "no evidence of", "kein",
"keine", "ohne", "nicht") precedes it in the same sentence/clause.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .vocab import ECGQA_NAMES, statements

SYNONYMS: dict[str, list[str]] = {
    "SR": ["sinus rhythm", "sinusrhythmus", "normal sinus rhythm"],
    "SBRAD": ["sinus bradycardia", "sinusbradykardie", "bradycardia"],
    "STACH": ["sinus tachycardia", "sinustachykardie", "tachycardia"],
    "SARRH": ["sinus arrhythmia", "sinusarrhythmie", "respiratory arrhythmia"],
    "AFIB": ["atrial fibrillation", "vorhofflimmern", "afib", "a-fib"],
    "AFLT": ["atrial flutter", "vorhofflattern"],
    "1AVB": ["first degree av block", "first-degree av block", "1st degree av block", "av block i", "av-block i",
             "prolonged pr interval, first degree av block", "first degree atrioventricular block"],
    "CLBBB": ["complete left bundle branch block", "left bundle branch block", "lbbb", "linksschenkelblock",
              "kompletter linksschenkelblock"],
    "CRBBB": ["complete right bundle branch block", "right bundle branch block", "rbbb", "rechtsschenkelblock",
              "kompletter rechtsschenkelblock"],
    "IRBBB": ["incomplete right bundle branch block", "inkompletter rechtsschenkelblock", "incomplete rbbb"],
    "ILBBB": ["incomplete left bundle branch block", "inkompletter linksschenkelblock"],
    "LAFB": ["left anterior fascicular block", "left anterior hemiblock", "linksanteriorer hemiblock", "lahb"],
    "LPFB": ["left posterior fascicular block", "left posterior hemiblock", "linksposteriorer hemiblock"],
    "LVH": ["left ventricular hypertrophy", "linksventrikuläre hypertrophie", "linksherzhypertrophie",
            "left ventricular hypertrophy with strain"],
    "RVH": ["right ventricular hypertrophy", "rechtsventrikuläre hypertrophie"],
    "VCLVH": ["voltage criteria for left ventricular hypertrophy", "voltages for left ventricular hypertrophy"],
    "IMI": ["inferior myocardial infarction", "inferior infarction", "inferior infarction, age undetermined",
            "inferiorer infarkt", "hinterwandinfarkt", "myocardial infarction in inferior leads"],
    "ASMI": ["anteroseptal myocardial infarction", "anteroseptal infarction", "anteroseptaler infarkt",
             "anteroseptal infarction, old", "myocardial infarction in anteroseptal leads"],
    "AMI": ["anterior myocardial infarction", "anterior infarction", "vorderwandinfarkt",
            "myocardial infarction in anterior leads"],
    "LNGQT": ["long qt interval", "long qt-interval", "prolonged qt", "qt-verlängerung", "verlängertes qt"],
    "LVOLT": ["low qrs voltages", "low voltage", "niedervoltage", "periphere niederspannung", "niederspannung"],
    "PVC": ["ventricular premature complex", "ventricular extrasystole", "ventrikuläre extrasystole",
            "premature ventricular contraction", "ves"],
    "PAC": ["atrial premature complex", "supraventricular extrasystole", "supraventrikuläre extrasystole",
            "premature atrial contraction", "sves"],
    "STD_": ["st depression", "st-senkung", "st senkung", "non-specific st depression"],
    "STE_": ["st elevation", "st-hebung", "st hebung"],
    "INVT": ["inverted t waves", "t wave inversion", "t-wave inversion", "t-negativierung", "negative t-wellen"],
    "NDT": ["non-diagnostic t abnormalities", "flat t waves", "abgeflachte t-wellen"],
    "NT_": ["non-specific t wave changes", "non-specific t-wave changes"],
    "ISC_": ["non-specific ischemic", "non-specific ischemic changes", "ischemia", "ischämie"],
    "NORM": ["normal ecg", "normales ekg", "normal ekg"],
    "PACE": ["pacemaker", "schrittmacher"],
    "WPW": ["wolff-parkinson-white", "wolf-parkinson-white", "wpw"],
}  # fmt: skip

NEGATIONS = (
    "no evidence of",
    "no signs of",
    "without",
    "absence of",
    "no",
    "not",
    "kein",
    "keine",
    "keinen",
    "ohne",
    "nicht",
)
_CLAUSE = re.compile(r"[.;\n]|,\s*(?:but|aber)\b")


@lru_cache(maxsize=1)
def phrase_table() -> list[tuple[str, str]]:
    """(phrase, code), longest phrase first."""
    table: dict[str, str] = {}
    st = statements()
    for code, desc in st.description.items():
        if isinstance(desc, str):
            table.setdefault(desc.lower(), code)
    for code, name in ECGQA_NAMES.items():
        table.setdefault(name, code)
    for code, names in SYNONYMS.items():
        for n in names:
            table[n.lower()] = code
    return sorted(table.items(), key=lambda kv: (-len(kv[0]), kv[0]))


@lru_cache(maxsize=4096)
def _rx(phrase: str) -> re.Pattern:
    body = r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", phrase))
    return re.compile(rf"(?<![\w]){body}(?![\w])")


def _negated(clause: str, start: int) -> bool:
    before = clause[:start].split()[-6:]
    window = " ".join(before)
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", window) for n in NEGATIONS)


def extract_scp_codes(text: str | None) -> set[str]:
    """PTB-XL SCP codes stated (not negated) in a report."""
    if not text:
        return set()
    found: set[str] = set()
    for clause in _CLAUSE.split(text.lower()):
        taken = [False] * len(clause)
        for phrase, code in phrase_table():
            for m in _rx(phrase).finditer(clause):
                if any(taken[m.start() : m.end()]):
                    continue
                for i in range(m.start(), m.end()):
                    taken[i] = True
                if not _negated(clause, m.start()):
                    found.add(code)
    return found
