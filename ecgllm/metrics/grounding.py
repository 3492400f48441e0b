"""Scoring grounded interpretations: right findings, right numbers, right leads.

A grounded answer ("Sinus rhythm: P waves before every QRS, rate 72 bpm. Inferior MI:
pathological Q waves in II, III, aVF") is scored on three things, each against the sample's
structured evidence (ecgllm.data.tasks.evidence_for):
- findings: SCP codes stated as findings (ecgllm.text.extract_scp_codes on each sentence's head,
  the part before its colon: "Inferior MI: pathological Q waves ..." states IMI, not also the Q
  waves and T inversion its evidence describes; a sentence without a colon is read whole) vs
  the gold codes;
- measurements: every value the text cites ("rate 72 bpm", "QRS 120 ms", "PR 210 ms", "QTc 460
  ms", "axis -45 degrees", "Sokolow-Lyon ... 3.9 mV") compared with the record's measured value
  within the tolerance below; precision over cited values, recall over the evidence's values;
- leads: lead names in the text vs the leads the evidence names (F1; samples whose evidence
  names no leads and whose answer names none are left out of the lead score).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..signal.record import STANDARD_12
from ..text.extract import extract_scp_codes

# quantity -> (pattern capturing the number, tolerance); the wording our ground task writes, plus
# common variants ("heart rate 72", "HR 72 bpm", "ventricular rate 110 bpm").
NUM = r"(-?\d+(?:\.\d+)?)"
CITATIONS: dict[str, tuple[re.Pattern, float]] = {
    "hr_bpm": (re.compile(rf"\b(?:rate|hr)\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*(?:bpm|/min)?", re.I), 5.0),
    "pr_ms": (re.compile(rf"\bPR(?: interval)?\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*ms", re.I), 20.0),
    "qrs_ms": (re.compile(rf"\bQRS(?: duration)?\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*ms", re.I), 15.0),
    "qt_ms": (re.compile(rf"\bQT(?! ?c)(?: interval)?\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*ms", re.I), 25.0),
    "qtc_ms": (re.compile(rf"\bQTc\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*ms", re.I), 30.0),
    "axis_deg": (re.compile(rf"\baxis\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*(?:degrees|deg|°)", re.I), 15.0),
    "rr_sd_ms": (re.compile(rf"\b(?:RR variation|SD)\s*(?:of\s*|=\s*|:\s*)?{NUM}\s*ms", re.I), 20.0),
    "sokolow_lyon_mv": (re.compile(rf"Sokolow-Lyon[^=\d]*=?\s*{NUM}\s*mV", re.I), 0.3),
}  # fmt: skip
_LEAD = re.compile(r"(?<![A-Za-z0-9])(aVR|aVL|aVF|V[1-6]|III|II|I)(?![A-Za-z0-9])")


def cited_measurements(text: str | None) -> dict[str, float]:
    """The first value cited for each quantity."""
    out: dict[str, float] = {}
    for key, (pat, _) in CITATIONS.items():
        m = pat.search(text or "")
        if m:
            out[key] = float(m.group(1))
    return out


def cited_leads(text: str | None) -> set[str]:
    """Lead names in a text, including ranges written "V1-V3" (case-sensitive: "I" is a lead,
    "i" is not)."""
    text = text or ""
    leads = set(_LEAD.findall(text))
    for a, b in re.findall(r"\bV([1-6])\s*-\s*V?([1-6])\b", text):
        leads |= {f"V{k}" for k in range(int(a), int(b) + 1)}
    return leads & set(STANDARD_12)


def stated_findings(text: str | None) -> set[str]:
    """SCP codes of the findings a grounded answer states (sentence heads, see the docstring)."""
    heads = [s.split(":", 1)[0] for s in re.split(r"(?<=\.)\s+|\n", text or "") if s.strip()]
    return extract_scp_codes(". ".join(heads))


def _f1(pred: set, gold: set) -> float:
    if not pred and not gold:
        return 1.0
    tp = len(pred & gold)
    return 2 * tp / (len(pred) + len(gold))


def ground_scores(preds: Sequence[str | None], golds: Sequence[Sequence[str]],
                  evidence: Sequence[dict], truth: Sequence[dict]) -> dict:  # fmt: skip
    """preds: answers; golds: gold SCP codes; evidence: {"findings": [{finding, leads,
    measurements}]}; truth: the record's measured values (features summary)."""
    finding, lead = [], []
    tp = fp = fn = 0
    cited_ok = cited_n = ev_hit = ev_n = 0
    for p, g, ev, t in zip(preds, golds, evidence, truth, strict=True):
        got, want = stated_findings(p), set(g)
        finding.append(_f1(got, want))
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
        cited = cited_measurements(p)
        for k, v in cited.items():
            ref = t.get(k)
            if ref is not None:
                cited_n += 1
                cited_ok += abs(v - ref) <= CITATIONS[k][1]
        for f in ev.get("findings", []):
            for k, ref in f.get("measurements", {}).items():
                if k in CITATIONS:
                    ev_n += 1
                    ev_hit += k in cited and abs(cited[k] - ref) <= CITATIONS[k][1]
        want_leads = {ld for f in ev.get("findings", []) for ld in f.get("leads", [])}
        got_leads = cited_leads(p)
        if want_leads or got_leads:
            lead.append(_f1(got_leads, want_leads))
    n = len(finding)
    return {
        "finding_f1": float(np.mean(finding)) if n else float("nan"),
        "finding_micro_f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0,
        "measurement_precision": cited_ok / cited_n if cited_n else float("nan"),
        "measurement_recall": ev_hit / ev_n if ev_n else float("nan"),
        "measurements_cited": cited_n,
        "lead_f1": float(np.mean(lead)) if lead else float("nan"),
        "lead_scored": len(lead),
        "n": n,
        "per_sample": finding,
    }
