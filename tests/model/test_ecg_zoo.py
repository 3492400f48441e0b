"""The encoder zoo: ST-MEM's and ECGFounder's encoders in their authors' parameter layouts, their
checkpoint files, their preprocessing, inside the model, trained by the recipe, and exported
without ecgllm."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ecgllm.model.configuration_ecgllm import EcgEncoderConfig
from ecgllm.model.ecg_encoder import load_encoder_weights
from ecgllm.model.ecg_zoo import (
    EcgFounderEncoder,
    MerlResNetEncoder,
    StMemEncoder,
    build_ecg_encoder,
)
from tests.conftest import ROOT

TINY_ST_MEM = dict(encoder_type="st_mem", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, patch_size=75, zoo_head_dim=16)  # fmt: skip
# the released Net1D's depth (7 stages: 20 tokens from 10 s), narrow
TINY_FOUNDER = dict(encoder_type="ecgfounder", hidden_size=32, zoo_filters=[16, 16, 32, 32, 32, 32, 32],
                    zoo_blocks=[1, 1, 1, 1, 1, 1, 2], zoo_base_filters=16, zoo_kernel=5, zoo_groups_width=8)  # fmt: skip
# MERL's ResNet18 at its real width (3.8 M parameters), fewer tokens
TINY_MERL = dict(encoder_type="merl_resnet", hidden_size=512, zoo_tokens=8)
# per zoo encoder: its tiny config, and one of its weights (in the authors' names) to follow
ZOO_CASES = {"st_mem": (TINY_ST_MEM, "block0.attn.fn.to_qkv.weight"),
             "ecgfounder": (TINY_FOUNDER, "stage_list.3.block_list.0.conv2.conv.weight"),
             "merl_resnet": (TINY_MERL, "layer3.0.conv2.weight")}  # fmt: skip


def _authors_keys(depth: int, leads: int = 12) -> set[str]:
    """ST_MEM_ViT's state-dict keys, written out from the authors' module tree (bakqui/ST-MEM,
    models/encoder/st_mem_vit.py and vit.py): what their released encoder file holds."""
    keys = {"to_patch_embedding.1.weight", "to_patch_embedding.1.bias", "to_patch_embedding.2.weight",
            "to_patch_embedding.2.bias", "to_patch_embedding.3.weight", "to_patch_embedding.3.bias",
            "pos_embedding", "sep_embedding", "norm.weight", "norm.bias"}  # fmt: skip
    keys |= {f"lead_embeddings.{i}" for i in range(leads)}
    for i in range(depth):
        for part in ("attn.norm.weight", "attn.norm.bias", "attn.fn.to_qkv.weight", "attn.fn.to_qkv.bias",
                     "attn.fn.to_out.0.weight", "attn.fn.to_out.0.bias", "ff.norm.weight", "ff.norm.bias",
                     "ff.fn.net.0.weight", "ff.fn.net.0.bias", "ff.fn.net.3.weight", "ff.fn.net.3.bias"):  # fmt: skip
            keys.add(f"block{i}.{part}")
    return keys


def _signals(b=2, seed=0):
    t = np.arange(5000) / 500.0
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            np.sin(2 * np.pi * (1.1 + 0.1 * k) * t)[None] * rng.uniform(0.5, 1.5, (12, 1))
            for k in range(b)
        ]
    )
    return torch.from_numpy(x.astype(np.float32))


def test_parameter_layout_and_shapes():
    cfg = EcgEncoderConfig(**TINY_ST_MEM)
    enc = build_ecg_encoder(cfg)
    assert isinstance(enc, StMemEncoder) and cfg.num_tokens == 30
    own = set(enc.state_dict()) - {"feature_mean", "feature_std"}
    assert own == _authors_keys(2)
    assert tuple(enc.state_dict()["pos_embedding"].shape) == (1, 32, 32)  # 30 patches + 2 SEP
    assert tuple(enc.state_dict()["block0.attn.fn.to_qkv.weight"].shape) == (3 * 2 * 16, 32)
    out = enc(_signals())
    assert tuple(out.shape) == (2, 30, 32) and torch.isfinite(out).all()
    # the authors' preprocessing: 250 Hz, the centre 9 s, band-limited, standardised together
    prep = enc.prepare(_signals(), None)
    assert tuple(prep.shape) == (2, 12, 2250)
    assert abs(float(prep[0].mean())) < 1e-4 and abs(float(prep[0].std()) - 1) < 1e-3
    # a missing lead: zero in, whatever the recording held, and left out of the token average
    x, m = _signals(), torch.ones(2, 12, dtype=torch.bool)
    m[:, 4] = False
    y = x.clone()
    y[:, 4] = 7.0
    torch.testing.assert_close(enc(x, m), enc(y, m))
    with pytest.raises(ValueError, match="signal only"):
        StMemEncoder(EcgEncoderConfig(**{**TINY_ST_MEM, "measurement_tokens": 4}))
    with pytest.raises(ValueError, match="encoder_type must be"):
        EcgEncoderConfig(encoder_type="resnet9000")


def test_loads_the_authors_checkpoint_files(tmp_path):
    """Both layouts their code writes: the downstream {"model": encoder state (+ head)} and the
    pretraining one (encoder under "encoder.", the patch embedding aliased at top level, a
    decoder); a file torch cannot load safely is refused."""
    torch.manual_seed(1)
    src = StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    down = {
        "model": {**sd, "head.weight": torch.randn(3, 32), "head.bias": torch.zeros(3)},
        "epoch": 9,
    }
    torch.save(down, tmp_path / "downstream.pth")
    pre = {"model": {**{f"encoder.{k}": v for k, v in sd.items()},
                     **{k: v for k, v in sd.items() if k.startswith("to_patch_embedding.")},
                     "mask_embedding": torch.zeros(1, 1, 16), "decoder_pos_embed": torch.zeros(1, 32, 16),
                     "to_decoder_embedding.weight": torch.zeros(16, 32), "decoder_head.weight": torch.zeros(75, 16)}}  # fmt: skip
    torch.save(pre, tmp_path / "pretrain.pth")
    for name in ("downstream.pth", "pretrain.pth"):
        torch.manual_seed(2)
        dst = StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM))
        load_encoder_weights(dst, tmp_path / name)
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items()), name
        torch.testing.assert_close(dst(_signals()), src(_signals()))

    import argparse  # training scripts often pickle their arguments: a weights-only load refuses them

    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-3)}, tmp_path / "unsafe.pth")
    with pytest.raises(ValueError, match="not a weights file torch can load safely"):
        load_encoder_weights(StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM)), tmp_path / "unsafe.pth")
    torch.save({"model": {"x": 1}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not an ST-MEM checkpoint"):
        load_encoder_weights(StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM)), tmp_path / "bad.pth")


@pytest.mark.parametrize("zoo", sorted(ZOO_CASES))
def test_in_the_model_trained_and_exported(tmp_path, zoo):
    """An ECG-LLM on a zoo encoder: its tokens go to the LLM, a LoRA step trains the encoder too,
    and the merged export reloads in a fresh process from its own code (ecg_zoo.py beside it)."""
    import yaml

    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training
    from ecgllm.train.checkpoint import save_model_files

    tiny, weight = ZOO_CASES[zoo]
    torch.manual_seed(0)
    model, proc = build_model(ecg=tiny)
    kind = {
        "st_mem": StMemEncoder,
        "ecgfounder": EcgFounderEncoder,
        "merl_resnet": MerlResNetEncoder,
    }[zoo]
    assert model.config.num_ecg_tokens == {"st_mem": 30, "ecgfounder": 20, "merl_resnet": 8}[zoo]
    assert isinstance(model.ecg_encoder, kind)
    model.save_pretrained(tmp_path / "base")
    proc.save_pretrained(tmp_path / "base")
    msgs = [{"role": "user", "content": [{"type": "ecg"}, {"type": "text", "text": "Rhythm?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "sinus rhythm"}]}]  # fmt: skip
    text = proc.apply_chat_template(msgs)
    batch = proc(text=[text], ecgs=[_signals(1)[0].numpy()])
    batch["labels"] = batch["input_ids"].clone()
    policy = prepare_for_training(model, mode="lora", r=4, alpha=8, train_ecg_encoder=True)
    loss = policy(**batch).loss
    loss.backward()
    enc_grads = [
        p.grad
        for n, p in policy.named_parameters()
        if "ecg_encoder" in n and weight.rsplit(".", 1)[0] in n and p.requires_grad
    ]
    assert enc_grads and all(g is not None and torch.isfinite(g).all() for g in enc_grads)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.add_(0.05 * torch.randn_like(p))
    save_model_files(tmp_path / "final", policy, proc, "lora")
    (tmp_path / "final/recipe.yaml").write_text(yaml.safe_dump({"model": {"backbone": "tiny", "ecg": tiny},
                                                                "lora": {"mode": "lora", "r": 4}}))  # fmt: skip
    cmd = [sys.executable, str(ROOT / "recipes/merge_and_push.py"), "--checkpoint", str(tmp_path / "final"),
           "--out", str(tmp_path / "export")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "verified in a fresh process (transformers_modules" in r.stdout
    assert (tmp_path / "export/ecg_zoo.py").exists()
    cfg = json.loads((tmp_path / "export/config.json").read_text())
    assert cfg["ecg_config"]["encoder_type"] == zoo


def test_output_standardisation_is_fitted_like_the_builtin_one():
    enc = StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM))
    r = enc.fit_output_stats([(_signals(2, 0), None), (_signals(2, 1), None)])
    assert r["tokens"] == 4 * 30
    out = torch.cat([enc(_signals(2, 0)), enc(_signals(2, 1))]).reshape(-1, 32)
    torch.testing.assert_close(out.mean(0), torch.zeros(32), atol=1e-4, rtol=0)


@pytest.mark.parametrize("zoo", sorted(ZOO_CASES))
def test_trains_in_the_recipe_from_the_authors_file(instruct, tmp_path, zoo):
    """recipes/sft.py with model.ecg naming a zoo encoder and model.ecg_weights the authors' file
    (ST-MEM's downstream {"model": ...}, ECGFounder's {"state_dict": ...} with its head): the
    encoder loads it, trains, and the final adapter holds the trained encoder."""
    import os

    tiny, weight = ZOO_CASES[zoo]
    torch.manual_seed(3)
    src = build_ecg_encoder(EcgEncoderConfig(**tiny))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    if zoo == "st_mem":
        torch.save({"model": sd}, tmp_path / "authors.pth")
    elif zoo == "merl_resnet":  # their pretraining's `..._encoder.pth`: the bare encoder
        torch.save(
            {**sd, "linear.weight": torch.randn(10, 512), "linear.bias": torch.zeros(10)},
            tmp_path / "authors.pth",
        )
    else:
        head = {"dense.weight": torch.randn(150, 32), "dense.bias": torch.zeros(150)}
        torch.save({"state_dict": {**sd, **head}, "epoch": 3}, tmp_path / "authors.pth")
    ecg = "{" + ", ".join(f"{k}: {v}" for k, v in tiny.items()) + "}"
    cmd = [sys.executable, str(ROOT / "recipes/sft.py"), "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"),
           f"data.path={instruct}", f"output.dir={tmp_path / 'run'}", f"model.ecg={ecg}",
           f"model.ecg_weights={tmp_path / 'authors.pth'}", "model.init_from=null", "lora.train_modules=[]",
           "lora.train_ecg_encoder=true", "lora.r=8", "lora.alpha=16", "train.max_steps=2",
           "train.per_device_train_batch_size=4", "data.limit_eval=8"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "run/train_result.json").read_text())
    assert res["steps"] == 2 and np.isfinite(res["last_loss"])
    cfg = json.loads((tmp_path / "run/final/config.json").read_text())
    assert cfg["ecg_config"]["encoder_type"] == zoo
    from safetensors.torch import load_file

    ad = load_file(str(tmp_path / "run/final/adapter/adapter_model.safetensors"))
    w = [k for k in ad if "ecg_encoder" in k and k.endswith(weight)]
    moved = (ad[w[0]] - sd[weight]).abs().max() if w else None
    fresh = (
        (build_ecg_encoder(EcgEncoderConfig(**tiny)).state_dict()[weight] - sd[weight]).abs().max()
    )
    assert w and 0 < moved < 0.1 * fresh  # loaded from the file, then trained


def _founder_authors_keys(filters, blocks) -> set[str]:
    """Net1D's state-dict keys, written out from the authors' module tree (ECGFounder's net1d.py:
    first_conv.conv, first_bn, stage_list.<i>.block_list.<j>.{bn1,conv1.conv,bn2,conv2.conv,bn3,
    conv3.conv,se_fc1,se_fc2}, dense): what their released file holds, less the head."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"first_conv.conv.weight", "first_conv.conv.bias"} | {f"first_bn.{p}" for p in bn}
    for i, m in enumerate(blocks):
        for j in range(m):
            pre = f"stage_list.{i}.block_list.{j}."
            keys |= {pre + f"bn{k}.{p}" for k in (1, 2, 3) for p in bn}
            keys |= {pre + f"conv{k}.conv.{p}" for k in (1, 2, 3) for p in ("weight", "bias")}
            keys |= {pre + f"se_fc{k}.{p}" for k in (1, 2) for p in ("weight", "bias")}
    return keys


def test_ecgfounder_layout_input_and_shapes():
    cfg = EcgEncoderConfig(encoder_type="ecgfounder", hidden_size=1024)  # the released model's
    assert (cfg.zoo_fs, cfg.zoo_seq_len, cfg.num_tokens) == (500.0, 5000, 20)
    assert cfg.zoo_filters == [64, 160, 160, 400, 400, 1024, 1024] and cfg.zoo_blocks == [
        2,
        2,
        2,
        3,
        3,
        4,
        4,
    ]
    full = build_ecg_encoder(cfg)
    own = set(full.state_dict()) - {"feature_mean", "feature_std"}
    assert own == _founder_authors_keys(cfg.zoo_filters, cfg.zoo_blocks)
    sd = full.state_dict()
    assert tuple(sd["first_conv.conv.weight"].shape) == (64, 12, 16)
    # grouped convolution: 160 channels in groups of 16 -> 10 groups of 16 inputs each
    assert tuple(sd["stage_list.1.block_list.0.conv2.conv.weight"].shape) == (160, 16, 16)
    assert tuple(sd["stage_list.6.block_list.3.se_fc1.weight"].shape) == (512, 1024)
    assert 30e6 < sum(p.numel() for p in full.parameters()) < 31e6
    del full

    enc = EcgFounderEncoder(EcgEncoderConfig(**TINY_FOUNDER))
    out = enc(_signals())
    assert tuple(out.shape) == (2, 20, 32) and torch.isfinite(out).all()
    # the authors' input: z-scored over all leads and samples together (not per lead)
    prep = enc.prepare(_signals(), None)
    assert tuple(prep.shape) == (2, 12, 5000)
    assert abs(float(prep[0].mean())) < 1e-4 and abs(float(prep[0].std(unbiased=False)) - 1) < 1e-3
    assert float(prep[0, 0].std()) != pytest.approx(float(prep[0, 1].std()), rel=1e-3)
    # 250 Hz records are resampled to its 500 Hz
    slow = EcgFounderEncoder(EcgEncoderConfig(**TINY_FOUNDER, n_samples=2500, sampling_rate=250.0))
    assert tuple(slow.prepare(_signals()[:, :, ::2], None).shape) == (2, 12, 5000)
    x, m = _signals(), torch.ones(2, 12, dtype=torch.bool)
    m[:, 7] = False
    y = x.clone()
    y[:, 7] = -3.0
    torch.testing.assert_close(enc(x, m), enc(y, m))
    with pytest.raises(ValueError, match="hidden_size 64 must be the last stage"):
        EcgEncoderConfig(**{**TINY_FOUNDER, "hidden_size": 64})
    with pytest.raises(ValueError, match="one entry per stage"):
        EcgEncoderConfig(**{**TINY_FOUNDER, "zoo_blocks": [1, 1]})
    with pytest.raises(ValueError, match="signal only"):
        EcgFounderEncoder(EcgEncoderConfig(**{**TINY_FOUNDER, "measurement_tokens": 4}))


def test_ecgfounder_loads_the_authors_checkpoint_files(tmp_path):
    """Their training code's file ({"state_dict": ..., with the 150-label head `dense`}), the same
    saved from DataParallel ("module." keys) and a bare state dict all load; others are refused."""
    torch.manual_seed(1)
    src = EcgFounderEncoder(EcgEncoderConfig(**TINY_FOUNDER))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    head = {"dense.weight": torch.randn(150, 32), "dense.bias": torch.zeros(150)}
    torch.save({"state_dict": {**sd, **head}, "epoch": 10000}, tmp_path / "released.pth")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in {**sd, **head}.items()}}, tmp_path / "dp.pth"
    )
    torch.save(sd, tmp_path / "bare.pth")
    for name in ("released.pth", "dp.pth", "bare.pth"):
        torch.manual_seed(2)
        dst = EcgFounderEncoder(EcgEncoderConfig(**TINY_FOUNDER))
        load_encoder_weights(dst, tmp_path / name)
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items()), name
        torch.testing.assert_close(dst(_signals()), src(_signals()))
    torch.save({"state_dict": {"x": 1}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not an ECGFounder checkpoint"):
        load_encoder_weights(
            EcgFounderEncoder(EcgEncoderConfig(**TINY_FOUNDER)), tmp_path / "bad.pth"
        )
    wide = {**TINY_FOUNDER, "zoo_filters": [16, 16, 32, 32, 32, 32, 48], "hidden_size": 48}
    with pytest.raises(ValueError, match="do not fit the configured encoder"):
        load_encoder_weights(EcgFounderEncoder(EcgEncoderConfig(**wide)), tmp_path / "released.pth")


def _merl_authors_keys(blocks, bottleneck: bool = False) -> set[str]:
    """MERL's ResNet state-dict keys, written out from the authors' module tree (their
    utils/resnet1d.py): conv1, bn1, layer<i>.<j>.conv1/bn1/conv2/bn2[/conv3/bn3], shortcut.0/1
    where the block changes stride or width, linear (their head, dropped here)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight"} | {f"bn1.{p}" for p in bn}
    cin, exp = 64, 4 if bottleneck else 1
    for i, (width, n, stride) in enumerate(
        zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True)
    ):
        for j in range(n):
            pre = f"layer{i + 1}.{j}."
            convs = (1, 2, 3) if bottleneck else (1, 2)
            keys |= {pre + f"conv{k}.weight" for k in convs} | {
                pre + f"bn{k}.{p}" for k in convs for p in bn
            }
            if (stride if j == 0 else 1) != 1 or cin != width * exp:
                keys |= {pre + "shortcut.0.weight"} | {pre + f"shortcut.1.{p}" for p in bn}
            cin = width * exp
    return keys


def test_merl_resnet_layout_input_and_shapes():
    enc = MerlResNetEncoder(EcgEncoderConfig(**TINY_MERL))
    assert set(enc.state_dict()) - {"feature_mean", "feature_std"} == _merl_authors_keys(
        [2, 2, 2, 2]
    )
    r50 = EcgEncoderConfig(encoder_type="merl_resnet", hidden_size=2048, zoo_block="bottleneck",
                           zoo_blocks=[3, 4, 6, 3])  # fmt: skip
    own = set(MerlResNetEncoder(r50).state_dict()) - {"feature_mean", "feature_std"}
    assert own == _merl_authors_keys([3, 4, 6, 3], bottleneck=True)
    assert tuple(enc.state_dict()["conv1.weight"].shape) == (64, 12, 7)
    out = enc(_signals())
    assert tuple(out.shape) == (2, 8, 512) and torch.isfinite(out).all()
    # their input: min-max to 0-1 over all leads together, aVF before aVL
    x = _signals()
    x[:, 4] += 0.25  # aVL stands out
    prep = enc.prepare(x, None)
    assert float(prep.min()) == pytest.approx(0.0, abs=1e-6) and float(prep.max()) == pytest.approx(
        1.0, abs=1e-6
    )
    lo, hi = float(x[0].min()), float(x[0].max())
    torch.testing.assert_close(
        prep[0, 5], (x[0, 4] - lo) / (hi - lo + 1e-8)
    )  # aVL is their 6th lead
    torch.testing.assert_close(prep[0, 4], (x[0, 5] - lo) / (hi - lo + 1e-8))
    # a missing lead: a flat line at the scaled 0 mV, whatever the recording held there
    m = torch.ones(2, 12, dtype=torch.bool)
    m[:, 9] = False
    y = x.clone()
    y[:, 9] = 40.0
    torch.testing.assert_close(enc(x, m), enc(y, m))
    assert float(enc.prepare(y, m)[0, 9].std()) < 1e-6
    # batch norm keeps its pretrained statistics when the model trains
    enc.train()
    assert enc.training and not enc.bn1.training
    before = enc.bn1.running_mean.clone()
    enc(_signals())
    assert torch.equal(before, enc.bn1.running_mean)
    with pytest.raises(ValueError, match="hidden_size 256 must be 512"):
        EcgEncoderConfig(encoder_type="merl_resnet", hidden_size=256)
    with pytest.raises(ValueError, match="zoo_block must be basic or bottleneck"):
        EcgEncoderConfig(encoder_type="merl_resnet", hidden_size=512, zoo_block="wide")


def test_merl_resnet_loads_the_authors_files(tmp_path):
    """The encoder file their pretraining writes (bare state dict with its `linear` head), their
    whole-model checkpoint (encoder under ecg_encoder., a text model beside it) and a DDP copy."""
    torch.manual_seed(1)
    src = MerlResNetEncoder(EcgEncoderConfig(**TINY_MERL))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    head = {"linear.weight": torch.randn(10, 512), "linear.bias": torch.zeros(10)}
    torch.save({**sd, **head}, tmp_path / "merl_encoder.pth")
    whole = {**{f"ecg_encoder.{k}": v for k, v in {**sd, **head}.items()},
             "lm_model.embeddings.word_embeddings.weight": torch.zeros(4, 8), "proj_t.0.weight": torch.zeros(8, 8)}  # fmt: skip
    torch.save(whole, tmp_path / "merl_total.pth")
    torch.save(
        {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in whole.items()}},
        tmp_path / "ckpt.pth",
    )
    for name in ("merl_encoder.pth", "merl_total.pth", "ckpt.pth"):
        torch.manual_seed(2)
        dst = MerlResNetEncoder(EcgEncoderConfig(**TINY_MERL))
        load_encoder_weights(dst, tmp_path / name)
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items()), name
        torch.testing.assert_close(dst.eval()(_signals()), src.eval()(_signals()))
