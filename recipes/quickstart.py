"""The main job on the embedded default: nothing downloaded, a few seconds on a laptop CPU.

    python recipes/quickstart.py --out runs/default          # what `make demo` runs

Today it (1) simulates a PTB-XL-layout database with known labels and intervals, (2) reads it
back through the same PTB-XL reader real data uses, standardizes every record (500 Hz, 10 s,
12 leads), measures it and prints what it found against the simulator's truth, and (3) builds
the instruction dataset (signals + rendered pages + samples of every task family). Later stages
(training, evaluation, export) attach here as they land. Re-running reuses finished steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgllm.data import BuildConfig, build_dataset  # noqa: E402
from ecgllm.signal import PTBXL, measure, standardize  # noqa: E402
from ecgllm.signal.synthetic_db import build_database  # noqa: E402

TOL = {"hr_bpm": 2.0, "pr_ms": 20.0, "qrs_ms": 12.0, "qt_ms": 25.0}


def simulate_step(out: Path, n: int, seed: int, workers: int) -> Path:
    root = out / "sim"
    stamp = root / "simulation.json"
    want = {"n": n, "seed": seed}
    if (
        stamp.exists()
        and json.loads(stamp.read_text()) == want
        and (root / "ptbxl_database.csv").exists()
    ):
        print(f"[1/3] simulated database: reusing {root}")
        return root
    s = build_database(root, n=n, seed=seed, workers=workers)
    stamp.write_text(json.dumps(want))
    print(
        f"[1/3] simulated {s['records']} records of {s['patients']} patients in {s['seconds']:.1f} s -> {root}"
    )
    return root


def measure_step(root: Path) -> dict:
    db = PTBXL(root, sampling_rate=500, rejects_path=str(root.parent / "rejects.csv"))
    truth = {
        json.loads(line)["ecg_id"]: json.loads(line)
        for line in open(root / "simulation_truth.jsonl")
    }
    within: dict[str, list[bool]] = {k: [] for k in TOL}
    supers: Counter = Counter()
    flagged = 0
    for rec in tqdm(db.records(), total=len(db), desc="read+measure", unit="rec"):
        rec = standardize(rec)
        flagged += not rec.meta["quality"]["ok"]
        supers.update(db.labels(rec, "superdiagnostic") or ["(none)"])
        t, m = truth[int(rec.record_id)], measure(rec)
        if t["noise"]:
            continue
        for k, tol in TOL.items():
            if t[k] is not None:
                within[k].append(m[k] is not None and abs(m[k] - t[k]) <= tol)
    splits = db.patients_by_split()
    overlap = (
        (splits["train"] & splits["test"])
        | (splits["train"] & splits["validation"])
        | (splits["validation"] & splits["test"])
    )
    return {
        "db": db,
        "within": within,
        "supers": supers,
        "flagged": flagged,
        "overlap": overlap,
        "splits": splits,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/default", help="working folder (default runs/default)")
    ap.add_argument("--n", type=int, default=300, help="records to simulate (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    root = simulate_step(out, args.n, args.seed, args.workers)
    r = measure_step(root)
    db = r["db"]
    counts = Counter(e.split for e in db.entries)
    print("[2/3] read back through the PTB-XL reader, standardized and measured:")
    print(
        "      splits (strat_fold 1-8/9/10): "
        + ", ".join(
            f"{s} {counts[s]} records / {len(r['splits'][s])} patients"
            for s in ("train", "validation", "test")
        )
    )
    print(
        f"      patients in two splits: {len(r['overlap'])}; records skipped: {db.rejects.total}; quality-flagged: {r['flagged']}"
    )
    print(
        "      superdiagnostic labels: "
        + ", ".join(f"{k} {v}" for k, v in r["supers"].most_common())
    )
    print("      measured vs truth on clean records:")
    for k, tol in TOL.items():
        v = r["within"][k]
        print(f"        {k:7s} within {tol:>4} : {sum(v) / max(1, len(v)):6.1%} of {len(v)}")
    b = build_dataset(
        BuildConfig(
            source="synthetic",
            root=str(root),
            out=str(out / "instruct"),
            workers=args.workers,
            seed=args.seed,
        )
    )
    state = (
        "reused" if b.get("resumed") == "complete" else f"built in {b['seconds']['total']:.1f} s"
    )
    print(
        f"[3/3] instruction data {state}: {b['samples']} samples from {b['records']} records -> {out / 'instruct'}"
    )
    print("      " + ", ".join(f"{k} {v}" for k, v in b["samples_by_task"].items()))
    print(
        f"done: {len(db)} records simulated, measured and turned into {b['samples']} instruction samples "
        f"in {time.perf_counter() - t0:.1f} s; output in {out}"
    )


if __name__ == "__main__":
    main()
