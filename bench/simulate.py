"""Simulator speed on one core: records per second, and our WFDB writer against wfdb.wrsamp.

    python bench/simulate.py --n 400

Prints (1) signal generation alone (12 leads, 10 s, 500 Hz), (2) a full PTB-XL record as
data_builders/synthetic.py writes it (simulate + 100 Hz copy + two WFDB records), and (3) the
same full record written with wfdb.wrsamp instead (the baseline), with the ratio. Target: >= 200
full records/s per core.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import wfdb

from ecgllm.signal.record import STANDARD_12
from ecgllm.signal.simulate import sample_condition, simulate
from ecgllm.signal.synthetic_db import _Job, _one, plan_patients


def rate(fn, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    gen = rate(lambda i: simulate(sample_condition(rng), rng), n)
    with tempfile.TemporaryDirectory() as d:
        plan = plan_patients(n, 0)
        jobs = [_Job(d, i + 1, 0, *plan[i]) for i in range(n)]
        full = rate(lambda i: _one(jobs[i]), n)

        names = [s.upper() for s in STANDARD_12]

        def baseline(i: int) -> None:
            r = np.random.default_rng([0, i])
            sim = simulate(sample_condition(r), r)
            for fs, x, suffix in ((500, sim.signal, "hr"), (100, sim.signal[:, ::5], "lr")):
                dsig = np.clip(np.round(x.T * 1000), -32767, 32767).astype(np.int16)
                wfdb.wrsamp(f"b{i:05d}_{suffix}", fs=fs, units=["mV"] * 12, sig_name=names, d_signal=dsig,
                            fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=d)  # fmt: skip

        base = rate(baseline, max(20, n // 10))
    print(f"signal generation only : {gen:7.0f} records/s (12 x 5000 samples)")
    print(f"full PTB-XL record     : {full:7.0f} records/s (simulate + 100 Hz + 2 WFDB records)")
    print(f"same with wfdb.wrsamp  : {base:7.0f} records/s (baseline)")
    print(f"ratio ours / baseline  : {full / base:7.1f}x; target >= 200 records/s per core: "
          f"{'met' if full >= 200 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
