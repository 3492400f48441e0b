"""Two evaluation runs of the same questions compared: B minus A per benchmark, with a paired
bootstrap interval (ecgllm.evaluation.compare).

    python eval/compare.py runs/default/eval runs/grpo/eval --names SFT,GRPO
    python eval/compare.py runs/a/eval runs/b/eval --benchmarks ground,report --out cmp.json

Both folders are eval/run.py outputs of the same built data (the same sample ids with the same
gold answers); the questions both answered are resampled together, so the interval is that of
the difference itself. A star marks an interval that excludes 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ecgllm.atomic import write_text
from ecgllm.evaluation.compare import compare_runs, compare_table


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run_a", help="the first eval/run.py output folder (the baseline)")
    ap.add_argument("run_b", help="the second (scored as B - A)")
    ap.add_argument(
        "--names", default="A,B", help="two column names, comma-separated (default A,B)"
    )
    ap.add_argument("--benchmarks", default=None, help="comma list (default: all both answered)")
    ap.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the comparison as JSON here")
    a = ap.parse_args(argv)
    names = a.names.split(",")
    if len(names) != 2 or not all(names):
        ap.error(f"--names takes two names, e.g. SFT,GRPO, not {a.names!r}")
    t0 = time.perf_counter()
    try:
        res = compare_runs(a.run_a, a.run_b, a.benchmarks.split(",") if a.benchmarks else None,
                           n=a.resamples, seed=a.seed, progress=True)  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(compare_table(res, *names))
    if a.out:
        write_text(a.out, json.dumps({"a": a.run_a, "b": a.run_b, "names": names, "results": res},
                                     indent=1, default=float))  # fmt: skip
    rows = [r for v in res.values() for r in v]
    up = sum(r["ci95"][0] > 0 for r in rows)
    down = sum(r["ci95"][1] < 0 for r in rows)
    print(f"compared {len(res)} benchmarks ({len(rows)} metrics) of {names[1]} against {names[0]}: "
          f"{up} higher, {down} lower beyond their paired 95% interval, {len(rows) - up - down} within it, "
          f"in {time.perf_counter() - t0:.0f} s" + (f" -> {a.out}" if a.out else ""))  # fmt: skip
    return res


if __name__ == "__main__":
    main()
