"""Two evaluation runs of the same questions compared: B minus A per benchmark, with a paired
bootstrap interval (eval/compare.py).

    res = compare_runs("runs/default/eval", "runs/grpo/eval")  # {bench: [{metric, a, b, difference, ci95, n}]}
    print(compare_table(res, "SFT", "GRPO"))

Each run's intervals in results.json resample its own answers; two runs' intervals overlapping
says little about their difference, since both answered the same questions. Here the questions
both runs answered (matched by benchmark and sample id in their samples.jsonl) are resampled
together, the benchmark's scorer is applied to each run's answers on the same resample, and the
interval is the percentile interval of the differences (as metrics.scores.bootstrap_ci, per
run). An interval that excludes 0 is a difference the questions show, not one seed's.

Scores are recomputed from samples.jsonl with the benchmark's scorer (ecgllm.evaluation.scoring),
so they equal results.json's for runs scored on the same questions; a run evaluated with
--calibrate is compared on its raw label scores (the calibration is fitted per run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..benchmarks import load_benchmark
from .scoring import SCORERS

# metrics compared besides each benchmark's headline, when both runs have them
EXTRA_METRICS = ("accuracy_generate",)


def read_answers(run: str | Path) -> dict[str, dict[str, dict]]:
    """{benchmark: {sample id: record}} from a run folder's samples.jsonl (the validation answers
    that --calibrate keeps there, "<bench>@validation", are left out)."""
    path = Path(run) / "samples.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (an eval/run.py output folder?)")
    out: dict[str, dict[str, dict]] = {}
    for k, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash (eval/run.py redoes it on a re-run)
        name, sid = r.get("benchmark"), r.get("id")
        if not name or sid is None:
            raise ValueError(f"{path}:{k}: a record without benchmark or id")
        if "@" not in name:
            out.setdefault(name, {})[sid] = r
    return out


def paired_difference(bench, recs_a: list[dict], recs_b: list[dict], metric: str | None = None,
                      n: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:  # fmt: skip
    """B minus A on the benchmark's headline metric (or `metric`), recs_a[i] and recs_b[i] being
    the two runs' answers to the same question: {"a", "b", "difference", "ci95", "n"}. Resamples
    whose metric is undefined in either run (an AUC with one class) are left out."""
    if len(recs_a) != len(recs_b):
        raise ValueError(f"{bench.name}: {len(recs_a)} answers against {len(recs_b)}: not paired")
    metric = metric or bench.metric
    scorer = SCORERS[bench.scorer]

    def value(recs):
        return float(scorer(bench, recs).get(metric, float("nan"))) if recs else float("nan")

    a, b = value(recs_a), value(recs_b)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n if len(recs_a) > 1 else 0):
        idx = rng.integers(0, len(recs_a), len(recs_a))
        d = value([recs_b[i] for i in idx]) - value([recs_a[i] for i in idx])
        if not math.isnan(d):
            diffs.append(d)
    ci = (
        [float(np.quantile(diffs, alpha / 2)), float(np.quantile(diffs, 1 - alpha / 2))]
        if diffs
        else [float("nan"), float("nan")]
    )
    return {"metric": metric, "a": a, "b": b, "difference": b - a, "ci95": ci, "n": len(recs_a)}


def compare_runs(run_a: str | Path, run_b: str | Path, benchmarks: list[str] | None = None,
                 n: int = 1000, seed: int = 0, progress: bool = False) -> dict[str, list[dict]]:  # fmt: skip
    """Per benchmark both runs answered (or `benchmarks`), the paired difference of its headline
    metric and of EXTRA_METRICS both runs have: {bench: [paired_difference, ...]}. The same sample
    id must carry the same gold answer in both runs (else they were built from different data)."""
    ans_a, ans_b = read_answers(run_a), read_answers(run_b)
    names = benchmarks or sorted(set(ans_a) & set(ans_b))
    if not names:
        raise ValueError(f"{run_a} and {run_b} answered no benchmark in common")
    from tqdm.auto import tqdm

    out: dict[str, list[dict]] = {}
    for name in tqdm(names, desc="paired bootstrap", unit="benchmark", disable=not progress):
        for run, ans in ((run_a, ans_a), (run_b, ans_b)):
            if name not in ans:
                raise ValueError(f"{run}: no answers to the benchmark {name!r}")
        ids = sorted(set(ans_a[name]) & set(ans_b[name]))
        if not ids:
            raise ValueError(f"{name}: the two runs answered no question in common")
        for sid in ids:
            if ans_a[name][sid].get("answer") != ans_b[name][sid].get("answer"):
                raise ValueError(
                    f"{name}: sample {sid} has another gold answer in {run_b} than in {run_a} "
                    "(runs on different data cannot be paired)"
                )
        bench = load_benchmark(name)
        ra, rb = [ans_a[name][i] for i in ids], [ans_b[name][i] for i in ids]
        rows = [paired_difference(bench, ra, rb, n=n, seed=seed)]
        have = [SCORERS[bench.scorer](bench, r) for r in (ra, rb)]
        for m in EXTRA_METRICS:
            if m != bench.metric and all(m in h for h in have):
                rows.append(paired_difference(bench, ra, rb, metric=m, n=n, seed=seed))
        out[name] = rows
    return out


def compare_table(res: dict[str, list[dict]], name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as a text table: benchmark, metric, A, B, B - A [95% interval], n; a star
    marks an interval that excludes 0."""
    head = f"{name_b} - {name_a}"
    w = max(10, len(head))
    lines = [f"{'benchmark':14s} {'metric':22s} {name_a:>8s} {name_b:>8s} {head:>{w}s} "
             f"{'95% CI (paired)':>17s} {'n':>5s}"]  # fmt: skip
    for name, rows in res.items():
        for r in rows:
            lo, hi = r["ci95"]
            ci = f"[{lo:+.3f} {hi:+.3f}]" if not math.isnan(lo) else "-"
            star = "*" if not math.isnan(lo) and (lo > 0 or hi < 0) else " "
            lines.append(f"{name:14s} {r['metric']:22s} {r['a']:8.3f} {r['b']:8.3f} {r['difference']:+{w}.3f} "
                         f"{ci:>17s}{star} {r['n']:5d}")  # fmt: skip
    return "\n".join(lines)
