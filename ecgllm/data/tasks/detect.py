"""Multi-label questions: which statements of a label set the record has (detect), the detection
benchmark's own yes/no question about one label (verify), and the fixed finding classes asked of
records a model never saw (findings)."""

from __future__ import annotations

import numpy as np

from ...text.vocab import FINDING_CLASSES, codes_in_set, label_set, scp_name, statements
from .common import VERIFY, RecordInfo, TaskContext, TaskFamily, join_answer, per_record, sample

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


def set_counts(label_counts: dict[str, int], name: str) -> dict[str, int]:
    """How many records have each label of a label set, from the build's SCP code counts (a
    superclass counts the records of each of its codes: an upper bound, enough for weights)."""
    out: dict[str, int] = {}
    for code, n in label_counts.items():
        for label in set(statements().aggregate({code: 100.0}, name)):
            out[label] = out.get(label, 0) + n
    return out


def verify_task(rec: RecordInfo, rng, ctx: TaskContext, label_sets=DETECT_SETS) -> list[dict]:
    """The detection benchmark's question, trained: for each label set, "Does this ECG show
    symptoms of <label>?" about a label the record has ("yes") and about one it lacks ("no"),
    the absent one drawn among the set's labels that some record of the build has, in proportion
    to how many do; balance_verify then evens each question's answers over the split, so that no
    question is answered without the ECG. The benchmark scores detection from P(yes) to exactly
    this question for every label, and without these rows a model met it for most labels only
    there: the build's ECG-QA verify questions name 24 statements, and no superclass."""
    out = []
    if rec.source not in ("ptbxl", "synthetic") and not rec.labels:
        return out
    counts = dict(ctx.label_counts)
    for name in label_sets:
        present = codes_in_set(rec.labels, name)
        weights = set_counts(counts, name)
        absent = [c for c in label_set(name) if c not in present and weights.get(c, 0) > 0]
        asked = []
        if present:
            asked.append((present[int(rng.integers(len(present)))], "yes"))
        if absent:
            w = np.array([weights[c] for c in absent], dtype=float)
            asked.append((absent[int(rng.choice(len(absent), p=w / w.sum()))], "no"))
        for code, ans in asked:
            out.append(sample([rec], "verify", VERIFY.format(label=scp_name(code)), ans, ctx.modalities,
                              answer=[ans], options=["no", "yes"], question_type="single-verify",
                              attribute_type=name, suffix=f"-{name}-{ans}"))  # fmt: skip
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
# drawn last from the record's generator, so building it leaves the other families' samples as they
# are; optional: on the demo it lifted detection by P(yes) (0.39 -> 0.63) but not by the model's own
# list, the headline (0.937 without, 0.922 with; README "Instruction data"), so it is not built by default
VERIFY_FAMILY = TaskFamily("verify", verify_task, "qa", ("options", "question_type", "attribute_type"),
                           last=True, optional=True)  # fmt: skip
FINDINGS = TaskFamily("findings", per_record(findings_task), "labels", ("options",), ("real_findings",), check=True)  # fmt: skip
