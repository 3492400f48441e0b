"""Retrieval-augmented prompts: the reports of the training ECGs most like this one (Q-Heart,
ECG-ReGen).

    index = ReportIndex.build("runs/default/instruct", "runs/default/ecg_encoder")  # train split
    index.save("runs/default/retrieval")
    retriever = Retriever(ReportIndex.load("runs/default/retrieval"), k=3)
    retriever.reports(signal_12xn_mV, lead_mask, patient_id="123")   # -> [report, ...]

The index holds one embedding per training-split record (the stage-0 ECG encoder's output tokens,
mean-pooled and L2-normalised) with its report and patient. A query never returns a record of its
own patient, so a training sample does not read its own report and, as the index holds only the
training split, a test sample reads only training reports: no leakage either way.

Search is exact cosine similarity with numpy (a [queries, N] matrix product: ~1 ms for 10,000
records of 64 dimensions); with `faiss` installed (`pip install faiss-cpu`) and more than
FAISS_MIN records it runs in faiss's exact inner-product index (IndexFlatIP), same neighbours.
An approximate index is not used: the sets this toolkit indexes (a database's training split)
are small enough for exact search, and exact search keeps results reproducible.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

FAISS_MIN = 50_000  # records above which faiss (when installed) does the search
INDEX_FILES = ("embeddings.safetensors", "index.json")


def load_stage0_encoder(path: str | Path):
    """The stage-0 ECG encoder saved by recipes/pretrain_ecg_encoder.py (config.json +
    ecg_encoder.safetensors in `path`), in eval mode."""
    from .model.configuration_ecgllm import EcgEncoderConfig
    from .model.ecg_encoder import EcgEncoder, load_encoder_weights

    path = Path(path)
    for name in ("config.json", "ecg_encoder.safetensors"):
        if not (path / name).exists():
            raise FileNotFoundError(
                f"{path / name} not found: pass the folder recipes/pretrain_ecg_encoder.py wrote (--out)"
            )
    cfg = json.loads((path / "config.json").read_text())
    known = set(EcgEncoderConfig().to_dict())
    encoder = EcgEncoder(EcgEncoderConfig(**{k: v for k, v in cfg.items() if k in known}))
    load_encoder_weights(encoder, path / "ecg_encoder.safetensors")
    return encoder.eval()


@torch.no_grad()
def embed(encoder, signals: Sequence[np.ndarray], masks: Sequence[np.ndarray], fs: float = 500.0,
          batch_size: int = 64) -> np.ndarray:  # fmt: skip
    """[N, hidden] L2-normalised embeddings of signals [12, n] in mV: the encoder's output tokens,
    mean-pooled. A blank signal embeds to zeros (it then matches nothing better than anything)."""
    from .signal.features import measurement_vector

    uses = encoder.config.measurement_tokens or encoder.config.rhythm_tokens
    out = []
    for s in range(0, len(signals), batch_size):
        x = np.stack(
            [np.nan_to_num(np.asarray(v, np.float32)) for v in signals[s : s + batch_size]]
        )
        m = np.stack([np.asarray(v, bool) for v in masks[s : s + batch_size]])
        args = [torch.from_numpy(x), torch.from_numpy(m)]
        if uses:
            args.append(
                torch.from_numpy(
                    np.stack([measurement_vector(a, fs, b) for a, b in zip(x, m, strict=True)])
                )
            )
        h = encoder(*args).mean(dim=1)
        h = torch.where(
            (torch.from_numpy(x).abs().amax(dim=(1, 2)) > 0)[:, None], h, torch.zeros_like(h)
        )
        out.append(torch.nn.functional.normalize(h, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.config.hidden_size), np.float32)


class ReportIndex:
    """Embeddings [N, d] (L2-normalised) of records with their ids, patients and reports."""

    def __init__(self, embeddings: np.ndarray, record_ids: list[str], patient_ids: list[str],
                 reports: list[str], meta: dict | None = None):  # fmt: skip
        e = np.asarray(embeddings, np.float32)
        if e.ndim != 2 or not (len(e) == len(record_ids) == len(patient_ids) == len(reports)):
            raise ValueError(
                f"index parts disagree: embeddings {e.shape}, {len(record_ids)} ids, "
                f"{len(patient_ids)} patients, {len(reports)} reports"
            )
        self.embeddings, self.record_ids = e, list(record_ids)
        self.patient_ids, self.reports = [str(p) for p in patient_ids], list(reports)
        self.meta = dict(meta or {})
        self._faiss = None

    def __len__(self) -> int:
        return len(self.record_ids)

    @classmethod
    def build(cls, data_dir: str | Path, encoder_dir: str | Path, split: str = "train",
              progress: bool = True) -> ReportIndex:  # fmt: skip
        """The `split` records of a built dataset (data_builders/build.py) that have a report and a
        signal, embedded with the stage-0 encoder in `encoder_dir`."""
        from datasets import load_from_disk
        from tqdm.auto import tqdm

        data_dir = Path(data_dir)
        if not (data_dir / "records").exists():
            raise FileNotFoundError(f"{data_dir / 'records'} not found: build the dataset with data_builders/build.py")  # fmt: skip
        recs = load_from_disk(str(data_dir / "records"))
        if "signal" not in recs.column_names:
            raise ValueError(
                f"{data_dir}: the dataset has no signals (built without the signal modality)"
            )
        keep = [i for i, (s, r) in enumerate(zip(recs["split"], recs["report"], strict=True))
                if s == split and (r or "").strip()]  # fmt: skip
        if not keep:
            raise ValueError(f"{data_dir}: no {split} record with a report to index")
        encoder = load_stage0_encoder(encoder_dir)
        sub = recs.select(keep)
        fs = float(sub[0]["fs"])
        sig = sub.select_columns(["signal"]).with_format("numpy")
        embs = []
        for s in tqdm(range(0, len(sub), 64), desc="embed", unit="batch", disable=not progress):
            rows = sig[s : s + 64]["signal"]
            embs.append(embed(encoder, list(rows), sub["lead_mask"][s : s + 64], fs))
        return cls(np.concatenate(embs), sub["record_id"], sub["patient_id"], sub["report"],
                   {"data": str(data_dir), "encoder": str(encoder_dir), "split": split, "fs": fs})  # fmt: skip

    def save(self, out: str | Path) -> None:
        """embeddings.safetensors + index.json (ids, patients, reports, meta) and, when the index
        was built here, a copy of its encoder in encoder/ (the index then works wherever it is
        copied, without the folder it was built from); each file written whole then renamed."""
        import shutil

        from safetensors.numpy import save_file

        from .atomic import replace, write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        src = Path(self.meta.get("encoder") or "")
        if self.meta.get("encoder") and src.resolve() != (out / "encoder").resolve():
            (out / "encoder").mkdir(exist_ok=True)
            for name in ("config.json", "ecg_encoder.safetensors"):
                tmp = out / "encoder" / f"{name}.tmp"
                shutil.copyfile(src / name, tmp)
                replace(tmp, out / "encoder" / name)
        tmp = out / "embeddings.safetensors.tmp"
        save_file({"embeddings": self.embeddings}, str(tmp))
        replace(tmp, out / "embeddings.safetensors")
        write_text(out / "index.json", json.dumps({"record_ids": self.record_ids, "patient_ids": self.patient_ids,
                                                   "reports": self.reports, "meta": self.meta}))  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> ReportIndex:
        from safetensors.numpy import load_file

        path = Path(path)
        for name in INDEX_FILES:
            if not (path / name).exists():
                raise FileNotFoundError(f"{path / name} not found: build the index with data_builders/retrieval_index.py")  # fmt: skip
        try:
            d = json.loads((path / "index.json").read_text())
            meta = dict(d.get("meta") or {})
            if (path / "encoder" / "ecg_encoder.safetensors").exists():  # its own copy (save())
                meta["encoder"] = str(path / "encoder")
            return cls(load_file(str(path / "embeddings.safetensors"))["embeddings"], d["record_ids"],
                       d["patient_ids"], d["reports"], meta)  # fmt: skip
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a retrieval index ({type(e).__name__}: {e})") from None

    def search(self, queries: np.ndarray, k: int, exclude_patients: Sequence[str | None] | None = None,
               exclude_records: Sequence[str | None] | None = None) -> list[list[int]]:  # fmt: skip
        """The indices of the k most similar records per query (most similar first), never one of
        the query's own patient (exclude_patients[i]) nor the query's own record
        (exclude_records[i]); ties broken by index order."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        excl = list(exclude_patients) if exclude_patients is not None else [None] * len(q)
        own = list(exclude_records) if exclude_records is not None else [None] * len(q)
        if len(excl) != len(q) or len(own) != len(q):
            raise ValueError(f"{len(excl)} patients and {len(own)} records for {len(q)} queries")
        if k <= 0 or not len(self):
            return [[] for _ in q]
        # enough candidates that k remain after the excluded patient's records
        per_patient = max(
            (self.patient_ids.count(p) for p in set(excl) if p is not None), default=0
        )
        depth = min(len(self), k + per_patient + 1)
        if len(self) >= FAISS_MIN and self._faiss_index() is not None:
            _, cand = self._faiss.search(q, depth)
        else:
            sims = q @ self.embeddings.T
            cand = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
        out = []
        for row, p, r in zip(cand, excl, own, strict=True):
            out.append([int(i) for i in row if i >= 0 and (p is None or self.patient_ids[i] != str(p))
                        and (r is None or self.record_ids[i] != str(r))][:k])  # fmt: skip
        return out

    def fingerprint(self) -> str:
        """A hash of the index's contents (evaluation stamps: answers made with another index are
        not reused)."""
        h = hashlib.blake2b(self.embeddings.tobytes(), digest_size=12)
        h.update(json.dumps([self.record_ids, self.patient_ids, self.reports]).encode())
        return h.hexdigest()

    def _faiss_index(self):
        if self._faiss is None:
            try:
                import faiss
            except ImportError:
                return None
            self._faiss = faiss.IndexFlatIP(self.embeddings.shape[1])
            self._faiss.add(self.embeddings)
        return self._faiss


class Retriever:
    """The k nearest training reports of an ECG (memoised by the signal's bytes)."""

    def __init__(
        self, index: ReportIndex, k: int = 3, encoder=None, encoder_dir: str | Path | None = None
    ):
        if k < 1:
            raise ValueError(f"retrieve k must be at least 1, got {k}")
        self.index, self.k = index, int(k)
        self.encoder = encoder or load_stage0_encoder(encoder_dir or index.meta.get("encoder", ""))
        self.fs = float(index.meta.get("fs", 500.0))
        self._cache: OrderedDict[bytes, list[int]] = OrderedDict()

    def neighbours(self, signal: np.ndarray, lead_mask, patient_id: str | None,
                   record_id: str | None = None) -> list[int]:  # fmt: skip
        x = np.ascontiguousarray(signal, dtype=np.float32)
        m = np.ones(x.shape[0], bool) if lead_mask is None else np.asarray(lead_mask, bool)
        h = hashlib.blake2b(x.tobytes(), digest_size=16)
        h.update(m.tobytes())
        h.update(f"{patient_id}\0{record_id}".encode())
        key = h.digest()
        if key not in self._cache:
            q = embed(self.encoder, [x], [m], self.fs)
            self._cache[key] = self.index.search(q, self.k, [patient_id], [record_id])[0]
            if len(self._cache) > 50_000:
                self._cache.popitem(last=False)
        return self._cache[key]

    def reports(self, signal: np.ndarray, lead_mask, patient_id: str | None,
                record_id: str | None = None) -> list[str]:  # fmt: skip
        return [
            self.index.reports[i] for i in self.neighbours(signal, lead_mask, patient_id, record_id)
        ]

    def text(
        self, signal: np.ndarray, lead_mask, patient_id: str | None, record_id: str | None = None
    ) -> str:
        """The prompt line: the neighbours' reports, most similar first."""
        reps = self.reports(signal, lead_mask, patient_id, record_id)
        if not reps or not np.abs(np.asarray(signal)).max() > 0:
            return "Similar ECGs: none found."
        return "Reports of similar ECGs: " + " ".join(f"({i + 1}) {r}" for i, r in enumerate(reps))


def retriever_for(k: int, index: str | Path | None) -> Retriever | None:
    """The Retriever of a recipe's or an evaluation's settings (None when k is 0)."""
    if not k:
        return None
    if not index:
        raise ValueError(
            f"retrieve {k} needs a retrieval index (build one with data_builders/retrieval_index.py)"
        )
    return Retriever(ReportIndex.load(index), k=k)
