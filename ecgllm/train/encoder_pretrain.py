"""Supervised pretraining of the ECG encoder on a built dataset's records.

    summary = pretrain_encoder("runs/default/instruct", "runs/default/ecg_encoder", steps=600)
    # then: model.ecg_weights=runs/default/ecg_encoder/ecg_encoder.safetensors in a recipe config

Real ECG-LLMs start from a pretrained ECG encoder (PULSE and GEM from ECG foundation models,
ECG-Chat from a contrastively trained one); an encoder learned from scratch inside the LLM's
language loss gets little gradient and the LLM learns to answer from its priors instead (seen on
the embedded default: the same scores with the ECG blanked). This is the small, local version:
every output token of the encoder learns the records' SCP statements (multi-label BCE) and their measured
intervals (standardized regression: HR, PR, QRS, QT, QTc, axis) on the training split only;
validation AUC and errors are reported on the validation split. Supervising every token (not
only their mean) matters: the LLM reads individual ECG positions through attention, so each one
should carry the record-level findings. The saved file loads with
`ecgllm.model.ecg_encoder.load_encoder_weights` (the recipe's `model.ecg_weights`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import write_text
from ..model.configuration_ecgllm import EcgEncoderConfig
from ..model.ecg_encoder import EcgEncoder

REGRESSION = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg")


def _targets(records, codes: list[str] | None):
    labels = [set(json.loads(x or "{}")) for x in records["labels"]]
    if codes is None:
        counts: dict[str, int] = {}
        for s in labels:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        codes = sorted(c for c, n in counts.items() if n >= 3)
    y = np.array([[c in s for c in codes] for s in labels], dtype=np.float32)
    reg = np.full((len(labels), len(REGRESSION)), np.nan, dtype=np.float32)
    for i, f in enumerate(records["features"]):
        summary = json.loads(f or "{}").get("summary", {})
        for j, k in enumerate(REGRESSION):
            if summary.get(k) is not None:
                reg[i, j] = summary[k]
    return codes, y, reg


def pretrain_encoder(data_dir: str | Path, out: str | Path, encoder_config: dict | None = None,
                     steps: int = 600, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
                     progress: bool = True) -> dict:  # fmt: skip
    """Train, validate and save OUT/ecg_encoder.safetensors (+ config and metrics). Reuses a
    finished run with the same settings."""
    from datasets import load_from_disk
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from ..metrics.scores import multilabel
    from ..model.factory import TINY_ECG

    out = Path(out)
    settings = {"data": str(data_dir), "encoder": encoder_config or TINY_ECG, "steps": steps,
                "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                "output_stats": "train"}  # fmt: skip
    done = out / "pretrain_summary.json"
    if done.exists() and (out / "ecg_encoder.safetensors").exists():
        prev = json.loads(done.read_text())
        if prev.get("settings") == json.loads(json.dumps(settings)):
            return prev | {"reused": True}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    records = load_from_disk(str(Path(data_dir) / "records"))
    if "signal" not in records.column_names:
        raise ValueError(f"{data_dir}/records has no signals: build with the signal modality")
    splits = np.array(records["split"])
    tr, va = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "validation")
    if len(tr) < batch_size:
        raise ValueError(
            f"{data_dir}: {len(tr)} training records, fewer than one batch of {batch_size}"
        )
    codes, y, reg = _targets(records, None)
    mu, sd = np.nanmean(reg[tr], 0), np.nanstd(reg[tr], 0) + 1e-6
    sig = records.select_columns(["signal", "lead_mask"]).with_format("numpy")
    x_all = np.stack([sig[i]["signal"] for i in range(len(records))]).astype(np.float32)
    m_all = np.stack([sig[i]["lead_mask"] for i in range(len(records))]).astype(bool)
    cfg = EcgEncoderConfig(**(encoder_config or TINY_ECG))
    enc = EcgEncoder(cfg)
    head = nn.Linear(cfg.hidden_size, len(codes) + len(REGRESSION))
    params = [*enc.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))),
    )
    pos_w = torch.from_numpy(np.clip((len(tr) - y[tr].sum(0)) / np.maximum(y[tr].sum(0), 1), 1, 20))
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_w)

    def forward(idx: np.ndarray, augment: bool) -> torch.Tensor:
        x = torch.from_numpy(x_all[idx])
        if augment:  # amplitude scale, a little noise and a circular time shift: the encoder
            # must not memorise records, and rhythm is the same wherever the window starts
            x = x * torch.empty(len(idx), 1, 1).uniform_(0.8, 1.2) + 0.02 * torch.randn_like(x)
            x = torch.roll(x, int(rng.integers(0, x.shape[-1])), dims=-1)
        h = enc(x, torch.from_numpy(m_all[idx]))
        return head(h)  # [B, tokens, outputs]: every token is asked for the whole record's labels

    t0 = time.perf_counter()
    enc.train()
    losses = []
    for _ in tqdm(range(steps), desc="ecg encoder", unit="step", disable=not progress):
        idx = rng.choice(tr, batch_size, replace=False)
        o = forward(idx, augment=True)
        t = o.shape[1]
        r = torch.from_numpy((reg[idx] - mu) / sd)[:, None].expand(-1, t, -1)
        ok = ~torch.isnan(r)
        loss = bce(o[..., : len(codes)], torch.from_numpy(y[idx])[:, None].expand(-1, t, -1))
        loss = loss + 0.5 * ((o[..., len(codes) :] - r.nan_to_num()) ** 2)[ok].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    enc.eval()
    metrics: dict = {}
    if len(va):
        with torch.no_grad():
            o = torch.cat([forward(va[i : i + 64], augment=False) for i in range(0, len(va), 64)])
            tok = o[:, 0].numpy()  # a single token's predictions: what any one LLM position sees
            o = o.mean(1).numpy()
        ml = multilabel(y[va], 1 / (1 + np.exp(-o[:, : len(codes)])), codes)
        pred = o[:, len(codes) :] * sd + mu
        mae = {
            k: float(np.nanmean(np.abs(pred[:, j] - reg[va, j]))) for j, k in enumerate(REGRESSION)
        }
        one = multilabel(y[va], 1 / (1 + np.exp(-tok[:, : len(codes)])), codes)
        metrics = {"val_macro_auc": ml["macro_auc"], "val_macro_auc_one_token": one["macro_auc"], "val_mae": mae,
                   "val_auc": {k: v["auc"] for k, v in ml["per_label"].items() if "auc" in v}}  # fmt: skip
    # the LLM sees the encoder's output standardized with the training split's statistics (see
    # EcgEncoder.fit_output_stats); fitted after validation, whose head saw the raw output
    stats = enc.fit_output_stats(
        (torch.from_numpy(x_all[tr[i : i + 64]]), torch.from_numpy(m_all[tr[i : i + 64]]))
        for i in range(0, len(tr), 64)
    )
    metrics["output_mean_direction_share"] = stats["mean_direction_share"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "ecg_encoder.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(tmp))
    tmp.replace(out / "ecg_encoder.safetensors")
    write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    summary = {"settings": settings, "codes": codes, "train_records": len(tr), "val_records": len(va),
               "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
               "seconds": round(time.perf_counter() - t0, 1), **metrics,
               "weights": str(out / "ecg_encoder.safetensors")}  # fmt: skip
    write_text(done, json.dumps(summary, indent=1, default=float))
    return summary
