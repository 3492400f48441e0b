"""Instruction samples from a record's labels, report and measurements (no LLM involved).

Each generator takes `RecordInfo`s and a numpy Generator and returns sample dicts in the row
schema of ecgllm.data.schema: chat `messages` whose first user turn holds one {"type": "ecg"}
and/or {"type": "image"} item per attached ECG, structured `options` and `answer`, and task
metadata. Task families: report, detect, mcq, ecgqa (single and comparison), measure, ground,
and multiturn (a conversation mixing the others).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..text.reports import english_report
from ..text.vocab import (
    FINDING_CLASSES,
    NOISE_KINDS,
    NUMERIC_FEATURES,
    RHYTHM_CLASSES,
    codes_in_set,
    label_set,
    numeric_range,
    scp_name,
    statements,
)

TASKS = ("report", "detect", "mcq", "ecgqa", "measure", "ground", "multiturn")
# families for checking a model on records it was not trained on (real-records benchmark); not
# built unless asked for: BuildConfig(tasks=("rhythm", "findings"))
CHECK_TASKS = ("rhythm", "findings")


@dataclass
class RecordInfo:
    """What sample generation knows of a record (no signal): ids, labels, report, features."""

    record_id: str
    source: str
    patient_id: str
    split: str
    labels: dict[str, float]
    report: str | None = None
    features: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.source}-{self.record_id}"


# --- message helpers ----------------------------------------------------------------------------


def user_turn(n_ecgs: int, modalities: tuple[str, ...], text: str) -> dict:
    items: list[dict] = []
    for _ in range(n_ecgs):
        if "signal" in modalities:
            items.append({"type": "ecg", "text": None})
        if "image" in modalities:
            items.append({"type": "image", "text": None})
    items.append({"type": "text", "text": text})
    return {"role": "user", "content": items}


def text_turn(role: str, text: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def sample(
    recs: list[RecordInfo], task: str, question: str, target: str, modalities: tuple[str, ...], *,
    answer: list[str], options: list[str] | None = None, template_id: int = 0, question_type: str = "",
    attribute_type: str = "", value: float | None = None, unit: str = "", tolerance: float | None = None,
    evidence: dict | None = None, suffix: str = "",
) -> dict:  # fmt: skip
    first = recs[0]
    rid = "+".join(r.record_id for r in recs)
    labels = sorted({c for r in recs for c in r.labels})
    return {
        "id": f"{first.source}-{rid}-{task}{suffix}",
        "source": first.source,
        "record_id": first.record_id,
        "record_ids": [r.record_id for r in recs],
        "patient_id": first.patient_id,
        "split": first.split,
        "task": task,
        "template_id": int(template_id),
        "question_type": question_type,
        "attribute_type": attribute_type,
        "messages": [user_turn(len(recs), modalities, question), text_turn("assistant", target)],
        "options": list(options or []),
        "answer": list(answer),
        "labels": labels,
        "features": json.dumps(first.features.get("summary", {}), sort_keys=True),
        "value": value,
        "unit": unit,
        "tolerance": tolerance,
        "evidence": json.dumps(evidence or {}, sort_keys=True),
        "modalities": list(modalities),
    }


def pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def join_answer(answer: list[str]) -> str:
    # "; " keeps options that contain commas (e.g. the bigeminal-pattern statement) intact
    return "; ".join(answer)


# --- 1. report generation ---------------------------------------------------------------------

REPORT_PROMPTS = (
    "Write the report for this ECG.",
    "Interpret this 12-lead ECG and write a short report.",
    "What does this ECG show? Answer as a clinical ECG report.",
    "Please provide the ECG report.",
)


REPORT_TEXTS = ("normalised", "source")


def report_target(rec: RecordInfo, text: str = "normalised") -> str | None:
    """The report a model learns to write. "normalised" (default): for PTB-XL (real or simulated),
    LUDB and Challenge records, normalised English from the SCP statements (PTB-XL's own text is
    often German and stays in the record); MIMIC and other sources: the record's report.
    "source": the record's own report text wherever it has one (models trained on real PTB-XL then
    learn real report language; the report benchmark reads either through the same extractor)."""
    if text not in REPORT_TEXTS:
        raise ValueError(f"report text must be one of {REPORT_TEXTS}, not {text!r}")
    if text == "source" and rec.report:
        return rec.report
    if rec.source in ("ptbxl", "synthetic", "ludb", "challenge"):
        return english_report(rec.labels) or None
    return rec.report or (english_report(rec.labels) or None)


def report_task(rec: RecordInfo, rng, modalities, text: str = "normalised") -> list[dict]:
    target = report_target(rec, text)
    if not target:
        return []
    t = int(rng.integers(len(REPORT_PROMPTS)))
    return [
        sample(
            [rec], "report", REPORT_PROMPTS[t], target, modalities, answer=[target], template_id=t
        )
    ]


# --- 2. abnormality detection (multi-label) -----------------------------------------------------

DETECT_SETS = ("superdiagnostic", "rhythm", "form")
DETECT_PROMPTS = (
    "Which of the following are present in this ECG: {options}? List all that apply, or none.",
    "Select every finding this ECG shows from: {options}. Answer none if there are none.",
)


def detect_task(rec: RecordInfo, rng, modalities, label_sets=DETECT_SETS) -> list[dict]:
    out = []
    if rec.source not in ("ptbxl", "synthetic") and not rec.labels:
        return out
    for name in label_sets:
        codes = label_set(name)
        names = [scp_name(c) for c in codes]
        present = [scp_name(c) for c in codes_in_set(rec.labels, name)] or ["none"]
        t = int(rng.integers(len(DETECT_PROMPTS)))
        q = DETECT_PROMPTS[t].format(options="; ".join(names))
        out.append(sample([rec], "detect", q, join_answer(present), modalities, answer=present,
                          options=[*names, "none"], template_id=t, attribute_type=name, suffix=f"-{name}"))  # fmt: skip
    return out


# --- 3. multiple choice -------------------------------------------------------------------------

# the answer formats every task, the parser and the evaluation share (one owner: here)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # option letters: "B. sinus rhythm"
VERIFY = "Does this ECG show symptoms of {label}?"  # the ECG-QA verify wording


def mcq_task(rec: RecordInfo, rng, modalities, n_options: tuple[int, int] = (4, 6)) -> list[dict]:
    """One rhythm question and one finding question, each with exactly one correct option and
    distractors drawn from the same vocabulary that the record does not have."""
    out = []
    for kind, pool_name in (("rhythm", "rhythm"), ("finding", "diagnostic")):
        have = codes_in_set(rec.labels, pool_name)
        if not have:
            continue
        correct = pick(rng, have)
        pool = [c for c in label_set(pool_name) if c not in rec.labels]
        k = int(rng.integers(n_options[0], n_options[1] + 1)) - 1
        if len(pool) < k:
            continue
        distract = list(rng.choice(pool, size=k, replace=False))
        opts = [scp_name(c) for c in [correct, *distract]]
        order = rng.permutation(len(opts))
        opts = [opts[i] for i in order]
        letter = LETTERS[opts.index(scp_name(correct))]
        lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts))
        q = ("Which rhythm does this ECG show?" if kind == "rhythm" else
             "Which of the following findings does this ECG show?") + f"\n{lines}\nAnswer with the letter."  # fmt: skip
        out.append(sample([rec], "mcq", q, f"{letter}. {scp_name(correct)}", modalities, answer=[scp_name(correct)],
                          options=opts, attribute_type=kind, suffix=f"-{kind}"))  # fmt: skip
    return out


def rhythm_task(rec: RecordInfo, rng, modalities) -> list[dict]:
    """The rhythm multiple-choice question over all six RHYTHM_CLASSES (mcq's wording), the
    options in their fixed order rotated by a random offset, for a record with exactly one of
    them (paced records are left out)."""
    have = [c for c in RHYTHM_CLASSES if c in rec.labels]
    if len(have) != 1 or "PACE" in rec.labels:
        return []
    names = [scp_name(c) for c in RHYTHM_CLASSES]
    k = int(rng.integers(len(names)))
    opts = names[k:] + names[:k]
    correct = scp_name(have[0])
    lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts))
    q = f"Which rhythm does this ECG show?\n{lines}\nAnswer with the letter."
    return [sample([rec], "rhythm", q, f"{LETTERS[opts.index(correct)]}. {correct}", modalities,
                   answer=[correct], options=opts, attribute_type="rhythm", template_id=k)]  # fmt: skip


def findings_task(rec: RecordInfo, rng, modalities) -> list[dict]:
    """Which of FINDING_CLASSES the record has (detect's row shape: options = the label names,
    answer = those present or "none"); benchmarks score it from P(yes) to each label's verify
    question."""
    names = [scp_name(c) for c in FINDING_CLASSES]
    present = [scp_name(c) for c in FINDING_CLASSES if c in rec.labels] or ["none"]
    q = DETECT_PROMPTS[0].format(options="; ".join(names))
    return [sample([rec], "findings", q, join_answer(present), modalities, answer=present,
                   options=[*names, "none"], attribute_type="findings")]  # fmt: skip


# --- 5. measurement -----------------------------------------------------------------------------

MEASURES = {
    "hr_bpm": ("heart rate", "bpm", 2.0, 0),
    "pr_ms": ("PR interval", "ms", 20.0, 0),
    "qrs_ms": ("QRS duration", "ms", 12.0, 0),
    "qt_ms": ("QT interval", "ms", 25.0, 0),
    "qtc_ms": ("corrected QT interval (Bazett)", "ms", 30.0, 0),
    "axis_deg": ("frontal QRS axis", "degrees", 15.0, 0),
}
MEASURE_PROMPTS = (
    "What is the {name} of this ECG?",
    "Measure the {name}.",
    "Estimate the {name} from this ECG.",
)


def measure_task(rec: RecordInfo, rng, modalities, n: int = 2) -> list[dict]:
    summary = rec.features.get("summary", {})
    keys = [k for k in MEASURES if summary.get(k) is not None]
    out = []
    for k in list(rng.permutation(keys))[:n] if keys else []:
        name, unit, tol, _ = MEASURES[k]
        v = float(summary[k])
        shown = f"{round(v):d}"
        t = int(rng.integers(len(MEASURE_PROMPTS)))
        q = MEASURE_PROMPTS[t].format(name=name)
        out.append(sample([rec], "measure", q, f"{shown} {unit}", modalities, answer=[shown], template_id=t,
                          attribute_type=k, value=v, unit=unit, tolerance=tol, suffix=f"-{k}"))  # fmt: skip
    return out


# --- 6. grounded interpretation -----------------------------------------------------------------

TERRITORY = {
    "inferior": ["II", "III", "aVF"], "lateral": ["I", "aVL", "V5", "V6"], "anterior": ["V1", "V2", "V3", "V4"],
    "anteroseptal": ["V1", "V2", "V3"], "septal": ["V1", "V2"], "anterolateral": ["V3", "V4", "V5", "V6", "I", "aVL"],
}  # fmt: skip


def _fmt(v: float | None, unit: str) -> str:
    return f"{round(v):d} {unit}" if v is not None else "not measurable"


def _leads_where(per_lead: dict, leads: list[str], test) -> list[str]:
    return [ld for ld in leads if ld in per_lead and test(per_lead[ld])]


def evidence_for(code: str, s: dict, per_lead: dict) -> tuple[str, dict] | None:
    """(sentence, structured evidence) for one finding from measurements and territories."""
    name = scp_name(code)
    ev: dict[str, Any] = {"finding": code, "measurements": {}, "leads": []}

    def m(key: str) -> float | None:
        v = s.get(key)
        if v is not None:
            ev["measurements"][key] = float(v)
        return v

    if code in ("SR", "SBRAD", "STACH", "SARRH"):
        hr, sd = m("hr_bpm"), m("rr_sd_ms")
        extra = f", RR variation {_fmt(sd, 'ms')}" if code == "SARRH" else ""
        return f"{name}: P waves before every QRS, rate {_fmt(hr, 'bpm')}{extra}", ev
    if code == "AFIB":
        m("hr_bpm"), m("rr_sd_ms")
        return (
            f"{name}: no P waves, irregularly irregular RR (SD {_fmt(s.get('rr_sd_ms'), 'ms')}), ventricular rate {_fmt(s.get('hr_bpm'), 'bpm')}",
            ev,
        )
    if code == "AFLT":
        m("hr_bpm")
        ev["leads"] = ["II", "III", "aVF"]
        return (
            f"{name}: sawtooth flutter waves in II, III, aVF, ventricular rate {_fmt(s.get('hr_bpm'), 'bpm')}",
            ev,
        )
    if code == "1AVB":
        return f"{name}: PR {_fmt(m('pr_ms'), 'ms')} (> 200 ms) with every P wave conducted", ev
    if code in ("CLBBB", "ILBBB"):
        ev["leads"] = ["I", "aVL", "V5", "V6", "V1"]
        return (
            f"{name}: QRS {_fmt(m('qrs_ms'), 'ms')} with broad notched R in I, aVL, V5, V6 and QS or rS in V1",
            ev,
        )
    if code in ("CRBBB", "IRBBB"):
        ev["leads"] = ["V1", "V2", "I", "V6"]
        return (
            f"{name}: QRS {_fmt(m('qrs_ms'), 'ms')} with rsR' in V1-V2 and a wide S in I and V6",
            ev,
        )
    if code == "LAFB":
        ev["leads"] = ["aVL", "II", "III", "aVF"]
        return (
            f"{name}: frontal axis {_fmt(m('axis_deg'), 'degrees')} with qR in aVL and rS in II, III, aVF",
            ev,
        )
    if code in ("LVH", "VCLVH"):
        sl = m("sokolow_lyon_mv")
        ev["leads"] = ["V1", "V5", "V6"]
        val = f"{sl:.1f} mV" if sl is not None else "not measurable"
        return f"{name}: Sokolow-Lyon voltage SV1 + RV5/6 = {val} (> 3.5 mV)", ev
    if code == "LVOLT":
        limb = ["I", "II", "III", "aVR", "aVL", "aVF"]
        ev["leads"] = limb
        return f"{name}: QRS amplitude below 0.5 mV in all limb leads", ev
    if code == "LNGQT":
        return f"{name}: QT {_fmt(m('qt_ms'), 'ms')}, QTc {_fmt(m('qtc_ms'), 'ms')}", ev
    if code in ("IMI", "ILMI", "IPMI", "IPLMI"):
        leads = (
            _leads_where(per_lead, TERRITORY["inferior"], lambda v: (v.get("q_mv") or 0) < -0.1)
            or TERRITORY["inferior"]
        )
        ev["leads"] = leads
        return f"{name}: pathological Q waves with T inversion in {', '.join(leads)}", ev
    if code in ("ASMI", "AMI", "ALMI"):
        terr = {"ASMI": "anteroseptal", "AMI": "anterior", "ALMI": "anterolateral"}[code]
        leads = (
            _leads_where(per_lead, TERRITORY[terr], lambda v: (v.get("r_mv") or 0) < 0.15)
            or TERRITORY[terr]
        )
        ev["leads"] = leads
        return f"{name}: QS complexes or loss of R waves in {', '.join(leads)}", ev
    if code in ("STD_", "ISC_", "NST_"):
        leads = _leads_where(
            per_lead,
            [*TERRITORY["lateral"], *TERRITORY["inferior"]],
            lambda v: (v.get("st_j60_mv") or 0) < -0.05,
        )
        ev["leads"] = leads
        where = ", ".join(leads) if leads else "several leads"
        return f"{name}: ST depression in {where}", ev
    if code in ("INVT", "NDT", "NT_", "TAB_", "LOWT"):
        leads = _leads_where(
            per_lead, [ld for ld in per_lead if ld != "aVR"], lambda v: (v.get("t_mv") or 0) < 0.05
        )
        ev["leads"] = leads
        where = ", ".join(leads) if leads else "several leads"
        return f"{name}: flat or inverted T waves in {where}", ev
    if code in ("PVC", "PAC"):
        kind = (
            "wide premature QRS without a P wave"
            if code == "PVC"
            else "premature beat with an abnormal P wave and a narrow QRS"
        )
        return f"{name}: {kind}", ev
    if code == "NORM":
        return (
            f"{name}: rate, intervals and axis within normal limits (QRS {_fmt(m('qrs_ms'), 'ms')}, PR {_fmt(m('pr_ms'), 'ms')})",
            ev,
        )
    return None


def ground_task(rec: RecordInfo, rng, modalities) -> list[dict]:
    s = rec.features.get("summary", {})
    per_lead = rec.features.get("leads", {})
    table = statements().table
    order = sorted(
        rec.labels, key=lambda c: (0 if c in table.index and table.loc[c, "rhythm"] == 1 else 1, c)
    )
    sentences, evidence = [], []
    for code in order:
        got = evidence_for(code, s, per_lead)
        if got:
            sentences.append(got[0])
            evidence.append(got[1])
    if not sentences:
        return []
    target = ". ".join(x[0].upper() + x[1:] for x in sentences) + "."
    q = pick(rng, ("Interpret this ECG and give the evidence for each finding.",
                   "What are the findings on this ECG, and which measurements and leads support them?"))  # fmt: skip
    return [sample([rec], "ground", q, target, modalities, answer=[e["finding"] for e in evidence],
                   evidence={"findings": evidence})]  # fmt: skip


# --- 4. ECG-QA style ----------------------------------------------------------------------------
# Official ECG-QA wordings where we have them (the real sample in shared/data: templates 26, 27,
# 28, 68, 69, 70, used with their official ids); the other question kinds follow ECG-QA's question
# types, attributes and answer vocabulary with our own wordings, under ids from 1001.

YES_NO = ["no", "yes"]


def scp_answer(rec: RecordInfo, code: str) -> str:
    if code not in rec.labels:
        return "no"
    lik = rec.labels[code]
    diagnostic = (
        code in statements().table.index and statements().table.loc[code, "diagnostic"] == 1
    )
    return "not sure" if diagnostic and 0 < lik < 50 else "yes"


def _noise_attrs(rec: RecordInfo) -> dict[str, list[str]]:
    return {NOISE_KINDS[k]: v for k, v in rec.meta.get("noise", {}).items() if v}


def ecgqa_single(rec: RecordInfo, rng, modalities) -> list[dict]:
    out: list[dict] = []
    mk = lambda q, a, opts, tid, qt, at, sfx: sample([rec], "ecgqa", q, join_answer(a), modalities, answer=a,  # noqa: E731
                                                     options=opts, template_id=tid, question_type=qt,
                                                     attribute_type=at, suffix=f"-{sfx}")  # fmt: skip
    # scp_code verify: a present code half of the time, an absent one otherwise
    diag = [c for c in label_set("all") if c not in ("NORM",)]
    present = [c for c in rec.labels if c in diag]
    code = pick(rng, present) if present and rng.random() < 0.5 else pick(rng, diag)
    out.append(mk(VERIFY.format(label=scp_name(code)), [scp_answer(rec, code)],
                  ["no", "not sure", "yes"], 1001, "single-verify", "scp_code", "v-scp"))  # fmt: skip
    # scp_code query over a statement group
    group = pick(rng, ["diagnostic", "form", "rhythm"])
    vocab = [scp_name(c) for c in label_set(group)]
    ans = [scp_name(c) for c in codes_in_set(rec.labels, group)] or ["none"]
    what = {
        "diagnostic": "diagnostic symptoms",
        "form": "form-related symptoms",
        "rhythm": "rhythm",
    }[group]
    out.append(
        mk(
            f"What {what} does this ECG show?",
            ans,
            [*vocab, "none"],
            1002,
            "single-query",
            "scp_code",
            "q-scp",
        )
    )
    # scp_code choose between a present and an absent statement
    if present:
        a, b = pick(rng, present), pick(rng, [c for c in diag if c not in rec.labels])
        pair = [scp_name(a), scp_name(b)] if rng.random() < 0.5 else [scp_name(b), scp_name(a)]
        out.append(mk(f"Which symptom does this ECG show, {pair[0]} or {pair[1]}?", [scp_name(a)],
                      [*pair, "none"], 1003, "single-choose", "scp_code", "c-scp"))  # fmt: skip
    # noise (official wordings 26-28 when the source has noise fields)
    noise = _noise_attrs(rec)
    if rec.meta.get("has_noise_fields"):
        kind = pick(rng, list(NOISE_KINDS.values()))
        roll = rng.random()
        if roll < 0.4:
            out.append(mk(f"Does this ECG show {kind}?", ["yes" if kind in noise else "no"], YES_NO, 27,
                          "single-verify", "noise", "v-noise"))  # fmt: skip
        elif roll < 0.7:
            lead = pick(
                rng, ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
            )
            out.append(mk(f"Does this ECG show {kind} in lead {lead}?", ["yes" if lead in noise.get(kind, []) else "no"],
                          YES_NO, 26, "single-verify", "noise", "v-noise-lead"))  # fmt: skip
        else:
            lead = pick(
                rng, ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
            )
            anyn = any(lead in v for v in noise.values())
            out.append(mk(f"Does this ECG show any kind of noises in lead {lead}?", ["yes" if anyn else "no"],
                          YES_NO, 28, "single-verify", "noise", "v-noise-any"))  # fmt: skip
        kinds = sorted(noise) or ["none"]
        out.append(mk("What kind of noises does this ECG show?", kinds, [*sorted(NOISE_KINDS.values()), "none"],
                      1004, "single-query", "noise", "q-noise"))  # fmt: skip
    # infarction stage, extra systoles, axis
    if rec.meta.get("stages"):
        opts = ["early stage of myocardial infarction", "middle stage of myocardial infarction",
                "old stage of myocardial infarction", "unknown stage of myocardial infarction",
                "none of myocardial infarction"]  # fmt: skip
        out.append(mk("What stage of myocardial infarction does this ECG show?", rec.meta["stages"], opts, 1005,
                      "single-query", "stage_of_infarction", "q-stage"))  # fmt: skip
    if rec.meta.get("has_noise_fields") or rec.meta.get("extras") is not None:
        extras = rec.meta.get("extras") or ["none"]
        out.append(mk("What kind of extra systoles does this ECG show?", extras,
                      ["extrasystoles", "none", "supraventricular extrasystoles", "ventricular extrasystoles"],
                      1006, "single-query", "extra_systole", "q-extra"))  # fmt: skip
    if rec.meta.get("axis"):
        opts = [
            "extreme axis deviation",
            "left axis deviation",
            "normal heart axis",
            "right axis deviation",
        ]
        out.append(mk("What heart axis does this ECG show?", [rec.meta["axis"]], opts, 1007, "single-query",
                      "heart_axis", "q-axis"))  # fmt: skip
    # numeric feature ranges
    ranges = numeric_ranges(rec)
    if ranges:
        feat = pick(rng, sorted(ranges))
        opts = ["above the normal range", "below the normal range", "within the normal range"]
        out.append(mk(f"What range is the {feat} of this ECG in?", [ranges[feat]], opts, 1008, "single-query",
                      "numeric_feature", "q-num"))  # fmt: skip
        abnormal = sorted(f for f, r in ranges.items() if r != "within the normal range") or [
            "none"
        ]
        out.append(mk("What numeric features of this ECG are out of the normal range?", abnormal,
                      [*sorted(NUMERIC_FEATURES), "none"], 1009, "single-query", "numeric_feature", "q-num-abn"))  # fmt: skip
    return out


def numeric_ranges(rec: RecordInfo) -> dict[str, str]:
    s = rec.features.get("summary", {})
    out = {}
    for feat, (key, _, _) in NUMERIC_FEATURES.items():
        r = numeric_range(feat, s.get(key), rec.meta.get("sex"))
        if r:
            out[feat] = r
    return out


def ecgqa_comparison(a: RecordInfo, b: RecordInfo, kind: str, rng, modalities) -> list[dict]:
    """Questions about two ECGs (kind: 'consecutive' = same patient, 'irrelevant' = unrelated)."""
    qt = f"comparison_{kind}"
    out: list[dict] = []
    ra, rb = numeric_ranges(a), numeric_ranges(b)
    feats = sorted(set(ra) & set(rb))
    if feats:
        abn = lambda r, f: r[f] != "within the normal range"  # noqa: E731
        official = [
            (68, "What numeric features of the second ECG now have become normal as compared to the first ECG?",
             [f for f in feats if abn(ra, f) and not abn(rb, f)]),
            (69, "What numeric features of the second ECG are now considered abnormal values as compared to the first ECG?",
             [f for f in feats if not abn(ra, f) and abn(rb, f)]),
            (70, "What numeric features of the second ECG are still abnormal as compared to the first ECG?",
             [f for f in feats if abn(ra, f) and abn(rb, f)]),
        ]  # fmt: skip
        tid, q, ans = official[int(rng.integers(3))]
        # the official templates are comparison_irrelevant; for consecutive pairs we use our ids
        tid = tid if kind == "irrelevant" else tid + 1000
        ans = ans or ["none"]
        out.append(sample([a, b], "ecgqa", q, join_answer(ans), modalities, answer=ans,
                          options=[*sorted(NUMERIC_FEATURES), "none"], template_id=tid, question_type=f"{qt}-query",
                          attribute_type="numeric_feature", suffix="-cmp-num"))  # fmt: skip
    codes = sorted(set(a.labels) | set(b.labels))
    if codes:
        code = pick(rng, codes)
        ans = "yes" if code in b.labels and code not in a.labels else "no"
        out.append(sample([a, b], "ecgqa", f"Does the second ECG newly show {scp_name(code)} as compared to the first ECG?",
                          ans, modalities, answer=[ans], options=YES_NO, template_id=1010,
                          question_type=f"{qt}-verify", attribute_type="scp_code", suffix="-cmp-v"))  # fmt: skip
        new = sorted(
            scp_name(c) for c in b.labels if c not in a.labels and c in statements().table.index
        ) or ["none"]
        vocab = sorted({scp_name(c) for c in label_set("all")}) + ["none"]
        out.append(sample([a, b], "ecgqa", "What symptoms of the second ECG are newly detected as compared to the first ECG?",
                          join_answer(new), modalities, answer=new, options=vocab, template_id=1011,
                          question_type=f"{qt}-query", attribute_type="scp_code", suffix="-cmp-q"))  # fmt: skip
    return out


def multiturn_task(rec: RecordInfo, rng, modalities, pool: list[dict]) -> list[dict]:
    """A conversation of 2-3 of this record's single-ECG samples (placeholders in the first turn)."""
    single = [s for s in pool if len(s["record_ids"]) == 1 and s["task"] != "ground"]
    if len(single) < 2:
        return []
    k = min(len(single), int(rng.integers(2, 4)))
    chosen = [single[i] for i in sorted(rng.choice(len(single), size=k, replace=False))]
    messages = [dict(chosen[0]["messages"][0]), chosen[0]["messages"][1]]
    for s in chosen[1:]:
        messages += [text_turn("user", s["messages"][0]["content"][-1]["text"]), s["messages"][1]]
    last = chosen[-1]
    out = sample([rec], "multiturn", "", "", modalities, answer=last["answer"], options=last["options"],
                 question_type=last["question_type"], attribute_type=last["attribute_type"])  # fmt: skip
    out["messages"] = messages
    out["template_id"] = 0
    return [out]
