"""What every task family shares: the record view (RecordInfo), chat turns, the sample row, the
answer formats (option letters, the verify wording, yes/no)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


def question_text(sample: dict) -> str:
    """A sample's question: the text of its first user turn (without the ECG/image placeholders)."""
    return " ".join(c["text"] for c in sample["messages"][0]["content"] if c["type"] == "text")


def pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def join_answer(answer: list[str]) -> str:
    # "; " keeps options that contain commas (e.g. the bigeminal-pattern statement) intact
    return "; ".join(answer)


# the answer formats every task, the parser and the evaluation share (one owner: here)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # option letters: "B. sinus rhythm"
VERIFY = "Does this ECG show symptoms of {label}?"  # the ECG-QA verify wording
YES_NO = ["no", "yes"]
# How a model answers a lettered multiple-choice question: the instruction that ends the question
# and the form of the answer. Datasets are built in the "letter" form; a processor of another form
# (model.choice_answer) rewrites those rows as they are read (EcgLlmProcessor.choice_messages), so
# one built dataset trains either form and a model keeps its form in its processor config.
# "name_letter" puts the option's words first: a pretrained LLM (Gemma 3 270M) made to write "B."
# first learned only the class prior, while naming the option lets it use what it knows of the
# words (issue 17: rhythm 0.40 after 800 steps -> 0.83 after 200).
CHOICE_FORMATS = {
    "letter": ("Answer with the letter.", "{letter}. {option}"),
    "name_letter": ("Name the answer, then its letter.", "{option} ({letter})"),
}


def lettered(options: list[str]) -> str:
    """The options as "A. first" lines."""
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


# --- task families ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskContext:
    """What a family's generator gets besides the record and the random generator."""

    modalities: tuple[str, ...]  # signal and/or image placeholders in the first user turn
    report_text: str = "normalised"  # report targets: normalised English or the source's text
    pool: tuple[dict, ...] = ()  # the record's samples so far (for conversation families)
    # (code, records with it) over the build's records (ECG-QA's verify questions draw from it)
    label_counts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class TaskFamily:
    """A task family: how its samples are made, what they are, what checks and scores them.

    `generate(rec, rng, ctx)` returns the record's samples (the registry's order of families is
    part of the output: each draws from the record's one random generator in turn). `fields` are
    the row fields every sample of the family fills besides messages and answer (a sample without
    one is invalid). `benchmarks` name the shipped benchmarks that score the family."""

    name: str
    generate: Callable[[RecordInfo, np.random.Generator, TaskContext], list[dict]]
    kind: str  # the answer: text, labels (multi-label), choice, number, evidence, qa, conversation
    fields: tuple[str, ...] = ()
    benchmarks: tuple[str, ...] = ()
    check: bool = False  # built only when asked for: questions for records a model never saw
    optional: bool = False  # built only when asked for (BuildConfig(tasks=(..., name)), --tasks)
    conversation: bool = False  # made after the record's other samples, from them (ctx.pool)
    # made after the conversation families (from the same generator, after them): a family added
    # later leaves every sample of the families before it as it was
    last: bool = False
    # questions about two records (rec_a, rec_b, kind, rng, ctx), drawn after all records
    pairs: Callable[..., list[dict]] | None = None

    def missing(self, s: dict) -> list[str]:
        """The declared fields that sample `s` leaves empty."""
        return [f for f in self.fields if s.get(f) in (None, "", "{}", [])]


def per_record(generate: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """A generator of (rec, rng, modalities) as a family's generate(rec, rng, ctx)."""
    return lambda rec, rng, ctx: generate(rec, rng, ctx.modalities)
