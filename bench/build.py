"""Dataset-building throughput: records/s end to end (read, standardize, measure, render, write,
samples) with 1 and 2 workers, and the projected time for all of PTB-XL (21,799 records) with
every task and both modalities. Target: <= 15 minutes for full PTB-XL on 2 cores.

    python bench/build.py --n 192
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ecgllm.data import BuildConfig, build_dataset
from ecgllm.signal.synthetic_db import build_database

PTBXL_RECORDS = 21_799


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        build_database(Path(d) / "sim", n=args.n, seed=1, workers=2, progress=False)
        rows = []
        for workers in (1, 2):
            out = Path(d) / f"out{workers}"
            t = time.perf_counter()
            r = build_dataset(BuildConfig(source="synthetic", root=str(Path(d) / "sim"), out=str(out), workers=workers,
                                          chunk_size=32), progress=False)  # fmt: skip
            secs = time.perf_counter() - t
            rows.append((workers, args.n / secs, r["samples"] / args.n, r["seconds"]))
        size = sum(f.stat().st_size for f in (Path(d) / "out2").rglob("*") if f.is_file()) / args.n
    print(
        f"{'workers':>7s} {'records/s':>10s} {'samples/record':>15s} {'full PTB-XL':>12s}   (pass 1 / pass 2 s)"
    )
    for w, rate, spr, secs in rows:
        print(
            f"{w:7d} {rate:10.1f} {spr:15.1f} {PTBXL_RECORDS / rate / 60:10.1f} min   ({secs['records']} / {secs['samples']})"
        )
    print(
        f"on disk: {size / 1024:.0f} KB per record (signal + page + samples); full PTB-XL ~{size * PTBXL_RECORDS / 1e9:.1f} GB"
    )
    print(
        f"target: <= 15 min on 2 cores: {'met' if PTBXL_RECORDS / rows[1][1] <= 900 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
