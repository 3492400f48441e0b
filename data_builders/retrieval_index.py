"""Index a built dataset's training ECGs with their reports, for retrieval-augmented prompts.

    python data_builders/retrieval_index.py --data runs/default/instruct \
        --encoder runs/default/ecg_encoder --out runs/default/retrieval
    python recipes/sft.py --config ... data.retrieve=3 data.retrieval_index=runs/default/retrieval
    python eval/run.py ... --retrieve 3 --retrieval-index runs/default/retrieval

Only the chosen split (default train) is indexed, and a query never returns its own patient's
records (ecgllm.retrieval explains the embedding and the search).
"""

from __future__ import annotations

import argparse
import sys
import time

from ecgllm.retrieval import ReportIndex


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="a dataset built by data_builders/build.py")
    ap.add_argument(
        "--encoder", required=True, help="the folder recipes/pretrain_ecg_encoder.py wrote"
    )
    ap.add_argument("--out", required=True, help="the index folder to write")
    ap.add_argument("--split", default="train", help="the split indexed (default train)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        index = ReportIndex.build(args.data, args.encoder, split=args.split)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    index.save(args.out)
    patients = len(set(index.patient_ids))
    print(f"done: {len(index)} {args.split} records of {patients} patients indexed "
          f"({index.embeddings.shape[1]} dims) -> {args.out} in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return {"records": len(index), "patients": patients}


if __name__ == "__main__":
    main()
