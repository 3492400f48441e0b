"""Candidate scoring: one pass over a sample's shared prompt, then each verify question's rest
once for its yes and its no, the LM head only at the supervised (row, position) pairs (ours)
against one pass per candidate with the LM head at every position some row of the pass needs
(the baseline, what evaluation did before session 28), in the same process on the same rows.

    python bench/scoring.py                  # the tiny default model
    python bench/scoring.py --gemma          # + Gemma 3 270M from the PyPI GGUF (needs .[gemma])

For each model: the detection questions of a small simulated build (every label a candidate
answer, as `list_prob` scores them; then its P(yes) verify pair per label, as `yes_prob` does),
seconds per question both ways, the ratio, and the largest difference of the log-probabilities
(the two must agree up to float rounding). Rows with signal and page, the tiny ECG encoder and
vision tower (the Gemma recipe's); the models are untrained: this measures time only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ecgllm.data import BuildConfig, build_dataset
from ecgllm.data.collator import EcgCollator
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.data.tasks import VERIFY
from ecgllm.evaluation.answer import _with_turns, option_labels, token_logprobs
from ecgllm.model import build_model
from ecgllm.model.factory import TINY_ECG, TINY_SIGLIP
from ecgllm.signal.synthetic_db import build_database


def per_candidate(model, col: EcgCollator, items: list[dict], batch_size: int) -> list:
    """The baseline: every candidate a whole pass (prompt and answer), batch_size rows a pass, the
    LM head at the union of the pass's supervised positions for every row."""
    out: list = []
    for s in range(0, len(items), batch_size):
        batch = col.candidate_batch(items[s : s + batch_size])
        labels = batch.pop("labels")
        pos = (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)
        logits = model(**batch, logits_to_keep=pos).logits
        target = labels[:, pos + 1]
        keep = target != -100
        lp = torch.log_softmax(logits[keep].float(), -1).gather(-1, target[keep][:, None])[:, 0]
        rows = keep.nonzero()[:, 0].tolist()
        out += [
            [v for r, v in zip(rows, lp.tolist(), strict=True) if r == i]
            for i in range(len(labels))
        ]
    return out


def run(name: str, model, proc, rows: list[dict], batch_size: int) -> None:
    model.eval()
    col = EcgCollator(proc)
    forms = {
        "label list": [_with_turns(r, None, lab) for r in rows for lab in option_labels(r["options"])],
        "P(yes) pairs": [_with_turns(r, VERIFY.format(label=lab), a) for r in rows
                         for lab in option_labels(r["options"]) for a in ("yes", "no")],
    }  # fmt: skip
    for form, items in forms.items():
        with torch.no_grad():
            per_candidate(model, col, items[:2], batch_size)  # warm-up (allocations, kernels)
            t = time.perf_counter()
            base = per_candidate(model, col, items, batch_size)
            t_base = time.perf_counter() - t
            t = time.perf_counter()
            ours = token_logprobs(model, col, items, batch_size)
            t_ours = time.perf_counter() - t
        diff = max(
            abs(a - b) for x, y in zip(base, ours, strict=True) for a, b in zip(x, y, strict=True)
        )
        print(f"{name} {form}: {len(rows)} questions, {len(items)} candidates: a pass per candidate "
              f"{t_base / len(rows):.2f} s/question, shared prompt {t_ours / len(rows):.2f} s/question "
              f"({t_base / t_ours:.1f}x); max |log p difference| {diff:.1e}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--gemma", action="store_true", help="also the real Gemma 3 270M (offline GGUF package)"
    )
    ap.add_argument("--questions", type=int, default=4, help="detection questions scored")
    ap.add_argument(
        "--batch-size", type=int, default=32, help="candidates a pass (evaluation: 4 x 8)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, data = Path(tmp) / "sim", Path(tmp) / "instruct"
        build_database(db, n=60, seed=3, workers=1, progress=False)
        build_dataset(BuildConfig(source="synthetic", root=str(db), out=str(data)), progress=False)
        ds = EcgInstructionDataset(data, "test")
        idx = [i for i, t in enumerate(ds.samples["task"]) if t == "detect"][: args.questions]
        rows = [ds[i] for i in idx]
        torch.manual_seed(0)
        model, proc = build_model(vision=TINY_SIGLIP, ecg=TINY_ECG)
        run("tiny", model, proc, rows, args.batch_size)
        if args.gemma:
            from ecgllm.model.gguf import gemma3_270m

            model, proc = build_model(backbone=str(gemma3_270m()), vision=TINY_SIGLIP, ecg=TINY_ECG)
            run("gemma-3-270m", model, proc, rows, args.batch_size)
    print("done: candidate scoring timed both ways (see the ratios above)")


if __name__ == "__main__":
    main()
