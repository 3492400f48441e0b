"""Measurement accuracy: against the simulator's truth and against cardiologists (LUDB).

    python bench/measure.py --n 300 --seed 7 [--ludb ../shared/data/real/ludb] [--challenge DIR]

1. Simulated records in memory (no files): per quantity the share of clean records within
   tolerance (HR 2 bpm, QRS 12 ms, PR 20 ms, QT 25 ms), the mean error, the same per
   rhythm/condition, and R-peak sensitivity / positive predictivity (150 ms window).
2. LUDB: PR, QRS, QT, QTc, P duration and HR against the cardiologists' delineation (the median
   over leads and beats, ecgllm.signal.ludb): bias, SD, MAE, missed/extra, outliers > 80 ms and
   how many of those carry no quality flag, against the CSE-style targets (|bias| <= 5 ms and
   SD <= 10 ms for PR and QRS, SD <= 30 ms for QT); the measured axis by LUDB's axis statement.
3. AF detection and the rule rhythm (ecgllm.signal.rhythm) on every real record given (LUDB and
   PhysioNet/CinC Challenge folders): AF sensitivity/specificity and recall per rhythm.
The real sections run when their folders exist (by default the shared real records).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ecgllm.signal.measure import find_r_peaks, measure
from ecgllm.signal.record import STANDARD_12, ECGRecord
from ecgllm.signal.simulate import sample_condition, simulate

TOL = {"hr_bpm": 2.0, "qrs_ms": 12.0, "pr_ms": 20.0, "qt_ms": 25.0}
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TARGETS = {"pr_ms": "|bias|<=5, SD<=10", "qrs_ms": "|bias|<=5, SD<=10", "qt_ms": "SD<=30"}


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
    ap.add_argument("--ludb", default=str(REAL / "ludb"), help="a LUDB folder ('' to skip)")
    ap.add_argument(
        "--challenge", default=str(REAL / "cinc2021"), help="a Challenge folder ('' to skip)"
    )
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

    real_sections(args.ludb, args.challenge)


def real_sections(ludb: str, challenge: str) -> None:
    from collections import Counter

    from ecgllm.signal.databases import open_database
    from ecgllm.signal.ludb import LUDB, compare_with_reference, measurement_agreement
    from ecgllm.signal.rhythm import RULE_RHYTHMS, rule_rhythm
    from ecgllm.text.vocab import RHYTHM_CLASSES as RHYTHM_CODES

    rhythm_rows: list[tuple[str, str, str | None]] = []
    if ludb and Path(ludb).is_dir():
        t0 = time.perf_counter()
        rows = compare_with_reference(LUDB(ludb))
        print(f"\nLUDB, {len(rows)} records, measured vs the cardiologists' delineation "
              f"({time.perf_counter() - t0:.0f} s):")  # fmt: skip
        print(f"{'quantity':9s} {'n':>4s} {'bias':>7s} {'SD':>6s} {'MAE':>6s} {'missed':>6s} {'extra':>5s} "
              f"{'>80ms':>5s} {'unflagged':>9s}  target")  # fmt: skip
        for k in ("pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "p_ms", "hr_bpm"):
            a = measurement_agreement(rows, k)
            print(f"{k:9s} {a['n']:4d} {a['bias']:7.1f} {a['sd']:6.1f} {a['mae']:6.1f} {a['missed']:6d} "
                  f"{a['extra']:5d} {a['outliers']:5d} {a['outliers_unflagged']:9d}  {TARGETS.get(k, '')}")  # fmt: skip
        flagged = sum(bool(r["flags"]) for r in rows)
        print(f"records with a measurement flag: {flagged}; failing the quality check: "
              f"{sum(not r['quality_ok'] for r in rows)}")  # fmt: skip
        by_axis: dict[str, list[float]] = {}
        for r in rows:
            if r["axis_code"] and r["measured"]["axis_deg"] is not None:
                by_axis.setdefault(r["axis_code"], []).append(r["measured"]["axis_deg"])
        print("measured frontal axis by LUDB's axis statement (median, range): " + "; ".join(
            f"{k} {np.median(v):.0f} ({min(v):.0f}..{max(v):.0f}, n={len(v)})" for k, v in sorted(by_axis.items())))  # fmt: skip
        for r in rows:
            gold = [c for c in r["labels"] if c in RHYTHM_CODES]
            if len(gold) == 1 and "PACE" not in r["labels"]:
                rhythm_rows.append(("ludb", gold[0], rule_rhythm(r["measurement"])))
    if challenge and Path(challenge).is_dir():
        from ecgllm.signal import measure, standardize

        for rec in open_database("challenge", challenge).records():
            gold = [c for c in rec.labels if c in RHYTHM_CODES]
            if len(gold) == 1 and "PACE" not in rec.labels:
                rhythm_rows.append(("challenge", gold[0], rule_rhythm(measure(standardize(rec)))))
    if rhythm_rows:
        af = [(g == "AFIB", p == "AFIB") for _, g, p in rhythm_rows]
        pos = [p for g, p in af if g]
        neg = [p for g, p in af if not g]
        print(f"\nAF detection by the rule baseline (no P wave + RR nRMSSD > 0.1), {len(rhythm_rows)} real "
              f"records ({dict(Counter(s for s, _, _ in rhythm_rows))}): sensitivity "
              f"{np.mean(pos) if pos else float('nan'):.2f} ({sum(pos)}/{len(pos)}), specificity "
              f"{1 - np.mean(neg) if neg else float('nan'):.2f} ({len(neg) - sum(neg)}/{len(neg)})")  # fmt: skip
        recall = []
        for c in (*RULE_RHYTHMS, "AFLT"):
            hits = [p == c for _, g, p in rhythm_rows if g == c]
            if hits:
                recall.append(f"{c} {np.mean(hits):.2f} (n={len(hits)})")
                if c in RULE_RHYTHMS:
                    pass
        print(
            "rule rhythm recall per class: "
            + ", ".join(recall)
            + " (AFLT is not detected by the rules)"
        )


if __name__ == "__main__":
    main()
