"""Measurement accuracy on simulated records with known truth, and detector agreement.

    python bench/measure.py --n 300 --seed 7

Simulates records in memory (no files), measures them, and prints per-quantity the share of
clean records within tolerance (HR 2 bpm, QRS 12 ms, PR 20 ms, QT 25 ms), the mean error, the
same per rhythm/condition, and R-peak sensitivity / positive predictivity (50 ms window).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgllm.signal.measure import find_r_peaks, measure  # noqa: E402
from ecgllm.signal.record import STANDARD_12, ECGRecord  # noqa: E402
from ecgllm.signal.simulate import sample_condition, simulate  # noqa: E402

TOL = {"hr_bpm": 2.0, "qrs_ms": 12.0, "pr_ms": 20.0, "qt_ms": 25.0}


def beat_match(
    ref: np.ndarray, det: np.ndarray, fs: float, n: int, window_s: float = 0.15
) -> tuple[int, int, int]:
    """(true positives, false negatives, false positives), AAMI EC57 style: a detection within
    +-window_s of a reference beat matches it; beats and detections in the first and last 0.5 s
    are matched but not counted (a beat straddling the edge is in one list only)."""
    used = np.zeros(len(det), dtype=bool)
    hit = np.zeros(len(ref), dtype=bool)
    for j, r in enumerate(ref):
        d = np.abs(det - r).astype(float)
        d[used] = np.inf
        if len(d) and d.min() <= window_s * fs:
            used[np.argmin(d)] = True
            hit[j] = True
    lo, hi = 0.5 * fs, n - 0.5 * fs
    rin, din = (ref >= lo) & (ref < hi), (det >= lo) & (det < hi)
    return int((hit & rin).sum()), int((~hit & rin).sum()), int((~used & din).sum())


def evaluate(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    errs = defaultdict(list)
    by_cond = defaultdict(lambda: defaultdict(list))
    tp = fn = fp = 0
    ctp = cfn = cfp = 0
    p_false = p_none_total = 0
    t_meas = 0.0
    for i in range(n):
        cond = sample_condition(rng)
        clean = not cond.noise
        sim = simulate(cond, rng)
        rec = ECGRecord(sim.signal, sim.fs, list(STANDARD_12), f"sim{i}")
        t = time.perf_counter()
        m = measure(rec)
        t_meas += time.perf_counter() - t
        # R peaks vs the simulated beats (QRS onset + 40 ms, 150 ms match window)
        ref = np.array([b["onset"] for b in sim.truth["beats"]]) + int(0.04 * sim.fs)
        det = find_r_peaks(sim.signal, sim.fs)
        a, b, c = beat_match(ref, det, sim.fs, sim.signal.shape[1])
        tp, fn, fp = tp + a, fn + b, fp + c
        if not clean:
            continue
        ctp, cfn, cfp = ctp + a, cfn + b, cfp + c
        if sim.truth["pr_ms"] is None:
            p_none_total += 1
            p_false += m["pr_ms"] is not None
        for k in TOL:
            tv = sim.truth[k]
            if tv is None:
                continue
            mv = m[k]
            e = abs(mv - tv) if mv is not None else np.inf
            errs[k].append(e)
            key = cond.rhythm + "+" + ",".join(sorted(cond.mods) + cond.extras)
            by_cond[key][k].append(e)
    return {
        "errs": errs,
        "by_cond": by_cond,
        "se": tp / max(1, tp + fn),
        "ppv": tp / max(1, tp + fp),
        "clean_se": ctp / max(1, ctp + cfn),
        "clean_ppv": ctp / max(1, ctp + cfp),
        "p_false": (p_false, p_none_total),
        "ms_per_record": 1000 * t_meas / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--verbose", action="store_true", help="print the worst conditions")
    args = ap.parse_args()
    r = evaluate(args.n, args.seed)
    print(f"{'quantity':10s} {'clean n':>8s} {'within tol':>10s} {'mean abs err':>12s}  tolerance")
    for k, tol in TOL.items():
        e = np.array(r["errs"][k])
        ok = float(np.mean(e <= tol)) if len(e) else float("nan")
        fin = e[np.isfinite(e)]
        print(
            f"{k:10s} {len(e):8d} {ok:10.1%} {fin.mean() if len(fin) else float('nan'):12.2f}  {tol}"
        )
    pf, pt = r["p_false"]
    print(f"P waves reported where there are none (AF/flutter): {pf}/{pt}")
    print(
        f"R peaks vs simulated beats, clean records: sensitivity {r['clean_se']:.2%}, "
        f"positive predictivity {r['clean_ppv']:.2%}; all records (noise included): "
        f"{r['se']:.2%} / {r['ppv']:.2%}"
    )
    print(f"measure(): {r['ms_per_record']:.1f} ms per 12-lead 10 s record")
    if args.verbose:
        for cond, d in sorted(r["by_cond"].items()):
            bad = {
                k: round(float(np.mean(np.array(v) > TOL[k])), 2)
                for k, v in d.items()
                if np.mean(np.array(v) > TOL[k]) > 0
            }
            if bad:
                print(f"  {cond:40s} n={len(next(iter(d.values())))} fail-rate {bad}")


if __name__ == "__main__":
    main()
