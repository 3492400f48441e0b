"""Evaluation: benchmarks answered by a model, scored, compared with the blank-ECG ablation.

    from ecgllm.evaluation import evaluate, load
    model, processor = load("runs/default/sft/base", "runs/default/sft/final/adapter", None)
    r = evaluate(model, processor, "runs/default/instruct", "runs/eval", ["rhythm", "mcq"], ablation=True)

Benchmarks are the YAML files of ecgllm/benchmarks (which held-out samples, how the model
answers, which scorer, the headline metric, the chance level). Three parts:
- `answer`: how the model answers (generation, option log-likelihood, per detection label the
  next-item probability in its own list and P(yes));
- `scoring`: the scorer of each benchmark kind, chance levels, bootstrap intervals;
- `runner`: streamed, resumable runs into results.json, ablation, sweeps, the report, loading.
eval/run.py is the command line over `runner`.
"""

from .answer import LETTERS, VERIFY, answer_rows, generate_batch, loglik_batch
from .runner import (
    EvalSettings,
    benchmarks_for,
    build_real,
    evaluate,
    load,
    model_fingerprint,
    run_benchmarks,
    run_sweep,
)
from .scoring import SCORERS, chance_level, score, score_detect

__all__ = ["LETTERS", "SCORERS", "EvalSettings", "VERIFY", "answer_rows", "benchmarks_for", "build_real", "chance_level",
           "evaluate", "generate_batch", "load", "loglik_batch", "model_fingerprint", "run_benchmarks",
           "run_sweep", "score", "score_detect"]  # fmt: skip
