"""Small measured sweeps (recipes/sweep.py): arms of one recipe, each trained and scored, then set
beside the baseline and beside its own blank-ECG run, question by question.

    arms = parse_arms([["r64", "lora.r=64", "lora.alpha=128"], ["lr1e-3", "train.learning_rate=1e-3"]])
    rows = arm_scores("runs/sweep/baseline/eval", "runs/sweep/r64/eval")
    print(sweep_table({"r64": {"overrides": arms["r64"], "benchmarks": rows}}))

An arm's score is only worth what it reads from the ECG, so every row carries the arm's blank-ECG
score and the arm's margin over it (paired over the same questions, as eval/compare.py), beside
its difference from the baseline with that difference's paired 95% interval.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .compare import compare_runs

BASELINE = "baseline"  # the arm trained with the shared settings only
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # an arm's folder name


def parse_arms(specs: list[list[str]] | None) -> dict[str, list[str]]:
    """{name: overrides} from `--arm NAME KEY=VALUE [KEY=VALUE ...]` specs, in order. A name is a
    folder name (letters, digits, ".", "_", "-"), unique and not "baseline"; an arm changes at
    least one setting, each as KEY=VALUE."""
    arms: dict[str, list[str]] = {}
    for spec in specs or []:
        if not spec:
            raise ValueError("--arm needs a name and at least one KEY=VALUE")
        name, overrides = spec[0], list(spec[1:])
        if not _NAME.match(name) or "=" in name:
            raise ValueError(
                f"--arm {name!r}: an arm's name is a folder name (letters, digits, '.', '_', '-'), "
                "given before its KEY=VALUE settings"
            )
        if name == BASELINE:
            raise ValueError(
                f"--arm {name!r}: {BASELINE!r} is the arm of the shared settings alone"
            )
        if name in arms:
            raise ValueError(f"--arm {name!r} is given twice")
        if not overrides:
            raise ValueError(f"--arm {name!r} changes nothing: give KEY=VALUE settings after it")
        bad = [o for o in overrides if "=" not in o or o.startswith("=")]
        if bad:
            raise ValueError(f"--arm {name!r}: {bad[0]!r} is not KEY=VALUE")
        arms[name] = overrides
    if not arms:
        raise ValueError("a sweep needs at least one --arm")
    return arms


def arm_scores(baseline_eval: str | Path, arm_eval: str | Path, benchmarks: list[str] | None = None,
               n: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per benchmark, the arm's headline score, its blank-ECG score and margin over it (paired),
    and its difference from the baseline (paired): {bench: {metric, score, blank, over_blank,
    over_blank_ci95, baseline, difference, ci95, n}}. `arm_eval` and `baseline_eval` are
    eval/run.py folders of the same data; the blank columns are NaN when the arm's folder has no
    blank_ecg/ (eval/run.py --ablation)."""
    vs_base = compare_runs(baseline_eval, arm_eval, benchmarks, n=n, seed=seed)
    blank_dir = Path(arm_eval) / "blank_ecg"
    vs_blank = (
        compare_runs(blank_dir, arm_eval, list(vs_base), n=n, seed=seed)
        if (blank_dir / "samples.jsonl").exists()
        else {}
    )
    nan = float("nan")
    out: dict[str, dict[str, Any]] = {}
    for name, rows in vs_base.items():
        head = rows[0]  # the headline metric comes first
        blank = vs_blank.get(name, [None])[0]
        out[name] = {
            "metric": head["metric"],
            "score": head["b"],
            "blank": blank["a"] if blank else nan,
            "over_blank": blank["difference"] if blank else nan,
            "over_blank_ci95": blank["ci95"] if blank else [nan, nan],
            "baseline": head["a"],
            "difference": head["difference"],
            "ci95": head["ci95"],
            "n": head["n"],
        }
    return out


def _diff(d: float, ci: list[float]) -> str:
    if math.isnan(d):
        return "-"
    lo, hi = ci
    if math.isnan(lo):
        return f"{d:+.3f}"
    star = "*" if lo > 0 or hi < 0 else ""
    return f"{d:+.3f} [{lo:+.3f} {hi:+.3f}]{star}"


def sweep_table(arms: dict[str, dict[str, Any]]) -> str:
    """The sweep as a Markdown table, a row per arm and benchmark: the arm's settings, training
    seconds and validation loss, the score, the blank ECG's, the margin over it and the difference
    from the baseline, each with its paired 95% interval (* = it excludes 0). `arms`: {name:
    {"overrides": [...], "train": train_result.json or None, "benchmarks": arm_scores(...)}}."""
    lines = [
        "| arm | settings | train s | val loss | benchmark | metric | score | blank ECG | "
        "score - blank [95% CI] | arm - baseline [95% CI] | n |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, arm in arms.items():
        train = arm.get("train") or {}
        secs = f"{train['seconds']:.0f}" if train.get("seconds") is not None else "-"
        loss = f"{train['eval_loss']:.3f}" if train.get("eval_loss") is not None else "-"
        settings = " ".join(arm.get("overrides") or []) or "(the shared settings)"
        for bench, r in arm["benchmarks"].items():
            blank = "-" if math.isnan(r["blank"]) else f"{r['blank']:.3f}"
            diff = "-" if name == BASELINE else _diff(r["difference"], r["ci95"])
            lines.append(
                f"| {name} | `{settings}` | {secs} | {loss} | {bench} | {r['metric']} | "
                f"{r['score']:.3f} | {blank} | {_diff(r['over_blank'], r['over_blank_ci95'])} | "
                f"{diff} | {r['n']} |"
            )
    return "\n".join(lines)
