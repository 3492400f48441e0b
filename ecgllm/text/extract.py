"""SCP statements from report text: PTB-XL (German, English, Swedish), MIMIC-IV-ECG, LUDB, ours.

    extract_scp_codes("sinusrhythmus linkstyp qrs(t) abnorm inferiorer infarkt alter unbest.")
    # {'SR', 'ABQRS', 'IMI'}
    extract_statements("sinus rhythm. st segments are depressed in ii, iii, avf.")
    # [Statement(code='SR', ...), Statement(code='STD_', certainty='certain', leads=['II', 'III', 'aVF'], ...)]

How a report is read (ecgllm.text.phrases holds the grammar, one list of patterns per code):
1. normalise: lower case, umlauts written out (PTB-XL mixes "ä", "Ä" lower-cased, "ae" and "#"
   for "ü"), whitespace collapsed; a PTB-XL "Edit: ..." tail is read for the SCP codes it names;
2. every pattern of every code is matched on word boundaries, longest match first, so a phrase
   is read once ("unvollstaendiger rechtsschenkelblock" is IRBBB only);
3. a match is negated when a negation ("no", "not", "without", "no evidence of", "kein(e)",
   "ohne", "nicht", "ingen") stands in the 5 words before it in the same clause (clauses end at
   ".", ";", a line break and ", but"), and a finding "previously" seen is not the ECG's; German
   hedges after a finding ("nicht auszuschliessen", "cannot be excluded") are uncertainty, and
   "keine p-welle erkannt" / "no p waves" a finding (of AF), not negations;
4. its certainty: "possible" (possible, may, cannot be excluded, nicht auszuschliessen, moeglich,
   verdacht auf, ...), "probable" (probable, likely, consistent with, suggesting,
   wahrscheinlich, ...) or "certain", from the words around it;
5. a lead list after it ("in ii, iii, avf", "in v1-3", "in v4,5,6", "in the inferior leads") is
   kept as its leads.
How uncertainty counts: like PTB-XL's labels, which keep a statement at every likelihood (15 to
100) and whose benchmark counts every likelihood as present, an uncertain statement counts as
stated (`extract_scp_codes(text, min_certainty="probable")` keeps only probable and certain ones).
What is read as a code: a phrase states a code when PTB-XL's cardiologists coded it so in at
least about half of the real rows it occurs in (below that, reading it costs micro F1 more than
it gains). Device statements they seldom coded ("periphere niederspannung", "p-sinistrocardiale",
"supraventrikulaere extrasystole(n)", "<territory> ischaemie oder linksbelastung", ...) state
nothing, and a German device report of a sinus rhythm made only of such benign statements
("sinusrhythmus verdacht auf p-sinistrocardiale lagetyp normal") reads as NORM, as PTB-XL codes
it (16 of 22 rows); ecgllm.text.phrases gives each one's count on the real rows shipped in
tests/fixtures/real/ptbxl/, and bench/report_text.py the per-code precision and recall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from .phrases import DEVICE_NORMAL, DEVICE_SINUS, PHRASES
from .vocab import ECGQA_NAMES, statements

NEGATIONS = ("no evidence of", "no signs of", "no sign of", "absence of", "without", "no", "not", "kein",
             "keine", "keinen", "keiner", "ohne", "nicht", "ingen", "inga", "free of", "ruled out",
             "previously")  # fmt: skip
# phrases that look like negations but are uncertainty (they follow the finding in German)
_NOT_NEGATION = re.compile(r"(?:nicht (?:sicher )?auszuschliessen|nicht ausgeschlossen|not (?:be )?excluded|cannot be excluded|can not be excluded|not ruled out"
                           # "keine p-welle erkannt": a finding (evidence of AF), not a negation of the next statement
                           r"|keine p-?wellen? (?:erkannt|erkennbar|sichtbar|nachweisbar)|no (?:visible |discernible )?p[- ]?waves?(?: seen| visible| identified)?"
                           r"|inga p-?vaag(?:or)? funna)")  # fmt: skip
# hedges before a finding (English) and after it (German device statements, "... likely")
POSSIBLE_BEFORE = (r"possible|possibly|may be|may represent|may|might|suspected|questionable|borderline|"
                   r"verdacht auf|v\.a\.|fraglich|eventuell|moejlig")  # fmt: skip
POSSIBLE_AFTER = (r"cannot be excluded|can not be excluded|not excluded|nicht (?:sicher )?auszuschliessen|"
                  r"nicht ausgeschlossen|moeglich(?:erweise)?|kan ej uteslutas|\?|"
                  # "incomplete rbbb, this is probably a normal variant. otherwise normal ecg": PTB-XL
                  # codes NORM beside it (5 of 5 real rows), so it must not outrank "otherwise normal"
                  r"(?:this is )?(?:probably |possibly )?a normal variant")  # fmt: skip
PROBABLE_BEFORE = (r"probable|probably|likely|consistent with|suggesting|suggests|suggestive of|compatible with|"
                   r"vereinbar mit|am ehesten|vermutlich|sannolik")  # fmt: skip
PROBABLE_AFTER = r"wahrscheinlich|is likely|likely|probably|sannolik"
_CLAUSE = re.compile(r"[.;\n]|,\s*(?:but|aber|men)\b")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "å": "aa", "ß": "ss", "Ä": "ae", "Ö": "oe",
                          "Ü": "ue", "Å": "aa", "é": "e", "è": "e"})  # fmt: skip
CERTAINTY_RANK = {"possible": 0, "probable": 1, "certain": 2}
# a German device report of a sinus rhythm with nothing but benign statements (ecgllm.text.phrases)
_DEVICE_SINUS = re.compile(rf"(?<!\w)(?:{DEVICE_SINUS})(?!\w)")
_DEVICE_NORMAL = re.compile(rf"(?:(?:{'|'.join(DEVICE_NORMAL)})(?![\w-])[\s.,]*)+")
_SINUS_CODES = {"SR", "SBRAD", "STACH", "SARRH", "PVC"}
# the report calls its own findings normal: "t wave inversion in iii, avf, this may be normal",
# "st segments are elevated in v4,5,6. this is probably normal for age", "neg t in iii, v1
# wahrscheinlich normales ekg". PTB-XL codes such ST/T findings not at all and the ECG NORM
# (5 of 5 real rows; other findings beside such a verdict stay coded, as Q waves "probably normal"
# are: QWAVE and NORM)
_NORMAL_VERDICT = re.compile(r"(?<!\w)(?:this (?:may be|is (?:probably|possibly)) normal(?: for age)?"
                             r"|(?:wahrscheinlich|vermutlich) normal(?:es)? ekg)(?!\w)")  # fmt: skip
_ST_T_CODES = {"STE_", "STD_", "INVT", "NDT", "NST_", "NT_", "LOWT", "TAB_"}


@dataclass
class Statement:
    code: str
    certainty: str  # certain | probable | possible
    start: int  # character span in the normalised text
    end: int
    text: str
    leads: list[str] = field(default_factory=list)


def normalise(text: str) -> str:
    """Lower case, umlauts written out, whitespace collapsed (the grammar's alphabet). PTB-XL's
    CSV has "#" for "ue" in some device statements ("f#r linkshypertrophie", "r-s #bergang")."""
    t = text.translate(_UMLAUTS).lower().replace("#", "ue")
    return re.sub(r"\s+", " ", t).strip()


@lru_cache(maxsize=1)
def grammar() -> list[tuple[re.Pattern, tuple[str, ...]]]:
    """(compiled pattern, codes it states) for the grammar plus every statement's description in
    scp_statements.csv and its ECG-QA name. Phrases of the pseudo-code "-" state nothing: they
    only keep a shorter phrase inside them from being read ("ischaemic heart disease" as a cause
    is no ischaemia finding; "lagetyp normal" is no normal ECG)."""
    entries: dict[str, tuple[str, ...]] = {}
    for code, desc in statements().description.items():
        if isinstance(desc, str):
            entries.setdefault(re.escape(normalise(desc)), (code,))
    for code, name in ECGQA_NAMES.items():
        entries.setdefault(re.escape(normalise(name)), (code,))
    for code, patterns in PHRASES.items():
        for p in patterns:
            body, plus = p.rsplit("+", 1) if re.search(r"\+[A-Z0-9_/()]+$", p) else (p, None)
            entries[body] = (code, plus) if plus else (code,)
    return [(re.compile(rf"(?<![\w-]){body}(?![\w])"), codes) for body, codes in entries.items()]


def _negated(before: str) -> bool:
    words = before.split()[-5:]
    window = " ".join(words)
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", window) for n in NEGATIONS)


_LEAD_LIST = re.compile(
    r"^\s*(?:are |is )?(?:\w+ ){0,3}?(?:in|over|ueber)\s+(?:the\s+)?((?:(?:leads?\s+)?(?:i{1,3}|avr|avl|avf|v[1-6](?:\s*-\s*v?[1-6])?|[1-6](?:\s*-\s*[1-6])?)(?![a-z])[\s,&/]*(?:and\s+|und\s+|och\s+)?)+|(?:inferior|lateral|anterior|chest|limb|precordial|septal|anteroseptal|anterolateral|inferolateral|high lateral)(?:\s+leads?)?)"
)
_TERRITORY_LEADS = {
    "inferior": ["II", "III", "aVF"], "lateral": ["I", "aVL", "V5", "V6"], "high lateral": ["I", "aVL"],
    "anterior": ["V1", "V2", "V3", "V4"], "septal": ["V1", "V2"], "anteroseptal": ["V1", "V2", "V3"],
    "anterolateral": ["V3", "V4", "V5", "V6", "I", "aVL"], "inferolateral": ["II", "III", "aVF", "V5", "V6"],
    "chest": ["V1", "V2", "V3", "V4", "V5", "V6"], "precordial": ["V1", "V2", "V3", "V4", "V5", "V6"],
    "limb": ["I", "II", "III", "aVR", "aVL", "aVF"],
}  # fmt: skip
_ORDER = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def parse_lead_list(text: str) -> list[str]:
    """ "ii, iii, avf" / "v1-3" / "v4,5,6" / "i, avl, v5,6" / "inferior leads" -> lead names."""
    t = text.strip()
    for name, leads in _TERRITORY_LEADS.items():
        if t.startswith(name):
            return list(leads)
    got: set[str] = set()
    prefix_v = False
    for tok in re.findall(r"avr|avl|avf|v?[1-6]\s*-\s*v?[1-6]|v[1-6]|i{1,3}|[1-6]", t):
        tok = tok.replace(" ", "")
        if tok in ("avr", "avl", "avf"):
            got.add("a" + tok[1:].upper())
            prefix_v = False
        elif set(tok) == {"i"}:
            got.add(tok.upper())
            prefix_v = False
        elif "-" in tok:
            a, b = (int(x.lstrip("v")) for x in tok.split("-"))
            got.update(f"V{k}" for k in range(min(a, b), max(a, b) + 1))
            prefix_v = True
        elif tok.startswith("v"):
            got.add(f"V{tok[1:]}")
            prefix_v = True
        elif prefix_v:  # "v5,6": a bare digit continues a chest-lead list
            got.add(f"V{tok}")
    return [lead for lead in _ORDER if lead in got]


def _certainty(before: str, after: str) -> str:
    def has(pattern: str, text: str) -> bool:
        return re.search(rf"(?<!\w)(?:{pattern})(?!\w)", text) is not None

    if has(POSSIBLE_BEFORE, before) or has(POSSIBLE_AFTER, after):
        return "possible"
    if has(PROBABLE_BEFORE, before) or has(PROBABLE_AFTER, after):
        return "probable"
    return "certain"


def _edit_codes(raw: str) -> set[str]:
    """SCP codes named in a PTB-XL "Edit:" tail (a curator's correction, in upper case)."""
    m = re.search(r"edit:(.*)$", raw, re.I | re.S)
    if not m:
        return set()
    known = set(statements().table.index)
    return {c for c in re.findall(r"[A-Z0-9_/()]{2,}", m.group(1)) if c in known}


def extract_statements(text: str | None) -> list[Statement]:
    """Every SCP statement a report states (not negated), in text order."""
    if not text:
        return []
    raw = text
    norm = normalise(re.sub(r"edit:.*$", "", text, flags=re.I | re.S))
    taken = [False] * len(norm)
    found: list[Statement] = []
    clause_starts = [0] + [m.end() for m in _CLAUSE.finditer(norm)]
    # every match of every phrase; overlaps go to the longest match (then the earliest)
    cands = [(m, codes) for rx, codes in grammar() for m in rx.finditer(norm)]
    cands.sort(key=lambda c: (-(c[0].end() - c[0].start()), c[0].start()))
    accepted = []
    for m, codes in cands:
        if any(taken[m.start() : m.end()]):
            continue
        for i in range(m.start(), m.end()):
            taken[i] = True
        if codes != ("-",):
            accepted.append((m, codes))
    accepted.sort(key=lambda a: a[0].start())
    for k, (m, codes) in enumerate(accepted):
        c0 = max(s for s in clause_starts if s <= m.start())
        if _negated(_NOT_NEGATION.sub("", norm[c0 : m.start()])):
            continue
        c1 = min([s for s in clause_starts if s > m.end()] + [len(norm)])
        # hedges are read between the neighbouring statements (German device statements run on
        # without punctuation: "septaler infarkt nicht auszuschliessen inferiorer infarkt ...")
        lo = max(c0, accepted[k - 1][0].end() if k else 0, m.start() - 40)
        hi = min(
            c1, accepted[k + 1][0].start() if k + 1 < len(accepted) else len(norm), m.end() + 40
        )
        after = norm[m.end() : c1]
        lm = _LEAD_LIST.match(after)
        leads = parse_lead_list(lm.group(1)) if lm and len(lm.group(0)) < 80 else []
        for code in codes:
            cert = _certainty(norm[lo : m.start()], norm[m.end() : hi])
            found.append(Statement(code, cert, m.start(), m.end(), m.group(0), leads))
    # (not when a curator's "Edit:" tail names the codes: it says what the tracing showed)
    if "edit:" not in raw.lower() and {s.code for s in found} <= _SINUS_CODES:
        if _DEVICE_SINUS.search(norm) and _DEVICE_NORMAL.fullmatch(norm):
            found.append(Statement("NORM", "certain", 0, len(norm), norm))
    verdict = _NORMAL_VERDICT.search(norm)
    if verdict:
        found = [s for s in found if s.code not in _ST_T_CODES]
        # NORM unless a diagnostic statement outranks it (the "otherwise normal" rule, _resolve)
        found.append(Statement("NORM?", "certain", verdict.start(), verdict.end(), verdict[0]))
    edits = _edit_codes(raw)
    have = {s.code for s in found}
    for code in sorted(edits - have):
        found.append(Statement(code, "certain", len(norm), len(norm), "edit", []))
    return sorted(_resolve(found), key=lambda s: (s.start, s.code))


def _resolve(found: list[Statement]) -> list[Statement]:
    """Report-level rule, as PTB-XL codes reports: an "otherwise normal" ECG ("sonst normales
    ekg", "otherwise normal ecg", "no definite pathology") yields to any diagnostic statement
    stated as certain or probable (PTB-XL codes "... unvollstaendiger rechtsschenkelblock sonst
    normales ekg" IRBBB, not NORM); rhythm and form statements (sinus bradycardia, extra beats,
    low voltage) leave it. The device's "linkshypertrophie" beside a complete left bundle branch
    block states nothing (LVH voltage criteria do not hold in LBBB; PTB-XL codes it 0 of 6 times).
    A generic ischaemia statement stays ISC_ whatever leads its ST/T findings name: PTB-XL codes
    "st segments are depressed in i, avl, v4,5,6 ... this may be due to lv strain or ischaemia"
    ISC_ (5 of 9 real rows; the territory read from the leads matched 1 of 6)."""
    table = statements().table
    diagnostic = {s.code for s in found if s.code != "NORM" and s.code in table.index
                  and table.loc[s.code, "diagnostic"] == 1 and s.certainty != "possible"}  # fmt: skip
    out = [s for s in found if not (s.code == "NORM?" and diagnostic)]
    if any(s.code == "CLBBB" for s in out):
        # the device's "linkshypertrophie (moeglich)" beside a complete LBBB: voltage criteria do
        # not hold in LBBB, and PTB-XL codes neither LVH nor ISC_ for it (0 of 6 real rows)
        out = [s for s in out if not (s.code in ("LVH", "ISC_") and s.text == "linkshypertrophie")]
    for s in out:
        if s.code == "NORM?":
            s.code = "NORM"
    return out


def extract_scp_codes(text: str | None, min_certainty: str = "possible") -> set[str]:
    """PTB-XL SCP codes stated (not negated) in a report, at `min_certainty` or above (default:
    every stated statement, as PTB-XL's labels count every likelihood)."""
    return set(_codes(text or "", CERTAINTY_RANK[min_certainty]))


@lru_cache(maxsize=65536)
def _codes(text: str, rank: int) -> frozenset[str]:
    # memoised: scorers read the same reports again and again (each bootstrap resample, the
    # paired comparison of two runs, GRPO's rewards of repeated completions), ~1 ms a report
    return frozenset(
        s.code for s in extract_statements(text) if CERTAINTY_RANK[s.certainty] >= rank
    )
