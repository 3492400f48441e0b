"""Conversations: 2-3 of the record's single-ECG samples as one multi-turn chat."""

from __future__ import annotations

from .common import RecordInfo, TaskFamily, sample, text_turn


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


FAMILY = TaskFamily("multiturn", lambda rec, rng, ctx: multiturn_task(rec, rng, ctx.modalities, list(ctx.pool)),
                    "conversation", conversation=True)  # fmt: skip
