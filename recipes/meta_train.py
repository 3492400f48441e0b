"""Meta-train the fusion module (the ECG projector) over few-shot ECG-QA episodes, first-order
MAML with the LLM and the ECG encoder frozen (ecgllm.train.meta), then evaluate it adapted; or
(--algorithm incontext, MetaICL) train on episodes asked in context and evaluate in context; or
(--algorithm calibrated) train on queries scored alone and calibrated on their support set, and
evaluate the same way (--fewshot-calibrate).

    python recipes/meta_train.py --model runs/default/sft/base --adapter runs/default/sft/final/adapter \\
        --processor runs/default/sft/final --data runs/default/instruct --out runs/meta \\
        --n-way 5 --k-shot 5 --meta-steps 200
    python eval/run.py --model runs/default/sft/base --adapter runs/default/sft/final/adapter \\
        --processor runs/default/sft/final --data runs/default/instruct --out runs/meta/eval \\
        --fewshot 5,5 --fewshot-adapt-steps 1 --fewshot-fusion runs/meta/ecg_projector.safetensors
    python recipes/meta_train.py ... --out runs/metaicl --n-way 2 --k-shot 5 --algorithm incontext \\
        --tune fusion+lora --meta-steps 50
    python eval/run.py ... --fewshot 2,5 --fewshot-fusion runs/metaicl/ecg_projector.safetensors --ablation
    python recipes/meta_train.py ... --out runs/metacal --n-way 5 --k-shot 5 --queries 2 \\
        --algorithm calibrated --meta-steps 300 --outer-lr 1e-3
    python eval/run.py ... --fewshot 5,5 --fewshot-calibrate --fewshot-fusion runs/metacal/ecg_projector.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time

from ecgllm.cli import add_fields, field_values
from ecgllm.evaluation import load
from ecgllm.train.meta import ALGORITHMS, TUNED, MetaSettings, meta_train


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--processor", default=None)
    ap.add_argument(
        "--data", required=True, help="a dataset built by data_builders/build.py (ECG-QA samples)"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    add_fields(
        ap, MetaSettings, skip=("question_types",), choices={"algorithm": ALGORITHMS, "tune": TUNED}
    )
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        model, proc = load(a.model, a.adapter, a.processor)
        r = meta_train(model, proc, a.data, a.out, MetaSettings(**field_values(a, MetaSettings, skip=("question_types",))),
                       batch_size=a.batch_size)  # fmt: skip
    except (ValueError, FileNotFoundError, KeyError) as e:
        sys.exit(f"error: {e}")
    print(f"done: {r['settings']['algorithm']}, {len(r['losses'])} meta-train episodes (of {r['episodes_available']} built), query loss "
          f"{r['query_loss_first']:.3f} -> {r['query_loss_last10']:.3f} (mean of the last 10) in "
          f"{time.perf_counter() - t0:.0f} s -> {a.out}/ecg_projector.safetensors")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
