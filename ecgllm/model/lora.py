"""Parameter-efficient training: which parameters train, LoRA via PEFT, QLoRA, merging.

    model = prepare_for_training(model, mode="align")                 # LLM frozen, projectors train
    model = prepare_for_training(model, mode="lora", r=64, alpha=16)  # LoRA on the LLM's linears
    merged = merge_lora(model)                                         # plain EcgLlm, fp32

LoRA goes on the language model's linear layers only (q,k,v,o,gate,up,down by default; a regex
keeps the vision tower's own q/k/v out); `lm_head` and `embed_tokens` stay out of LoRA. The
projectors (and, if asked, the ECG encoder and the vision tower's last blocks) train fully and are
saved inside the adapter folder (PEFT modules_to_save), so an adapter alone reproduces the model
on top of its base. Placeholder tokens need no trained embedding rows (their embeddings are
replaced by features); other new tokens can train only their own rows (`trainable_token_ids`,
PEFT trainable tokens), never the whole matrix.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MODES = ("align", "lora", "full")


def _own_modules(train_ecg_encoder: bool, vision_blocks: int, model) -> list[str]:
    names = [n for n in ("ecg_projector", "image_projector") if getattr(model, n, None) is not None]
    if train_ecg_encoder and getattr(model, "ecg_encoder", None) is not None:
        names.append("ecg_encoder")
    if vision_blocks and getattr(model, "vision_tower", None) is not None:
        layers = (
            model.vision_tower.vision_model.encoder.layers
            if hasattr(model.vision_tower, "vision_model")
            else model.vision_tower.encoder.layers
        )
        prefix = (
            "vision_tower.vision_model.encoder.layers"
            if hasattr(model.vision_tower, "vision_model")
            else "vision_tower.encoder.layers"
        )
        names += [f"{prefix}.{i}" for i in range(len(layers) - vision_blocks, len(layers))]
    return names


def prepare_for_training(
    model: nn.Module,
    mode: str = "lora",
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    targets: tuple[str, ...] = LORA_TARGETS,
    train_ecg_encoder: bool = True,
    vision_blocks: int = 0,
    trainable_token_ids: list[int] | None = None,
    train_modules: tuple[str, ...] = (),
):
    """Freeze/unfreeze for a training mode; for "lora" returns a PeftModel.

    align: only projectors (+ ECG encoder, + last `vision_blocks` vision blocks, + the LLM
           modules named in `train_modules`) train.
    lora:  the same plus LoRA adapters on the LLM's linear layers.
    full:  everything trains.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    own = _own_modules(train_ecg_encoder, vision_blocks, model)
    for name in train_modules:  # whole LLM modules that train besides LoRA (e.g. embed_tokens)
        hits = [
            n
            for n, _ in model.language_model.named_modules()
            if n == name or n.endswith("." + name)
        ]
        if not hits:
            raise ValueError(f"train_modules: the language model has no module named {name!r}")
        own += [f"language_model.{n}" for n in hits]
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    if mode == "align":
        for name in own:
            for p in model.get_submodule(name).parameters():
                p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    # the LLM's own layers only: a native VLM keeps its vision tower inside language_model
    scope = (
        r"language_model\.model\.language_model\."
        if model.config.native_vision
        else r"language_model\."
    )
    pattern = scope + r".*\.(" + "|".join(targets) + r")$"
    cfg = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, modules_to_save=own or None,
        bias="none", trainable_token_indices={"embed_tokens": list(trainable_token_ids)} if trainable_token_ids else None,
    )  # fmt: skip
    peft_model = get_peft_model(model, cfg)
    return peft_model


def trainable_summary(model: nn.Module) -> dict[str, int]:
    """Counts of trainable/total parameters, by top-level module."""
    out: dict[str, int] = {"trainable": 0, "total": 0}
    for name, p in model.named_parameters():
        out["total"] += p.numel()
        if p.requires_grad:
            out["trainable"] += p.numel()
            key = name.replace("base_model.model.", "").split(".")[0]
            out[f"trainable.{key}"] = out.get(f"trainable.{key}", 0) + p.numel()
    return out


def merge_lora(model: nn.Module) -> nn.Module:
    """PeftModel -> the plain model with LoRA merged (fp32 math) and trained copies of the
    modules_to_save in place. A model that is not a PeftModel is returned unchanged."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    return model.merge_and_unload(progressbar=False, safe_merge=True)


def fix_bnb_cpu_repack(model: nn.Module) -> int:
    """bitsandbytes 4-bit on CPU: a no-grad/eval forward repacks the weights for AVX512-BF16 and
    afterwards every LoRA gradient is silently None. Turning that path off on each Linear4bit
    keeps gradients flowing. Returns how many layers were changed."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    n = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
            n += 1
    return n


def quantize_language_model(
    model: nn.Module, bits: int = 4, compute_dtype=torch.float32
) -> nn.Module:
    """Replace model.language_model by a bitsandbytes 4/8-bit copy (QLoRA base). Works on CPU and
    GPU; applies `fix_bnb_cpu_repack`."""
    import tempfile

    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)
         if bits == 4 else BitsAndBytesConfig(load_in_8bit=True))  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        model.language_model.save_pretrained(d)
        model.language_model = AutoModelForCausalLM.from_pretrained(d, quantization_config=q)
    fixed = fix_bnb_cpu_repack(model)
    log.info("quantized the language model to %d bits (%d Linear4bit layers patched)", bits, fixed)
    return model
