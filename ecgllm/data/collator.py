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
        self, processor, max_length: int = 2048, blank_ecg: bool = False, blank_image: bool = False,
        packing: bool = False, augment=None, seed: int = 0, retriever=None,
        ecg_token_loss: bool = False, keep_expert_text: bool = False,
    ):  # fmt: skip
        self.proc = processor
        # the text-only ablation: with blank_ecg, the expert-features text is still measured from
        # the true signal, so the model has the measurements as text and nothing else of the ECG
        if keep_expert_text and not blank_ecg:
            raise ValueError("keep_expert_text is an ablation of blank_ecg: set both")
        if keep_expert_text and getattr(processor, "ecg_expert_features", "none") == "none":
            raise ValueError(
                "keep_expert_text: this processor puts no measurements in the prompt "
                "(ecg_expert_features is none)"
            )
        self.keep_expert_text = keep_expert_text
        # the tokenizer route: each ECG placeholder is spliced into the ECG's own tokens; with
        # ecg_token_loss they are supervised too (next-token forecasting of the ECG, the
        # pretraining stage of DiagECG / ECG-Byte), besides the assistant turns
        self.tokens = bool(getattr(processor, "tokenizes_ecgs", False))
        if ecg_token_loss and not self.tokens:
            raise ValueError(
                "ecg_token_loss needs a model that reads ECGs as tokens (model.ecg_tokenizer)"
            )
        if augment is not None and self.tokens:
            raise ValueError(
                "signal augmentation acts on the encoder's inputs; a model that reads ECG tokens has none "
                "(augmenting before tokenizing is not built)"
            )
        self.ecg_token_loss = ecg_token_loss
        # ecgllm.retrieval.Retriever: each ECG is followed by the reports of the most similar
        # training ECGs (none of the row's own patient)
        self.retriever = retriever
        self.packing = packing
        # training only: ecgllm.data.augment.SignalAugment applied to each batch's signals after
        # their measurements are taken; its random draws are seeded by the batch's sample ids, so
        # a resumed run sees the same augmented batches as an uninterrupted one
        self.augment, self.seed = augment, seed
        self.tok = processor.tokenizer
        self.max_length = max_length
        self.blank_ecg, self.blank_image = blank_ecg, blank_image
        self.ecg_id = self.tok.convert_tokens_to_ids(processor.ecg_token)
        self.img_id = self.tok.convert_tokens_to_ids(processor.image_token)
        self.native = getattr(processor, "native", None)
        if packing and self.native is not None:
            raise ValueError("packing is not supported with a native VLM backbone (Gemma 3 / Mllama / Qwen2.5-VL image masks)")  # fmt: skip
        self.dropped: Counter = Counter()

    def encode(
        self,
        messages: list[dict],
        add_generation_prompt: bool = False,
        inputs: tuple | None = None,
        ecg_runs: list[list[int]] | None = None,
    ) -> tuple[list[int], list[int]]:
        """(token ids, assistant mask) with placeholders expanded to their token counts (with ECG
        tokens: to each ECG's tokens, `ecg_runs` when given, else tokenized from `inputs`, the
        row's row_inputs())."""
        out = self.tok.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=not add_generation_prompt,
            add_generation_prompt=add_generation_prompt, chat_template=self.proc.chat_template,
            ecg_token=self.proc.ecg_token, image_token=self.proc.image_token,
        )  # fmt: skip
        ids = list(out["input_ids"])
        mask = list(out.get("assistant_masks") or [0] * len(ids))
        if self.tokens:  # each placeholder becomes its ECG's own tokens (supervised or not)
            runs = self.ecg_runs(inputs) if ecg_runs is None else ecg_runs
            if ids.count(self.ecg_id) != len(runs):
                raise ValueError(
                    f"{ids.count(self.ecg_id)} ECG placeholders in the messages but {len(runs)} ECG signals"
                )
            next_run, ecg_label = iter(runs).__next__, int(self.ecg_token_loss)
        else:  # the encoder's features fill num_ecg_tokens placeholder positions
            run = [self.ecg_id] * self.proc.num_ecg_tokens
            next_run, ecg_label = (lambda: run), 0
        exp_ids, exp_mask = [], []
        for t, m in zip(ids, mask, strict=True):
            if t == self.ecg_id:
                r = next_run()
                exp_ids += r
                exp_mask += [ecg_label] * len(r)
            elif t == self.img_id and self.native is None:  # (a native VLM expands its own)
                exp_ids += [t] * self.proc.num_image_tokens
                exp_mask += [0] * self.proc.num_image_tokens
            else:
                exp_ids.append(t)
                exp_mask.append(m)
        return exp_ids, exp_mask

    def ecg_runs(self, inputs: tuple | None) -> list[list[int]]:
        """With ECG tokens: each ECG of a row's inputs (row_inputs()) as its LLM token ids."""
        ecgs, masks, _ = inputs if inputs is not None else ([], [], [])
        return self.proc.ecg_token_ids(ecgs, masks) if ecgs else []

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
        # a signal-only model (no vision tower) reads the signal of a row that also has pages:
        # their placeholders expand to no tokens, the pages are not loaded
        if "image" in mods and (self.proc.num_image_tokens or self.native is not None):
            images = row["images"]
            if self.blank_image:
                from PIL import Image

                images = [Image.new("RGB", im.size, "white") for im in images]
        return ecgs, masks, list(images)

    def asked(self, row: dict) -> list[dict]:
        """The row's messages with a lettered question asked and answered in the model's answer
        form (processor.choice_answer), and every question asking it to think first when the
        processor does (processor.think_tokens); any other row's as they are."""
        messages = row["messages"]
        if row.get("options") and hasattr(self.proc, "choice_messages"):
            messages = self.proc.choice_messages(messages, row["options"])
        if getattr(self.proc, "think_tokens", 0) and hasattr(self.proc, "think_messages"):
            messages = self.proc.think_messages(messages)
        return messages

    def messages(self, row: dict, inputs: tuple | None = None) -> list[dict]:
        """The row's messages as the model sees them: a lettered question asked and answered in the
        processor's choice_answer form; each ECG followed by its measurements as text
        when the processor has expert features, then by the reports of the most similar training
        ECGs when the collator has a retriever (both from the signals as given to the model, so
        the blank-ECG ablation blanks them too). `inputs`: the row's row_inputs(), if made."""
        messages = self.asked(row)
        expert = getattr(self.proc, "ecg_expert_features", "none") != "none"
        if not (expert or self.retriever) or not row.get("record_ids"):
            return messages
        ecgs, masks, _ = inputs if inputs is not None else self.row_inputs(row)
        if self.retriever is not None and ecgs:
            from ..model.processing_ecgllm import insert_after_ecgs

            # never the row's patient nor the ECG's own record (a comparison's second ECG)
            lines = [
                self.retriever.text(x, m, row.get("patient_id"), rid)
                for x, m, rid in zip(ecgs, masks, row["record_ids"], strict=True)
            ]
            messages = insert_after_ecgs(messages, [t + "\n" for t in lines])
        if self.keep_expert_text and ecgs:  # the text-only ablation: measured before blanking
            ecgs = list(np.asarray(row["signal"], dtype=np.float32))
        return self.proc.add_expert_text(messages, ecgs, masks)  # placed first, after each ECG

    def length(self, row: dict) -> int:
        row_in = self.row_inputs(row) if self.tokens else None
        return len(self.encode(self.messages(row, row_in), inputs=row_in)[0])

    def truncate(
        self, ids: list[int], mask: list[int], rid: str
    ) -> tuple[list[int], list[int]] | None:
        """(ids, mask) cut at max_length at the end, or None (dropped and counted in `dropped`)
        when the cut would split a placeholder run or leave nothing supervised."""
        if len(ids) <= self.max_length:
            return ids, mask
        cut = self.max_length
        if self.tokens:
            inside = self.proc.cuts_ecg_tokens(ids, cut)
        else:
            inside = ids[cut - 1] in (self.ecg_id, self.img_id) and ids[cut] == ids[cut - 1]
        if inside:
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
        if self.native is not None and any(
            "image" in (r.get("modalities") or []) and r.get("record_ids") for r in rows
        ):
            return self._native_batch(rows)
        seqs, inputs, keys, tasks = [], [], [], []
        for row in rows:
            row_in = self.row_inputs(row)
            enc = self.truncate(
                *self.encode(self.messages(row, row_in), inputs=row_in), row.get("id", "?")
            )
            if enc is None:
                continue
            seqs.append(enc)
            inputs.append(row_in)
            keys.append([f"{row.get('id')}:{k}" for k in range(len(inputs[-1][0]))])
            tasks.append([(row.get("task"), row.get("attribute_type"))] * len(inputs[-1][0]))
        self._check_supervised(sum(1 for _, m in seqs if any(m)), len(seqs))
        paired = all(len(e) == len(i) for e, _, i in inputs)  # each ECG with its own page
        if self.packing:
            batch, order = self.pack(seqs, inputs)
            return self._augmented(
                batch,
                [k for i in order for k in keys[i]],
                [t for i in order for t in tasks[i]],
                paired,
            )
        batch = self.pad(seqs)
        batch.update(self.features(*self._concat(inputs)))
        return self._augmented(
            batch, [k for ks in keys for k in ks], [t for ts in tasks for t in ts], paired
        )

    def _augmented(
        self,
        batch: dict[str, torch.Tensor],
        keys: list[str],
        tasks: list[tuple],
        paired: bool = False,
    ) -> dict[str, torch.Tensor]:
        """`keys`: one per ECG of the batch, in order (sample id and ECG index); `tasks`: each
        ECG's row task and attribute_type (SignalAugment.measurement_swap); `paired`: every row
        has one page image per ECG (SignalAugment.swap_signal swaps those pages too)."""
        if self.augment is None or "ecg_values" not in batch:
            return batch
        import hashlib

        values, masks, meas, gens = [], [], [], []
        for i, key in enumerate(keys):
            h = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=8).digest()
            g = torch.Generator().manual_seed(int.from_bytes(h, "little") & (2**63 - 1))
            gens.append(g)
            v, m = self.augment(batch["ecg_values"][i : i + 1], batch["lead_mask"][i : i + 1], g)
            values.append(v)
            masks.append(m)
            if "ecg_measurements" in batch:
                meas.append(self.augment.measurements(batch["ecg_measurements"][i : i + 1], g))
        donors = self.augment.donors(tasks, gens)
        values, masks = torch.cat(values), torch.cat(masks)
        if self.augment.swap_signal and any(j is not None for j in donors):
            take = torch.tensor([i if j is None else j for i, j in enumerate(donors)])
            values, masks = values[take], masks[take]
            pix = batch.get("pixel_values")
            if paired and pix is not None and pix.shape[0] == len(keys):  # the donor's page too
                batch["pixel_values"] = pix[take]
        batch["ecg_values"], batch["lead_mask"] = values, masks
        if meas:
            batch["ecg_measurements"] = self.augment.swap(torch.cat(meas), tasks, gens, donors)
        return batch

    @staticmethod
    def _concat(inputs: list[tuple[list, list, list]]) -> tuple[list, list, list]:
        ecgs, masks, images = [], [], []
        for e, m, i in inputs:
            ecgs, masks, images = ecgs + e, masks + m, images + i
        return ecgs, masks, images

    def pack(
        self, seqs: list[tuple[list[int], list[int]]], inputs: list
    ) -> tuple[dict[str, torch.Tensor], list[int]]:
        """The micro-batch's samples packed first-fit-decreasing into as few rows of at most
        `max_length` tokens as they fit in. Each sample keeps its own position ids (0, 1, ...)
        and there is no attention_mask: transformers then builds a block-diagonal causal mask
        from the position-id restarts (masking_utils.find_packed_sequence_indices), so no sample
        attends to another and the loss equals the unpacked batch's. The padded tail of a row is
        its own block, with no labels. Not for native VLM backbones (their image masks).
        Returns the batch and the order in which the samples (indices into `seqs`) were packed."""
        rows = pack_rows([len(ids) for ids, _ in seqs], self.max_length)
        width = max(sum(len(seqs[i][0]) for i in members) for members in rows)
        input_ids = torch.full((len(rows), width), self.tok.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        ordered, order = [], []
        for r, members in enumerate(rows):
            off = 0
            for i in members:
                ids, m = seqs[i]
                t = torch.tensor(ids)
                input_ids[r, off : off + len(ids)] = t
                positions[r, off : off + len(ids)] = torch.arange(len(ids))
                labels[r, off : off + len(ids)] = torch.where(
                    torch.tensor(m, dtype=torch.bool), t, -100
                )
                off += len(ids)
                ordered.append(inputs[i])  # ECGs/images in the order their placeholders appear
                order.append(i)
            positions[r, off:] = torch.arange(width - off)
        batch = {"input_ids": input_ids, "position_ids": positions, "labels": labels}
        batch.update(self.features(*self._concat(ordered)))
        return batch, order

    def _check_supervised(self, n_supervised: int, n: int) -> None:
        if n == 0:
            raise ValueError(f"every sample of the batch was dropped ({dict(self.dropped)})")
        if n_supervised * 2 < n:
            raise ValueError(
                f"only {n_supervised} of {n} samples have supervised tokens: the chat template's "
                "assistant spans are missing (does it have {% generation %} markers?)"
            )

    def _native_batch(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows with page images for a native VLM backbone (Gemma 3, Llama 3.2 Vision, Qwen2.5-VL):
        its own processor expands each image placeholder in text (boi/soft tokens/eoi, or one
        cross-attention token) and makes pixel_values and its extra inputs (token_type_ids,
        cross_attention_mask, image_grid_thw, ...), all padded together. The labels are still the
        chat template's assistant spans: every supervised token comes after the row's last image,
        so the span is the tail of the row in both tokenizations, and each supervised token id is
        checked against the processor's output (a mismatch raises: nothing is masked silently)."""
        tails, texts, inputs = [], [], []
        for row in rows:
            rid = row.get("id", "?")
            row_in = self.row_inputs(row)
            messages = self.messages(row, row_in)
            ids, mask = self.encode(messages)
            last = max((i for i, t in enumerate(ids) if t == self.img_id), default=-1)
            if any(mask[: last + 1]):
                raise ValueError(
                    f"sample {rid}: an assistant turn comes before an image; with a native VLM backbone "
                    "every image must precede the supervised turns (put the pages in the first user turn)"
                )
            tails.append((ids[last + 1 :], mask[last + 1 :]))
            texts.append(self.proc.apply_chat_template(messages))
            inputs.append(row_in)
        ecgs, masks, images = self._concat(inputs)
        enc = self.proc(text=texts, ecgs=ecgs or None, images=images or None, padding=True,
                        lead_masks=masks or None)  # fmt: skip
        lengths = enc["attention_mask"].sum(1)
        too_long = [r for r, n in enumerate(lengths.tolist()) if n > self.max_length]
        if too_long:  # cutting inside a native image sequence is never safe: drop, count, redo
            for r in too_long:
                self.dropped["too_long_native_vlm"] += 1
                log.warning("dropping %s: %d tokens > max_length %d", rows[r].get("id", "?"), int(lengths[r]), self.max_length)  # fmt: skip
            rest = [row for r, row in enumerate(rows) if r not in too_long]
            self._check_supervised(len(rest), len(rest))
            return self._native_batch(rest)
        labels = torch.full_like(enc["input_ids"], -100)
        for r, (tail, tmask) in enumerate(tails):
            real = enc["attention_mask"][r].nonzero().squeeze(-1)  # either padding side
            pos = real[len(real) - len(tail) :]
            got = enc["input_ids"][r, pos]
            want = torch.tensor(tail, dtype=got.dtype)
            sup = torch.tensor(tmask, dtype=torch.bool)
            if len(pos) != len(tail) or not torch.equal(got[sup], want[sup]):
                raise ValueError(
                    f"sample {rows[r].get('id', '?')}: the native processor's tokens differ from the chat "
                    "template's in the assistant turns (tokenization mismatch); labels would be misaligned"
                )
            labels[r, pos] = torch.where(sup, want, torch.full_like(want, -100))
        self._check_supervised(sum(1 for _, m in tails if any(m)), len(tails))
        batch = dict(enc)
        batch["labels"] = labels
        return batch

    def prompt_batch(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Generation inputs: each row's first user turn with the generation prompt, left-padded
        (a KV-cache `generate` appends after the last position), with the rows' ECG and page
        inputs (blanked as the collator is set)."""
        tok = self.tok
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            texts, ecgs, masks, images = [], [], [], []
            for r in rows:
                e, m, i = self.row_inputs(r)
                texts.append(
                    self.proc.apply_chat_template(
                        self.messages({**r, "messages": r["messages"][:1]}, (e, m, i)),
                        add_generation_prompt=True,
                    )
                )
                ecgs, masks, images = ecgs + e, masks + m, images + i
            return self.proc(text=texts, ecgs=ecgs or None, images=images or None,
                             lead_masks=masks or None)  # fmt: skip
        finally:
            tok.padding_side = side

    def candidate_batch(
        self, rows: list[dict[str, Any]], cache: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Scoring inputs for rows whose messages are [user, assistant] (candidate answers): the
        training batch of those rows, labels on the assistant span, nothing dropped (a row that
        does not fit max_length raises). Rows with the same id share one ECG/page input (and with
        ECG tokens one tokenization), made once and kept in `cache` across calls."""
        if self.native is not None:  # the backbone's own processor expands the pages
            batch = self(rows)
            if batch["labels"].shape[0] != len(rows):
                raise ValueError(
                    f"candidate answers dropped ({dict(self.dropped)}): raise max_length"
                )
            return batch
        cache = {} if cache is None else cache
        seqs, feats = [], []
        for it in rows:
            key = str(it.get("id", id(it)))
            if key not in cache:  # the row's ECGs and pages are read (and tokenized) once
                ecgs, masks, images = self.row_inputs(it)
                cache[key] = {"features": self.features(ecgs, masks, images),
                              "inputs": (ecgs, masks, []),  # what messages() and encode() read
                              "runs": self.ecg_runs((ecgs, masks, [])) if self.tokens else None}  # fmt: skip
            got = cache[key]
            enc = self.truncate(
                *self.encode(
                    self.messages(it, got["inputs"]), inputs=got["inputs"], ecg_runs=got["runs"]
                ),
                it.get("id", "?"),
            )
            if enc is None:
                raise ValueError(
                    f"candidate answer of {it.get('id')} dropped ({dict(self.dropped)}): raise max_length"
                )
            seqs.append(enc)
            feats.append(got["features"])
        batch = self.pad(seqs)
        for k in feats[0]:
            batch[k] = torch.cat([f[k] for f in feats])
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
            out.update(self.proc.ecg_inputs(ecgs, masks))
        if images:
            out["pixel_values"] = self.proc.process_images(images)
        return out


def pack_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """First-fit decreasing: sample indices grouped into rows of at most `max_length` tokens."""
    rows: list[list[int]] = []
    loads: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = next((r for r, load in enumerate(loads) if load + lengths[i] <= max_length), None)
        if r is None:
            rows.append([i])
            loads.append(lengths[i])
        else:
            rows[r].append(i)
            loads[r] += lengths[i]
    return rows


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


def curriculum_order(
    tasks: list[str],
    stages: list[tuple[tuple[str, ...], int]],
    per_step: int,
    seed: int,
    lengths: list[int] | None = None,
    group: int = 1,
) -> list[int]:
    """The sample positions (into `tasks`) of a whole run taught in stages: stage k, given as
    (task families, optimizer steps), fills its steps x `per_step` samples from its families only,
    through seeded permutations of that pool (a pool smaller than the stage repeats, a new
    permutation each pass; a larger one is cut where the stage ends). With `lengths` each
    permutation is length-grouped in runs of `group` (length_grouped_order). Deterministic given
    the seed, so a resumed run skips into the same sequence."""
    out: list[int] = []
    for k, (families, steps) in enumerate(stages):
        pool = [i for i, t in enumerate(tasks) if t in families]
        if steps and not pool:
            raise ValueError(f"curriculum stage {k + 1}: no training samples of {list(families)}")
        need = steps * per_step
        passes = 0
        while need > 0:
            s = seed * 1000 + 7919 * (k + 1) + passes
            perm = (
                length_grouped_order([lengths[i] for i in pool], group, s)
                if lengths is not None
                else np.random.default_rng(s).permutation(len(pool)).tolist()
            )
            take = [pool[j] for j in perm[:need]]
            out += take
            need -= len(take)
            passes += 1
    return out


def stage_steps(shares: list[float], total: int) -> list[int]:
    """Optimizer steps of each curriculum stage: the run's `total` steps cut at the cumulative
    shares, rounded, so that they add up to `total` exactly."""
    ends, acc = [], 0.0
    for s in shares:
        acc += s
        ends.append(round(acc * total))
    ends[-1] = total
    return [e - b for b, e in zip([0, *ends[:-1]], ends, strict=True)]


def padding_fraction(
    lengths: list[int], order: list[int], batch_size: int, pack_to: int | None = None
) -> float:
    """Share of padded positions when batches are taken in `order` (each batch packed into rows
    of `pack_to` tokens when given, as EcgCollator(packing=True) does)."""
    total = padded = 0
    for s in range(0, len(order), batch_size):
        b = [lengths[i] for i in order[s : s + batch_size]]
        rows = [[b[i] for i in r] for r in pack_rows(b, pack_to)] if pack_to else [[x] for x in b]
        width = max(sum(r) for r in rows)
        total += width * len(rows)
        padded += width * len(rows) - sum(b)
    return padded / max(1, total)


def approx_lengths(ds, indices: list[int], n_ecg_tok: int, n_img_tok: int) -> list[int]:
    """Token-count estimates for grouping (no tokenizer call): ~3 characters a token."""
    cols = ds.samples.select_columns(["messages", "record_ids", "modalities"])
    out = []
    for i in indices:
        r = cols[i]
        chars = sum(len(c["text"] or "") for m in r["messages"] for c in m["content"])
        n = len(r["record_ids"])
        out.append(
            chars // 3
            + n
            * (n_ecg_tok * ("signal" in r["modalities"]) + n_img_tok * ("image" in r["modalities"]))
        )
    return out
