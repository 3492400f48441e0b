"""Batches for training: chat template -> token ids with labels on assistant turns only.

    collate = EcgCollator(processor, max_length=1024)
    batch = collate([dataset[i] for i in indices])   # input_ids, attention_mask, labels,
                                                     # ecg_values, lead_mask, pixel_values

Labels come from the chat template's own assistant spans (`{% generation %}` blocks, via
`return_assistant_tokens_mask`), never from searching the text, so a template change cannot
silently mask a prompt in or an answer out. Placeholders are rendered as one token each and
expanded in token space, so the mask stays aligned. A sample longer than `max_length` is cut
only at the end and never inside a placeholder run (it is dropped and counted instead); a batch
in which most samples have no supervised token raises.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


class EcgCollator:
    def __init__(
        self, processor, max_length: int = 2048, blank_ecg: bool = False, blank_image: bool = False
    ):
        self.proc = processor
        self.tok = processor.tokenizer
        self.max_length = max_length
        self.blank_ecg, self.blank_image = blank_ecg, blank_image
        self.ecg_id = self.tok.convert_tokens_to_ids(processor.ecg_token)
        self.img_id = self.tok.convert_tokens_to_ids(processor.image_token)
        self.dropped: Counter = Counter()

    def encode(
        self, messages: list[dict], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """(token ids, assistant mask) with placeholders expanded to their token counts."""
        out = self.tok.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=not add_generation_prompt,
            add_generation_prompt=add_generation_prompt, chat_template=self.proc.chat_template,
            ecg_token=self.proc.ecg_token, image_token=self.proc.image_token,
        )  # fmt: skip
        ids = list(out["input_ids"])
        mask = list(out.get("assistant_masks") or [0] * len(ids))
        exp_ids, exp_mask = [], []
        for t, m in zip(ids, mask, strict=True):
            k = (
                self.proc.num_ecg_tokens
                if t == self.ecg_id
                else self.proc.num_image_tokens
                if t == self.img_id
                else 1
            )
            exp_ids += [t] * k
            exp_mask += [m if k == 1 else 0] * k
        return exp_ids, exp_mask

    def row_inputs(self, row: dict) -> tuple[list[np.ndarray], list[np.ndarray], list]:
        """A row's ECG signals, their lead masks and its page images, blanked when asked (the
        ablations: zero signals, white pages)."""
        mods = row.get("modalities") or []
        ecgs, masks, images = [], [], []
        if not row.get("record_ids"):
            return ecgs, masks, images
        if "signal" in mods:
            sig = np.asarray(row["signal"], dtype=np.float32)
            ecgs = [np.zeros_like(s) if self.blank_ecg else s for s in sig]
            masks = list(np.asarray(row["lead_mask"], dtype=bool))
        if "image" in mods:
            images = row["images"]
            if self.blank_image:
                from PIL import Image

                images = [Image.new("RGB", im.size, "white") for im in images]
        return ecgs, masks, list(images)

    def length(self, row: dict) -> int:
        return len(self.encode(row["messages"])[0])

    def _truncate(
        self, ids: list[int], mask: list[int], rid: str
    ) -> tuple[list[int], list[int]] | None:
        if len(ids) <= self.max_length:
            return ids, mask
        cut = self.max_length
        if (
            ids[cut - 1] in (self.ecg_id, self.img_id)
            and cut < len(ids)
            and ids[cut] == ids[cut - 1]
        ):
            self.dropped["placeholder_run_cut"] += 1
            log.warning(
                "dropping %s: max_length %d would cut inside a placeholder run",
                rid,
                self.max_length,
            )
            return None
        if not any(mask[:cut]):
            self.dropped["no_target_left"] += 1
            log.warning(
                "dropping %s: nothing supervised within max_length %d", rid, self.max_length
            )
            return None
        return ids[:cut], mask[:cut]

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seqs, ecgs, masks, images = [], [], [], []
        for row in rows:
            enc = self._truncate(*self.encode(row["messages"]), row.get("id", "?"))
            if enc is None:
                continue
            seqs.append(enc)
            e, m, i = self.row_inputs(row)
            ecgs, masks, images = ecgs + e, masks + m, images + i
        if not seqs:
            raise ValueError(f"every sample of the batch was dropped ({dict(self.dropped)})")
        supervised = sum(1 for _, m in seqs if any(m))
        if supervised * 2 < len(seqs):
            raise ValueError(
                f"only {supervised} of {len(seqs)} samples have supervised tokens: the chat template's "
                "assistant spans are missing (does it have {% generation %} markers?)"
            )
        batch = self.pad(seqs)
        batch.update(self.features(ecgs, masks, images))
        return batch

    def pad(self, seqs: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """(ids, assistant mask) pairs -> right-padded input_ids, attention_mask, labels (-100
        outside the assistant spans)."""
        width = max(len(i) for i, _ in seqs)
        pad = self.tok.pad_token_id
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for r, (ids, m) in enumerate(seqs):
            t = torch.tensor(ids)
            input_ids[r, : len(ids)] = t
            attention[r, : len(ids)] = 1
            keep = torch.tensor(m, dtype=torch.bool)
            labels[r, : len(ids)] = torch.where(keep, t, torch.full_like(t, -100))
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

    def features(self, ecgs: list, masks: list, images: list) -> dict[str, torch.Tensor]:
        """The model inputs of the ECGs (with the records' lead masks) and the page images."""
        out: dict[str, torch.Tensor] = {}
        if ecgs:
            values, lead_mask = self.proc.process_ecgs(ecgs)
            lead_mask = torch.from_numpy(np.stack(masks)) & lead_mask
            out.update(ecg_values=values, lead_mask=lead_mask)
        if images:
            out["pixel_values"] = self.proc.process_images(images)
        return out


def length_grouped_order(
    lengths: list[int], batch_size: int, seed: int, mega: int = 50
) -> list[int]:
    """A permutation in which each run of `batch_size` indices has similar lengths (less padding):
    shuffle, cut into mega-batches of `mega` batches, sort each by length (longest first), then
    shuffle the order of the batches. Deterministic given the seed."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lengths))
    size = batch_size * mega
    batches = []
    for s in range(0, len(perm), size):
        chunk = sorted(perm[s : s + size].tolist(), key=lambda i: -lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [i for b in order for i in batches[b]]


def padding_fraction(lengths: list[int], order: list[int], batch_size: int) -> float:
    """Share of padded positions when batches are taken in `order`."""
    total = padded = 0
    for s in range(0, len(order), batch_size):
        b = [lengths[i] for i in order[s : s + batch_size]]
        total += max(b) * len(b)
        padded += max(b) * len(b) - sum(b)
    return padded / max(1, total)
