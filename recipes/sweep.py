"""A small measured sweep: one recipe, a setting or two changed per arm; each arm trained
(recipes/sft.py), scored with the ECG and with the ECG blanked (eval/run.py --ablation), and set
beside the baseline question by question (the paired bootstrap of eval/compare.py).

    python recipes/sweep.py --config recipes/configs/gemma3_270m_lora.yaml --out runs/sweep \\
        --arm r64 lora.r=64 lora.alpha=128 --arm lr1e-3 train.learning_rate=1e-3 \\
        --benchmarks ecgqa,rhythm,mcq --limit 40 --unlimited ecgqa \\
        data.path=runs/gemma/instruct model.init_from=runs/gemma/align/final \\
        model.ecg_weights=runs/gemma/ecg_encoder/ecg_encoder.safetensors

The positional KEY=VALUE settings (as recipes/sft.py takes them) apply to every arm; each --arm
NAME KEY=VALUE ... adds its own after them. The baseline is the shared settings alone, trained as
the arm "baseline", or an eval/run.py folder of that recipe already made (--baseline-eval DIR;
the Gemma quickstart's runs/gemma/eval is one). Everything lands in OUT/NAME/{sft,eval}; a re-run
reuses finished arms, resumes an unfinished one and trains again an arm whose settings changed.
OUT/sweep.md and OUT/sweep.json hold, per arm and benchmark, the score, the blank ECG's, the
margin over it and the difference from the baseline, both with paired 95% intervals, and the
training time and validation loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from quickstart import run, train_stage  # this folder's stage runner: reuse, resume, retrain

from ecgllm.atomic import Stamp, write_text
from ecgllm.evaluation.sweep import BASELINE, arm_scores, parse_arms, sweep_table
from ecgllm.train.config import ConfigError, load_config

HERE = Path(__file__).resolve().parent


def evaluate_arm(stage: Path, data: str, out: Path, eval_args: list[str]) -> None:
    """eval/run.py on a trained arm, with the blank-ECG ablation; reused when it is newer than the
    arm's training and was run with the same options."""
    final = stage / "final"
    if (stage / "base").exists() and (final / "adapter").exists():
        model = ["--model", str(stage / "base"), "--adapter", str(final / "adapter")]
    elif (final / "model").exists():  # lora.mode full
        model = ["--model", str(final / "model")]
    else:
        sys.exit(
            f"sweep: {stage} saved no model eval/run.py can load (a LoRA adapter beside a saved "
            "base/, or final/model): sweep a LoRA stage whose base is saved (a frozen pretrained "
            "ECG encoder or random-init parts, as in the shipped configs) or lora.mode=full"
        )
    stamp = Stamp(out / "sweep_eval.json")
    want = {
        "args": eval_args,
        "data": data,
        "trained": (stage / "train_result.json").stat().st_mtime_ns,
    }
    done = [out / "results.json", out / "blank_ecg" / "results.json"]
    if stamp.matches(want) and all(p.exists() for p in done):
        print(f"      reusing {out}")
        return
    run([str(HERE.parent / "eval" / "run.py"), *model, "--processor", str(final), "--data", data,
         "--out", str(out), "--ablation", "--no-report", *eval_args], f"evaluation of {stage.parent.name}")  # fmt: skip
    stamp.write(want)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="the recipe every arm starts from")
    ap.add_argument("--out", required=True, help="the sweep's folder (an arm per subfolder)")
    ap.add_argument("--arm", nargs="+", action="append", metavar="NAME KEY=VALUE",
                    help="an arm: its name, then the settings it changes (repeat for more arms)")  # fmt: skip
    ap.add_argument("--baseline-eval", default=None,
                    help="an eval/run.py --ablation folder of the recipe with the shared settings "
                    "(default: train it as the arm 'baseline')")  # fmt: skip
    ap.add_argument("--data", default=None,
                    help="the built data to score on (default: the recipe's data.path)")  # fmt: skip
    ap.add_argument("--benchmarks", default=None, help="eval/run.py --benchmarks")
    ap.add_argument("--limit", type=int, default=None, help="eval/run.py --limit")
    ap.add_argument("--unlimited", default=None, help="eval/run.py --unlimited")
    ap.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE settings of every arm")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    config = Path(a.config).resolve()
    try:
        arms = parse_arms(a.arm)
        # every arm's settings are checked before the first one trains
        cfgs = {name: load_config(config, [*a.overrides, *extra]) for name, extra in
                [(BASELINE, []), *arms.items()]}  # fmt: skip
    except (ValueError, ConfigError) as e:
        ap.error(str(e))
    placed = [
        o for o in [*a.overrides, *(o for x in arms.values() for o in x)] if o.startswith("output.")
    ]
    if placed:
        ap.error(f"{placed[0]}: the sweep places every arm's output itself (OUT/NAME/sft)")
    data = a.data or cfgs[BASELINE].data.path
    if not isinstance(data, str):
        ap.error(
            f"the recipe trains on several datasets ({data}): give the one to score on with --data"
        )
    baseline = Path(a.baseline_eval) if a.baseline_eval else None
    if baseline is not None and not (baseline / "samples.jsonl").exists():
        ap.error(
            f"--baseline-eval {baseline}: no samples.jsonl there (an eval/run.py output folder?)"
        )
    eval_args = [*(["--benchmarks", a.benchmarks] if a.benchmarks else []),
                 *(["--limit", str(a.limit)] if a.limit else []),
                 *(["--unlimited", a.unlimited] if a.unlimited else [])]  # fmt: skip
    out = Path(a.out)
    todo = ([] if baseline else [(BASELINE, [])]) + list(arms.items())
    trained: dict[str, dict] = {}
    for k, (name, extra) in enumerate(todo, 1):
        print(
            f"[{k}/{len(todo)}] arm {name}: {' '.join(extra) or 'the shared settings'}", flush=True
        )
        inputs = [p for p in (Path(data) / "build_report.json",) if p.exists()]
        trained[name] = train_stage("sft", str(config), out / name, [*a.overrides, *extra], inputs)
        evaluate_arm(out / name / "sft", data, out / name / "eval", eval_args)
    baseline = baseline or out / BASELINE / "eval"
    result = {"config": str(config), "shared": a.overrides, "baseline": str(baseline), "arms": {}}
    # the baseline's own row (its blank-ECG margin) also when it was evaluated before the sweep
    evals = {BASELINE: baseline, **{name: out / name / "eval" for name in arms}}
    for name, run_dir in evals.items():
        scores = arm_scores(baseline, run_dir, a.benchmarks.split(",") if a.benchmarks else None,
                            n=a.resamples)  # fmt: skip
        result["arms"][name] = {"overrides": arms.get(name, []), "train": trained.get(name),
                                "benchmarks": scores}  # fmt: skip
    table = sweep_table(result["arms"])
    print(table)
    head = f"Sweep of {config} ({' '.join(a.overrides) or 'as it is'}); baseline: {baseline}\n\n"
    write_text(out / "sweep.md", head + table + "\n")
    write_text(out / "sweep.json", json.dumps(result, indent=1, default=float))
    rows = [
        (n, b, r)
        for n, arm in result["arms"].items()
        if n != BASELINE
        for b, r in arm["benchmarks"].items()
    ]
    up = sum(r["ci95"][0] > 0 for _, _, r in rows)
    down = sum(r["ci95"][1] < 0 for _, _, r in rows)
    print(f"swept {len(arms)} arm(s) against {baseline} on {len({b for _, b, _ in rows})} benchmark(s): "
          f"{up} score(s) above the baseline and {down} below beyond their paired 95% interval, "
          f"{len(rows) - up - down} within it, in {time.perf_counter() - t0:.0f} s -> {out / 'sweep.md'}")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
