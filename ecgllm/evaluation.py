"""Running benchmarks: batched greedy generation, streamed samples.jsonl, resumable, scored.

    results = run_benchmarks(model, processor, data_dir="runs/default/instruct", out="runs/eval",
                             benchmarks=["ecgqa", "mcq", "measure", "report"])

Each benchmark is the held-out samples of one task family scored by its definition
(ecgllm.metrics): ecgqa exact match (by question and attribute type), mcq accuracy, measure
within-tolerance rate and absolute error, report BLEU/ROUGE-L/clinical F1, detect exact match
over the label set. Every prediction is appended to samples.jsonl as soon as it exists; a rerun
skips the ids already there, so a crash loses at most one batch. results.json records metrics,
95% bootstrap intervals, counts, decoding settings, seed, model and data fingerprints, package
versions and the git commit.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_text
from .data.collator import EcgCollator
from .data.dataset import EcgInstructionDataset
from .metrics.scores import (
    bootstrap_ci,
    mcq_accuracy,
    measurement_errors,
    qa_exact_match,
    report_scores,
)

BENCHMARKS = {
    "ecgqa": "ecgqa",
    "mcq": "mcq",
    "measure": "measure",
    "report": "report",
    "detect": "detect",
}


def _fingerprint(path: str | Path) -> str:
    h = hashlib.sha256()
    p = Path(path)
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file() and f.suffix in (".json", ".safetensors", ".arrow"):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except Exception:
        return None


@torch.no_grad()
def generate_batch(
    model, processor, collator: EcgCollator, rows: list[dict], max_new_tokens: int
) -> list[str]:
    """Greedy answers to the first user turn of each row (KV cache on, left padding)."""
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        texts, ecgs, masks, images = [], [], [], []
        for r in rows:
            texts.append(
                processor.apply_chat_template(r["messages"][:1], add_generation_prompt=True)
            )
            e, m, i = collator.row_inputs(r)
            ecgs, masks, images = ecgs + e, masks + m, images + i
        batch = processor(text=texts, ecgs=ecgs or None, images=images or None)
        if masks:  # the records' own lead masks (missing leads), as in training
            batch["lead_mask"] = batch["lead_mask"] & torch.from_numpy(np.stack(masks))
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    finally:
        tok.padding_side = side


def score(bench: str, recs: list[dict]) -> dict[str, Any]:
    preds = [r["prediction"] for r in recs]
    if bench in ("ecgqa", "detect"):
        res = qa_exact_match(preds, [r["answer"] for r in recs], [r["options"] for r in recs],
                             groups=[r["question_type"] or r["attribute_type"] for r in recs])  # fmt: skip
        main = "exact_match"
    elif bench == "mcq":
        res = mcq_accuracy(preds, [r["answer"][0] for r in recs], [r["options"] for r in recs])
        main = "accuracy"
    elif bench == "measure":
        res = measurement_errors(preds, [r["value"] for r in recs], [r["tolerance"] for r in recs])
        main = "within_tolerance"
    else:
        res = report_scores(preds, [r["answer"][0] for r in recs])
        res["per_sample"] = [
            float(p.strip() == r["answer"][0].strip()) for p, r in zip(preds, recs, strict=True)
        ]
        main = "rougeL"
    per = res.pop("per_sample")
    res["main_metric"] = main
    if main != "rougeL":
        res["ci95"] = bootstrap_ci(per)
    return res


def run_benchmarks(model, processor, data_dir: str | Path, out: str | Path, benchmarks: list[str],
                   split: str = "test", limit: int | None = None, batch_size: int = 8, max_new_tokens: int = 48,
                   blank_ecg: bool = False, blank_image: bool = False, seed: int = 0, progress: bool = True,
                   model_path: str | None = None) -> dict:  # fmt: skip
    bad = [b for b in benchmarks if b not in BENCHMARKS]
    if bad:
        raise ValueError(f"unknown benchmark(s) {bad}; choose from {sorted(BENCHMARKS)}")
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = EcgInstructionDataset(data_dir, split)
    collator = EcgCollator(processor, blank_ecg=blank_ecg, blank_image=blank_image)
    path = out / "samples.jsonl"
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: it will be redone
                continue
            done[r["id"]] = r
    model.eval()
    tasks = ds.samples["task"]
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    from tqdm.auto import tqdm

    with open(path, "a") as f:
        for bench in benchmarks:
            idx = [i for i, t in enumerate(tasks) if t == BENCHMARKS[bench]][:limit]
            todo = [i for i in idx if ds.samples[i]["id"] not in done]
            bar = tqdm(
                total=len(idx), initial=len(idx) - len(todo), desc=bench, disable=not progress
            )
            for s in range(0, len(todo), batch_size):
                rows = [ds[i] for i in todo[s : s + batch_size]]
                for r, p in zip(
                    rows,
                    generate_batch(model, processor, collator, rows, max_new_tokens),
                    strict=True,
                ):
                    rec = {k: r[k] for k in ("id", "task", "question_type", "attribute_type", "options", "answer",
                                             "value", "tolerance")}  # fmt: skip
                    rec.update(benchmark=bench, prediction=p)
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    done[r["id"]] = rec
                bar.update(len(rows))
            bar.close()
            recs = [done[ds.samples[i]["id"]] for i in idx]
            results[bench] = score(bench, recs) if recs else {"n": 0}
    import accelerate
    import transformers

    report = {
        "results": results,
        "config": {"split": split, "limit": limit, "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                   "decoding": "greedy", "blank_ecg": blank_ecg, "blank_image": blank_image, "seed": seed},
        "model": {"path": model_path, "fingerprint": _fingerprint(model_path) if model_path else None},
        "data": {"path": str(data_dir), "fingerprint": _fingerprint(Path(data_dir) / "samples")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__},
        "git_commit": _git_commit(),
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    write_text(out / "results.json", json.dumps(report, indent=1, default=float))
    return report
