"""Multi-label questions: which statements of a label set the record has (detect), and the
fixed finding classes asked of records a model never saw (findings)."""

from __future__ import annotations

from ...text.vocab import FINDING_CLASSES, codes_in_set, label_set, scp_name
from .common import RecordInfo, TaskFamily, join_answer, per_record, sample

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


def findings_task(rec: RecordInfo, rng, modalities) -> list[dict]:
    """Which of FINDING_CLASSES the record has (detect's row shape: options = the label names,
    answer = those present or "none"); benchmarks score it from P(yes) to each label's verify
    question."""
    names = [scp_name(c) for c in FINDING_CLASSES]
    present = [scp_name(c) for c in FINDING_CLASSES if c in rec.labels] or ["none"]
    q = DETECT_PROMPTS[0].format(options="; ".join(names))
    return [sample([rec], "findings", q, join_answer(present), modalities, answer=present,
                   options=[*names, "none"], attribute_type="findings")]  # fmt: skip


FAMILY = TaskFamily(
    "detect", per_record(detect_task), "labels", ("options", "attribute_type"), ("detect",)
)
FINDINGS = TaskFamily("findings", per_record(findings_task), "labels", ("options",), ("real_findings",), check=True)  # fmt: skip
