"""Zero-shot classification and linear probes of a stage-0 ECG encoder (MERL's protocol).

    python eval/zeroshot.py --encoder runs/clip/ecg_encoder --data runs/default/instruct \\
        --real ludb=../shared/data/real/ludb --real challenge=../shared/data/real/cinc2021 --out runs/clip/zeroshot

Zero-shot (contrastive encoders, recipes/pretrain_ecg_encoder.py --objective contrastive): each
statement's name is a text prompt; AUC per statement of the cosine between records and prompts,
on the dataset's test split and on each real folder, macro over all statements and within PTB-XL's
diagnostic / form / rhythm groups; and the 5 diagnostic superclasses (NORM, MI, STTC, CD, HYP)
with their names as prompts; chance 0.5. Linear probe (any encoder): a
logistic regression per statement on the frozen encoder's pooled features, trained on 1 / 10 /
100 % of the training split, AUC on the test split and on each real folder. See ecgllm/evaluation/zeroshot.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ecgllm.atomic import write_text
from ecgllm.cli import source_dir_pairs
from ecgllm.evaluation.zeroshot import run_zeroshot


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--encoder", required=True, help="a stage-0 encoder folder (pretrain_ecg_encoder.py --out)"
    )
    ap.add_argument(
        "--data", required=True, help="a dataset built with signals (its train and test splits)"
    )
    ap.add_argument("--real", action="append", default=[], metavar="SOURCE=DIR",
                    help="real records for zero-shot (e.g. ludb=../shared/data/real/ludb)")  # fmt: skip
    ap.add_argument(
        "--fractions", default="0.01,0.1,1", help="linear probe: shares of the training split"
    )
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        real = source_dir_pairs(a.real)
        fractions = tuple(float(f) for f in a.fractions.split(","))
        if not all(0 < f <= 1 for f in fractions):
            raise ValueError(f"--fractions must be in (0, 1], got {a.fractions!r}")
        t0 = time.perf_counter()
        r = run_zeroshot(a.encoder, a.data, real, fractions)
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        ap.exit(2, f"error: {e}\n")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(r, indent=1))
    groups = ("diagnostic", "form", "rhythm")
    print(f"{'evaluation':40s} {'records':>7s} {'labels':>6s} {'macro AUC':>9s} "
          + " ".join(f"{g:>10s}" for g in groups) + f" {'chance':>6s}")  # fmt: skip

    def row(name: str, v: dict) -> None:
        by = [
            f"{v['groups'][g]['macro_auc']:10.3f}" if g in v.get("groups", {}) else f"{'-':>10s}"
            for g in groups
        ]
        print(
            f"{name:40s} {v['n']:7d} {v['labels']:6d} {v['macro_auc']:9.3f} {' '.join(by)} {v['chance']:6.2f}"
        )

    for where, v in r["zero_shot"].items():
        row("zero-shot " + where.split(":")[0], v)
    for where, v in r.get("zero_shot_superclass", {}).items():
        row("zero-shot superclasses " + where.split(":")[0], v)
    for frac, v in r["linear_probe"].items():
        row(f"linear probe {float(frac):.0%} ({v['train_records']} train)", v)
    for where, probes in r.get("linear_probe_real", {}).items():
        for frac, v in probes.items():
            row(f"linear probe {float(frac):.0%} -> {where.split(':')[0]}", v)
    zs = r["zero_shot"].get("simulated test", {}).get("macro_auc")
    print(f"done: {r['objective']} encoder, zero-shot macro AUC {'n/a' if zs is None else f'{zs:.3f}'} (simulated test), "
          f"linear probe at {fractions[-1]:.0%} {r['linear_probe'][f'{fractions[-1]:g}']['macro_auc']:.3f}, in "
          f"{time.perf_counter() - t0:.0f} s -> {out / 'results.json'}")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
