"""Where simulated and real ECGs differ, measured on the measurement vector (no model training).

    python bench/sim_to_real.py --n 1200 [--ludb ../shared/data/real/ludb] [--challenge DIR]

1. Transfer of the rhythm measurements alone: a logistic regression fitted on `--n` simulated
   records (the six rhythms equally often) over the rhythm features (ecgllm.signal.features
   RHYTHM_FEATURES, values + validity flags), scored on each real folder: balanced accuracy, recall
   per rhythm, AF sensitivity/specificity. A cheap check of a simulator change before a 15-minute
   `make demo`: if the measurements of the new simulator do not transfer, the LLM's reading will not.
2. Out of range: per measurement, the share of real records whose value lies outside the simulated
   records' 1st-99th percentile, with both medians (the largest first): which morphology or
   interval the simulator does not produce.
Why sklearn and not the encoder: it isolates the simulator's measurements from the learned model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ecgllm.signal.features import CENTERS, FEATURE_NAMES, RHYTHM_INDEX, SCALES, measurement_vector
from ecgllm.signal.preprocess import standardize
from ecgllm.signal.record import STANDARD_12, ECGRecord
from ecgllm.signal.simulate import RHYTHMS, sample_condition, simulate

N = len(FEATURE_NAMES)


def simulated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, MEASUREMENT_DIM] measurement vectors of simulated records and their rhythms."""
    from tqdm.auto import tqdm

    mix = {k: 1 / len(RHYTHMS) for k in RHYTHMS}
    vs, ys = [], []
    for i in tqdm(range(n), desc="simulate+measure", unit="rec"):
        rng = np.random.default_rng([seed, i])
        c = sample_condition(rng, sex="F" if i % 2 else "M", rhythms=mix)
        sim = simulate(c, rng, fs=500.0, seconds=10.0)
        rec = standardize(
            ECGRecord(signal=sim.signal, fs=500.0, leads=list(STANDARD_12), record_id=str(i))
        )
        vs.append(measurement_vector(rec.signal, 500.0, rec.lead_mask))
        ys.append(c.rhythm)
    return np.stack(vs), np.array(ys)


def real(source: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    from ecgllm.train.encoder_pretrain import measurement_vectors, real_rhythm_set

    x, m, gold = real_rhythm_set(source, root, 500.0, False)
    return measurement_vectors(x, m, 500.0, False), np.array(gold)


def transfer(sv: np.ndarray, sy: np.ndarray, rv: np.ndarray, ry: np.ndarray) -> str:
    from sklearn.linear_model import LogisticRegression

    from ecgllm.metrics.scores import class_recall

    cols = list(RHYTHM_INDEX) + [N + j for j in RHYTHM_INDEX]
    pred = LogisticRegression(max_iter=3000).fit(sv[:, cols], sy).predict(rv[:, cols])
    c = class_recall(list(ry), list(pred), positive="AFIB")  # the real-records benchmark's scores
    sens, spec = (
        f"{v:.2f}" if v is not None else "-" for v in (c["sensitivity"], c["specificity"])
    )
    per = " ".join(f"{k} {v['recall']:.2f} ({v['n']})" for k, v in c["recall"].items())
    return f"balanced accuracy {c['balanced_accuracy']:.3f} | AF sens/spec {sens}/{spec} | {per}"


def out_of_range(sv: np.ndarray, rv: np.ndarray, top: int) -> list[str]:
    rows = []
    for j in range(N):
        s = sv[sv[:, N + j] > 0, j] * SCALES[j] + CENTERS[j]
        r = rv[rv[:, N + j] > 0, j] * SCALES[j] + CENTERS[j]
        if len(s) < 10 or not len(r):
            continue
        lo, hi = np.percentile(s, [1, 99])
        rows.append(
            (float(np.mean((r < lo) | (r > hi))), FEATURE_NAMES[j], np.median(s), np.median(r))
        )
    rows.sort(key=lambda t: -t[0])
    return [f"  {name:16s} {share:5.0%} outside   median sim {ms:8.2f}  real {mr:8.2f}"
            for share, name, ms, mr in rows[:top]]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--n", type=int, default=1200, help="simulated records (six rhythms equally often)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ludb", default="../shared/data/real/ludb")
    p.add_argument("--challenge", default="../shared/data/real/cinc2021")
    p.add_argument("--top", type=int, default=12, help="measurements listed per real folder")
    a = p.parse_args()
    t0 = time.perf_counter()
    sv, sy = simulated(a.n, a.seed)
    done = []
    for source, root in (("ludb", a.ludb), ("challenge", a.challenge)):
        if not Path(root).is_dir():
            print(f"{source}: {root} not found, skipped")
            continue
        rv, ry = real(source, root)
        print(
            f"\n{source} ({len(ry)} records with one rhythm), rhythm measurements fitted on the simulator:"
        )
        print("  " + transfer(sv, sy, rv, ry))
        print(f"{source}: measurements outside the simulator's 1-99 % range")
        print("\n".join(out_of_range(sv, rv, a.top)))
        done.append(source)
    print(f"\nsim_to_real: {a.n} simulated records against {', '.join(done) or 'no real folder'} "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
