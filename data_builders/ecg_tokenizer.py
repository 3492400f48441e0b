"""Train the ECG tokenizer (quantised amplitudes + BPE) on a built dataset's training records.

    python data_builders/ecg_tokenizer.py --data runs/default/instruct --out runs/default/ecg_tokenizer
    python recipes/sft.py --config recipes/configs/tiny_cpu_tokens.yaml model.ecg_tokenizer=runs/default/ecg_tokenizer

Learns the merges on the training split only, then measures the lossy round trip (decode of
encode, in mV) on the validation split: written to OUT/round_trip.json and drawn in
OUT/round_trip.png (a validation lead, original and decoded).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ecgllm.atomic import write_text
from ecgllm.data.dataset import split_signals
from ecgllm.model.ecg_tokenizer import EcgTokenizer, EcgTokenizerConfig


def plot_round_trip(tok: EcgTokenizer, x, m, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ecgllm.atomic import replace
    from ecgllm.signal.record import STANDARD_12

    back = tok.decode(tok.encode(x, m), x.shape[1])
    leads = tok.config.leads
    fig, axes = plt.subplots(
        len(leads), 1, figsize=(10, 1.8 * len(leads)), sharex=True, squeeze=False
    )
    t = np.arange(x.shape[1]) / tok.config.input_fs
    for ax, lead, b in zip(axes[:, 0], leads, back, strict=True):
        ax.plot(t, x[STANDARD_12.index(lead)], lw=0.8, label="signal")
        ax.plot(t, b, lw=0.8, label=f"decoded ({tok.config.fs:g} Hz, {tok.config.levels} levels)")
        ax.set_ylabel(f"{lead} (mV)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="a dataset built by data_builders/build.py")
    ap.add_argument("--out", required=True, help="the tokenizer folder to write")
    d = EcgTokenizerConfig()
    ap.add_argument(
        "--leads", default=",".join(d.leads), help=f"tokenized leads (default {','.join(d.leads)})"
    )
    ap.add_argument(
        "--fs",
        type=float,
        default=d.fs,
        help=f"rate each lead is resampled to (default {d.fs:g} Hz)",
    )
    ap.add_argument(
        "--levels", type=int, default=d.levels, help=f"amplitude symbols (default {d.levels})"
    )
    ap.add_argument(
        "--mu", type=float, default=d.mu, help=f"mu-law companding, 0 = uniform (default {d.mu:g})"
    )
    ap.add_argument(
        "--clip-mv", type=float, default=d.clip_mv, help=f"saturation (default {d.clip_mv:g} mV)"
    )
    ap.add_argument(
        "--vocab-size",
        type=int,
        default=d.vocab_size,
        help=f"symbols + merges (default {d.vocab_size})",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N training records only")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        cfg = EcgTokenizerConfig(leads=tuple(s.strip() for s in args.leads.split(",")), fs=args.fs,
                                 levels=args.levels, mu=args.mu, clip_mv=args.clip_mv, vocab_size=args.vocab_size)  # fmt: skip
        x, m, _ = split_signals(args.data, "train")
        try:
            vx, vm, _ = split_signals(args.data, "validation")
        except ValueError:  # no validation records: the round trip on training records, said so
            vx, vm, held = x, m, "train"
        else:
            held = "validation"
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.limit:
        x, m = x[: args.limit], m[: args.limit]
    tok = EcgTokenizer.train(x, m, cfg)
    rt = tok.round_trip_error(vx, vm)
    out = Path(args.out)
    tok.save_pretrained(out)
    result = {"train_records": len(x), "round_trip_split": held, "round_trip_records": len(vx),
              "vocab_size": tok.vocab_size, **{k: round(v, 5) for k, v in rt.items()},
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    plot_round_trip(tok, vx[0], vm[0], out / "round_trip.png")
    write_text(out / "round_trip.json", json.dumps(result, indent=1))
    print(f"done: ECG tokenizer of {tok.vocab_size} tokens learned on {len(x)} training records -> {out}; "
          f"{held} round trip RMSE {rt['rmse_mv']:.3f} mV, MAE {rt['mae_mv']:.3f} mV, "
          f"{rt['tokens_per_lead']:.0f} tokens per lead ({rt['symbols_per_lead']:.0f} symbols), "
          f"{result['seconds']:.1f} s")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
