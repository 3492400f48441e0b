"""Multiple choice: a rhythm and a finding question with distractors (mcq), and the rhythm over
all six rhythm classes asked of records a model never saw (rhythm)."""

from __future__ import annotations

from ...text.vocab import RHYTHM_CLASSES, codes_in_set, label_set, scp_name
from .common import (
    CHOICE_FORMATS,
    LETTERS,
    RecordInfo,
    TaskFamily,
    lettered,
    per_record,
    pick,
    sample,
)

# rows are built in the letter form; a processor of another form rewrites them as it reads them
_ASK, _ANSWER = CHOICE_FORMATS["letter"]


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
        lines = lettered(opts)
        q = ("Which rhythm does this ECG show?" if kind == "rhythm" else
             "Which of the following findings does this ECG show?") + f"\n{lines}\n{_ASK}"  # fmt: skip
        out.append(sample([rec], "mcq", q, _ANSWER.format(letter=letter, option=scp_name(correct)), modalities, answer=[scp_name(correct)],
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
    lines = lettered(opts)
    q = f"Which rhythm does this ECG show?\n{lines}\n{_ASK}"
    answer = _ANSWER.format(letter=LETTERS[opts.index(correct)], option=correct)
    return [sample([rec], "rhythm", q, answer, modalities,
                   answer=[correct], options=opts, attribute_type="rhythm", template_id=k)]  # fmt: skip


FAMILY = TaskFamily(
    "mcq", per_record(mcq_task), "choice", ("options", "attribute_type"), ("mcq", "rhythm")
)
RHYTHM = TaskFamily("rhythm", per_record(rhythm_task), "choice", ("options",), ("real_rhythm",), check=True)  # fmt: skip
