"""Score a model on held-out benchmarks: predictions streamed to samples.jsonl (resumable) and
metrics with 95% bootstrap intervals in results.json.

    python eval/run.py --model runs/default/sft/final/model --data runs/default/instruct --out runs/eval
    python eval/run.py --model runs/x/base --adapter runs/x/final/adapter --data DIR --out DIR \\
        --benchmarks ecgqa,mcq,measure,report --blank-ecg        # the same with the ECG input blanked
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgllm.evaluation import BENCHMARKS, run_benchmarks  # noqa: E402


def load(model_dir: str, adapter: str | None, processor_dir: str | None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import ecgllm.model  # noqa: F401 - registers the Auto classes

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    for cand in [
        processor_dir,
        model_dir,
        str(Path(model_dir).parent),
        adapter and str(Path(adapter).parent),
    ]:
        if cand and (Path(cand) / "processor_config.json").exists():
            return model, AutoProcessor.from_pretrained(cand)
    raise FileNotFoundError(f"no processor_config.json next to {model_dir} (give --processor)")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--processor", default=None)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="first N samples per benchmark")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--blank-ecg", action="store_true")
    ap.add_argument("--blank-image", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        model, proc = load(a.model, a.adapter, a.processor)
        r = run_benchmarks(model, proc, a.data, a.out, [b.strip() for b in a.benchmarks.split(",") if b.strip()],
                           split=a.split, limit=a.limit, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens,
                           blank_ecg=a.blank_ecg, blank_image=a.blank_image, seed=a.seed, model_path=a.model)  # fmt: skip
    except (ValueError, FileNotFoundError, KeyError) as e:
        ap.exit(2, f"error: {e}\n")
    parts = []
    for b, res in r["results"].items():
        m = res.get("main_metric")
        parts.append(f"{b} {m} {res[m]:.3f} (n={res['n']})" if m else f"{b} n=0")
    print(
        "evaluated: "
        + "; ".join(parts)
        + f" in {r['seconds']:.0f} s -> {Path(a.out) / 'results.json'}"
    )
    return r


if __name__ == "__main__":
    main()
