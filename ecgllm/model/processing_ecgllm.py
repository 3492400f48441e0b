"""EcgLlmProcessor: tokenizer + chat template + ECG signal processing + image processing.

    proc = EcgLlmProcessor(image_processor, tokenizer, num_ecg_tokens=25, num_image_tokens=16)
    text = proc.apply_chat_template(messages, add_generation_prompt=True)   # <ecg>/<image> items
    batch = proc(text=[text], ecgs=[signal_or_record], images=[page])       # placeholders expanded
    model.generate(**batch)

ECG settings (sampling rate, window, lead order, normalisation) are saved in
processor_config.json, so a checkpoint standardizes new ECGs the way it was trained.
Wide ECG pages are padded to a square with the paper's white (not squeezed, not cropped), then
resized by the image processor: every lead stays visible and keeps its aspect ratio.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# the answer formats of ecgllm.data.tasks.common, copied because this file also ships alone with
# exported checkpoints (remote code); tests/model/test_choice_format.py asserts they are equal
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHOICE_FORMATS = {
    "letter": ("Answer with the letter.", "{letter}. {option}"),
    "name_letter": ("Name the answer, then its letter.", "{option} ({letter})"),
}


def pad_to_square(image: Image.Image, fill=(255, 255, 255)) -> Image.Image:
    image = image.convert("RGB")
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def as_rgb(image: Any, i: int = 0) -> Image.Image:
    """A page as an RGB PIL image: a PIL image of any mode, or an array [H, W], [H, W, 1|3|4]
    (uint8 0-255, or float 0-1); anything else is a ValueError naming image `i` and the problem."""
    if isinstance(image, np.ndarray) or (hasattr(image, "numpy") and hasattr(image, "shape")):
        a = np.asarray(image.numpy() if hasattr(image, "numpy") else image)
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a.transpose(1, 2, 0)  # channels first (a torch tensor) -> last
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
            raise ValueError(
                f"image {i}: an array page must be [H, W] or [H, W, 1|3|4], got shape {a.shape}"
            )
        if a.dtype.kind not in "uifb":
            raise ValueError(f"image {i}: an array page must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"image {i}: the array holds NaN or infinite values")
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
        image = Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)
    if not isinstance(image, Image.Image):
        raise ValueError(f"image {i}: expected a PIL image or an array, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"image {i}: empty page ({image.width}x{image.height} px)")
    if image.mode in ("I", "I;16", "F"):  # 16/32-bit grey: scaled to 8 bit (convert() would clip)
        a = np.asarray(image, dtype=np.float64)
        span = a.max() - a.min() if a.size else 0.0
        image = Image.fromarray(
            ((a - a.min()) / span * 255 if span else np.zeros_like(a)).astype(np.uint8)
        )
    return image.convert("RGB")


def count_ecg_items(messages: list[dict]) -> int:
    return sum(
        1
        for msg in messages
        if not isinstance(msg.get("content"), str)
        for it in msg.get("content") or []
        if it.get("type") == "ecg"
    )


def insert_after_ecgs(messages: list[dict], texts: Sequence[str]) -> list[dict]:
    """A copy of `messages` with texts[i] as a text item right after the i-th ECG item."""
    if count_ecg_items(messages) != len(texts):
        raise ValueError(
            f"the messages hold {count_ecg_items(messages)} ECG items but {len(texts)} texts were given"
        )
    lines = iter(texts)
    return map_items(
        messages,
        lambda role, it: (
            [it, {"type": "text", "text": next(lines)}] if it.get("type") == "ecg" else [it]
        ),
    )


# what a question asks of a model that thinks first (EcgLlmProcessor.think_tokens)
THINK_INSTRUCTION = "First think it through inside <think> </think>, then answer."


def map_items(messages: list[dict], fn) -> list[dict]:
    """A copy of `messages` with each content item of a message replaced by the items of
    fn(role, item), in order (a message whose content is a plain string is kept as it is)."""
    out = []
    for msg in messages:
        if isinstance(msg.get("content"), str):
            out.append(msg)
            continue
        items = [new for it in msg.get("content") or [] for new in fn(msg.get("role"), it)]
        out.append({**msg, "content": items})
    return out


class EcgLlmProcessor(ProcessorMixin):
    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        ecg_token: str = "<ecg>",
        image_token: str = "<image>",
        num_ecg_tokens: int = 100,
        num_image_tokens: int = 196,
        ecg_fs: float = 500.0,
        ecg_seconds: float = 10.0,
        ecg_leads: Sequence[str] = STANDARD_12,
        ecg_normalization: str = "clip",
        ecg_clip_mv: float = 10.0,
        native_processor_class: str | None = None,
        native_kwargs: dict | None = None,
        ecg_measurement_dim: int = 0,
        ecg_expert_features: str = "none",
        ecg_tokens: dict | None = None,
        choice_answer: str = "letter",
        think_tokens: int = 0,
        **kwargs,
    ):
        if ecg_normalization not in ("none", "clip", "zscore"):
            raise ValueError(
                f"ecg_normalization must be none, clip or zscore, not {ecg_normalization!r}"
            )
        self.ecg_token, self.image_token = ecg_token, image_token
        self.num_ecg_tokens, self.num_image_tokens = int(num_ecg_tokens), int(num_image_tokens)
        self.ecg_fs, self.ecg_seconds = float(ecg_fs), float(ecg_seconds)
        self.ecg_leads = list(ecg_leads)
        self.ecg_normalization, self.ecg_clip_mv = ecg_normalization, float(ecg_clip_mv)
        # > 0: the model's ECG encoder takes measurement tokens; compute each ECG's measurement
        # vector (ecgllm.signal.features) of this length
        self.ecg_measurement_dim = int(ecg_measurement_dim)
        # "rhythm" / "all": each ECG's measurements as a line of text after its placeholder
        # (add_expert_text; ecgllm.signal.features.expert_text), "none": the ECG alone
        if ecg_expert_features not in ("none", "rhythm", "all"):
            raise ValueError(
                f"ecg_expert_features must be none, rhythm or all, not {ecg_expert_features!r}"
            )
        self.ecg_expert_features = ecg_expert_features
        if choice_answer not in CHOICE_FORMATS:
            raise ValueError(
                f"choice_answer must be one of {', '.join(CHOICE_FORMATS)}, not {choice_answer!r}"
            )
        self.choice_answer = choice_answer
        # > 0: every question asks the model to think inside <think> </think> before it answers
        # (think_messages), and generation gets this many more tokens for it (set by GRPO's
        # `think` option; the answer is read after the block: ecgllm.metrics.parsing.split_reasoning)
        if int(think_tokens) < 0:
            raise ValueError(f"think_tokens must be >= 0, not {think_tokens!r}")
        self.think_tokens = int(think_tokens)
        self._measure_cache = None
        # the tokenizer route (ecgllm.model.ecg_tokenizer, saved here as its JSON document): each
        # ECG placeholder becomes the ECG's own tokens in the LLM's vocabulary (quantised
        # amplitudes merged by BPE) instead of encoder features; the model has no ECG encoder
        self.ecg_tokens = ecg_tokens
        self._ecg_tok, self._ecg_ids = None, None
        if ecg_tokens is not None:
            if native_processor_class:
                raise ValueError(
                    "ECG tokens (ecg_tokens) are not supported with a native VLM backbone"
                )
            self.num_ecg_tokens = 0
        if chat_template is None and tokenizer is not None:
            chat_template = getattr(tokenizer, "chat_template", None)
        # a native VLM backbone (Gemma 3, ...): its own processor expands image tokens and makes
        # pixel_values and its extra inputs; we add the ECG signals
        self.native_processor_class, self.native_kwargs = (
            native_processor_class,
            dict(native_kwargs or {}),
        )
        self.native = None
        if native_processor_class:
            import transformers

            cls = getattr(transformers, native_processor_class)
            self.native = cls(
                image_processor=image_processor, tokenizer=tokenizer, **self.native_kwargs
            )
            self.image_token, self.num_image_tokens = self.native.image_token, 0
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    # --- ECG tokens (the tokenizer route) ---
    @property
    def tokenizes_ecgs(self) -> bool:
        return self.ecg_tokens is not None

    @property
    def takes_ecgs(self) -> bool:
        """Whether the model reads ECGs at all (encoder features or ECG tokens)."""
        return bool(self.num_ecg_tokens) or self.tokenizes_ecgs

    @property
    def ecg_length_estimate(self) -> int:
        """Tokens an ECG takes in input_ids: num_ecg_tokens, or with ECG tokens about half a
        token per resampled symbol (the BPE merges) per lead, plus its marker (for batching by
        length only)."""
        if not self.tokenizes_ecgs:
            return self.num_ecg_tokens
        c = self.ecg_tokens["config"]
        return int(len(c["leads"]) * (c["fs"] * self.ecg_seconds / 2 + 1))

    def _ecg_token_model(self):
        if self._ecg_tok is None:
            try:  # by name: this file also ships alone with exported checkpoints (remote code)
                mod = importlib.import_module("ecgllm.model.ecg_tokenizer")
            except ImportError:
                raise ImportError(
                    "this model reads ECGs as tokens, made by the ecgllm package (pip install ecgllm)"
                ) from None
            self._ecg_tok = mod.EcgTokenizer.from_document(self.ecg_tokens)
            vocab = self.tokenizer.get_vocab()
            names = self._ecg_tok.added_tokens()
            missing = [t for t in names if t not in vocab]
            if missing:
                raise ValueError(
                    f"the LLM tokenizer lacks {len(missing)} of the ECG tokenizer's {len(names)} tokens "
                    f"(e.g. {missing[0]}): build the model with this ECG tokenizer (model.ecg_tokenizer)"
                )
            self._ecg_ids = {t: vocab[t] for t in names}
        return self._ecg_tok

    def ecg_token_id_range(self) -> tuple[int, int]:
        """(lowest, highest) LLM token id of the ECG tokens (lead markers included): added in one
        block, so an id in this range is an ECG token."""
        self._ecg_token_model()
        ids = list(self._ecg_ids.values())
        if max(ids) - min(ids) + 1 != len(ids):
            raise ValueError(
                "the ECG tokens are not one block of ids in the LLM tokenizer: build the model with "
                "the ECG tokenizer on a tokenizer that does not hold them yet"
            )
        return min(ids), max(ids)

    def cuts_ecg_tokens(self, ids: Sequence[int], cut: int) -> bool:
        """Whether cutting `ids` before position `cut` splits an ECG's tokens."""
        lo, hi = self.ecg_token_id_range()
        return 0 < cut < len(ids) and lo <= ids[cut - 1] <= hi and lo <= ids[cut] <= hi

    def ecg_token_ids(
        self, ecgs: Sequence[Any], masks: Sequence[Any] | None = None
    ) -> list[list[int]]:
        """Per ECG (arrays [12, n] in mV at the processor's rate, or ECGRecords), the LLM token
        ids that replace its placeholder: per tokenized lead a lead marker and the lead's tokens,
        or the lead's `missing` marker when the record (or `masks`) lacks it."""
        tok = self._ecg_token_model()
        _, lead_mask, raw = self._process(ecgs, normalise=False)  # the tokenizer reads mV
        if masks is not None:
            if len(masks) != len(ecgs):
                raise ValueError(f"{len(masks)} lead masks for {len(ecgs)} ECGs")
            lead_mask = lead_mask & torch.from_numpy(np.stack([np.asarray(m, bool) for m in masks]))
        ids = self._ecg_ids
        out = []
        for x, m in zip(raw, lead_mask.numpy(), strict=True):
            row: list[int] = []
            for lead, lead_ids in zip(tok.config.leads, tok.encode(x, m), strict=True):
                if lead_ids is None:
                    row.append(ids[f"<ecg_lead_{lead}_missing>"])
                else:
                    row += [ids[f"<ecg_lead_{lead}>"]] + [ids[f"<ecg_{i}>"] for i in lead_ids]
            out.append(row)
        return out

    def splice_ecg_ids(self, ids: list[int], ecg_ids: Sequence[list[int]]) -> list[int]:
        """Token ids with each ECG placeholder (one token) replaced by that ECG's token ids."""
        ph = self.tokenizer.convert_tokens_to_ids(self.ecg_token)
        n = sum(1 for t in ids if t == ph)
        if n != len(ecg_ids):
            raise ValueError(f"{n} ECG placeholders but {len(ecg_ids)} tokenized ECGs")
        it, out = iter(ecg_ids), []
        for t in ids:
            out += next(it) if t == ph else [t]
        return out

    # --- ECG signals ---
    @property
    def ecg_samples(self) -> int:
        return int(round(self.ecg_fs * self.ecg_seconds))

    def ecg_inputs(
        self, ecgs: Sequence[Any], masks: Sequence[Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """The model's ECG inputs: ecg_values, lead_mask (the processor's own, AND the records'
        `masks` when given: leads a record lacks) and, when the model takes them,
        ecg_measurements [N, ecg_measurement_dim] measured on the mV signals before
        normalisation. The one place where a batch's ECG inputs are made (training, evaluation
        and generation alike). With ECG tokens (tokenizes_ecgs) the ECGs are in input_ids and
        this is empty."""
        if self.tokenizes_ecgs:
            return {}
        values, lead_mask, raw = self._process(ecgs)
        if masks is not None:
            if len(masks) != len(ecgs):
                raise ValueError(f"{len(masks)} lead masks for {len(ecgs)} ECGs")
            lead_mask = lead_mask & torch.from_numpy(np.stack([np.asarray(m, bool) for m in masks]))
        out = {"ecg_values": values, "lead_mask": lead_mask}
        if self.ecg_measurement_dim:
            out["ecg_measurements"] = self.measurements(raw, lead_mask.numpy())
        return out

    @staticmethod
    def _features(why: str):
        try:  # by name: this file also ships alone with exported checkpoints (remote code)
            return importlib.import_module("ecgllm.signal.features")
        except ImportError:
            raise ImportError(
                f"{why}, computed by the ecgllm package (pip install ecgllm); without it pass "
                "ecg_measurements yourself"
            ) from None

    def _vectors(self, features, signals, lead_masks) -> list[np.ndarray]:
        if self._measure_cache is None:
            self._measure_cache = features.MeasurementCache()
        return [
            self._measure_cache(np.asarray(x, np.float32), self.ecg_fs, m)
            for x, m in zip(signals, lead_masks, strict=True)
        ]

    def measurements(self, signals: Sequence[np.ndarray], lead_masks: np.ndarray) -> torch.Tensor:
        """Measurement vectors [N, ecg_measurement_dim] of signals [12, n] in mV (memoised)."""
        features = self._features("this model's ECG encoder takes measurement tokens")
        rows = self._vectors(features, signals, lead_masks)
        if features.MEASUREMENT_DIM != self.ecg_measurement_dim:  # a model of an earlier layout
            cols = features.columns_for(self.ecg_measurement_dim)
            rows = [v[cols] for v in rows]
        return (
            torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, self.ecg_measurement_dim)
        )

    def add_expert_text(
        self, messages: list[dict], signals: Sequence[np.ndarray], lead_masks: Sequence[Any]
    ) -> list[dict]:
        """`messages` with each ECG item followed by a text item of that ECG's measurements
        (signals [12, n] in mV at the processor's rate, in the order of the ECG items), when the
        processor was made with ecg_expert_features "rhythm" or "all"; unchanged otherwise. Call
        it before apply_chat_template when generating by hand, as the collator does in training
        and evaluation."""
        if self.ecg_expert_features == "none":
            return messages
        n_items = count_ecg_items(messages)
        if n_items != len(signals):
            raise ValueError(
                f"the messages hold {n_items} ECG items but {len(signals)} signals were given"
            )
        if not n_items:
            return messages
        features = self._features("expert features (measurements as text) are measurements")
        masks = [
            np.ones(len(self.ecg_leads), bool) if m is None else np.asarray(m, bool)
            for m in lead_masks
        ]
        lines = [
            features.expert_text(v, self.ecg_expert_features) + "\n"
            for v in self._vectors(features, signals, masks)
        ]
        return insert_after_ecgs(messages, lines)

    def choice_text(self, options: Sequence[str], j: int) -> str:
        """The answer naming option j of a lettered question, in this processor's form."""
        return CHOICE_FORMATS[self.choice_answer][1].format(letter=LETTERS[j], option=options[j])

    def think_messages(self, messages: list[dict]) -> list[dict]:
        """`messages` with THINK_INSTRUCTION after the first user turn's last text when this
        processor thinks first (think_tokens > 0); unchanged otherwise."""
        if not self.think_tokens:
            return messages
        out, done = [], False
        for msg in messages:
            items = msg.get("content")
            if not done and msg.get("role") == "user" and isinstance(items, list):
                texts = [k for k, it in enumerate(items) if it.get("type") == "text"]
                if texts:
                    k = texts[-1]
                    it = items[k]
                    items = [*items[:k], {**it, "text": f"{it['text'].rstrip()} {THINK_INSTRUCTION}"}, *items[k + 1 :]]  # fmt: skip
                    msg, done = {**msg, "content": items}, True
            out.append(msg)
        return out

    def choice_messages(self, messages: list[dict], options: Sequence[str] | None) -> list[dict]:
        """`messages` of a lettered multiple-choice row, built in the "letter" form (the question
        ends "Answer with the letter.", an answer is "B. option"), in this processor's
        choice_answer form: the instruction and every answer naming an option rewritten; any
        other row, or a processor of the letter form, unchanged. Call it before
        apply_chat_template when generating by hand, as the collator does."""
        if self.choice_answer == "letter" or not options:
            return messages
        old_q, old_a = CHOICE_FORMATS["letter"]
        new_q = CHOICE_FORMATS[self.choice_answer][0]
        # (rows with more options than letters, e.g. detection's label lists, are never lettered)
        answers = {
            old_a.format(letter=L, option=o): j
            for j, (L, o) in enumerate(zip(LETTERS, options, strict=False))
        }
        lettered = False  # answers are rewritten after a lettered question only

        def rewrite(role, it):
            nonlocal lettered
            text = it.get("text") if it.get("type") == "text" else None
            if text is not None and role == "user" and text.rstrip().endswith(old_q):
                lettered, cut = True, text.rstrip()
                return [{**it, "text": cut[: -len(old_q)] + new_q + text[len(cut) :]}]
            j = (
                answers.get(text.strip())
                if text is not None and role == "assistant" and lettered
                else None
            )
            return [it if j is None else {**it, "text": self.choice_text(options, j)}]

        return map_items(messages, rewrite)

    def process_ecgs(self, ecgs: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """ECGRecords (standardized here) or arrays [12, n] in mV -> (ecg_values [N, 12, n] float32,
        lead_mask [N, 12] bool), normalised as configured."""
        values, masks, _ = self._process(ecgs)
        return values, masks

    def _process(
        self, ecgs: Sequence[Any], normalise: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
        """(normalised values [N, leads, samples] (the raw ones without `normalise`), lead masks,
        raw mV arrays) of ECG arrays or ECGRecords (standardised to the processor's window)."""
        values, masks, raw = [], [], []
        for i, e in enumerate(ecgs):
            if hasattr(e, "signal") and hasattr(e, "fs"):
                try:  # by name: this file also ships alone with exported checkpoints (remote code)
                    standardize = importlib.import_module("ecgllm.signal.preprocess").standardize
                except ImportError:
                    raise ImportError(
                        "standardizing ECGRecords needs the ecgllm package (pip install ecgllm); "
                        "without it pass arrays [12, n] in mV at the processor's rate and window"
                    ) from None
                e = standardize(e, fs=self.ecg_fs, seconds=self.ecg_seconds, leads=self.ecg_leads)
                x, m = np.asarray(e.signal, np.float32), np.asarray(e.lead_mask, bool)
            else:
                x = np.asarray(e, dtype=np.float32)
                m = np.ones(x.shape[0], dtype=bool) if x.ndim == 2 else None
            if x.ndim != 2 or x.shape != (len(self.ecg_leads), self.ecg_samples):
                raise ValueError(
                    f"ECG {i} has shape {tuple(x.shape)}, expected ({len(self.ecg_leads)}, {self.ecg_samples}) "
                    f"= {len(self.ecg_leads)} leads x {self.ecg_seconds:g} s at {self.ecg_fs:g} Hz; pass an "
                    "ECGRecord to have it standardized"
                )
            x = np.nan_to_num(x)
            raw.append(x)
            how = self.ecg_normalization if normalise else "none"
            if how == "clip":
                x = np.clip(x, -self.ecg_clip_mv, self.ecg_clip_mv)
            elif how == "zscore":
                x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-3)
            values.append(x)
            masks.append(m)
        if not values:
            return (torch.zeros(0, len(self.ecg_leads), self.ecg_samples),
                    torch.zeros(0, len(self.ecg_leads), dtype=torch.bool), [])  # fmt: skip
        return torch.from_numpy(np.stack(values)), torch.from_numpy(np.stack(masks)), raw

    def process_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if self.num_image_tokens == 0:
            raise ValueError(
                "this model has no vision tower: it takes no images (signal-only model)"
            )
        padded = [pad_to_square(self._prereduce(as_rgb(im, i))) for i, im in enumerate(images)]
        return self.image_processor(padded, return_tensors="pt")["pixel_values"]

    def _prereduce(self, image: Image.Image) -> Image.Image:
        """Box-average a page far larger than the encoder's input down to about twice that size
        before the image processor's own resize: a 2200 px page -> 64 px costs ~35 ms in the
        processor's resampling filter and ~3 ms this way, at every training step; the result
        differs from the direct resize by less than the JPEG noise of a scanned page."""
        size = getattr(self.image_processor, "size", None) or {}
        side = size.get("height") or size.get("shortest_edge") or size.get("longest_edge")
        if not side:
            return image
        k = max(image.size) // (2 * int(side))
        return image.reduce(k) if k >= 2 else image

    # --- text ---
    def expand(self, text: str) -> str:
        if not self.tokenizes_ecgs:  # ECG tokens are spliced in token space (_with_ecg_tokens)
            text = text.replace(self.ecg_token, self.ecg_token * self.num_ecg_tokens)
        if self.native is not None:  # the native processor expands its own image tokens
            return text
        return text.replace(self.image_token, self.image_token * self.num_image_tokens)

    def apply_chat_template(self, conversation, **kwargs):
        """The tokenizer's chat template with `{"type": "ecg"}`/`{"type": "image"}` items rendered as
        this processor's placeholder tokens (not yet expanded; __call__ expands them)."""
        kwargs.setdefault("tokenize", False)
        kwargs.setdefault("chat_template", self.chat_template)
        return self.tokenizer.apply_chat_template(
            conversation, ecg_token=self.ecg_token, image_token=self.image_token, **kwargs
        )

    def __call__(
        self,
        text: str | list[str] | None = None,
        ecgs: Sequence[Any] | None = None,
        images: Sequence[Image.Image] | None = None,
        lead_masks: Sequence[Any] | None = None,
        padding: bool | str = True,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """text: chat-formatted strings with one placeholder per ECG/image; ecgs/images: all of the
        batch's inputs in order of appearance; lead_masks: the ECGs' own lead masks (leads a record
        lacks), if known. Returns input_ids, attention_mask, ecg_values, lead_mask,
        ecg_measurements (models with measurement tokens), pixel_values (the ECG and image
        entries only when given)."""
        texts = [text] if isinstance(text, str) else list(text or [])
        n_ecg = sum(t.count(self.ecg_token) for t in texts)
        n_img = sum(t.count(self.image_token) for t in texts)
        if n_ecg != len(ecgs or []):
            raise ValueError(
                f"the text holds {n_ecg} {self.ecg_token} placeholders but {len(ecgs or [])} ECGs were given"
            )
        # a signal-only model (no vision tower): page placeholders expand to no tokens, so a row
        # that also has pages needs none given (given pages are refused by process_images)
        signal_only = self.num_image_tokens == 0 and self.native is None
        if n_img != len(images or []) and not (signal_only and not images):
            raise ValueError(
                f"the text holds {n_img} {self.image_token} placeholders but {len(images or [])} images were given"
            )
        expanded = [self.expand(t) for t in texts]
        if self.native is not None and images:
            # the native processors match images to prompts by nesting: one list per text (a
            # batch may mix rows with and without a page)
            it = iter(images)
            nested = [[next(it) for _ in range(t.count(self.image_token))] for t in expanded]
            enc = self.native(text=expanded, images=nested, padding=padding, truncation=truncation,
                              max_length=max_length, return_tensors=return_tensors, add_special_tokens=False, **kwargs)  # fmt: skip
            data = dict(enc)
        elif self.tokenizes_ecgs:
            data = self._with_ecg_tokens(expanded, ecgs or [], lead_masks, padding, truncation,
                                         max_length, return_tensors, **kwargs)  # fmt: skip
        else:
            enc = self.tokenizer(expanded, padding=padding, truncation=truncation, max_length=max_length,
                                 return_tensors=return_tensors, add_special_tokens=False, **kwargs)  # fmt: skip
            data = dict(enc)
        n_img_expect = (
            [0] * len(texts)
            if self.native is not None
            else [t.count(self.image_token) for t in texts]
        )
        self.check_placeholders(
            data["input_ids"], [t.count(self.ecg_token) for t in texts], n_img_expect
        )
        if ecgs:
            data.update(self.ecg_inputs(ecgs, lead_masks))
        if images and self.native is None:
            data["pixel_values"] = self.process_images(images)
        return BatchFeature(data=data)

    def _with_ecg_tokens(self, texts, ecgs, lead_masks, padding, truncation, max_length,
                         return_tensors, **kwargs) -> dict:  # fmt: skip
        """Tokenize with one placeholder per ECG, splice in each ECG's tokens, then pad (the
        collator splices the same way in training: the ids are identical)."""
        rows = self.tokenizer(texts, add_special_tokens=False, **kwargs)["input_ids"]
        ecg_ids = self.ecg_token_ids(ecgs, lead_masks) if len(ecgs) else []
        it, out = iter(ecg_ids), []
        ph = self.tokenizer.convert_tokens_to_ids(self.ecg_token)
        for r, ids in enumerate(rows):
            ids = self.splice_ecg_ids(ids, [next(it) for _ in range(ids.count(ph))])
            if truncation and max_length and len(ids) > max_length:
                if self.cuts_ecg_tokens(ids, max_length):
                    raise ValueError(
                        f"row {r}: truncation to {max_length} tokens would cut into an ECG's tokens; "
                        "raise max_length or shorten the text"
                    )
                ids = ids[:max_length]
            out.append(ids)
        return dict(self.tokenizer.pad({"input_ids": out}, padding=padding, max_length=max_length,
                                       return_tensors=return_tensors))  # fmt: skip

    def check_placeholders(self, input_ids, n_ecg: list[int], n_img: list[int]) -> None:
        """Raise if truncation (or anything) left a partial placeholder run in a row."""
        ecg_id = self.tokenizer.convert_tokens_to_ids(self.ecg_token)
        img_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        ids = torch.as_tensor(input_ids)
        for row, (ne, ni) in enumerate(zip(n_ecg, n_img, strict=True)):
            got_e = int((ids[row] == ecg_id).sum())
            got_i = int((ids[row] == img_id).sum()) if self.native is None else 0
            if got_e != ne * self.num_ecg_tokens or got_i != ni * self.num_image_tokens:
                raise ValueError(
                    f"row {row}: expected {ne} ECG x {self.num_ecg_tokens} and {ni} image x "
                    f"{self.num_image_tokens} placeholder tokens, found {got_e} and {got_i}: truncation "
                    "cut into a placeholder run; raise max_length or shorten the text"
                )

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            "ecg_values",
            "lead_mask",
            "ecg_measurements",
            "pixel_values",
        ]
