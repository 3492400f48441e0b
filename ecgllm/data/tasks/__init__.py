"""Task families: instruction samples from a record's labels, report and measurements (no LLM).

Each family is a registered unit (`TaskFamily`, one module each): its generator, the kind of
answer it asks for, the row fields its samples must fill, and the shipped benchmarks that score
it. `FAMILIES` holds them in generation order (each family draws from the record's one random
generator in turn, so the order is part of the output); `register` adds one of your own.

    from ecgllm.data.tasks import FAMILIES, TaskContext
    samples = FAMILIES["mcq"].generate(record_info, np.random.default_rng(0), TaskContext(("signal",)))

Samples follow the row schema of ecgllm.data.schema: chat `messages` whose first user turn holds
one {"type": "ecg"} and/or {"type": "image"} item per attached ECG, structured `options` and
`answer`, and task metadata. Families: report, detect, mcq, ecgqa (single and comparison),
measure, ground, multiturn (a conversation of the others); the optional family verify (the
detection benchmark's yes/no question about one label); and the check families rhythm and
findings (the questions asked of real records, built only when asked for).
"""

from __future__ import annotations

from . import choice, detect, ecgqa, ground, measure, multiturn, report
from .choice import mcq_task, rhythm_task
from .common import (
    CHOICE_FORMATS,
    LETTERS,
    VERIFY,
    YES_NO,
    RecordInfo,
    TaskContext,
    TaskFamily,
    join_answer,
    lettered,
    pick,
    sample,
    text_turn,
    user_turn,
)
from .detect import DETECT_PROMPTS, DETECT_SETS, detect_task, findings_task, verify_task
from .ecgqa import (
    balance_verify,
    ecgqa_comparison,
    ecgqa_single,
    numeric_ranges,
    scp_answer,
    verify_code,
)
from .ground import evidence_for, evidence_rules, ground_task
from .measure import MEASURES, measure_task
from .multiturn import multiturn_task
from .report import REPORT_PROMPTS, REPORT_TEXTS, report_target, report_task

FAMILIES: dict[str, TaskFamily] = {}


def register(family: TaskFamily) -> TaskFamily:
    """Add a task family (generated after those registered before it); its name must be new."""
    if family.name in FAMILIES:
        raise ValueError(f"task family {family.name!r} is registered already")
    FAMILIES[family.name] = family
    return family


for _family in (report.FAMILY, detect.FAMILY, choice.FAMILY, ecgqa.FAMILY, measure.FAMILY,
                ground.FAMILY, choice.RHYTHM, detect.FINDINGS, multiturn.FAMILY, detect.VERIFY_FAMILY):  # fmt: skip
    register(_family)

# the families built by default, those for checking a model on records it was not trained on
# (not built unless asked for: BuildConfig(tasks=("rhythm", "findings"))), and the optional ones
# (built when named: BuildConfig(tasks=(*TASKS, "verify")), data_builders/build.py --tasks)
TASKS = tuple(n for n, f in FAMILIES.items() if not (f.check or f.optional))
CHECK_TASKS = tuple(n for n, f in FAMILIES.items() if f.check)
OPTIONAL_TASKS = tuple(n for n, f in FAMILIES.items() if f.optional)

__all__ = ["CHECK_TASKS", "CHOICE_FORMATS", "OPTIONAL_TASKS", "DETECT_PROMPTS", "DETECT_SETS", "FAMILIES", "LETTERS", "MEASURES",
           "REPORT_PROMPTS", "REPORT_TEXTS", "TASKS", "VERIFY", "YES_NO", "RecordInfo", "TaskContext",
           "TaskFamily", "balance_verify", "detect_task", "ecgqa_comparison", "ecgqa_single", "evidence_for", "evidence_rules",
           "findings_task", "ground_task", "join_answer", "lettered", "mcq_task", "measure_task",
           "multiturn_task", "numeric_ranges", "pick", "register", "report_target", "report_task",
           "rhythm_task", "sample", "scp_answer", "text_turn", "user_turn", "verify_code", "verify_task"]  # fmt: skip
