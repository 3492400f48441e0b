"""ECG tokens: quantised amplitudes merged by byte-pair encoding (the ECG-Byte route).

    tok = EcgTokenizer.train(signals, masks, EcgTokenizerConfig(leads=("I", "II", "V2"), vocab_size=1024))
    ids = tok.encode(signal, mask)            # one list of token ids per tokenized lead
    back = tok.decode(ids, n_samples=5000)    # [len(leads), 5000] mV at the input rate
    tok.save_pretrained("runs/tok"); EcgTokenizer.from_pretrained("runs/tok")
    tok.token_strings(ids)                    # "<ecg_lead_I><ecg_17><ecg_902>..." for an LLM's vocabulary

Each tokenized lead is resampled to `fs` (anti-aliased polyphase), clipped to +-`clip_mv`,
companded by mu-law (`mu`; 0 = uniform steps) and quantised to `levels` amplitude symbols; a
byte-pair encoder (Hugging Face `tokenizers`, the library behind the LLM tokenizers, so its BPE
is trained and saved the usual way) then merges frequent symbol runs (a flat baseline, a
repeated QRS shape) into tokens, up to `vocab_size` tokens in all. Decoding maps each symbol back
to its bin centre, expands mu-law, and resamples to the requested length: the round trip loses
what lies above fs/2 and within one quantisation step (`round_trip_error` measures it in mV).
Why BPE over symbols: ECG-Byte (Han et al. 2024) trains an LLM end to end on such tokens with
half the compute of encoder-based models; the merges shorten a 10 s lead several-fold.
A missing lead is written as one `<ecg_lead_X_missing>` marker (no symbols).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..signal.preprocess import resample
from ..signal.record import STANDARD_12

FILE = "ecg_tokenizer.json"  # config + the BPE model, one file
SYMBOL_BASE = 0xE000  # amplitude symbols as private-use code points (never in real text)


@dataclass(frozen=True)
class EcgTokenizerConfig:
    leads: tuple[str, ...] = ("I", "II", "V2")  # tokenized leads, in this order
    input_fs: float = 500.0  # rate of the signals given to encode (the processor's)
    fs: float = 50.0  # the rate each lead is resampled to before quantising
    levels: int = 64  # amplitude symbols
    clip_mv: float = 2.5  # amplitudes beyond +-clip_mv saturate
    mu: float = 32.0  # mu-law companding (finer steps near the baseline); 0: uniform steps
    vocab_size: int = 1024  # BPE vocabulary: the symbols plus the merges

    def __post_init__(self):
        bad = [lead for lead in self.leads if lead not in STANDARD_12]
        if not self.leads or bad or len(set(self.leads)) != len(self.leads):
            raise ValueError(
                f"leads must be distinct names from {STANDARD_12}, got {list(self.leads)}"
            )
        if not 0 < self.fs <= self.input_fs:
            raise ValueError(f"fs must be in (0, input_fs={self.input_fs}], got {self.fs}")
        if not 2 <= self.levels <= 4096:
            raise ValueError(f"levels must be in [2, 4096], got {self.levels}")
        if self.clip_mv <= 0 or self.mu < 0:
            raise ValueError(f"clip_mv must be > 0 and mu >= 0, got {self.clip_mv}, {self.mu}")
        if self.vocab_size < self.levels:
            raise ValueError(
                f"vocab_size ({self.vocab_size}) must hold the {self.levels} amplitude symbols"
            )


class EcgTokenizer:
    def __init__(self, config: EcgTokenizerConfig, bpe):
        self.config = config
        self.bpe = bpe  # tokenizers.Tokenizer

    # --- quantisation ----------------------------------------------------------------------
    def _compand(self, x: np.ndarray) -> np.ndarray:
        c = self.config
        y = np.clip(x / c.clip_mv, -1.0, 1.0)
        return np.sign(y) * np.log1p(c.mu * np.abs(y)) / np.log1p(c.mu) if c.mu else y

    def _expand(self, y: np.ndarray) -> np.ndarray:
        c = self.config
        x = np.sign(y) * np.expm1(np.abs(y) * np.log1p(c.mu)) / c.mu if c.mu else y
        return x * c.clip_mv

    def quantise(self, lead: np.ndarray) -> np.ndarray:
        """One lead at `fs` (mV) -> symbol indices 0..levels-1."""
        y = (self._compand(lead) + 1.0) / 2.0  # [0, 1]
        return np.clip(np.floor(y * self.config.levels), 0, self.config.levels - 1).astype(np.int64)

    def dequantise(self, q: np.ndarray) -> np.ndarray:
        y = (np.asarray(q, dtype=np.float64) + 0.5) / self.config.levels * 2.0 - 1.0
        return self._expand(y).astype(np.float32)

    def _symbols(self, q: np.ndarray) -> str:
        return "".join(chr(SYMBOL_BASE + int(v)) for v in q)

    def _lead_strings(self, signal: np.ndarray, lead_mask: np.ndarray | None) -> list[str | None]:
        c = self.config
        x = np.asarray(signal, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(STANDARD_12):
            raise ValueError(
                f"signal must be [12, samples] in {STANDARD_12} order, got {list(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise ValueError("signal has NaN or infinite samples: standardize the record first")
        mask = np.ones(len(STANDARD_12), bool) if lead_mask is None else np.asarray(lead_mask, bool)
        out: list[str | None] = []
        for lead in c.leads:
            i = STANDARD_12.index(lead)
            out.append(
                self._symbols(self.quantise(resample(x[i], c.input_fs, c.fs))) if mask[i] else None
            )
        return out

    # --- training, encoding, decoding --------------------------------------------------------
    @classmethod
    def train(
        cls, signals, masks=None, config: EcgTokenizerConfig = EcgTokenizerConfig()
    ) -> EcgTokenizer:
        """Learn the merges on [N, 12, samples] signals (mV, at config.input_fs) and their masks."""
        from tokenizers import Tokenizer, models, trainers

        alphabet = [chr(SYMBOL_BASE + v) for v in range(config.levels)]
        tok = cls(config, Tokenizer(models.BPE()))
        corpus = []
        for k, s in enumerate(signals):
            corpus += [t for t in tok._lead_strings(s, None if masks is None else masks[k]) if t]
        if not corpus:
            raise ValueError("no lead to learn ECG tokens from (every tokenized lead missing?)")
        trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, initial_alphabet=alphabet,
                                      limit_alphabet=config.levels, min_frequency=2, show_progress=False)  # fmt: skip
        tok.bpe.train_from_iterator(corpus, trainer=trainer)
        return tok

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size()

    def encode(
        self, signal: np.ndarray, lead_mask: np.ndarray | None = None
    ) -> list[list[int] | None]:
        """[12, samples] mV -> token ids per tokenized lead (None for a missing lead)."""
        return [
            None if s is None else self.bpe.encode(s).ids
            for s in self._lead_strings(signal, lead_mask)
        ]

    def decode(self, ids: list[list[int] | None], n_samples: int) -> np.ndarray:
        """Token ids per lead -> [len(leads), n_samples] mV at input_fs (a missing lead: zeros)."""
        c = self.config
        out = np.zeros((len(c.leads), n_samples), np.float32)
        n_low = int(round(n_samples * c.fs / c.input_fs))
        for k, lead_ids in enumerate(ids):
            if lead_ids is None:
                continue
            text = "".join(self.bpe.id_to_token(i) for i in lead_ids)
            q = np.array([ord(ch) - SYMBOL_BASE for ch in text], dtype=np.int64)
            low = self.dequantise(q)
            low = np.pad(low, (0, max(0, n_low - len(low))), mode="edge")[:n_low]
            back = resample(low, c.fs, c.input_fs)
            out[k, : min(n_samples, len(back))] = back[:n_samples]
        return out

    def round_trip_error(self, signals, masks=None) -> dict[str, float]:
        """RMSE and mean absolute error (mV) of decode(encode(x)) against x over the tokenized,
        present leads; and the tokens per lead (the compression the merges bring)."""
        se, ae, n, tokens, leads = 0.0, 0.0, 0, 0, 0
        idx = [STANDARD_12.index(lead) for lead in self.config.leads]
        for k, s in enumerate(signals):
            m = None if masks is None else masks[k]
            ids = self.encode(s, m)
            back = self.decode(ids, s.shape[1])
            for j, lead_ids in enumerate(ids):
                if lead_ids is None:
                    continue
                d = back[j] - np.asarray(s[idx[j]], np.float64)
                se, ae, n = se + float((d**2).sum()), ae + float(np.abs(d).sum()), n + d.size
                tokens, leads = tokens + len(lead_ids), leads + 1
        if not n:
            raise ValueError("no present tokenized lead to measure")
        return {"rmse_mv": (se / n) ** 0.5, "mae_mv": ae / n, "tokens_per_lead": tokens / leads,
                "symbols_per_lead": self.config.fs * signals[0].shape[1] / self.config.input_fs}  # fmt: skip

    # --- the LLM's side ----------------------------------------------------------------------
    def added_tokens(self) -> list[str]:
        """The strings an LLM's vocabulary gains: one per ECG token and two per lead."""
        leads = [f"<ecg_lead_{lead}>" for lead in self.config.leads]
        missing = [f"<ecg_lead_{lead}_missing>" for lead in self.config.leads]
        return leads + missing + [f"<ecg_{i}>" for i in range(self.vocab_size)]

    def token_strings(self, ids: list[list[int] | None]) -> str:
        parts = []
        for lead, lead_ids in zip(self.config.leads, ids, strict=True):
            if lead_ids is None:
                parts.append(f"<ecg_lead_{lead}_missing>")
            else:
                parts.append(f"<ecg_lead_{lead}>" + "".join(f"<ecg_{i}>" for i in lead_ids))
        return "".join(parts)

    # --- files -------------------------------------------------------------------------------
    def to_document(self) -> dict:
        """The tokenizer as one JSON-able dict (config + BPE model): what ecg_tokenizer.json holds
        and what an LLM processor saves in its processor_config.json."""
        return {"config": asdict(self.config), "bpe": json.loads(self.bpe.to_str())}

    @classmethod
    def from_document(cls, doc: dict) -> EcgTokenizer:
        from tokenizers import Tokenizer

        cfg = doc["config"]
        config = EcgTokenizerConfig(**{**cfg, "leads": tuple(cfg["leads"])})
        return cls(config, Tokenizer.from_str(json.dumps(doc["bpe"])))

    def save_pretrained(self, folder: str | Path) -> Path:
        from ..atomic import write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / FILE, json.dumps(self.to_document()))
        return folder / FILE

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> EcgTokenizer:
        path = Path(folder) / FILE
        try:
            return cls.from_document(json.loads(path.read_text()))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{path}: no ECG tokenizer here") from e
        except (
            Exception
        ) as e:  # bad JSON, missing keys, bad values, or a BPE model `tokenizers` rejects
            raise ValueError(f"{path}: not an ECG tokenizer file ({e})") from e
