"""Model, data and optimizer setup shared by the recipes."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ..model.factory import TINY_ECG, TINY_LLAMA, TINY_SIGLIP, build_model
from ..model.lora import prepare_for_training, quantize_language_model
from .checkpoint import load_lora_factors, load_trained_modules
from .config import ModelCfg, RecipeConfig


def make_accelerator(mixed_precision: str = "auto", gradient_accumulation_steps: int = 1):
    """The Accelerator of every training recipe: `auto` precision is bf16 on GPU and fp32 on CPU;
    a multi-process launch on CPU gets the gloo backend (NCCL needs GPUs). Returns (accelerator,
    the precision used)."""
    import os

    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    cpu = not torch.cuda.is_available()
    mp = ("no" if cpu else "bf16") if mixed_precision == "auto" else mixed_precision
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    handlers = [InitProcessGroupKwargs(backend="gloo")] if cpu and launched else []
    acc = Accelerator(mixed_precision=mp, kwargs_handlers=handlers,
                      gradient_accumulation_steps=gradient_accumulation_steps)  # fmt: skip
    return acc, mp


def _resolve(value: Any, tiny: dict | None) -> Any:
    if value == "offline:gemma3-270m":
        from ..model.gguf import gemma3_270m

        return str(gemma3_270m())
    if value == "tiny":
        return dict(tiny) if tiny is not None else None
    if value in ("none", None):
        return None
    return value


def setup_model(cfg: RecipeConfig, base_dir=None):
    """(model ready for training, processor, base_saved). A base an adapter cannot be applied to
    from a checkpoint name (random-init parts, or a frozen ECG encoder loaded from a file) is
    saved to `base_dir`/base first, when given."""
    m: ModelCfg = cfg.model
    backbone = _resolve(m.backbone, TINY_LLAMA)
    vision = _resolve(m.vision, TINY_SIGLIP)
    model, processor = build_model(
        backbone=backbone, vision=vision, ecg=_resolve(m.ecg, TINY_ECG),
        chat_family=m.chat_family, ecg_projector=m.ecg_projector, image_projector=m.image_projector,
        ecg_query_tokens=m.ecg_query_tokens,
        image_pool=m.image_pool, expert_features=m.expert_features, ecg_tokenizer=m.ecg_tokenizer,
        choice_answer=m.choice_answer,
    )  # fmt: skip
    if m.ecg_weights:
        if model.ecg_encoder is None:
            raise ValueError(
                "model.ecg_weights is set but the model has no ECG encoder (model.ecg: none)"
            )
        from ..model.ecg_encoder import load_encoder_weights

        load_encoder_weights(model.ecg_encoder, m.ecg_weights)
    if m.init_from:
        load_trained_modules(model, m.init_from)
    # the base must be saved when an adapter alone cannot rebuild it: random-init parts (a config
    # dict instead of a checkpoint) or an ECG encoder that is loaded from a file and not trained
    # (new ECG token rows need no saved base: build_model draws them the same way every time)
    random_parts = isinstance(backbone, dict) or isinstance(vision, dict)
    frozen_loaded_encoder = bool(m.ecg_weights) and not cfg.lora.train_ecg_encoder
    if base_dir is not None and (random_parts or frozen_loaded_encoder):
        import shutil
        from pathlib import Path

        from ..atomic import replace

        base, tmp = Path(base_dir) / "base", Path(base_dir) / "base.tmp"  # whole, then swapped in
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(base, ignore_errors=True)
        replace(tmp, base)
    if cfg.lora.quantize:
        model = quantize_language_model(model, bits=cfg.lora.quantize)
    if m.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        if model.ecg_encoder is not None:
            model.ecg_encoder.gradient_checkpointing = True
        if cfg.lora.mode != "full":
            model.language_model.enable_input_require_grads()
    new_tokens = None
    if processor.tokenizes_ecgs and "embed_tokens" not in cfg.lora.train_modules:
        lo, hi = processor.ecg_token_id_range()
        new_tokens = list(range(lo, hi + 1))  # the ECG tokens' rows train (PEFT trainable tokens)
    model = prepare_for_training(
        model, mode=cfg.lora.mode, r=cfg.lora.r, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout,
        targets=tuple(cfg.lora.targets), train_ecg_encoder=cfg.lora.train_ecg_encoder,
        vision_blocks=cfg.lora.vision_blocks, train_modules=tuple(cfg.lora.train_modules),
        trainable_token_ids=new_tokens if cfg.lora.mode == "lora" else None,
    )  # fmt: skip
    if m.init_from and cfg.lora.mode == "lora":  # from a LoRA stage: its factors too
        load_lora_factors(model, m.init_from)
    return model, processor, random_parts or frozen_loaded_encoder


def param_groups(
    model: nn.Module, lr: float, projector_lr: float | None, weight_decay: float
) -> list[dict]:
    """AdamW groups: projectors (and ECG encoder) at `projector_lr`, the rest at `lr`; no weight
    decay on biases and norms."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        own = any(k in name for k in ("ecg_projector", "image_projector", "ecg_encoder"))
        decay = p.ndim >= 2 and "norm" not in name
        groups.setdefault((own, decay), []).append(p)
    out = []
    for (own, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": (projector_lr or lr) if own else lr,
                    "weight_decay": weight_decay if decay else 0.0, "name": f"{'own' if own else 'llm'}-{'decay' if decay else 'nodecay'}"})  # fmt: skip
    return out


def scheduler(optimizer, kind: str, warmup: int, total: int):
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total)
    if kind == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total)
    return get_constant_schedule_with_warmup(optimizer, warmup)


def total_steps(cfg: RecipeConfig, n_train: int, world: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps)."""
    per_step = cfg.train.per_device_train_batch_size * world * cfg.train.gradient_accumulation_steps
    per_epoch = max(1, n_train // per_step)
    total = (
        cfg.train.max_steps
        if cfg.train.max_steps > 0
        else max(1, math.ceil(per_epoch * cfg.train.num_train_epochs))
    )
    return per_epoch, total


def memory_estimate(
    model: nn.Module, zero_stage: int, world: int, precision: str, offload: bool = False
) -> dict[str, float]:
    """Per-device GiB for weights, gradients and AdamW states (the usual ZeRO arithmetic: weights
    2 or 4 bytes/param, trainable grads the same, Adam 12 bytes/trainable param in fp32 with a
    master copy when training in half precision); activations are not included."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wbytes = 2 if precision in ("bf16", "fp16") else 4
    weights = total * wbytes
    grads = trainable * wbytes
    optim = trainable * (12 if wbytes == 2 else 8)
    if zero_stage >= 1:
        optim /= world
    if zero_stage >= 2:
        grads /= world
    if zero_stage >= 3:
        weights /= world
    if offload:
        optim = 0.0
    gib = 1024**3
    return {"weights_gib": weights / gib, "grads_gib": grads / gib, "optimizer_gib": optim / gib,
            "total_gib": (weights + grads + optim) / gib, "params": total, "trainable": trainable}  # fmt: skip
