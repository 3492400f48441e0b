"""Score a model on held-out benchmarks: predictions streamed to samples.jsonl (resumable),
metrics with 95% bootstrap intervals and chance levels in results.json, and report.html.

    python eval/run.py --model runs/default/sft/final/model --data runs/default/instruct --out runs/eval
    python eval/run.py --model runs/x/base --adapter runs/x/final/adapter --data DIR --out DIR \\
        --benchmarks ecgqa,detect,mcq,rhythm,measure,report,ground --ablation \\
        --sweep "noise=0.05,0.2;wander=0.5,1;leads=6,3,1"
    python eval/run.py --model DIR --ecgqa-json ecgqa/ptbxl/paraphrased/test/*.json \\
        --ptbxl-root PTBXL --out DIR --benchmarks ecgqa          # official ECG-QA files as they are
    python eval/run.py --model DIR --real ludb --source ludb --out DIR --ablation   # real records

--real DIR --source ludb|challenge|ptbxl|wfdb|mimic: records the model never saw, built once into
OUT/real_data (every record a test record; the rhythm question over the six rhythms and the
simulated findings' verify questions) and scored by real_rhythm (balanced accuracy, per-class
recall, AF sensitivity/specificity) and real_findings (AUC per label). Without --benchmarks, the
benchmarks are those whose task the data has.

--ablation also runs the same model with the ECG blanked (signal zeroed, page white) into
OUT/blank_ecg; --sweep runs perturbed copies into OUT/sweep; both appear in OUT/report.html.

--fewshot N,K answers ECG-QA questions in context instead (ecgllm.evaluation.fewshot: N-way
K-shot episodes of meta-test classes, support from the training split, queries from the test
split): K-shot, zero-shot on the same queries and, with --ablation, K-shot with every ECG blanked,
for each lead subset of --fewshot-leads; OUT/fewshot.json and a table. --fewshot-adapt-steps S
adapts the fusion module on the support set instead; --fewshot-calibrate asks each query alone
and fits a per-answer bias of its scores on the support set; --fewshot-readout also fits, per
answer, weights over the frozen model's answer state (its last hidden state before the answer);
--fewshot-candidate-readout fits one weight vector over each candidate answer's own state (the
last layer's mean over its tokens), shared by all candidates. --fewshot-select scores episodes of
the meta-train classes with queries from the validation split instead: for choosing settings
(the L2 penalties) without looking at the meta-test classes.

    python eval/run.py --model DIR --data runs/default/instruct --out runs/fewshot --fewshot 5,5 \
        --fewshot-leads 12,1 --fewshot-episodes 20 --ablation
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ecgllm.benchmarks import METHODS, available
from ecgllm.cli import add_fields, field_values
from ecgllm.evaluation import EvalSettings, benchmarks_for, build_real, evaluate, load
from ecgllm.signal.databases import SOURCES


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--processor", default=None)
    ap.add_argument("--data", default=None, help="a dataset built by data_builders/build.py")
    ap.add_argument("--ecgqa-json", nargs="+", default=None,
                    help="official ECG-QA JSON files (instead of --data); converted once into OUT/ecgqa_data")  # fmt: skip
    ap.add_argument("--ptbxl-root", default=None, help="PTB-XL folder the ECG-QA files refer to")
    ap.add_argument("--real", default=None, help="a folder of real records to check the model on")
    ap.add_argument("--source", default=None, choices=SOURCES, help="the reader for --real")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--benchmarks",
        default=None,
        help=f"comma list of {available()} or YAML files (default: those whose task the data has)",
    )
    add_fields(ap, EvalSettings, choices={"skip_methods": METHODS})
    ap.add_argument(
        "--ablation",
        action="store_true",
        help="also run with signal and page blanked into OUT/blank_ecg",
    )
    ap.add_argument(
        "--sweep", default=None, help='perturbations, e.g. "noise=0.05,0.2;wander=0.5;leads=6,1"'
    )
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--fewshot", default=None, metavar="N,K",
                    help="N-way K-shot in-context ECG-QA instead of the benchmarks (with --data)")  # fmt: skip
    ap.add_argument("--fewshot-episodes", type=int, default=10, help="episodes per question type")
    ap.add_argument(
        "--fewshot-queries", type=int, default=1, help="query samples per class per episode"
    )
    ap.add_argument("--fewshot-leads", default="12", help="comma list of lead subsets: 12, 6, 3, 1")
    ap.add_argument("--fewshot-adapt-steps", type=int, default=0,
                    help="adapt the fusion module on each support set (MAML's inner loop) instead of "
                    "showing it in the prompt (default 0: in context)")  # fmt: skip
    ap.add_argument("--fewshot-adapt-lr", type=float, default=None,
                    help="the inner loop's learning rate (plain SGD on the fusion module; default: "
                    "FewShotSettings.adapt_lr, 3)")  # fmt: skip
    ap.add_argument("--fewshot-calibrate", action="store_true",
                    help="ask each query alone and shift its answers' scores by a per-answer bias fitted on "
                    "the support set, scored the same way (instead of showing it in the prompt)")  # fmt: skip
    ap.add_argument("--fewshot-readout", action="store_true",
                    help="calibrate (implies --fewshot-calibrate) with per-answer weights over the model's answer "
                    "state too, fitted on the support set (FewShotSettings.readout)")  # fmt: skip
    ap.add_argument(
        "--fewshot-readout-l2",
        type=float,
        default=None,
        help="the readout weights' L2 penalty (default FewShotSettings.readout_l2)",
    )
    ap.add_argument("--fewshot-candidate-readout", action="store_true",
                    help="calibrate (implies --fewshot-calibrate) with one weight vector, shared by all candidates, "
                    "over each candidate answer's own state (FewShotSettings.candidate_readout)")  # fmt: skip
    ap.add_argument("--fewshot-candidate-l2", type=float, default=None,
                    help="the candidate readout's L2 penalty (default FewShotSettings.candidate_l2)")  # fmt: skip
    ap.add_argument("--fewshot-select", action="store_true",
                    help="episodes of the meta-train classes, queries from the validation split: for choosing "
                    "settings without the meta-test classes (FewShotSettings.selection)")  # fmt: skip
    ap.add_argument("--fewshot-fusion", default=None,
                    help="meta-trained fusion weights (recipes/meta_train.py: ecg_projector.safetensors)")  # fmt: skip
    a = ap.parse_args(argv)
    if a.fewshot:
        return fewshot_main(a, ap)
    if sum(x is not None for x in (a.data, a.ecgqa_json, a.real)) != 1:
        ap.exit(2, "error: give exactly one of --data, --ecgqa-json and --real\n")
    if (a.real is None) != (a.source is None):
        ap.exit(2, "error: --real and --source go together\n")
    try:
        data = a.data
        if a.ecgqa_json:
            from ecgllm.data.interop import import_ecgqa

            data = str(Path(a.out) / "ecgqa_data")
            if not (Path(data) / "samples").exists():
                import_ecgqa(a.ecgqa_json, data, ptbxl_root=a.ptbxl_root)
        if a.real:
            data = str(build_real(a.real, a.source, Path(a.out) / "real_data"))
        if a.benchmarks is None:
            benchmarks = benchmarks_for(data)
        else:
            benchmarks = [b.strip() for b in a.benchmarks.split(",") if b.strip()]
        model, proc = load(a.model, a.adapter, a.processor)
        r = evaluate(model, proc, data, a.out, benchmarks, ablation=a.ablation, sweep=a.sweep,
                     report=not a.no_report, model_path=a.model, **field_values(a, EvalSettings))  # fmt: skip
    except (ValueError, FileNotFoundError, KeyError) as e:
        ap.exit(2, f"error: {e}\n")
    parts = []
    for b, res in r["results"].items():
        m = res.get("main_metric")
        v = res.get("value")
        parts.append(f"{b} {m} {v:.3f} (chance {res.get('chance', float('nan')):.3f}, n={res['n']})" if v is not None else f"{b} n=0")  # fmt: skip
    print("evaluated: " + "; ".join(parts) + f" in {r['seconds']:.0f} s -> {Path(a.out) / 'results.json'}"
          + (f", {r['report']}" if r.get("report") else ""))  # fmt: skip
    return r


def fewshot_main(a, ap) -> dict:
    from ecgllm.evaluation.fewshot import FewShotSettings, fewshot_table, how_answered

    if not a.data:
        ap.exit(2, "error: --fewshot needs --data (a built dataset with ECG-QA samples)\n")
    try:
        n, k = (int(x) for x in a.fewshot.split(","))
        leads = [int(x) for x in a.fewshot_leads.split(",") if x.strip()]
        runs = [FewShotSettings(n_way=n, k_shot=k, episodes=a.fewshot_episodes, queries=a.fewshot_queries,
                                leads=ld, seed=a.seed, adapt_steps=a.fewshot_adapt_steps, selection=a.fewshot_select,
                                calibrate=a.fewshot_calibrate or a.fewshot_readout or a.fewshot_candidate_readout,
                                readout=a.fewshot_readout, candidate_readout=a.fewshot_candidate_readout,
                                readout_l2=FewShotSettings.readout_l2 if a.fewshot_readout_l2 is None
                                else a.fewshot_readout_l2,
                                candidate_l2=FewShotSettings.candidate_l2 if a.fewshot_candidate_l2 is None
                                else a.fewshot_candidate_l2,
                                adapt_lr=FewShotSettings.adapt_lr if a.fewshot_adapt_lr is None
                                else a.fewshot_adapt_lr) for ld in leads]  # fmt: skip
    except ValueError as e:
        ap.exit(2, f"error: --fewshot {a.fewshot} / --fewshot-leads {a.fewshot_leads}: {e}\n")
    try:
        model, proc = load(a.model, a.adapter, a.processor)
        if a.fewshot_fusion:
            from ecgllm.evaluation.fewshot import load_fusion

            load_fusion(model, a.fewshot_fusion)
        r = fewshot_table(
            model, proc, a.data, a.out, runs, ablation=a.ablation, batch_size=a.batch_size
        )
    except (ValueError, FileNotFoundError, KeyError) as e:
        ap.exit(2, f"error: {e}\n")
    print(r["table"])
    how = how_answered(r["runs"][0]["settings"])
    which = " (selection: meta-train classes, validation queries)" if a.fewshot_select else ""
    print(f"done: {n}-way {k}-shot {how}, {len(leads)} lead subset(s), {a.fewshot_episodes} episodes per "
          f"question type{which} -> {Path(a.out) / 'fewshot.json'} (plot: fewshot.png)")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
