"""The encoder zoo: ST-MEM's, ECGFounder's, MERL's (ResNet and ViT) and ECG-FM's encoders in their
authors' parameter layouts, their checkpoint files, their preprocessing, inside the model, trained
by the recipe, and exported without ecgllm."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from ecgllm.model.configuration_ecgllm import EcgEncoderConfig
from ecgllm.model.ecg_encoder import load_encoder_weights
from ecgllm.model.ecg_zoo import (
    EcgFmEncoder,
    EcgFounderEncoder,
    HeartLangEncoder,
    MerlResNetEncoder,
    MerlVitEncoder,
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
TINY_MERL_VIT = dict(encoder_type="merl_vit", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, zoo_head_dim=16, zoo_tokens=10)  # fmt: skip
# ECG-FM's tree (4 convolutions, position convolution, post-norm transformer), narrow and shallow
TINY_FM = dict(encoder_type="ecg_fm", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64, zoo_conv_layers=[[16, 2, 2]] * 4, zoo_conv_pos=8,
               zoo_conv_pos_groups=4, zoo_tokens=12)  # fmt: skip
TINY_HEARTLANG = dict(encoder_type="heartlang", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, zoo_head_dim=16)  # fmt: skip
# per zoo encoder: its tiny config, and one of its weights (in the authors' names) to follow
ZOO_CASES = {"st_mem": (TINY_ST_MEM, "block0.attn.fn.to_qkv.weight"),
             "ecgfounder": (TINY_FOUNDER, "stage_list.3.block_list.0.conv2.conv.weight"),
             "merl_resnet": (TINY_MERL, "layer3.0.conv2.weight"),
             "merl_vit": (TINY_MERL_VIT, "block1.ff.fn.net.0.weight"),
             "ecg_fm": (TINY_FM, "encoder.layers.1.fc1.weight"),
             "heartlang": (TINY_HEARTLANG, "transformer.layers.1.1.net.1.weight")}  # fmt: skip
KINDS = {"st_mem": StMemEncoder, "ecgfounder": EcgFounderEncoder, "merl_resnet": MerlResNetEncoder,
         "merl_vit": MerlVitEncoder, "ecg_fm": EcgFmEncoder, "heartlang": HeartLangEncoder}  # fmt: skip
TOKENS = {
    "st_mem": 30,
    "ecgfounder": 20,
    "merl_resnet": 8,
    "merl_vit": 10,
    "ecg_fm": 12,
    "heartlang": 13,
}


def _vit_block_keys(depth: int) -> set[str]:
    """The pre-norm transformer blocks of lucidrains' vit_1d, which both ST-MEM and MERL's ViT
    use: block<i>.attn.norm / .attn.fn.to_qkv / .attn.fn.to_out.0 / .ff.norm / .ff.fn.net.0 and 3."""
    parts = ("attn.norm.weight", "attn.norm.bias", "attn.fn.to_qkv.weight", "attn.fn.to_qkv.bias",
             "attn.fn.to_out.0.weight", "attn.fn.to_out.0.bias", "ff.norm.weight", "ff.norm.bias",
             "ff.fn.net.0.weight", "ff.fn.net.0.bias", "ff.fn.net.3.weight", "ff.fn.net.3.bias")  # fmt: skip
    return {f"block{i}.{part}" for i in range(depth) for part in parts}


def _authors_keys(depth: int, leads: int = 12) -> set[str]:
    """ST_MEM_ViT's state-dict keys, written out from the authors' module tree (bakqui/ST-MEM,
    models/encoder/st_mem_vit.py and vit.py): what their released encoder file holds."""
    keys = {"to_patch_embedding.1.weight", "to_patch_embedding.1.bias", "to_patch_embedding.2.weight",
            "to_patch_embedding.2.bias", "to_patch_embedding.3.weight", "to_patch_embedding.3.bias",
            "pos_embedding", "sep_embedding", "norm.weight", "norm.bias"}  # fmt: skip
    keys |= {f"lead_embeddings.{i}" for i in range(leads)}
    return keys | _vit_block_keys(depth)


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
    decoder); a file that pickles its training arguments too is read without running them; a file
    torch cannot read at all is refused."""
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

    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-3)}, tmp_path / "args.pth")
    dst = StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM))
    load_encoder_weights(dst, tmp_path / "args.pth")  # read with the Namespace stood in for
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a weights file torch can load"):
        load_encoder_weights(StMemEncoder(EcgEncoderConfig(**TINY_ST_MEM)), tmp_path / "junk.pth")
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
    assert model.config.num_ecg_tokens == TOKENS[zoo]
    assert isinstance(model.ecg_encoder, KINDS[zoo])
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
    elif zoo == "merl_vit":  # the ViT's, likewise (its head is an Identity: no weights)
        torch.save(sd, tmp_path / "authors.pth")
    elif zoo == "ecg_fm":  # a fairseq-signals checkpoint with its pickled config
        _save_fairseq_checkpoint(_fm_pretraining_state(sd), tmp_path / "authors.pth")
    elif zoo == "heartlang":  # their pretraining's save: {"model": ..., "args": Namespace}
        _save_heartlang_checkpoint(sd, tmp_path / "authors.pth")
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


def _merl_vit_authors_keys(depth: int) -> set[str]:
    """MERL's ViT state-dict keys, written out from their utils/vit1d.py (to_patch_embedding is a
    Conv1d without bias, pos_embedding, block<i> = PreNorm attention and feed-forward, norm)."""
    keys = {"to_patch_embedding.weight", "pos_embedding", "norm.weight", "norm.bias"}
    return keys | _vit_block_keys(depth)


def test_merl_vit_layout_input_and_files(tmp_path):
    base = EcgEncoderConfig(encoder_type="merl_vit", hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072)  # their vit_base  # fmt: skip
    with torch.device("meta"):
        full = MerlVitEncoder(base)
    assert set(full.state_dict()) - {"feature_mean", "feature_std"} == _merl_vit_authors_keys(12)
    assert tuple(full.state_dict()["to_patch_embedding.weight"].shape) == (768, 12, 50)
    assert tuple(full.state_dict()["pos_embedding"].shape) == (1, 100, 768)
    assert tuple(full.state_dict()["block0.attn.fn.to_qkv.weight"].shape) == (3 * 768, 768)
    # vit_base: 12 blocks of 7.08 M, the patch embedding and positions
    assert (
        sum(p.numel() for p in full.parameters())
        == 12 * 7087872 + 768 * 12 * 50 + 100 * 768 + 2 * 768
    )

    torch.manual_seed(1)
    src = MerlVitEncoder(EcgEncoderConfig(**TINY_MERL_VIT))
    out = src(_signals())
    assert tuple(out.shape) == (2, 10, 32) and torch.isfinite(out).all()
    # the same input as MERL's ResNet: min-max over all leads, aVF before aVL
    torch.testing.assert_close(src.prepare(_signals(), None), MerlResNetEncoder(EcgEncoderConfig(**TINY_MERL)).prepare(_signals(), None))  # fmt: skip
    m = torch.ones(2, 12, dtype=torch.bool)
    m[:, 2] = False
    y = _signals()
    y[:, 2] = 9.0
    torch.testing.assert_close(src(_signals(), m), src(y, m))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    torch.save(sd, tmp_path / "vit_encoder.pth")  # their pretraining's encoder file
    whole = {**{f"ecg_encoder.{k}": v for k, v in sd.items()}, "proj_e.0.weight": torch.zeros(8, 32),
             "ecg_encoder.head.weight": torch.zeros(5, 32), "ecg_encoder.head.bias": torch.zeros(5)}  # fmt: skip
    torch.save({"model_state_dict": whole}, tmp_path / "whole.pth")  # ECGCLIP, a head reset
    for name in ("vit_encoder.pth", "whole.pth"):
        dst = MerlVitEncoder(EcgEncoderConfig(**TINY_MERL_VIT))
        load_encoder_weights(dst, tmp_path / name)
        torch.testing.assert_close(dst(_signals()), out)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        EcgEncoderConfig(**{**TINY_MERL_VIT, "patch_size": 48})


def _fm_authors_keys(depth: int, n_conv: int = 4, proj: bool = True) -> set[str]:
    """ECG-FM's encoder keys, written out from fairseq-signals' module tree (ECGTransformerModel:
    feature_extractor = ConvFeatureExtraction in "default" mode (conv_layers.<i>.0, the group
    norm conv_layers.0.2), layer_norm, post_extract_proj, conv_pos = ConvPositionalEncoding
    (pos_conv.0 weight-normed), encoder = TransformerEncoder (layers.<i>.self_attn.{k,v,q,out}_proj,
    self_attn_layer_norm, fc1, fc2, final_layer_norm; layer_norm)), weight norm as torch's
    parametrisation names it."""
    keys = {f"feature_extractor.conv_layers.{i}.0.weight" for i in range(n_conv)}
    keys |= {"feature_extractor.conv_layers.0.2.weight", "feature_extractor.conv_layers.0.2.bias",
             "layer_norm.weight", "layer_norm.bias", "conv_pos.pos_conv.0.bias",
             "conv_pos.pos_conv.0.parametrizations.weight.original0",
             "conv_pos.pos_conv.0.parametrizations.weight.original1",
             "encoder.layer_norm.weight", "encoder.layer_norm.bias"}  # fmt: skip
    if proj:
        keys |= {"post_extract_proj.weight", "post_extract_proj.bias"}
    for i in range(depth):
        pre = f"encoder.layers.{i}."
        for m in ("self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj",
                  "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):  # fmt: skip
            keys |= {pre + m + ".weight", pre + m + ".bias"}
    return keys


def _fm_pretraining_state(sd: dict) -> dict:
    """The wav2vec2_cmsc pretraining model's state dict around an encoder's: older weight-norm
    names, the quantiser, its projections and the mask embedding beside it."""
    rename = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}  # fmt: skip
    out = {}
    for k, v in sd.items():
        for new, old in rename.items():
            k = k.replace(new, old)
        out[k] = v
    return {**out, "mask_emb": torch.rand(32), "quantizer.vars": torch.randn(1, 640, 128),
            "quantizer.weight_proj.weight": torch.randn(640, 16), "quantizer.weight_proj.bias": torch.zeros(640),
            "project_q.weight": torch.randn(256, 256), "project_q.bias": torch.zeros(256),
            "final_proj.weight": torch.randn(256, 32), "final_proj.bias": torch.zeros(256)}  # fmt: skip


def _save_fairseq_checkpoint(model_state: dict, path) -> None:
    """A file laid out as fairseq's checkpoint_utils.save_state writes it: the model's state dict
    under "model" beside the run's config as an omegaconf DictConfig (pickled under that class
    name, from a stand-in module: omegaconf is not installed here, nor needed to read it)."""
    import types

    mods = {name: types.ModuleType(name) for name in ("omegaconf", "omegaconf.dictconfig")}

    class DictConfig:
        def __init__(self, content):
            self._content = content

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    mods["omegaconf.dictconfig"].DictConfig = DictConfig
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        cfg = DictConfig({"model": {"_name": "wav2vec2_cmsc", "encoder_embed_dim": 32}})
        torch.save({"args": None, "cfg": cfg, "model": model_state, "criterion": None,
                    "optimizer_history": [{"num_updates": 100}], "extra_state": {"epoch": 3}}, path)  # fmt: skip
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k)
            else:
                sys.modules[k] = v


def test_ecg_fm_layout_and_input():
    cfg = EcgEncoderConfig(encoder_type="ecg_fm", hidden_size=768, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=3072)  # the released models'  # fmt: skip
    assert (cfg.zoo_fs, cfg.zoo_seq_len, cfg.num_tokens) == (500.0, 2500, 25)
    assert cfg.zoo_conv_layers == [[256, 2, 2]] * 4
    with torch.device("meta"):
        full = EcgFmEncoder(cfg)
    assert set(full.state_dict()) - {"feature_mean", "feature_std"} == _fm_authors_keys(12)
    sd = full.state_dict()
    assert tuple(sd["conv_pos.pos_conv.0.parametrizations.weight.original1"].shape) == (
        768,
        48,
        128,
    )
    assert tuple(sd["conv_pos.pos_conv.0.parametrizations.weight.original0"].shape) == (1, 1, 128)
    # ECG-FM's README: 90,883,072 parameters with the pretraining modules, which are mask_emb (768),
    # the quantiser (weight_proj 256 x 640 + 640, vars 640 x 128), project_q (256 x 256 + 256) and
    # final_proj (768 x 256 + 256): 509,824 of them
    assert sum(p.numel() for p in full.parameters()) == 90_883_072 - 509_824

    enc = EcgFmEncoder(EcgEncoderConfig(**TINY_FM))
    out = enc(_signals())
    assert tuple(out.shape) == (2, 12, 32) and torch.isfinite(out).all()
    # their input: each lead standardised over the whole record, then 5 s segments
    x = _signals()
    prep = enc.prepare(x, None)
    assert tuple(prep.shape) == (2, 2, 12, 2500)
    whole = torch.cat([prep[:, 0], prep[:, 1]], dim=-1)
    torch.testing.assert_close(whole.mean(-1), torch.zeros(2, 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(whole.std(-1, unbiased=False), torch.ones(2, 12), atol=1e-4, rtol=0)
    # each segment is read alone: the first 6 of the 12 tokens come from the first 5 s only
    z = prep.clone()
    z[:, 1] = torch.randn_like(z[:, 1])
    enc.prepare = lambda *a: z
    changed = enc(x)
    del enc.prepare
    torch.testing.assert_close(changed[:, :6], enc(x)[:, :6])
    assert not torch.allclose(changed[:, 6:], enc(x)[:, 6:])
    # a constant lead and a missing one are zero
    x[:, 3] = 0.7
    m = torch.ones(2, 12, dtype=torch.bool)
    m[:, 5] = False
    z = enc.prepare(x, m)
    assert float(z[:, :, 3].abs().max()) == 0.0 and float(z[:, :, 5].abs().max()) == 0.0
    y = x.clone()
    y[:, 5] = 4.0
    torch.testing.assert_close(enc(x, m), enc(y, m))
    # 250 Hz input is resampled to its 500 Hz
    slow = EcgFmEncoder(EcgEncoderConfig(**TINY_FM, n_samples=2500, sampling_rate=250.0))
    assert tuple(slow.prepare(_signals()[:, :, ::2], None).shape) == (2, 2, 12, 2500)
    with pytest.raises(ValueError, match="must divide by num_attention_heads"):
        EcgEncoderConfig(**{**TINY_FM, "num_attention_heads": 5})
    with pytest.raises(ValueError, match=r"\[channels, kernel, stride\]"):
        EcgEncoderConfig(**{**TINY_FM, "zoo_conv_layers": [[16, 2]]})


def test_ecg_fm_loads_the_fairseq_files(tmp_path, caplog):
    """Both files ECG-FM releases, as fairseq writes them (state dict under "model" beside a pickled
    omegaconf config): the pretraining model (top-level keys, old weight-norm names, quantiser) and
    a fine-tuned classifier (encoder under "encoder.", a `proj` head); the config is never run."""
    torch.manual_seed(1)
    src = EcgFmEncoder(EcgEncoderConfig(**TINY_FM))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    _save_fairseq_checkpoint(_fm_pretraining_state(sd), tmp_path / "pretrained.pt")
    finetuned = {**{f"encoder.{k}": v for k, v in sd.items()}, "proj.weight": torch.randn(26, 32),
                 "proj.bias": torch.zeros(26)}  # fmt: skip
    _save_fairseq_checkpoint(finetuned, tmp_path / "finetuned.pt")
    # an older layout: the position convolution inside the transformer, as in fairseq's wav2vec 2.0
    older = {
        (k.replace("conv_pos.", "encoder.", 1) if k.startswith("conv_pos.") else k): v
        for k, v in _fm_pretraining_state(sd).items()
    }
    torch.save({"model": older}, tmp_path / "older.pt")
    with pytest.raises(pickle.UnpicklingError):  # torch's safe load refuses the pickled config ...
        torch.load(tmp_path / "pretrained.pt", weights_only=True)
    for name in ("pretrained.pt", "finetuned.pt", "older.pt"):
        torch.manual_seed(2)
        dst = EcgFmEncoder(EcgEncoderConfig(**TINY_FM))
        with caplog.at_level("WARNING"):
            load_encoder_weights(dst, tmp_path / name)  # ... ours reads its tensors
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items()), name
        torch.testing.assert_close(dst(_signals()), src(_signals()))
    assert "omegaconf.dictconfig.DictConfig" in caplog.text


def test_a_pickled_object_is_never_run(tmp_path):
    """A checkpoint whose pickle would run a command: its tensors are read, the command is not."""
    import os

    from ecgllm.model.pickled import Opaque, read_torch_file

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save(
        {"model": {"w": torch.ones(3)}, "cfg": Payload(), "np": np.float64(2.0)}, tmp_path / "x.pt"
    )
    obj, replaced = read_torch_file(tmp_path / "x.pt")
    assert not marker.exists()
    assert torch.equal(obj["model"]["w"], torch.ones(3)) and isinstance(obj["cfg"], Opaque)
    assert any(r.endswith(".system") for r in replaced)


def _heartlang_authors_keys(depth: int) -> set[str]:
    """ST_ECGFormer's keys, written out from HeartLang's modeling_pretrain.py (token_embed.
    tokenConv, mask_token, cls_token, pos_embed, spa_embed.embed, tem_embed.embed, transformer.
    layers.<i>.0 = Attention (norm, to_qkv without bias, to_out.0), .1 = FeedForward (net.0
    LayerNorm, net.1 and net.4 Linear), norm_layer; lm_head is the pretraining head)."""
    keys = {"token_embed.tokenConv.weight", "mask_token", "cls_token", "pos_embed", "spa_embed.embed.weight",
            "tem_embed.embed.weight", "norm_layer.weight", "norm_layer.bias"}  # fmt: skip
    for i in range(depth):
        pre = f"transformer.layers.{i}."
        keys |= {pre + "0.norm.weight", pre + "0.norm.bias", pre + "0.to_qkv.weight", pre + "0.to_out.0.weight",
                 pre + "0.to_out.0.bias", pre + "1.net.0.weight", pre + "1.net.0.bias", pre + "1.net.1.weight",
                 pre + "1.net.1.bias", pre + "1.net.4.weight", pre + "1.net.4.bias"}  # fmt: skip
    return keys


def _save_heartlang_checkpoint(sd: dict, path, finetuned: bool = False) -> None:
    """As their training (BEiT's save_model) writes it: {"model": state, "optimizer": ..., "epoch":
    ..., "args": argparse.Namespace}; the pretraining model has lm_head, a fine-tuned one the
    encoder under backbone. and mlp_head."""
    import argparse

    if finetuned:
        state = {**{f"backbone.{k}": v for k, v in sd.items()}, "mlp_head.weight": torch.randn(5, 32),
                 "mlp_head.bias": torch.zeros(5)}  # fmt: skip
    else:
        state = {**sd, "lm_head.weight": torch.randn(64, 32), "lm_head.bias": torch.zeros(64)}
    torch.save({"model": state, "optimizer": {"state": {}}, "epoch": 199,
                "args": argparse.Namespace(model="HeartLang", lr=5e-4)}, path)  # fmt: skip


def test_heartlang_words_layout_and_files(tmp_path):
    from ecgllm.model.ecg_zoo import beat_words, heartbeat_words

    base = EcgEncoderConfig(encoder_type="heartlang", hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=8, intermediate_size=1024)  # HeartLang-base  # fmt: skip
    assert (base.zoo_fs, base.zoo_seq_len, base.num_tokens) == (100.0, 1000, 13)
    with torch.device("meta"):
        full = HeartLangEncoder(base)
    assert set(full.state_dict()) - {"feature_mean", "feature_std"} == _heartlang_authors_keys(12)
    sd = full.state_dict()
    assert tuple(sd["token_embed.tokenConv.weight"].shape) == (768, 96, 3)
    assert tuple(sd["pos_embed"].shape) == (1, 257, 768)
    assert tuple(sd["transformer.layers.0.0.to_qkv.weight"].shape) == (3 * 8 * 64, 768)

    # the word rule on known beats: between midpoints, the QRS at word_len / 2, long gaps re-centred
    x = np.arange(1000, dtype=np.float32) + 1  # sample i holds i + 1 (0 = outside the beat)
    w = beat_words(x, np.array([30, 110, 300, 380]), 96)
    assert w.shape == (4, 96)
    # first beat: from the record's start to the midpoint 70, QRS at 48
    assert (w[0, 48], w[0, 18], w[0, 17], w[0, 87], w[0, 88]) == (31, 1, 0, 70, 0)
    # 70 .. 205 is longer than 96: re-centred on the QRS, 62 .. 158
    assert (w[1, 48], w[1, 0], w[1, 95]) == (111, 63, 158)
    # last beat: from the midpoint 340 to c + 48
    assert (w[3, 48], w[3, 8], w[3, 7], w[3, 95]) == (381, 341, 0, 428)
    # one record from LUDB (real, 500 Hz in the fixtures): beats found in every lead, in order
    import wfdb

    sig = wfdb.rdsamp(str(ROOT / "tests/fixtures/real/ludb/1"))[0][:5000].T.astype(np.float32)
    enc = HeartLangEncoder(EcgEncoderConfig(**TINY_HEARTLANG))
    words, leads, secs = enc.prepare(torch.from_numpy(sig)[None], None)
    n = int((leads > 0).sum())
    assert 12 * 6 <= n <= 12 * 14 and torch.equal(leads[0, :n], leads[0, :n].sort().values)
    assert (
        int(leads[0, n:].abs().sum()) == 0
        and 1 <= int(secs[0, :n].min())
        and int(secs[0, :n].max()) <= 10
    )
    centre = words[0, :n, 40:56].abs().amax(1) >= words[0, :n].abs().amax(1) * 0.5
    assert float(centre.float().mean()) > 0.8  # QRS (the largest deflection) mid-word
    ref = heartbeat_words(
        (sig[:, ::5] - sig[:, ::5].mean()) / sig[:, ::5].std(), 100.0, 96
    )  # the same beats on a plainly decimated copy
    assert abs(len(ref[0]) - n) <= 12
    flat = heartbeat_words(np.zeros((2, 1000)), 100.0, 96)  # no beats, no error
    short = heartbeat_words(np.zeros((1, 20)), 100.0, 96)  # wfdb cannot filter it: no beats
    assert len(flat[0]) == len(short[0]) == 0 and flat[0].shape[1] == 96
    out = enc(torch.from_numpy(sig)[None])
    assert tuple(out.shape) == (1, 13, 32) and torch.isfinite(out).all()
    m = torch.ones(1, 12, dtype=torch.bool)
    m[0, 3] = False  # a missing lead gives no words, and a zero lead token
    w2, l2, _ = enc.prepare(torch.from_numpy(sig)[None], m)
    assert 4 not in l2[0].tolist()
    y = torch.from_numpy(sig)[None].clone()
    y[0, 3] = 5.0
    torch.testing.assert_close(enc(torch.from_numpy(sig)[None], m), enc(y, m))

    torch.manual_seed(1)
    src = HeartLangEncoder(EcgEncoderConfig(**TINY_HEARTLANG))
    sd = {k: v for k, v in src.state_dict().items() if k not in ("feature_mean", "feature_std")}
    _save_heartlang_checkpoint(sd, tmp_path / "pretrain.pth")
    _save_heartlang_checkpoint(sd, tmp_path / "finetuned.pth", finetuned=True)
    for name in ("pretrain.pth", "finetuned.pth"):
        dst = HeartLangEncoder(EcgEncoderConfig(**TINY_HEARTLANG))
        load_encoder_weights(dst, tmp_path / name)
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items()), name
        torch.testing.assert_close(
            dst(torch.from_numpy(sig)[None]), src(torch.from_numpy(sig)[None])
        )
