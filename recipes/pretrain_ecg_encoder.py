"""Pretrain the ECG encoder on a built dataset's labels and measurements (before align/SFT), or
contrastively on its report text (--objective contrastive; zero-shot and probes: eval/zeroshot.py).

    python recipes/pretrain_ecg_encoder.py --data runs/default/instruct --out runs/default/ecg_encoder
    python recipes/pretrain_ecg_encoder.py --data runs/default/encoder_data --out runs/clip --objective contrastive
    # then in a recipe config: model.ecg_weights: runs/default/ecg_encoder/ecg_encoder.safetensors

Distributed like the other recipes (`accelerate launch [--multi_gpu --num_processes N]
recipes/pretrain_ecg_encoder.py ...`, or torchrun): each process runs its share of every batch and
the result is the same as one process's (up to float rounding); --batch-size must divide among them.
Trains on the training split only and reports validation AUC per statement and interval errors
(see ecgllm/train/encoder_pretrain.py for why and how). Re-running with the same settings reuses
the saved encoder; an interrupted run resumes from OUT/checkpoint (saved every --save-every steps).
"""

from __future__ import annotations

import argparse
import json

from ecgllm.cli import add_fields, field_values, source_dir_pairs
from ecgllm.train.encoder_pretrain import OBJECTIVES, PretrainSettings, pretrain_encoder


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--encoder",
        default=None,
        help="EcgEncoderConfig kwargs as JSON (default: the tiny encoder)",
    )
    add_fields(
        ap,
        PretrainSettings,
        choices={"objective": OBJECTIVES, "contrastive_loss": ("clip", "siglip")},
    )
    ap.add_argument("--no-augment", action="store_true", help="no signal augmentation")
    ap.add_argument("--real", action="append", default=[], metavar="SOURCE=DIR",
                    help="real records to report the trained encoder's rhythm on (e.g. ludb=DIR)")  # fmt: skip
    a = ap.parse_args(argv)
    try:
        real = source_dir_pairs(a.real)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")
    try:
        s = pretrain_encoder(a.data, a.out, json.loads(a.encoder) if a.encoder else None,
                             augment=not a.no_augment, real=real, **field_values(a, PretrainSettings))  # fmt: skip
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        ap.exit(2, f"error: {e}\n")
    if s.get("main") is False:  # another process of a distributed run: the main one reports
        return s
    mae = ", ".join(f"{k} {v:.1f}" for k, v in s.get("val_mae", {}).items())
    state = (
        "reused"
        if s.get("reused")
        else f"trained in {s['seconds']:.0f} s on {s.get('processes', 1)} process(es)"
    )
    basis = "zero-shot " if s.get("val_basis", "").startswith("zero-shot") else ""
    if "val_r2" in s:  # masked: no labels were used; the figure is the reconstruction's
        score = f"validation R2 of the hidden spans {s['val_r2']:.3f} (MSE {s['val_mse']:.4f})"
    else:
        score = (f"validation {basis}macro AUC {s.get('val_macro_auc', float('nan')):.3f} over "
                 f"{len(s['codes'])} statements{', MAE ' + mae if mae else ''}")  # fmt: skip
    print(
        f"ECG encoder {state}: loss {s['loss_first']:.3f} -> {s['loss_last']:.3f}; {score} -> {s['weights']}"
    )
    for where, r in s.get("real", {}).items():
        recall = ", ".join(f"{k} {v['recall']:.2f} (n={v['n']})" for k, v in r["recall"].items())
        print(f"  rhythm of the real records in {where.split(':', 1)[1]}{' (zero-shot)' if r.get('basis') else ''}: balanced accuracy "
              f"{r['balanced_accuracy']:.3f}; {recall}")  # fmt: skip
    return s


if __name__ == "__main__":
    main()
