"""Rebuild the tiny model's tokenizer (ecgllm/resources/tiny_tokenizer) from instruction text.

    python data_builders/tiny_tokenizer.py            # ~1 min: 300 simulated records, every task family

Byte-level BPE, 2k vocabulary, trained on the messages and options of a dataset built from a small
simulated database (deterministic: the same seed gives the same tokenizer). The shipped copy was
made this way; rebuild it after changing the task templates. Lives here, not in ecgllm.model,
because it builds data: the model package never imports the data builders.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ecgllm.data.build import BuildConfig, build_dataset
from ecgllm.model.tokenizer import TINY_DIR, train_tiny_tokenizer
from ecgllm.signal.synthetic_db import build_database


def corpus(n: int = 300, seed: int = 123) -> list[str]:
    """Instruction text from a small simulated database (every task family), plus numbers and units."""
    from datasets import load_from_disk

    texts = []
    with tempfile.TemporaryDirectory() as d:
        build_database(Path(d) / "sim", n=n, seed=seed, progress=False)
        build_dataset(BuildConfig(source="synthetic", root=str(Path(d) / "sim"), out=str(Path(d) / "o"),
                                  modalities=("signal",)), progress=False)  # fmt: skip
        for split in load_from_disk(str(Path(d) / "o" / "samples")).values():
            for s in split:
                for m in s["messages"]:
                    texts += [c["text"] for c in m["content"] if c["type"] == "text" and c["text"]]
                texts.append(json.dumps(s["options"]))
    texts += [str(i) for i in range(1000)] + ["bpm ms mV degrees Hz"]
    return texts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--out", default=str(TINY_DIR), help="tokenizer folder (default: the shipped one)"
    )
    ap.add_argument("--records", type=int, default=300, help="simulated records to draw text from")
    ap.add_argument("--vocab-size", type=int, default=2048)
    args = ap.parse_args(argv)
    texts = corpus(args.records)
    tok = train_tiny_tokenizer(texts, args.out, vocab_size=args.vocab_size)
    print(f"done: {len(texts)} texts -> {len(tok)} tokens in {args.out}")


if __name__ == "__main__":
    main()
