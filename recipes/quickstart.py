"""The main job on the embedded default: from nothing to a trained, evaluated, exported ECG model.

    python recipes/quickstart.py --out runs/default          # what `make demo` runs (~23 min + installs, 2 cores)
    python recipes/quickstart.py --out runs/gemma --backbone offline:gemma3-270m   # real 270M LLM, ~75 min
    python recipes/quickstart.py --out runs/tokens --route tokens   # the ECG as tokens in the vocabulary

Steps, each reused when re-run (and resumed when interrupted):
 1. simulate a PTB-XL-layout database (labels, intervals and noise known), read it back through
    the PTB-XL reader, measure it and compare with the truth;
 2. build the instruction data: signals + rendered paper pages, every task family;
 3. pretrain the ECG encoder on the statements and intervals of a larger signal-only simulated
    set (--encoder-records, other patients than the main database's);
 4. train in two stages with recipes/sft.py: align (LLM frozen; projectors learn), then LoRA SFT;
 5. run every benchmark on the held-out split, and again with the ECG blanked (signal zeroed,
    page white) and, for a model given expert features (the tiny default's SFT), with only the
    measurements' text left; report.html;
 6. ask the same model about real records it never saw (--real, by default the shared LUDB and
    PhysioNet/CinC Challenge records when present): rhythm and findings, with the same ablations;
 7. merge and export a Hub-ready folder, verified by a reload in a fresh process;
 8. print the tables: per benchmark the score, the chance level and the ablations' scores.
Optional (--grpo STEPS): after SFT, GRPO with verifiable rewards (recipes/grpo.py, settings in
GRPO_ARGS), evaluated like SFT and printed beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from ecgllm.atomic import Stamp
from ecgllm.cli import source_dir_pairs
from ecgllm.data import BuildConfig, build_dataset
from ecgllm.data.tasks import CHECK_TASKS, TASKS
from ecgllm.signal import PTBXL, measure, standardize
from ecgllm.signal.simulate import SIMULATOR_VERSION, rhythm_mix
from ecgllm.signal.synthetic_db import build_database

HERE = Path(__file__).resolve().parent
TOL = {"hr_bpm": 2.0, "pr_ms": 20.0, "qrs_ms": 12.0, "qt_ms": 25.0}


# everything made from the simulated database, in pipeline order
DERIVED = ("instruct", "sim_encoder", "encoder_data", "ecg_encoder", "ecg_tokenizer", "align", "forecast",
           "sft", "eval", "eval_real", "export", "grpo", "eval_grpo")  # fmt: skip
# the real records shared beside the project (LUDB, PhysioNet/CinC 2021), if present
SHARED_REAL = HERE.parents[1] / "shared" / "data" / "real"
SHIPPED_REAL = HERE.parent / "tests" / "fixtures" / "real"
DEFAULT_REAL = (("ludb", "ludb"), ("challenge", "cinc2021"))
# backbone -> (align config, SFT config, samples per benchmark): every training setting lives in the
# YAML files under recipes/configs; the quickstart only points them at this run's folders
PRESETS = {
    "tiny": ("tiny_cpu_align.yaml", "tiny_cpu.yaml", None),
    "offline:gemma3-270m": ("gemma3_270m_align.yaml", "gemma3_270m_lora.yaml", 40),
}
# benchmarks a preset's evaluation scores on the whole test split beside its samples per benchmark
# (unless --eval-limit is given): ECG-QA's margin over the blank ECG needs every question (40 give
# an interval of +-0.15)
WHOLE_SPLIT = {"offline:gemma3-270m": ("ecgqa",)}
# the tokenizer route (--route tokens): the ECG read as tokens in the LLM's vocabulary; stage 1
# learns them by forecasting (the counterpart of align), stage 2 is the same SFT
TOKEN_PRESETS = {"tiny": ("tiny_cpu_tokens_forecast.yaml", "tiny_cpu_tokens.yaml", None)}


def tokenizer_step(out: Path, data: Path) -> Path:
    """The ECG tokenizer learned on the training split (data_builders/ecg_tokenizer.py), again
    when the data changed; prints its round-trip error."""
    tok = out / "ecg_tokenizer"
    stamp = Stamp(tok / "inputs.json")
    want = {str(data / "build_report.json"): (data / "build_report.json").stat().st_mtime_ns}
    if stamp.matches(want) and (tok / "round_trip.json").exists():
        r = json.loads((tok / "round_trip.json").read_text())
        print(
            f"      reusing {tok}: round trip RMSE {r['rmse_mv']:.3f} mV, {r['tokens_per_lead']:.0f} tokens per lead"
        )
    else:
        run([str(HERE.parent / "data_builders" / "ecg_tokenizer.py"), "--data", str(data), "--out", str(tok)],
            "ECG tokenizer")  # fmt: skip
        stamp.write(want)
    return tok


def simulate_step(out: Path, n: int, seed: int, workers: int, rhythms: str) -> Path:
    root = out / "sim"
    stamp = Stamp(root / "simulation.json")
    want = {"n": n, "seed": seed, "rhythms": rhythms, "simulator": SIMULATOR_VERSION}
    if stamp.matches(want) and (root / "ptbxl_database.csv").exists():
        print(f"[1/8] simulated database: reusing {root}")
        return root
    stale = [out / d for d in DERIVED if (out / d).exists()]
    if stale:  # built from another database: none of it may be reused
        print(f"[1/8] the simulation settings changed ({want}); removing what was built from the old database: "
              + ", ".join(str(p) for p in stale))  # fmt: skip
        for p in stale:
            shutil.rmtree(p)
    if root.exists():
        shutil.rmtree(root)
    s = build_database(root, n=n, seed=seed, workers=workers, rhythms=rhythms)
    stamp.write(want)
    print(
        f"[1/8] simulated {s['records']} records of {s['patients']} patients in {s['seconds']:.1f} s -> {root}"
    )
    return root


def measure_step(root: Path, limit: int = 200) -> dict:
    """Read the first `limit` records back through the PTB-XL reader, standardize and measure
    them against the simulator's truth (the build step reads every record again)."""
    db = PTBXL(root, sampling_rate=500, rejects_path=str(root.parent / "rejects.csv"))
    truth = {
        json.loads(line)["ecg_id"]: json.loads(line)
        for line in open(root / "simulation_truth.jsonl")
    }
    within: dict[str, list[bool]] = {k: [] for k in TOL}
    supers: Counter = Counter()
    flagged = 0
    n = min(limit, len(db))
    for rec in tqdm(islice(db.records(), n), total=n, desc="read+measure", unit="rec"):
        rec = standardize(rec)
        flagged += not rec.meta["quality"]["ok"]
        supers.update(db.labels(rec, "superdiagnostic") or ["(none)"])
        t, m = truth[int(rec.record_id)], measure(rec)
        if t["noise"]:
            continue
        for k, tol in TOL.items():
            if t[k] is not None:
                within[k].append(m[k] is not None and abs(m[k] - t[k]) <= tol)
    splits = db.patients_by_split()
    overlap = (
        (splits["train"] & splits["test"])
        | (splits["train"] & splits["validation"])
        | (splits["validation"] & splits["test"])
    )
    return {
        "db": db,
        "within": within,
        "supers": supers,
        "flagged": flagged,
        "overlap": overlap,
        "splits": splits,
        "measured": n,
    }


def real_sources(spec: list[str] | None) -> list[tuple[str, str]]:
    """--real SOURCE=DIR pairs; by default the shared real records when present, else the few
    real records shipped with the tests (3 LUDB, 4 Challenge: a smoke check, not a score);
    "none": no real check."""
    if spec is None:
        found = [(s, str(root / d)) for s, d in DEFAULT_REAL
                 for root in [SHARED_REAL if (SHARED_REAL / d).is_dir() else SHIPPED_REAL] if (root / d).is_dir()]  # fmt: skip
        if any(Path(d).is_relative_to(SHIPPED_REAL) for _, d in found):
            print(f"      note: {SHARED_REAL} not found: the real-records check uses the few records shipped "
                  "with the tests (a smoke check, not a score); --real SOURCE=DIR points it at yours")  # fmt: skip
        return found
    if spec == ["none"]:
        return []
    try:
        return source_dir_pairs(spec, must_exist=True)
    except ValueError as e:
        sys.exit(f"quickstart: {e}")


def encoder_data(out: Path, n: int, seed: int, workers: int) -> Path:
    """A signal-only dataset of `n` more simulated records (seed + 1: other patients than the main
    database's) for the ECG encoder's pretraining: the encoder learns rate and rhythm far better
    from 3000 records than from the main database's 600 (LUDB rhythm balanced accuracy of the
    stage-0 encoder 0.72 -> 0.81), and the signal-only build costs no page rendering."""
    root, data = out / "sim_encoder", out / "encoder_data"
    stamp = Stamp(root / "simulation.json")
    want = {"n": n, "seed": seed + 1, "rhythms": "balanced", "simulator": SIMULATOR_VERSION}
    if not (stamp.matches(want) and (data / "samples").exists()):
        for p in (root, data):
            if p.exists():
                shutil.rmtree(p)
        build_database(root, n=n, seed=seed + 1, workers=workers, rhythms="balanced")
        stamp.write(want)
    b = build_dataset(BuildConfig(source="synthetic", root=str(root), out=str(data), workers=workers,
                                  seed=seed, tasks=("report",), modalities=("signal",)))  # fmt: skip
    print(f"      encoder data: {b['records']} records (signal only) -> {data}")
    return data


def real_tables(
    ev: Path, real: list[tuple[str, str]], sim: Path | None = None, text: bool = False
) -> None:
    """The real-records table: per source, rhythm balanced accuracy, AF sensitivity/specificity and
    findings AUC with the blank-ECG columns, then each rhythm's recall; first the same questions on
    the simulated test split (`sim`: its eval folder), the gap between the rows is sim-to-real."""
    print()
    print(
        "real records (never seen in training; the model was trained on simulated ECGs only), after the same"
    )
    print("questions on the simulated test split:")
    # `text`: a model given expert features also has the text-only ablation (the ECG blanked, its
    # measurements' text kept): the "text" columns (a folder left from an earlier model is not read)
    print(f"{'source':10s} {'rhythm bal.acc':>14s} {'95% CI':>13s} {'blank':>6s}" + (f" {'text':>6s}" if text else "")
          + f" {'AF sens':>7s} {'AF spec':>7s} {'blank':>11s} {'findings AUC':>12s} {'blank':>6s}"
          + (f" {'text':>6s}" if text else "") + f" {'n':>4s}")  # fmt: skip
    details = []
    rows = [("simulated", sim)] if sim is not None and (sim / "results.json").exists() else []
    rows += [(source, ev / source) for source, _ in real]
    for source, d in rows:
        if "real_rhythm" not in json.loads((d / "results.json").read_text())["results"]:
            continue  # (a simulated split built without the rhythm question)
        res = json.loads((d / "results.json").read_text())["results"]
        blank = json.loads((d / "blank_ecg" / "results.json").read_text())["results"]
        r, rb = res["real_rhythm"], blank["real_rhythm"]
        f, fb = res.get("real_findings", {}), blank.get("real_findings", {})
        fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "  - "  # noqa: E731
        t = d / "text_only" / "results.json"
        rt = json.loads(t.read_text())["results"] if text and t.exists() else {}
        t_rhythm = f" {rt['real_rhythm']['balanced_accuracy']:6.3f}" if rt else f" {'-':>6s}"
        t_find = (
            f" {rt.get('real_findings', {}).get('value', float('nan')):6.3f}"
            if rt
            else f" {'-':>6s}"
        )
        lo, hi = r["ci95"]
        print(f"{source:10s} {r['balanced_accuracy']:14.3f} {f'{lo:.2f}-{hi:.2f}':>13s} {rb['balanced_accuracy']:6.3f}"
              + (t_rhythm if text else "") + f" {fmt(r.get('sensitivity')):>7s} {fmt(r.get('specificity')):>7s} "
              f"{fmt(rb.get('sensitivity')) + '/' + fmt(rb.get('specificity')):>11s} "
              f"{f.get('value', float('nan')):12.3f} {fb.get('value', float('nan')):6.3f}"
              + (t_find if text else "") + f" {r['n']:4d}")  # fmt: skip
        details.append(f"  {source}: recall " + ", ".join(
            f"{k} {v['recall']:.2f} (n={v['n']})" for k, v in sorted(r["recall"].items())))  # fmt: skip
    for line in details:
        print(line)


def run(cmd: list[str], what: str) -> None:
    """One pipeline step as its own process (its progress bars and summary line show as they are)."""
    print(f"      $ {' '.join(cmd[1:])}", flush=True)
    r = subprocess.run([sys.executable, *cmd])
    if r.returncode != 0:
        sys.exit(
            f"quickstart: {what} failed (exit {r.returncode}); re-run the same command to resume"
        )


def retrieval_step(out: Path, data: Path, encoder: Path) -> Path:
    """The retrieval index of the training split (data_builders/retrieval_index.py), rebuilt
    when the data or the encoder changed."""
    index = out / "retrieval"
    stamp = Stamp(index / "inputs.json")
    want = {
        str(p): p.stat().st_mtime_ns
        for p in (data / "build_report.json", encoder / "ecg_encoder.safetensors")
    }
    if stamp.matches(want) and (index / "index.json").exists():
        print(f"      reusing the retrieval index {index}")
        return index
    run([str(HERE.parent / "data_builders" / "retrieval_index.py"), "--data", str(data), "--encoder", str(encoder),
         "--out", str(index)], "retrieval index")  # fmt: skip
    stamp.write(want)
    return index


def train_stage(
    name: str, config: str, out: Path, overrides: list[str], inputs: list[Path]
) -> dict:
    """A recipes/sft.py stage: reused when finished, resumed from its last checkpoint when not;
    started again when its settings or one of its `inputs` (the encoder, the data, the stage
    before) changed."""
    stage = out / name
    done = stage / "train_result.json"
    stamp = Stamp(stage / "inputs.json")
    # the config's text too: editing the YAML file trains the stage again
    want = {
        "config": config,
        "text": (HERE / "configs" / config).read_text(),
        "overrides": overrides,
    }
    want.update({str(p): p.stat().st_mtime_ns for p in inputs})
    if stage.exists() and not stamp.matches(want):
        print(f"      {stage} was trained from other inputs or settings: training it again")
        shutil.rmtree(stage)
    if done.exists() and (stage / "final").exists():
        r = json.loads(done.read_text())
        print(f"      reusing {stage}/final ({r['steps']} steps, eval loss {r['eval_loss']:.3f})")
        return r
    resume = (
        ["train.resume_from_checkpoint=latest"] if list(stage.glob("checkpoint-*[0-9]")) else []
    )
    if stage.exists() and not resume:  # stopped before its first checkpoint: nothing to resume
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    stamp.write(want)
    run([str(HERE / "sft.py"), "--config", str(HERE / "configs" / config), f"output.dir={stage}", *overrides, *resume],
        f"training stage {name}")  # fmt: skip
    return json.loads(done.read_text())


# stage 0's objectives (recipes/pretrain_ecg_encoder.py --objective) and what each learns from
ENCODER_OBJECTIVES = {"supervised": "statements + intervals", "contrastive": "contrastive: ECG <-> report",
                      "masked": "masked spans reconstructed"}  # fmt: skip
# the optional GRPO stage (--grpo STEPS): the rewarded tasks and the settings measured in the README
GRPO_ARGS = ["--tasks", "mcq,rhythm,measure", "--prompts-per-step", "4", "--group-size", "4",
             "--learning-rate", "1e-3", "--save-steps", "50"]  # fmt: skip


def grpo_stage(out: Path, data: Path, steps: int, eval_limit: int | None) -> Path:
    """GRPO on the SFT model (recipes/grpo.py), resumed from its last checkpoint when stopped,
    trained again when SFT or the settings changed; then evaluated like SFT (with the blank-ECG
    ablation) into OUT/eval_grpo. Returns that folder."""
    sft, stage, ev = out / "sft", out / "grpo", out / "eval_grpo"
    stamp = Stamp(stage / "inputs.json")
    want = {
        "sft": (sft / "train_result.json").stat().st_mtime_ns,
        "steps": steps,
        "args": GRPO_ARGS,
    }
    if stage.exists() and not stamp.matches(want):
        print(f"      {stage} was trained from another SFT model or settings: training it again")
        shutil.rmtree(stage)
    if (stage / "grpo_result.json").exists() and (stage / "final").exists():
        print(f"      reusing {stage}/final")
    else:
        stage.mkdir(parents=True, exist_ok=True)
        stamp.write(want)
        resume = ["--resume-from-checkpoint", "latest"]
        run([str(HERE / "grpo.py"), "--model", str(sft / "base"), "--adapter", str(sft / "final" / "adapter"),
             "--processor", str(sft / "final"), "--data", str(data), "--out", str(stage), "--steps", str(steps),
             *GRPO_ARGS, *resume], "GRPO")  # fmt: skip
    trained = (stage / "grpo_result.json").stat().st_mtime
    finished = [ev / "results.json", ev / "blank_ecg" / "results.json"]
    if all(f.exists() and f.stat().st_mtime > trained for f in finished):
        print(f"      reusing {ev}")
    else:
        run([str(HERE.parent / "eval" / "run.py"), "--model", str(stage / "base"), "--adapter",
             str(stage / "final" / "adapter"), "--processor", str(stage / "final"), "--data", str(data),
             "--out", str(ev), "--ablation", *(["--limit", str(eval_limit)] if eval_limit else [])],
            "GRPO evaluation")  # fmt: skip
    return ev


def grpo_table(ev_sft: Path, ev_grpo: Path) -> None:
    """SFT beside SFT + GRPO per benchmark (headline metric with its interval; for the choice
    questions also the generated answer's accuracy, what GRPO rewards), their difference with its
    paired interval (the same questions resampled for both: ecgllm.evaluation.compare), blank ECG
    for both."""
    from ecgllm.evaluation.compare import compare_runs

    res = [json.loads((e / "results.json").read_text())["results"] for e in (ev_sft, ev_grpo)]
    names = [n for n in res[0] if n in res[1] and not n.startswith("real_")]
    diff = {
        n: {r["metric"]: r for r in rows}
        for n, rows in compare_runs(ev_sft, ev_grpo, names).items()
    }

    def paired(name: str, metric: str) -> str:
        d = diff.get(name, {}).get(metric)
        if d is None or d["ci95"][0] != d["ci95"][0]:
            return f"{'':>24s}"
        star = "*" if d["ci95"][0] > 0 or d["ci95"][1] < 0 else " "
        return f"{d['difference']:+7.3f} [{d['ci95'][0]:+.3f} {d['ci95'][1]:+.3f}]{star}"

    blank = [
        json.loads((e / "blank_ecg" / "results.json").read_text())["results"]
        for e in (ev_sft, ev_grpo)
    ]
    print()
    print(f"{'benchmark':10s} {'metric':22s} {'SFT':>7s} {'95% CI':>13s} {'+GRPO':>7s} {'95% CI':>13s} "
          f"{'GRPO - SFT [paired 95% CI]':>26s} {'blank SFT':>9s} {'blank GRPO':>10s}")  # fmt: skip
    for name in names:
        v, g = res[0][name], res[1][name]
        ci = [f"{x['ci95'][0]:.3f}-{x['ci95'][1]:.3f}" for x in (v, g)]
        print(f"{name:10s} {v['main_metric']:22s} {v['value']:7.3f} {ci[0]:>13s} {g['value']:7.3f} {ci[1]:>13s} "
              f"{paired(name, v['main_metric']):>26s} {blank[0][name]['value']:9.3f} {blank[1][name]['value']:10.3f}")  # fmt: skip
        if "accuracy_generate" in v and "accuracy_generate" in g:
            b = [x[name].get("accuracy_generate", float("nan")) for x in blank]
            print(f"{'':10s} {'accuracy_generate':22s} {v['accuracy_generate']:7.3f} {'':>13s} "
                  f"{g['accuracy_generate']:7.3f} {'':>13s} {paired(name, 'accuracy_generate'):>26s} "
                  f"{b[0]:9.3f} {b[1]:10.3f}")  # fmt: skip
    print("(* the paired interval excludes 0)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/default", help="working folder (default runs/default)")
    ap.add_argument("--n", type=int, default=600, help="records to simulate (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rhythms", default="balanced",
        help='simulated rhythm mix: "balanced" (default: each rhythm equally often, so rhythm '
        'questions cannot be answered by always saying sinus rhythm), "ptbxl" (SR-dominant) or "SR=0.4,AFIB=0.3,..."',
    )  # fmt: skip
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backbone", default="tiny", choices=sorted(PRESETS),
                    help="the LLM: tiny (default: random-init, minutes) or offline:gemma3-270m (~75 min); "
                         "each picks its two recipe configs (PRESETS)")  # fmt: skip
    ap.add_argument(
        "--sweep", default=None, help='robustness sweep for eval, e.g. "noise=0.1,0.3;leads=6,1"'
    )
    ap.add_argument("--stop-after", choices=["data", "train", "eval"], default=None)
    ap.add_argument(
        "--max-steps", type=int, default=None, help="cap each training stage (quick checks)"
    )
    ap.add_argument("--encoder-steps", type=int, default=1500)
    ap.add_argument("--encoder-records", type=int, default=3000,
                    help="simulated records (signal only) the ECG encoder is pretrained on (default 3000)")  # fmt: skip
    ap.add_argument("--encoder-objective", default="supervised", choices=list(ENCODER_OBJECTIVES),
                    help="stage 0: the simulated statements and intervals (default), contrastive on "
                    "the reports (zero-shot with eval/zeroshot.py) or masked spans (no labels)")  # fmt: skip
    ap.add_argument("--real", action="append", default=None, metavar="SOURCE=DIR",
                    help="real records to check the model on (default: the shared LUDB and Challenge "
                    "records in ../shared/data/real, when present); --real none skips it")  # fmt: skip
    ap.add_argument("--expert-features", default=None, choices=["none", "rhythm", "all"],
                    help="each ECG's measurements as text in the prompt, in both stages "
                    "(model.expert_features; default: the preset's configs, for the tiny default "
                    "rhythm in SFT only; none: the model reads the ECG alone)")  # fmt: skip
    ap.add_argument("--retrieve", type=int, default=0, metavar="K",
                    help="put the reports of the K most similar training ECGs in each prompt, in "
                    "training and evaluation (index: OUT/retrieval; default 0: off)")  # fmt: skip
    ap.add_argument("--grpo", type=int, default=0, metavar="STEPS",
                    help="after SFT, STEPS of GRPO with verifiable rewards (recipes/grpo.py, GRPO_ARGS), "
                    "evaluated and printed beside SFT (default 0: off)")  # fmt: skip
    ap.add_argument("--verify-questions", action="store_true",
                    help="also build and train the optional verify family (the detection benchmark's "
                    "own yes/no question per label; README: Instruction data)")  # fmt: skip
    ap.add_argument(
        "--eval-limit", type=int, default=None, help="first N samples per benchmark (quick checks)"
    )
    ap.add_argument("--route", default="encoder", choices=["encoder", "tokens"],
                    help="how the LLM reads the ECG: encoder (default: a pretrained ECG encoder's "
                    "features through a projector) or tokens (its own tokens in the LLM's vocabulary: "
                    "data_builders/ecg_tokenizer.py, a forecasting stage, then the same SFT)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.grpo and args.retrieve:
        ap.error("--grpo with --retrieve: GRPO's prompts do not carry retrieved reports yet")
    if args.route == "tokens":
        if args.backbone not in TOKEN_PRESETS:
            ap.error(f"--route tokens has configs for {sorted(TOKEN_PRESETS)} only")
        if args.retrieve or args.grpo:
            ap.error("--route tokens: --retrieve (its index is made by the ECG encoder) and --grpo "
                     "are built for the encoder route only")  # fmt: skip
    t0 = time.perf_counter()
    out = Path(args.out)
    try:
        rhythm_mix(args.rhythms)
    except ValueError as e:
        ap.error(f"--rhythms: {e}")
    root = simulate_step(out, args.n, args.seed, args.workers, args.rhythms)
    r = measure_step(root)
    db = r["db"]
    counts = Counter(e.split for e in db.entries)
    print(
        f"[2/8] read back through the PTB-XL reader, standardized and measured ({r['measured']} records):"
    )
    print(
        "      splits (strat_fold 1-8/9/10): "
        + ", ".join(
            f"{s} {counts[s]} records / {len(r['splits'][s])} patients"
            for s in ("train", "validation", "test")
        )
    )
    print(
        f"      patients in two splits: {len(r['overlap'])}; records skipped: {db.rejects.total}; quality-flagged: {r['flagged']} of {r['measured']}"
    )
    print(
        "      superdiagnostic labels: "
        + ", ".join(f"{k} {v}" for k, v in r["supers"].most_common())
    )
    print("      measured vs truth on the clean ones:")
    for k, tol in TOL.items():
        v = r["within"][k]
        print(f"        {k:7s} within {tol:>4} : {sum(v) / max(1, len(v)):6.1%} of {len(v)}")
    data = out / "instruct"
    b = build_dataset(
        # the rhythm and findings questions are those asked of the real records (eval_real): the
        # model is trained on their exact wording and six-option lists, not only on mcq's subsets
        BuildConfig(
            source="synthetic",
            root=str(root),
            out=str(data),
            workers=args.workers,
            seed=args.seed,
            tasks=(*TASKS, *CHECK_TASKS, *(["verify"] if args.verify_questions else [])),
        )  # fmt: skip
    )
    state = (
        "reused" if b.get("resumed") == "complete" else f"built in {b['seconds']['total']:.1f} s"
    )
    print(
        f"[3/8] instruction data {state}: {b['samples']} samples from {b['records']} records -> {data}"
    )
    print("      " + ", ".join(f"{k} {v}" for k, v in b["samples_by_task"].items()))
    if args.stop_after == "data":
        return
    real = real_sources(args.real)
    if args.route == "tokens":
        print(
            "[4/8] ECG tokenizer (3 leads at 50 Hz, 64 levels, BPE) learned on the training split:"
        )
        weights = tokenizer_step(out, data) / "ecg_tokenizer.json"
        common = [f"data.path={data}", f"model.ecg_tokenizer={weights.parent}"]
    else:
        print(
            f"[4/8] ECG encoder pretraining on {args.encoder_records} more simulated records "
            f"({ENCODER_OBJECTIVES[args.encoder_objective]}):"
        )
        enc_data = encoder_data(out, args.encoder_records, args.seed, args.workers)
        run([str(HERE / "pretrain_ecg_encoder.py"), "--data", str(enc_data), "--out", str(out / "ecg_encoder"),
             "--steps", str(args.encoder_steps), "--batch-size", str(min(32, max(2, args.encoder_records // 2))),
             "--objective", args.encoder_objective,
             *[f"--real={s}={d}" for s, d in real]], "ECG encoder pretraining")  # fmt: skip
        # (a batch of at most half the records: the training split holds ~80% of them)
        weights = out / "ecg_encoder" / "ecg_encoder.safetensors"
        common = [f"data.path={data}", f"model.ecg_weights={weights}"]
    if args.max_steps:
        common.append(f"train.max_steps={args.max_steps}")
    if args.expert_features is not None:
        common.append(f"model.expert_features={args.expert_features}")
    retrieval: list[str] = []  # eval/run.py's options
    if args.retrieve:
        index = retrieval_step(out, data, out / "ecg_encoder")
        common += [f"data.retrieve={args.retrieve}", f"data.retrieval_index={index}"]
        retrieval = ["--retrieve", str(args.retrieve), "--retrieval-index", str(index)]
    align_cfg, sft_cfg, eval_limit = (TOKEN_PRESETS if args.route == "tokens" else PRESETS)[
        args.backbone
    ]
    whole = WHOLE_SPLIT.get(args.backbone, ()) if args.eval_limit is None and eval_limit else ()
    args.eval_limit = args.eval_limit or eval_limit
    stage1 = "forecast" if args.route == "tokens" else "align"
    print("[5/8] training, stage 1 (" + ("forecast: the LLM learns its ECG tokens, body frozen"
          if args.route == "tokens" else "align: LLM frozen, projectors learn") + ") and stage 2 (LoRA SFT):")  # fmt: skip
    inputs = [weights, data / "build_report.json"]
    a = train_stage(stage1, align_cfg, out, common, inputs)
    s = train_stage(
        "sft",
        sft_cfg,
        out,
        [*common, f"model.init_from={out / stage1 / 'final'}"],
        [*inputs, out / stage1 / "train_result.json"],
    )
    print(f"      {stage1} loss {a['first_loss']:.2f} -> {a['last_loss']:.2f}; SFT loss {s['first_loss']:.2f} -> "
          f"{s['last_loss']:.2f}, eval loss {s['eval_loss']:.3f}")  # fmt: skip
    if args.stop_after == "train":
        return
    sft, ev, export = out / "sft", out / "eval", out / "export"
    # ablations eval/run.py --ablation writes: blank ECG, and text only for a model given expert features
    proc_cfg = json.loads((sft / "final" / "processor_config.json").read_text())
    ablations = ["blank_ecg"] + (
        ["text_only"] if proc_cfg.get("ecg_expert_features", "none") != "none" else []
    )
    blanked = "with the ECG blanked" + (
        " and with its measurements' text only" if len(ablations) > 1 else ""
    )
    print(f"[6/8] every benchmark on the held-out split, then {blanked}:")
    cmd = [str(HERE.parent / "eval" / "run.py"), "--model", str(sft / "base"), "--adapter", str(sft / "final" / "adapter"),
           "--processor", str(sft / "final"), "--data", str(data), "--out", str(ev), "--ablation", *retrieval]  # fmt: skip
    cmd += ["--sweep", args.sweep] if args.sweep else []
    trained = (sft / "train_result.json").stat().st_mtime
    finished = [ev / "results.json", *(ev / a / "results.json" for a in ablations)]
    if all(f.exists() and f.stat().st_mtime > trained for f in finished) and not args.sweep:
        print(f"      reusing {ev}")
    else:
        limits = ["--limit", str(args.eval_limit)] if args.eval_limit else []
        run(cmd + limits + (["--unlimited", ",".join(whole)] if whole else []), "evaluation")
    ev_real = out / "eval_real"
    if real:
        print(
            f"[7/8] the same model on real records it never saw (rhythm and findings), then {blanked}:"
        )
    for source, root in real:
        d = ev_real / source
        finished = [d / "results.json", *(d / a / "results.json" for a in ablations)]
        if all(f.exists() and f.stat().st_mtime > trained for f in finished):
            print(f"      reusing {d}")
            continue
        # the findings of real records are scored by the list AUC alone (the table's; P(yes) to each
        # finding's verify question, beside it in eval/run.py, doubles their time: 2.3 of 4.5 s
        # a record on Gemma, 8 of the Gemma quickstart's 75 minutes)
        run([str(HERE.parent / "eval" / "run.py"), "--model", str(sft / "base"), "--adapter", str(sft / "final" / "adapter"),
             "--processor", str(sft / "final"), "--real", root, "--source", source, "--out", str(d), "--ablation", *retrieval,
             "--skip-methods", "yes_prob", *(["--limit", str(args.eval_limit)] if args.eval_limit else [])],
            f"real-records evaluation ({source})")  # fmt: skip
    ev_grpo = None
    if args.grpo:
        print(f"      GRPO: {args.grpo} steps on the SFT model, then every benchmark again:")
        ev_grpo = grpo_stage(out, data, args.grpo, args.eval_limit)
    if args.stop_after == "eval":
        return
    print("[8/8] merge + Hub-ready export (verified by a reload in a fresh process):")
    stamp = export / "config.json"
    if stamp.exists() and stamp.stat().st_mtime > max((sft / "train_result.json").stat().st_mtime,
                                                      (ev / "results.json").stat().st_mtime):  # fmt: skip
        print(f"      reusing {export}")
    else:
        run([str(HERE / "merge_and_push.py"), "--checkpoint", str(sft / "final"), "--out", str(export),
             "--results", str(ev)], "export")  # fmt: skip
    res = json.loads((ev / "results.json").read_text())["results"]
    blank = json.loads((ev / "blank_ecg" / "results.json").read_text())["results"]
    # the text-only ablation, for a model given expert features
    t = ev / "text_only" / "results.json"
    text = json.loads(t.read_text())["results"] if "text_only" in ablations else None
    print()
    print(f"{'benchmark':10s} {'metric':20s} {'score':>7s} {'95% CI':>15s} {'chance':>7s} {'blank ECG':>9s}"
          + (f" {'text only':>9s}" if text else "") + f" {'n':>5s}")  # fmt: skip
    for name, v in res.items():
        if name.startswith("real_"):  # the real-records questions: in the table below
            continue
        lo, hi = v["ci95"]
        print(f"{name:10s} {v['main_metric']:20s} {v['value']:7.3f} {f'{lo:.3f}-{hi:.3f}':>15s} {v['chance']:7.3f} "
              f"{blank[name]['value']:9.3f}" + (f" {text[name]['value']:9.3f}" if text else "") + f" {v['n']:5d}")  # fmt: skip
    if text:
        print(
            "  (text only: the ECG blanked, its measurements kept as text in the prompt: model.expert_features)"
        )
    rep = res.get("report", {})
    if rep.get("rhythm_n"):  # the report-level rhythm check: did the generated report name it?
        print(f"  (report: the right rhythm stated in {rep['rhythm_accuracy']:.1%} of {rep['rhythm_n']} reports; "
              f"blank ECG {blank['report'].get('rhythm_accuracy', float('nan')):.1%})")  # fmt: skip
    if res.get("ecgqa", {}).get("prior") is not None:
        print(
            f"  (ecgqa: the most frequent training answer to each question scores {res['ecgqa']['prior']:.3f})"
        )
    if real:
        real_tables(ev_real, real, sim=ev, text="text_only" in ablations)
    if ev_grpo is not None:
        grpo_table(ev, ev_grpo)
    print()
    print(f"report:      {ev / 'report.html'}")
    print(f"loss curves: {out / stage1 / 'loss_curve.png'}, {sft / 'loss_curve.png'}")
    print(
        f"exported:    {export} (Hub-ready; publish with recipes/merge_and_push.py --push-to-hub ORG/NAME)"
    )
    print(
        f"done: {len(db)} records simulated -> {b['samples']} instruction samples -> trained in 2 stages -> "
        f"{len(res)} benchmarks evaluated -> exported, in {time.perf_counter() - t0:.0f} s; output in {out}"
    )


if __name__ == "__main__":
    main()
