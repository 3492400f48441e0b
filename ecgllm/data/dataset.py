"""The joined view of a built dataset: each sample with its ECG signal(s) and page image(s).

ds = EcgInstructionDataset("data/instruct", split="train")
row = ds[0]
row["messages"], row["signal"].shape, row["images"][0].size   # (n_ecg, 12, 5000) mV float32
"""

from __future__ import annotations

import bisect
import io
import json
from pathlib import Path

import numpy as np
from datasets import load_from_disk
from PIL import Image


class EcgInstructionDataset:
    """Samples of one split joined with their records (DESIGN.md's row: signal + image + messages).

    `signal` [n_ecg, 12, n] float32 in mV (absent without the signal modality), `lead_mask`
    [n_ecg, 12] bool, `images` list of PIL images (absent without the image modality).
    """

    def __init__(self, root: str | Path | list, split: str = "train"):
        if isinstance(root, (list, tuple)):  # several built datasets, one after the other
            if not root:
                raise ValueError("no dataset given (an empty list of data paths)")
            if len(root) > 1:
                self._concat([EcgInstructionDataset(r, split) for r in root])
                return
            root = root[0]
        self.parts: list[EcgInstructionDataset] = []
        root = Path(root)
        for part in ("samples", "records"):
            if not (root / part).exists():
                raise FileNotFoundError(
                    f"{root / part} not found: build the dataset with data_builders/build.py"
                )
        samples = load_from_disk(str(root / "samples"))
        if split not in samples:
            raise KeyError(f"split {split!r} not in {root / 'samples'} (has {list(samples)})")
        self.samples = samples[split]
        self.records = load_from_disk(str(root / "records"))
        self.index = {rid: i for i, rid in enumerate(self.records["record_id"])}
        self.has_signal = "signal" in self.records.column_names
        self.has_image = "image" in self.records.column_names
        self._masks = self.records["lead_mask"]
        if self.has_signal:
            self._signals = self.records.select_columns(["signal"]).with_format("numpy")
        if self.has_image:
            self._images = self.records.select_columns(["image"])
        self.report = (
            json.loads((root / "build_report.json").read_text())
            if (root / "build_report.json").exists()
            else {}
        )

    def _concat(self, parts: list[EcgInstructionDataset]) -> None:
        """Several datasets as one (data.path: [sim, real]): samples in order, each row read from
        its own dataset's records (record ids of different sources may coincide)."""
        from datasets import concatenate_datasets

        self.parts = parts
        self.samples = concatenate_datasets([p.samples for p in parts])
        self.offsets = list(np.cumsum([0] + [len(p) for p in parts]))
        self.has_signal = any(p.has_signal for p in parts)
        self.has_image = any(p.has_image for p in parts)
        self.report = {"parts": [p.report for p in parts]}

    def __len__(self) -> int:
        return len(self.samples)

    def record(self, record_id: str) -> dict:
        for p in self.parts or [self]:
            if record_id in p.index:
                return p.records[p.index[record_id]]
        raise KeyError(record_id)

    def __getitem__(self, i: int) -> dict:
        if self.parts:
            k = bisect.bisect_right(self.offsets, int(i)) - 1
            return self.parts[k][int(i) - self.offsets[k]]
        row = dict(self.samples[int(i)])
        idx = [self.index[r] for r in row["record_ids"]]
        if self.has_signal and "signal" in row["modalities"]:
            row["signal"] = np.stack([self._signals[j]["signal"] for j in idx]).astype(np.float32)
        row["lead_mask"] = np.array([self._masks[j] for j in idx], dtype=bool)
        if self.has_image and "image" in row["modalities"]:
            row["images"] = [self._images[j]["image"] for j in idx]
        return row


def load_image(value) -> Image.Image:
    """A datasets Image value (PIL or {"bytes": ...}) as a PIL image."""
    if isinstance(value, Image.Image):
        return value
    return Image.open(io.BytesIO(value["bytes"]))


def split_signals(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The signals [N, 12, n] (mV), lead masks [N, 12] and record ids of a built dataset's
    records in one split (records carry their split, so no patient crosses)."""
    root = Path(root)
    if not (root / "records").exists():
        raise FileNotFoundError(
            f"{root / 'records'} not found: build the dataset with data_builders/build.py"
        )
    records = load_from_disk(str(root / "records"))
    if "signal" not in records.column_names:
        raise ValueError(f"{root}/records has no signals: build with the signal modality")
    idx = [i for i, s in enumerate(records["split"]) if s == split]
    if not idx:
        raise ValueError(f"{root}: no {split} records")
    sig = records.select_columns(["signal", "lead_mask"]).with_format("numpy")
    x = np.stack([sig[i]["signal"] for i in idx]).astype(np.float32)
    m = np.stack([sig[i]["lead_mask"] for i in idx]).astype(bool)
    return x, m, [records[i]["record_id"] for i in idx]
