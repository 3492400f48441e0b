"""Grounded interpretation: each finding with the measurements and leads that support it.

The evidence per finding is a table, not code: ecgllm/resources/evidence_rules.yaml (the sentence,
the measurements it cites, the leads: fixed, or those of a territory whose per-lead value meets a
threshold). `evidence_for` applies it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml

from ...text.vocab import scp_name, statements
from .common import RecordInfo, TaskFamily, per_record, pick, sample

_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^:}]+))?(?::([^}]+))?\}")
_OPS = {"<": lambda a, b: a < b, ">": lambda a, b: a > b}


@lru_cache(maxsize=1)
def evidence_rules() -> tuple[dict[str, list[str]], dict[str, dict]]:
    """(territories, {code: its rule}) from the shipped table; the first rule naming a code wins."""
    table = yaml.safe_load(files("ecgllm").joinpath("resources/evidence_rules.yaml").read_text())
    by_code: dict[str, dict] = {}
    for rule in table["rules"]:
        for code in rule["codes"]:
            by_code.setdefault(str(code), rule)
    return table["territories"], by_code


def _leads(spec: Any, per_lead: dict, territories: dict[str, list[str]]) -> tuple[list[str], str]:
    """(the evidence's leads, the text for {leads})."""
    if spec is None:
        return [], ""
    if isinstance(spec, list):
        return list(spec), ", ".join(spec)
    src = spec["from"]
    pool = [ld for ld in per_lead if ld != "aVR"] if src == "all but aVR" else [ld for t in src for ld in territories[t]]  # fmt: skip
    key, op, threshold = spec["where"]
    leads = [
        ld for ld in pool if ld in per_lead and _OPS[op](per_lead[ld].get(key) or 0, threshold)
    ]
    if leads:
        return leads, ", ".join(leads)
    if spec["otherwise"] == "territory":
        return pool, ", ".join(pool)
    return [], spec["otherwise"]


def evidence_for(code: str, s: dict, per_lead: dict) -> tuple[str, dict] | None:
    """(sentence, structured evidence) for one finding from the record's measurements `s` and
    per-lead values, by its rule in the evidence table; None for a finding without a rule."""
    territories, rules = evidence_rules()
    rule = rules.get(code)
    if rule is None:
        return None
    ev: dict[str, Any] = {"finding": code, "measurements": {}, "leads": []}
    for key in rule.get("measurements", []):
        if s.get(key) is not None:
            ev["measurements"][key] = float(s[key])
    ev["leads"], where = _leads(rule.get("leads"), per_lead, territories)

    def fill(m: re.Match) -> str:
        key, unit, spec = m.groups()
        if key == "name":
            return scp_name(code)
        if key == "leads":
            return where
        v = s.get(key)
        if v is None:
            return "not measurable"
        return f"{v:{spec}} {unit}" if spec else f"{round(v):d} {unit}"

    return _PLACEHOLDER.sub(fill, rule["text"]), ev


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


FAMILY = TaskFamily("ground", per_record(ground_task), "evidence", ("evidence",), ("ground",))  # fmt: skip
