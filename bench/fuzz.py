"""Fuzz every input surface with generated bad inputs and count crashes (target: 0).

    python bench/fuzz.py                      # 10,000 inputs per surface (~minutes per surface)
    python bench/fuzz.py --n 500 --surfaces wfdb_header,config --show 3

A crash is a third-party traceback or an accidental error of ours reaching the caller; a
rejection is the project's own error naming the file and the problem; skipped means a batch
reader skipped and counted the bad rows/records and went on (see ecgllm/fuzz.py).
Crashing inputs are printed (--show) and written to --out as JSON lines, to be minimised into
tests/data/bad/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ecgllm.fuzz import SURFACES, run_surface


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000, help="inputs per surface")
    ap.add_argument(
        "--surfaces", default=",".join(SURFACES), help=f"comma list of {list(SURFACES)}"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=2, help="crashing inputs to print per surface")
    ap.add_argument("--out", default="runs/fuzz/crashes.jsonl")
    a = ap.parse_args()
    names = [s.strip() for s in a.surfaces.split(",") if s.strip()]
    bad = sorted(set(names) - set(SURFACES))
    if bad:
        ap.exit(2, f"error: unknown surface(s) {bad}; choose from {list(SURFACES)}\n")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    total, t_all = 0, time.perf_counter()
    print(
        f"{'surface':15s} {'inputs':>7s} {'read':>7s} {'skipped':>7s} {'rejected':>8s} {'crashes':>7s} {'s':>6s}"
    )
    with out.open("w") as f:
        for name in names:
            t = time.perf_counter()
            r = run_surface(name, n=a.n, seed=a.seed)
            total += r["crashes"]
            print(f"{name:15s} {r['inputs']:7d} {r['read']:7d} {r['skipped']:7d} {r['rejected']:8d} {r['crashes']:7d} "
                  f"{time.perf_counter() - t:6.1f}", flush=True)  # fmt: skip
            for why, k in r["reasons"].items():
                if not why.startswith("rejected"):
                    print(f"    {k:5d} x {why}")
            for ex in r["examples"][: a.show]:
                print(
                    f"    e.g. {ex['error'][:160]}\n         at {ex['where'][:160]}\n         input {ex['input'][:300]}"
                )
            for ex in r["examples"]:
                f.write(json.dumps({"surface": name, **ex}) + "\n")
    print(
        f"done: {len(names)} surfaces, {total} crashes in {time.perf_counter() - t_all:.0f} s; crashing inputs in {out}"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
