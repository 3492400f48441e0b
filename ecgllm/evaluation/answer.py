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
  for a pretrained backbone scored on options it never saw written out.

Detection is scored per label two ways (the benchmark's YAML names the headline):
- `yes_prob`: P(yes) / (P(yes) + P(no)) to the verify question "Does this ECG show symptoms of
  <label>?": one answer token per label, asked in a form the detection rows never train.
- `list_prob`: the probability that the label is the next item of the model's own list answer to
  the detection question: the greedy list (in option order) up to the label's place, then
  p(label | that prefix), i.e. the separator and the label's tokens, not the end of turn. It reads
  the answer the detection rows train ("st/t change; hypertrophy"), as option-text loglik does
  for multiple choice, and needs one candidate per label instead of two.

Every candidate of one sample is scored from one pass over the prompt they share (its KV cache
continued by each candidate's own tokens; `token_logprobs`): the same log-probabilities as a pass
per candidate (bench/scoring.py measures both)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from ..benchmarks import Benchmark
from ..data.collator import EcgCollator
from ..data.tasks import CHOICE_FORMATS, LETTERS, VERIFY
from ..data.tasks.common import join_answer, question_text
from ..metrics.parsing import match_options, split_reasoning
from ..model.modeling_ecgllm import placeholder_token_ids

KEEP = ("id", "task", "question_type", "attribute_type", "options", "answer", "value", "tolerance",
        "evidence", "features", "record_ids")  # fmt: skip


@torch.no_grad()
def generate_batch(
    model, processor, collator: EcgCollator, rows: list[dict], max_new_tokens: int
) -> list[str]:
    """Greedy answers to the first user turn of each row (KV cache on, left padding)."""
    batch = collator.prompt_batch(rows)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         suppress_tokens=placeholder_token_ids(model) or None)  # fmt: skip
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
    model, collator: EcgCollator, items: list[dict], batch_size: int, with_ids: bool = False
) -> list[list[float]] | list[tuple[list[int], list[float]]]:
    """Per row, log p of each supervised token in order (what loglik_batch sums); with_ids:
    (token ids, log p) per row."""
    cache: dict[str, dict] = {}  # per sample id: its ECG/page inputs (collator.candidate_batch)
    out: list = [None] * len(items)
    # the candidates of one sample (consecutive, same id) share their prompt: it is run once and
    # its KV cache continued by each candidate's own tokens (the prompt, with its ECG and page
    # tokens, is most of a candidate's length: on Gemma 3 270M a question's candidates cost 1/4
    # (its findings list) to 1/2 (P(yes)'s verify pairs) of a pass each; bench/scoring.py).
    # Lone rows, and a native VLM's (its page tokens), are scored batch_size rows a pass.
    alone: list[int] = []
    s = 0
    while s < len(items):
        e = s + 1
        while e < len(items) and items[e].get("id") == items[s].get("id") is not None:
            e += 1
        if e - s == 1 or collator.native is not None:
            alone += range(s, e)
        else:
            batch = collator.candidate_batch(items[s:e], cache)
            out[s:e] = _shared_prompt_logprobs(model, batch, batch_size, with_ids)
        s = e
    for k in range(0, len(alone), batch_size):
        idx = alone[k : k + batch_size]
        batch = collator.candidate_batch([items[i] for i in idx], cache)
        for i, v in zip(idx, _token_logprobs(model, batch, with_ids), strict=True):
            out[i] = v
    return out


def _shared_prompt_logprobs(model, batch: dict, batch_size: int, with_ids: bool) -> list:
    """_token_logprobs of one sample's candidates (rows of `batch`, right-padded): the tokens all
    rows share before the first supervised one (the prompt: ECG and page placeholders, question)
    run once; then, for rows that share the rest of their prompt too (the yes and the no of one
    verify question), that rest once per group, batch_size groups at a time; then the rows'
    remaining tokens, batch_size at a time, each on a copy of its group's KV cache. The same
    log-probabilities as one pass per row, up to float rounding."""
    ids, att, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    n = ids.shape[0]
    same = ((ids == ids[:1]) & (att == 1)).all(0).long().cumprod(0).sum().item()
    sup = labels != -100
    first = sup.any(0).nonzero()
    # the prefix stops one token before the first supervised one: its logit comes from the rest
    p = min(same, int(first[0]) - 1) if len(first) else 0
    holders = placeholder_token_ids(model)
    # (a row with nothing supervised: row by row)
    if p < 2 or n == 1 or not sup.any(1).all() or any((ids[:, p:] == t).any() for t in holders):
        return [x for s in range(0, n, batch_size) for x in _token_logprobs(model, _rows(batch, s, s + batch_size, n), with_ids)]  # fmt: skip
    feats = {k: v for k, v in _rows(batch, 0, 1, n).items() if k not in ("input_ids", "attention_mask", "labels")}  # fmt: skip
    prefix = model(
        input_ids=ids[:1, :p], attention_mask=att[:1, :p], use_cache=True, logits_to_keep=1, **feats
    )
    kv = _cache_of(prefix)
    # each row's prompt after the prefix, up to the token that predicts its first supervised one
    # (that token starts the row's own pass); rows with the same rest form a group. A chunk of
    # groups runs its rests as one batch, right-padded: the padding stays in the groups' caches,
    # masked, and each row's own tokens take their positions after its group's real rest (one
    # pass per rest length instead would cost more in passes than the padding does).
    rests = [tuple(ids[i, p : int(sup[i].nonzero()[0]) - 1].tolist()) for i in range(n)]
    # a sliding-window backbone (Gemma) counts the window in cache slots, padding included: if the
    # padding could bring a row to it, one group (each row's rest then runs in its own pass)
    spread = max(map(len, rests)) - min(map(len, rests))
    if _window_reached(model, ids.shape[1] + spread):
        rests = [()] * n
    groups: dict[tuple, list[int]] = {}
    for i, rest in enumerate(rests):
        groups.setdefault(rest, []).append(i)
    keys = list(groups)
    out: list = [None] * n
    for s in range(0, len(keys), batch_size):
        chunk = keys[s : s + batch_size]
        width = max(len(k) for k in chunk)
        rest_att = torch.tensor([[1] * len(k) + [0] * (width - len(k)) for k in chunk], dtype=torch.long)  # fmt: skip
        past = kv
        if width:
            past = copy.deepcopy(kv)
            past.batch_repeat_interleave(len(chunk))
            rest = torch.tensor([list(k) + [0] * (width - len(k)) for k in chunk])  # (0: masked)
            past = _cache_of(model(input_ids=rest, attention_mask=torch.cat([att[:1, :p].expand(len(chunk), p), rest_att], 1),
                                   position_ids=p + torch.arange(width).expand(len(chunk), width),
                                   past_key_values=past, use_cache=True, logits_to_keep=1))  # fmt: skip
        members = [(j, i) for j, k in enumerate(chunk) for i in groups[k]]
        for t in range(0, len(members), batch_size):
            sel = [j for j, _ in members[t : t + batch_size]]
            rows = torch.tensor([i for _, i in members[t : t + batch_size]])
            starts = torch.tensor([p + len(chunk[j]) for j in sel])[:, None]  # each row's own pass
            lens = att[rows].sum(1, keepdim=True) - starts
            steps = torch.arange(int(lens.max()))
            real = steps < lens
            take = (starts + steps).clamp(max=ids.shape[1] - 1)
            c = copy.deepcopy(past)
            c.batch_select_indices(torch.tensor(sel))
            got = _token_logprobs(model, {"input_ids": torch.where(real, ids[rows[:, None], take], 0),
                                          "attention_mask": torch.cat([att[:1, :p].expand(len(sel), p), rest_att[sel], real.long()], 1),
                                          "position_ids": starts + steps,
                                          "labels": torch.where(real, labels[rows[:, None], take], -100),
                                          "past_key_values": c}, with_ids)  # fmt: skip
            for i, v in zip(rows.tolist(), got, strict=True):
                out[i] = v
    return out


def _window_reached(model, length: int) -> bool:
    """Whether a sequence of `length` tokens, padding within it included, could reach the
    backbone's sliding attention window (its config's `sliding_window`, set or not in use)."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    window = getattr(cfg, "sliding_window", None)
    return bool(window) and length >= int(window)


def _cache_of(output):
    """The KV cache a forward pass returned: `cache` (transformers >= 5.2x; `past_key_values`,
    its old name, warns)."""
    kv = getattr(output, "cache", None)
    return output.past_key_values if kv is None else kv


def _rows(batch: dict, s: int, e: int, n: int) -> dict:
    """Rows s:e of a candidate batch of n rows (per-row ECG/page inputs sliced alike)."""
    return {k: v[s * (v.shape[0] // n) : e * (v.shape[0] // n)] for k, v in batch.items()}


def _token_logprobs(model, batch: dict, with_ids: bool = False) -> list:
    """Per row, log p of each token that has a label (with_ids: and the tokens). The LM head and
    log-softmax run only where a row's next token is labelled: the backbone keeps the positions
    that predict one in some row (logits_to_keep, the union over the batch), and the LM head is
    handed the hidden states of only the (row, position) pairs that do (_supervised_pairs). A
    real vocabulary (262k for Gemma) makes each position's logits costly, and answers of unequal
    length leave much of the union padding (a findings list's candidates: 40% of it)."""
    labels = batch.pop("labels")
    pos = (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)
    target = labels[:, pos + 1]
    keep = target != -100
    with _supervised_pairs(model, keep) as picked:
        logits = model(**batch, logits_to_keep=pos).logits
    logits = logits[0] if picked() else logits[keep]  # [pairs, vocab], row-major
    lp = torch.log_softmax(logits.float(), dim=-1)
    tok_lp = lp.gather(-1, target[keep][:, None].to(lp.device)).squeeze(-1).tolist()
    out: list[list[float]] = [[] for _ in range(labels.shape[0])]
    for r, v in zip(keep.nonzero()[:, 0].tolist(), tok_lp, strict=True):  # row-major: in order
        out[r].append(v)
    if not with_ids:
        return out
    ids: list[list[int]] = [[] for _ in range(labels.shape[0])]
    for r, t in zip(keep.nonzero()[:, 0].tolist(), target[keep].tolist(), strict=True):
        ids[r].append(t)
    return list(zip(ids, out, strict=True))


@contextmanager
def _supervised_pairs(model, keep: torch.Tensor):
    """While active, the model's LM head is given only the hidden states [1, pairs, d] of the
    True entries of `keep` [B, K] (row-major) when it is called on [B, K, d] (the kept positions);
    whatever the backbone does to the logits after its head (Gemma's soft-capping) still applies.
    Yields a function that tells whether it did; if not (no output embeddings, another shape),
    the logits are the full [B, K, vocab]. Written by hand: transformers keeps positions, not
    (row, position) pairs."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    done: list[bool] = []

    def pre(module, args):
        h = args[0] if args else None
        if done or h is None or h.dim() != 3 or tuple(h.shape[:2]) != tuple(keep.shape):
            return None
        done.append(True)
        return (h[keep.to(h.device)][None], *args[1:])

    handle = head.register_forward_pre_hook(pre) if isinstance(head, torch.nn.Module) else None
    try:
        yield lambda: bool(done)
    finally:
        if handle is not None:
            handle.remove()


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
    # a model that thinks first (processor.think_tokens) gets that many more tokens, and only the
    # answer after its "</think>" is scored (the reasoning is kept beside it)
    think = int(getattr(collator.proc, "think_tokens", 0) or 0)
    cap = (max_new_tokens or bench.max_new_tokens) + think

    def answers(preds: list[str]) -> list[str]:
        out = []
        for rec, p in zip(recs, preds, strict=True):
            reasoning, answer = split_reasoning(p)
            if reasoning is not None:
                rec["reasoning"] = reasoning
            out.append(answer)
        return out

    if "generate" in bench.methods:
        preds = answers(generate_batch(model, processor, collator, rows, cap))
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
    if "list_prob" in bench.methods:
        preds = [rec.get("prediction") for rec in recs]
        if any(p is None for p in preds):  # the greedy list is kept as the prediction
            preds = answers(generate_batch(model, processor, collator, rows, cap))
            for rec, p in zip(recs, preds, strict=True):
                rec["prediction"] = p
        for rec, sc in zip(
            recs, list_scores(model, collator, rows, preds, 4 * batch_size), strict=True
        ):
            rec["label_scores_list"] = sc
    return recs


def list_scores(model, collator: EcgCollator, rows: list[dict], preds: list[str], batch_size: int) -> list[dict[str, float]]:  # fmt: skip
    """Per row, p(label is the next item | the greedy list's items before it) for every label:
    the candidate answer "<items before>; <label>" is scored against "<items before>" alone, and
    the tokens after their common prefix (the separator and the label), less the end of turn,
    are summed. The end of turn's length comes from an empty answer (only the template's tokens
    are supervised there)."""
    items, owner, bases = [], [], {}
    for i, (r, pred) in enumerate(zip(rows, preds, strict=True)):
        labels = option_labels(r["options"])
        got = set(match_options(pred, labels) or [])
        for j, label in enumerate(labels):
            before = join_answer([x for x in labels[:j] if x in got])
            if (i, before) not in bases:
                bases[(i, before)] = len(items)
                items.append(_with_turns(r, None, before))
                owner.append(None)
            items.append(_with_turns(r, None, join_answer([before, label]) if before else label))
            owner.append((i, label, bases[(i, before)]))
    items.append(_with_turns(rows[0], None, ""))
    scored = token_logprobs(model, collator, items, batch_size, with_ids=True)
    tail = len(scored[-1][0])  # the end of turn: what an empty answer supervises
    out: list[dict[str, float]] = [{} for _ in rows]
    for own, (ids, lp) in zip(
        owner, scored, strict=False
    ):  # (the last, the empty answer: no owner)
        if own is not None:
            i, label, b = own
            out[i][label] = float(np.exp(sum(lp[next_item_span(ids, scored[b][0], tail)])))
    return out


def next_item_span(ids: list[int], base: list[int], tail: int) -> slice:
    """The supervised tokens of a list answer that its shorter base answer (the items before)
    lacks: after their common prefix, up to the end of turn (`tail` tokens, in both)."""
    base = base[: len(base) - tail]
    k = 0
    while k < min(len(base), len(ids) - tail) and ids[k] == base[k]:
        k += 1
    return slice(k, len(ids) - tail)
