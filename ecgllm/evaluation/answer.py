"""How the model answers a benchmark's rows: greedy generation (batched, KV cache, left
padding), option log-likelihood and, for detection, P(yes) per label from the likelihoods of "yes"
and "no" to the verify question.

Option log-likelihood is kept three ways per candidate answer "B. atrial fibrillation" (one
forward pass gives all three; a model answering in the name_letter form, "atrial fibrillation (B)",
has its candidates written so and gets no `loglik_letter`):
- `loglik`: the sum of the log-probabilities of the whole answer span, exactly the tokens the
  training loss supervises (letter, text and end of turn). The headline: it is the probability
  the model gives to the exact answer it was trained to write, so it ranks what training taught.
- `loglik_letter`: the first answer token alone (the letter), as multiple-choice harnesses score
  MMLU: the model must have mapped the options to their letters in the prompt.
- `loglik_norm`: the span's sum divided by the answer's length in characters (lm-evaluation-
  harness's acc_norm), so that a long option is not penalised for its length; the fair choice
  for a pretrained backbone scored on options it never saw written out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..benchmarks import Benchmark
from ..data.collator import EcgCollator
from ..data.tasks import CHOICE_FORMATS, LETTERS, VERIFY
from ..data.tasks.common import question_text

KEEP = ("id", "task", "question_type", "attribute_type", "options", "answer", "value", "tolerance",
        "evidence", "features", "record_ids")  # fmt: skip


@torch.no_grad()
def generate_batch(
    model, processor, collator: EcgCollator, rows: list[dict], max_new_tokens: int
) -> list[str]:
    """Greedy answers to the first user turn of each row (KV cache on, left padding)."""
    batch = collator.prompt_batch(rows)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[:, batch["input_ids"].shape[1] :]
    return [t.strip() for t in processor.tokenizer.batch_decode(new, skip_special_tokens=True)]


def _with_turns(row: dict, question: str | None, answer: str) -> dict:
    user = row["messages"][0]
    if question is not None:
        user = {**user, "content": [c if c["type"] != "text" else {**c, "text": question}
                                    for c in user["content"]]}  # fmt: skip
    return {**row, "messages": [user, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]}  # fmt: skip


@torch.no_grad()
def loglik_batch(model, collator: EcgCollator, items: list[dict], batch_size: int) -> list[float]:
    """Sum of log p(assistant tokens | prompt) for rows whose messages are [user, assistant]:
    exactly the tokens the training loss supervises (the chat template's assistant span).
    Candidates of one sample (same id) share its ECG and page: those are processed once."""
    return [sum(t) for t in token_logprobs(model, collator, items, batch_size)]


@torch.no_grad()
def token_logprobs(
    model, collator: EcgCollator, items: list[dict], batch_size: int
) -> list[list[float]]:
    """Per row, log p of each supervised token in order (what loglik_batch sums)."""
    cache: dict[str, dict] = {}  # per sample id: its ECG/page inputs (collator.candidate_batch)
    out: list[list[float]] = []
    for s in range(0, len(items), batch_size):
        out += _token_logprobs(model, collator.candidate_batch(items[s : s + batch_size], cache))
    return out


def _token_logprobs(model, batch: dict) -> list[list[float]]:
    """Per row, log p of each token that has a label. The LM head and log-softmax run only at
    positions that predict a labelled token (the union over the batch): a real vocabulary (262k
    for Gemma) makes the full logits large."""
    labels = batch.pop("labels")
    pos = (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)
    logits = model(**batch, logits_to_keep=pos).logits
    target = labels[:, pos + 1]
    keep = target != -100
    lp = torch.log_softmax(logits[keep].float(), dim=-1)
    tok_lp = lp.gather(-1, target[keep][:, None]).squeeze(-1).tolist()
    out: list[list[float]] = [[] for _ in range(labels.shape[0])]
    for r, v in zip(keep.nonzero()[:, 0].tolist(), tok_lp, strict=True):  # row-major: in order
        out[r].append(v)
    return out


def option_labels(options: Sequence[str]) -> list[str]:
    return [o for o in options if o != "none"]


def answer_rows(model, processor, collator, bench: Benchmark, rows: list[dict], batch_size: int,
                max_new_tokens: int | None = None) -> list[dict]:  # fmt: skip
    """Every method of the benchmark on a batch of rows -> records for samples.jsonl."""
    recs = [  # the question as the model was asked it (collator.asked: in its answer form)
        {k: r.get(k) for k in KEEP}
        | {"benchmark": bench.name, "question": question_text({"messages": collator.asked(r)})}
        for r in rows
    ]
    if "generate" in bench.methods:
        preds = generate_batch(
            model, processor, collator, rows, max_new_tokens or bench.max_new_tokens
        )
        for rec, p in zip(recs, preds, strict=True):
            rec["prediction"] = p
    if "loglik" in bench.methods:
        # each option written as the model answers (processor.choice_answer); the letter alone is
        # a score only when it comes first ("B. ..."): after the option's words it just follows them
        form = getattr(collator.proc, "choice_answer", "letter")
        items, owner = [], []
        for i, r in enumerate(rows):
            for j, o in enumerate(r["options"]):
                text = CHOICE_FORMATS[form][1].format(letter=LETTERS[j], option=o)
                items.append(_with_turns(r, None, text))
                owner.append((i, len(text)))
        ll = token_logprobs(model, collator, items, 4 * batch_size)
        keys = (
            ("loglik", "loglik_letter", "loglik_norm")
            if form == "letter"
            else ("loglik", "loglik_norm")
        )
        for rec in recs:
            rec.update({k: [] for k in keys})
        for (i, chars), v in zip(owner, ll, strict=True):
            recs[i]["loglik"].append(sum(v))
            recs[i]["loglik_norm"].append(sum(v) / chars)
            if form == "letter":
                recs[i]["loglik_letter"].append(v[0])
    if "yes_prob" in bench.methods:
        items, owner = [], []
        for i, r in enumerate(rows):
            for label in option_labels(r["options"]):
                for ans in ("yes", "no"):
                    items.append(_with_turns(r, VERIFY.format(label=label), ans))
                    owner.append((i, label, ans))
        ll = loglik_batch(model, collator, items, 4 * batch_size)
        pairs: dict[tuple[int, str], dict[str, float]] = {}
        for (i, label, ans), v in zip(owner, ll, strict=True):
            pairs.setdefault((i, label), {})[ans] = v
        for rec in recs:
            rec["label_scores"] = {}
        for (i, label), d in pairs.items():
            recs[i]["label_scores"][label] = float(1 / (1 + np.exp(d["no"] - d["yes"])))
    return recs
