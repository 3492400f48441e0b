"""Contrastive stage 0 (ECG <-> report text), zero-shot classification and linear probes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ecgllm.evaluation.zeroshot import contrastive_loss, label_aucs, linear_probe
from tests.conftest import ROOT


def test_contrastive_losses_by_hand():
    """CLIP with repeated reports: a record's positives are every record with its text, the
    target spread uniformly over them; SigLIP: a sigmoid per pair, summed, per record."""
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0], [0.9, 0.3]]), dim=-1)
    ids = torch.tensor([0, 1, 0])  # records 0 and 2 share their report
    scale = torch.tensor(5.0)
    logits = (scale * e @ t.T).tolist()
    same = [[float(ids[i] == ids[j]) for j in range(3)] for i in range(3)]

    def ce(rows, targets):
        tot = 0.0
        for lg, tg in zip(rows, targets, strict=True):
            lse = math.log(sum(math.exp(v) for v in lg))
            tot -= sum(w / sum(tg) * (v - lse) for v, w in zip(lg, tg, strict=True))
        return tot / len(rows)

    cols = [list(c) for c in zip(*logits, strict=True)]
    want = 0.5 * (ce(logits, same) + ce(cols, same))
    got = contrastive_loss(e, t, ids, scale, "clip")
    assert abs(float(got) - want) < 1e-5
    sig = sum(
        math.log(1 + math.exp(-v)) if s else math.log(1 + math.exp(v))
        for lg, sm in zip(logits, same, strict=True)
        for v, s in zip(lg, sm, strict=True)
    )
    assert abs(float(contrastive_loss(e, t, ids, scale, "siglip")) - sig / 3) < 1e-5


def test_label_aucs_and_linear_probe():
    rng = np.random.default_rng(0)
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    r = label_aucs(y, y + 0.01 * rng.random(y.shape), ["A", "B"])
    assert r["macro_auc"] == 1.0 and r["labels"] == 2 and r["chance"] == 0.5
    assert label_aucs(np.ones((3, 1)), np.zeros((3, 1)), ["A"])["labels"] == 0  # one class only
    # PTB-XL's statement groups: AFIB is a rhythm statement, IMI diagnostic, PVC form
    g = label_aucs(np.concatenate([y, y[:, :1]], 1), np.stack([y[:, 0], 1 - y[:, 1], y[:, 0]], 1),
                   ["AFIB", "IMI", "PVC"])["groups"]  # fmt: skip
    assert g == {"diagnostic": {"macro_auc": 0.0, "labels": 1}, "form": {"macro_auc": 1.0, "labels": 1},
                 "rhythm": {"macro_auc": 1.0, "labels": 1}}  # fmt: skip
    from ecgllm.evaluation.zeroshot import superclass_targets

    t = superclass_targets([{"IMI", "SR"}, {"NORM"}, {"LVH", "CLBBB"}, set()])
    assert t.tolist() == [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]
    # separable features: the probe on all training rows scores 1; on too few rows a label with
    # one class in its subset scores 0.5
    f = rng.normal(size=(200, 4))
    yy = np.stack([f[:, 0] > 0, f[:, 1] > 0], 1).astype(np.float32)
    p = linear_probe(f[:100], yy[:100], f[100:], yy[100:], ["A", "B"], fractions=(0.01, 1.0))
    assert p["1"]["macro_auc"] > 0.98 and p["1"]["train_records"] == 100
    assert p["0.01"]["train_records"] == 4


def test_contrastive_pretraining_zero_shot_and_probe(instruct, tmp_path, monkeypatch):
    """Stage 0 with the contrastive objective trains, resumes to the same weights, and is scored
    zero-shot (simulated test split and the shipped LUDB records) and by linear probes; a
    supervised encoder gets the probe only."""
    from safetensors.torch import load_file

    from ecgllm.evaluation.zeroshot import ContrastiveEncoder, run_zeroshot
    from ecgllm.train.encoder_pretrain import pretrain_encoder

    kw = dict(steps=4, batch_size=8, progress=False, objective="contrastive", save_every=2)
    a = pretrain_encoder(instruct, tmp_path / "a", **kw)
    assert a["settings"]["objective"] == "contrastive" and a["settings"]["text_model"] == "minilm"
    assert 0 <= a["val_macro_auc"] <= 1 and a["val_basis"].startswith("zero-shot")
    assert np.isfinite(a["loss_first"]) and (tmp_path / "a/head.safetensors").exists()
    # stopped right after its step-2 state is saved: the same call resumes and ends the same
    import ecgllm.train.encoder_pretrain as ep

    real_save = ep._save_state

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise InterruptedError("stopped")

    monkeypatch.setattr(ep, "_save_state", save_then_stop)
    with pytest.raises(InterruptedError):
        pretrain_encoder(instruct, tmp_path / "c", **kw)
    assert (tmp_path / "c/checkpoint/state.pt").exists()
    monkeypatch.setattr(ep, "_save_state", real_save)
    b = pretrain_encoder(instruct, tmp_path / "c", **kw)
    wa, wb = (
        load_file(str(p / "ecg_encoder.safetensors")) for p in (tmp_path / "a", tmp_path / "c")
    )
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and b["loss_last"] == a["loss_last"]
    ha, hb = (load_file(str(p / "head.safetensors")) for p in (tmp_path / "a", tmp_path / "c"))
    assert all(torch.equal(ha[k], hb[k]) for k in ha)
    # reused when the settings match
    assert pretrain_encoder(instruct, tmp_path / "a", **kw).get("reused")
    with pytest.raises(ValueError, match="objective must be one of"):
        pretrain_encoder(instruct, tmp_path / "x", steps=1, batch_size=8, objective="masked-ish")
    z = ContrastiveEncoder.load(tmp_path / "a")
    assert z.prompt_embeddings(["AFIB", "SR"]).shape == (2, 128)
    ludb = ROOT / "tests/fixtures/real/ludb"
    r = run_zeroshot(
        tmp_path / "a", instruct, [("ludb", str(ludb))], fractions=(0.5, 1.0), progress=False
    )
    assert (
        set(r["zero_shot"]) == set(r["zero_shot_superclass"]) == {"simulated test", f"ludb:{ludb}"}
    )
    assert r["zero_shot"][f"ludb:{ludb}"]["n"] == 3
    sup5 = r["zero_shot_superclass"]["simulated test"]
    assert set(sup5["per_label"]) <= {"NORM", "MI", "STTC", "CD", "HYP"} and sup5["labels"] >= 2
    assert sup5["groups"] == {}  # superclasses are not statements of a group
    assert set(r["linear_probe"]) == {"0.5", "1"}
    assert set(r["linear_probe_real"][f"ludb:{ludb}"]) == {
        "0.5",
        "1",
    }  # sim-trained probes, real records
    assert r["linear_probe_real"][f"ludb:{ludb}"]["1"]["n"] == 3
    assert all(0 <= v["macro_auc"] <= 1 for v in r["linear_probe"].values())
    sup = pretrain_encoder(instruct, tmp_path / "sup", steps=2, batch_size=8, progress=False)
    assert "objective" not in sup["settings"]  # the supervised stamp keeps its old form
    with pytest.raises(ValueError, match="no text side"):
        ContrastiveEncoder.load(tmp_path / "sup")
    # the entry point: tables, a summary line, results.json; a supervised encoder: probe only
    cmd = [sys.executable, str(ROOT / "eval/zeroshot.py"), "--encoder", str(tmp_path / "sup"), "--data",
           str(instruct), "--out", str(tmp_path / "zs"), "--fractions", "1"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    last = p.stdout.strip().splitlines()[-1]
    assert (
        last.startswith("done: supervised encoder, zero-shot macro AUC n/a")
        and "probe at 100%" in last
    )
    assert json.loads((tmp_path / "zs/results.json").read_text())["zero_shot"] == {}
    bad = subprocess.run(
        [*cmd[:-2], "--fractions", "0"], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and "--fractions must be in (0, 1]" in bad.stderr


def test_masked_pretraining(instruct, tmp_path):
    """The masked objective: hidden spans of every present lead reconstructed (the baseline of
    predicting zeros has R2 0), resumable like the others; probes take its encoder."""
    from ecgllm.model.configuration_ecgllm import EcgEncoderConfig
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.train.encoder_pretrain import MaskedHead, pretrain_encoder

    head = MaskedHead(EcgEncoderConfig(**TINY_ECG))
    pm = head.draw_mask(3, 0.75, torch.Generator().manual_seed(0))
    spans = head.spans()
    assert pm.shape == (3, spans * head.cfg.pool)
    assert (pm[:, :: head.cfg.pool].sum(1) == round(0.75 * spans)).all()  # whole spans, 75% of them
    x = torch.randn(3, 12, head.cfg.n_samples)
    m = torch.ones(3, 12, dtype=torch.bool)
    m[0, 5:] = False
    base = float(head.loss(None, x, m, pm))  # mean square of the hidden, present samples
    span = head.cfg.pool * head.cfg.patch_size
    want = []
    for b in range(3):
        for s in range(spans):
            if pm[b, s * head.cfg.pool]:
                want.append((x[b, m[b], s * span : (s + 1) * span] ** 2).flatten())
    assert abs(base - float(torch.cat(want).mean())) < 1e-5
    r = pretrain_encoder(
        instruct, tmp_path / "m", steps=3, batch_size=8, progress=False, objective="masked"
    )
    assert r["settings"]["objective"] == "masked" and "val_r2" in r and r["val_mse"] > 0
    assert pretrain_encoder(instruct, tmp_path / "m", steps=3, batch_size=8, progress=False,
                            objective="masked").get("reused")  # fmt: skip
    with pytest.raises(ValueError, match="mask_ratio"):
        pretrain_encoder(
            instruct, tmp_path / "x", steps=1, batch_size=8, objective="masked", mask_ratio=1.0
        )
