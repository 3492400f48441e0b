"""Simulate an ECG database in the exact PTB-XL layout, with per-record ground truth.

    python data_builders/synthetic.py --out data/sim --n 1000 --seed 0 --workers 2

Writes ptbxl_database.csv (PTB-XL's columns), scp_statements.csv (the real table),
records500/ and records100/ (WFDB format 16, 1000 adu/mV, PTB-XL lead names) and
simulation_truth.jsonl (intervals, axis, rhythm and beat onsets per record). Same seed, same
bytes, whatever the number of workers. Read it back with ecgllm.signal.PTBXL(out).
"""

from __future__ import annotations

import argparse

from ecgllm.signal.simulate import rhythm_mix
from ecgllm.signal.synthetic_db import build_database


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--n", type=int, default=1000, help="number of records (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--rhythms", default="ptbxl",
                    help='rhythm mix: "ptbxl" (SR-dominant, default), "balanced", or "SR=0.4,AFIB=0.3,..."')  # fmt: skip
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n must be >= 1, got {args.n}")
    if args.workers < 1:
        ap.error(f"--workers must be >= 1, got {args.workers}")
    try:
        rhythm_mix(args.rhythms)
    except ValueError as e:
        ap.error(f"--rhythms: {e}")
    summary = build_database(args.out, n=args.n, seed=args.seed, workers=args.workers,
                             progress=not args.quiet, rhythms=args.rhythms)  # fmt: skip
    top = ", ".join(f"{k} {v}" for k, v in list(summary["label_counts"].items())[:8])
    print(f"simulated {summary['records']} records of {summary['patients']} patients into "
          f"{summary['out']} in {summary['seconds']:.1f} s ({summary['records'] / max(summary['seconds'], 1e-9):.0f} rec/s); "
          f"labels: {top}, ...")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()
