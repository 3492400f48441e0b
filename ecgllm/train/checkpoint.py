"""Checkpoints: Hub-ready model folders plus the exact training state, written atomically.

    OUT/checkpoint-000040/
        adapter/ (lora: PEFT adapter + projectors + ECG encoder)  | trainable.safetensors (align)
        | model/ (full) ; config.json (EcgLlmConfig), processor files, recipe.yaml,
        trainer_state.json (step, epoch, losses), state/ (optimizer, scheduler, RNG: accelerate)
    OUT/base/  the random-init base weights when the backbone is not a hub/local checkpoint

Everything is written to `checkpoint-N.tmp` and renamed, so a folder named checkpoint-N is always
complete; only the newest `keep` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..atomic import replace

CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(out: str | Path) -> list[Path]:
    out = Path(out)
    if not out.exists():
        return []
    found = [
        (int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := CKPT_RE.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out: str | Path) -> Path | None:
    ckpts = list_checkpoints(out)
    return ckpts[-1] if ckpts else None


def trainable_state(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Only the parameters that train (names without the PEFT prefix)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    sd = state_dict if state_dict is not None else model.state_dict()
    return {k: v.detach().cpu().contiguous() for k, v in sd.items() if k in names}


def save_model_files(target: Path, model, processor, mode: str, state_dict=None) -> None:
    """The model part of a checkpoint (also the final output): adapter / trainable / full."""
    from peft import PeftModel

    target.mkdir(parents=True, exist_ok=True)
    base = model.base_model.model if isinstance(model, PeftModel) else model
    base.config.save_pretrained(target)
    processor.save_pretrained(target)
    if mode == "lora":
        model.save_pretrained(target / "adapter", state_dict=state_dict)
    elif mode == "align":
        save_file(trainable_state(model, state_dict), str(target / "trainable.safetensors"))
    else:
        base.save_pretrained(target / "model", state_dict=state_dict)


def save_checkpoint(out: str | Path, step: int, model, processor, mode: str, trainer_state: dict[str, Any],
                    recipe: dict, keep: int = 2, state_dict=None, state_dir: Path | None = None) -> Path:  # fmt: skip
    """Write checkpoint-N (model files, recipe, trainer state; `state_dir`, an accelerate
    save_state folder written by every process, is moved in as state/), then keep the newest."""
    out = Path(out)
    final = out / f"checkpoint-{step:06d}"
    tmp = out / f"checkpoint-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model_files(tmp, model, processor, mode, state_dict)
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=1))
    if state_dir is not None:
        os.replace(state_dir, tmp / "state")
    if final.exists():
        shutil.rmtree(final)
    replace(tmp, final)
    for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_lora_factors(model: torch.nn.Module, path: str | Path) -> int:
    """A previous LoRA stage's factors (its adapter's lora_A / lora_B) into `model`, a PEFT model
    of the same LoRA shape, so that a stage started from a LoRA stage's output (more data, another
    schedule) continues its adapter instead of starting new factors (load_trained_modules loads
    the modules_to_save only). Returns how many tensors were loaded: 0 when `path` has no LoRA
    factors (an align stage's output)."""
    f = Path(path) / "adapter" / "adapter_model.safetensors"
    if not f.exists():
        return 0
    lora = {k: v for k, v in load_file(str(f)).items() if "lora_" in k}
    if not lora:
        return 0
    own = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in lora.items():
            # PEFT saves `...lora_A.weight`; the live parameter is `...lora_A.default.weight`
            name = k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")
            if name not in own:
                raise ValueError(
                    f"{f}: LoRA weight {k} has no place in this model (lora.targets differ from "
                    "the stage it was trained in)"
                )
            if tuple(own[name].shape) != tuple(v.shape):
                raise ValueError(
                    f"{f}: LoRA weight {k} is {tuple(v.shape)}, this model's is "
                    f"{tuple(own[name].shape)} (lora.r differs from the stage it was trained in)"
                )
            own[name].copy_(v.to(own[name].dtype))
    return len(lora)


def load_trained_modules(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a previous stage's trained modules (align: trainable.safetensors; lora: the adapter's
    modules_to_save; full: the whole model) into `model` before this stage starts. Returns the
    loaded parameter names."""
    path = Path(path)
    if (path / "trainable.safetensors").exists():
        state = load_file(str(path / "trainable.safetensors"))
    elif (path / "adapter" / "adapter_model.safetensors").exists():
        raw = load_file(str(path / "adapter" / "adapter_model.safetensors"))
        state = {}
        for k, v in raw.items():
            # the modules_to_save (PEFT writes them under their plain names), not the LoRA factors
            if "lora_" not in k:
                k = (
                    k.replace("base_model.model.", "")
                    .replace(".modules_to_save.default", "")
                    .replace(".modules_to_save", "")
                )
                state[k] = v
    elif (path / "model").exists():
        from safetensors.torch import load_file as lf

        state = {}
        for f in sorted((path / "model").glob("*.safetensors")):
            state.update(lf(str(f)))
    else:
        raise FileNotFoundError(
            f"{path}: no trainable.safetensors, adapter/ or model/ to initialise from"
        )
    own = dict(model.named_parameters())
    missing = [k for k in state if k not in own]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} weights do not fit this model, e.g. {missing[:3]}"
        )
    with torch.no_grad():
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(
                    f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                )
            own[k].copy_(v.to(own[k].dtype))
    return sorted(state)
