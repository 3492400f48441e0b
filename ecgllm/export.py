"""Export: merge adapters, write a Hub-ready folder with a model card, verify it, push it.

    model, processor, info = load_checkpoint("runs/default/sft/final")
    files = export_merged(model, processor, "runs/default/export", info, results="runs/default/eval")
    check = verify_export("runs/default/export", model, processor)   # fresh process, logits compared
    push_folder("runs/default/export", "org/name", dry_run=True)     # lists what would be uploaded

The merged folder holds config.json (nested configs, `auto_map`, no local paths), safetensors
shards + index, tokenizer, processor JSONs (ECG rate, window, lead order, normalisation; image
processor), chat template, generation config, the model's own code (configuration, modeling,
processing, ECG encoder: loads with `trust_remote_code=True` where ecgllm is not installed) and a
model card. Merging happens in fp32. A checkpoint trained on a 4-bit/8-bit base is refused unless
`dequantize=True`: then the base is quantized as in training, dequantized to fp32 (a warning says
that the merged weights carry the quantization error) and merged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from .atomic import replace

log = logging.getLogger(__name__)

MODEL_FILES = (
    "configuration_ecgllm.py",
    "modeling_ecgllm.py",
    "processing_ecgllm.py",
    "ecg_encoder.py",
    "ecg_zoo.py",
    "pickled.py",  # ecg_encoder.py's reader of checkpoints that pickle more than tensors
)
AUTO_MAP = {
    "AutoConfig": "configuration_ecgllm.EcgLlmConfig",
    "AutoModel": "modeling_ecgllm.EcgLlmForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_ecgllm.EcgLlmForConditionalGeneration",
}
PROCESSOR_AUTO_MAP = {"AutoProcessor": "processing_ecgllm.EcgLlmProcessor"}
TEXT_SUFFIXES = (".json", ".md", ".jinja", ".py", ".txt", ".yaml", ".yml")
VOCAB_FILES = ("vocab.json", "merges.txt")  # BPE vocabularies: tokens, not paths
# absolute paths of a machine (POSIX roots people train under, Windows drives, home shortcuts)
LOCAL_PATH = re.compile(
    r"(?<![\w.:/])(?:/(?:home|tmp|work|root|Users|mnt|data|scratch|var|opt|srv|gpfs|lustre)/|[A-Za-z]:\\\\|~/)"
)


class ExportError(RuntimeError):
    pass


def _recipe(ckpt: Path) -> dict:
    p = ckpt / "recipe.yaml"
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def _hub_name(value: Any) -> str | None:
    """A backbone spec that names a Hub repository (org/name, not a local folder)."""
    if (
        isinstance(value, str)
        and re.fullmatch(r"[\w.-]+/[\w.-]+", value)
        and not Path(value).exists()
    ):
        return value
    return None


def _find_base(ckpt: Path, base: str | Path | None) -> Path | None:
    cands = [base] if base else []
    cfg = ckpt / "adapter" / "adapter_config.json"
    if cfg.exists():
        cands.append(json.loads(cfg.read_text()).get("base_model_name_or_path"))
    cands += [ckpt.parent / "base", ckpt.parent.parent / "base"]
    for c in cands:
        if c and (Path(c) / "config.json").exists() and list(Path(c).glob("*.safetensors")):
            return Path(c)
    return None


def _dequantize_(model) -> int:
    """Replace bitsandbytes 4/8-bit linears by fp32 nn.Linear with their dequantized weights."""
    import bitsandbytes as bnb
    from torch import nn

    n = 0
    for name, mod in list(model.named_modules()):
        if isinstance(mod, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            if isinstance(mod, bnb.nn.Linear4bit):
                w = bnb.functional.dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
            else:
                cb, scb = mod.weight.CB, mod.weight.SCB
                w = (
                    (cb.float() * scb.float()[:, None] / 127.0)
                    if cb is not None
                    else mod.weight.data.float()
                )
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            lin.weight.data.copy_(w)
            if mod.bias is not None:
                lin.bias.data.copy_(mod.bias.data.float())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, lin)
            n += 1
    return n


def load_checkpoint(ckpt: str | Path, base: str | Path | None = None, dequantize: bool = False):
    """A training output (final/ or checkpoint-N/) -> (model with its adapter attached or the full
    model, processor, info)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import ecgllm.model  # noqa: F401 - Auto classes

    from .train.checkpoint import load_trained_modules

    ckpt = Path(ckpt)
    if not (ckpt / "processor_config.json").exists():
        raise FileNotFoundError(f"{ckpt}: not a training output (no processor_config.json)")
    recipe = _recipe(ckpt)
    info: dict[str, Any] = {"checkpoint": str(ckpt), "recipe": recipe,
                            "backbone": _hub_name(recipe.get("model", {}).get("backbone"))}  # fmt: skip
    processor = AutoProcessor.from_pretrained(ckpt)
    if (ckpt / "model").exists():
        info["mode"] = "full"
        return AutoModelForImageTextToText.from_pretrained(ckpt / "model"), processor, info
    mode = (
        "lora"
        if (ckpt / "adapter").exists()
        else "align"
        if (ckpt / "trainable.safetensors").exists()
        else None
    )
    if mode is None:
        raise FileNotFoundError(f"{ckpt}: no adapter/, trainable.safetensors or model/ in it")
    info["mode"] = mode
    base_dir = _find_base(ckpt, base)
    if base_dir is not None:
        model = AutoModelForImageTextToText.from_pretrained(base_dir)
        info["base_dir"] = str(base_dir)
    elif info["backbone"]:
        from .model.factory import TINY_ECG, TINY_SIGLIP, build_model
        from .train.config import from_dict
        from .train.setup import _resolve

        m = from_dict(recipe).model
        ecg_tok = None
        if getattr(processor, "tokenizes_ecgs", False):  # the same ECG token rows as in training
            from .model.ecg_tokenizer import EcgTokenizer

            ecg_tok = EcgTokenizer.from_document(processor.ecg_tokens)
        model, _ = build_model(backbone=info["backbone"], vision=_resolve(m.vision, TINY_SIGLIP),
                               ecg=_resolve(m.ecg, TINY_ECG), chat_family=m.chat_family,
                               ecg_tokenizer=ecg_tok)  # fmt: skip
    else:
        raise FileNotFoundError(f"{ckpt}: cannot find the base model (give base=...; looked for "
                                f"{ckpt.parent / 'base'} and the adapter's base_model_name_or_path)")  # fmt: skip
    quant = recipe.get("lora", {}).get("quantize")
    if quant:
        if not dequantize:
            raise ExportError(
                f"{ckpt} was trained on a {quant}-bit base: merging it into full-precision weights "
                "is not the model that was trained. Pass --dequantize to quantize the base as in "
                "training, dequantize it to fp32 and merge (the merged weights then carry the "
                "quantization error), or --adapter-only to publish the adapter for that base."
            )
        from .model.lora import quantize_language_model

        model = quantize_language_model(model, bits=int(quant))
        n = _dequantize_(model)
        log.warning("dequantized %d %d-bit layers of the base to fp32 before merging: the merged "
                    "model reproduces the quantized base, not the original one", n, quant)  # fmt: skip
        info["dequantized"] = {"bits": quant, "layers": n}
    if mode == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ckpt / "adapter")
    else:
        load_trained_modules(model, ckpt)
    model.eval()
    return model, processor, info


# --- writing -------------------------------------------------------------------------------------


def _scannable_text(f: Path) -> str:
    """A file's text without the tokenizer vocabulary: vocabularies are the base model's data and
    hold tokens such as "~/" (Gemma) that look like paths but name nothing."""
    if f.name in VOCAB_FILES:
        return ""
    text = f.read_text(errors="replace")
    if f.name == "tokenizer.json":
        data = json.loads(text)
        data.pop("model", None)  # vocab + merges; added_tokens, normalizer, ... stay scanned
        text = json.dumps(data, indent=1)
    return text


def find_local_paths(folder: str | Path, extra: list[str] = ()) -> list[str]:
    """'file: snippet' for every text file that names an absolute local path (or one of `extra`)."""
    hits = []
    extra = [e for e in extra if e and len(e) > 3]
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file() and f.suffix in TEXT_SUFFIXES:
            text = _scannable_text(f)
            for m in LOCAL_PATH.finditer(text):
                hits.append(f"{f.name}: ...{text[max(0, m.start() - 30) : m.end() + 30]!r}")
            hits += [f"{f.name}: contains {e!r}" for e in extra if e in text]
    return hits


def _scrub(obj: Any, hub_base: str | None) -> Any:
    """Remove local paths from config dicts: *_name_or_path keys and pretrained_path."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("_name_or_path", "name_or_path", "base_model_name_or_path") and isinstance(
                v, str
            ):
                v = v if _hub_name(v) else (hub_base or "")
            elif k == "pretrained_path":
                v = None  # the encoder weights are inside the checkpoint
            out[k] = _scrub(v, hub_base)
        return out
    if isinstance(obj, list):
        return [_scrub(v, hub_base) for v in obj]
    return obj


def _rewrite_json(path: Path, hub_base: str | None, extra: dict | None = None) -> None:
    if path.exists():
        data = _scrub(json.loads(path.read_text()), hub_base)
        data.update(extra or {})
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _results_table(results: str | Path | None) -> tuple[str, list[dict]]:
    if not results:
        return "", []
    p = Path(results)
    p = p / "results.json" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"results {p} not found")
    res = json.loads(p.read_text())
    blank_p = p.parent / "blank_ecg" / "results.json"
    blank = json.loads(blank_p.read_text())["results"] if blank_p.exists() else {}
    rows = [
        "| benchmark | metric | score | 95% CI | chance | blank ECG | n |",
        "|---|---|---|---|---|---|---|",
    ]
    entries = []
    for name, r in res["results"].items():
        if "value" not in r:
            continue
        lo, hi = r.get("ci95", (float("nan"), float("nan")))
        b = blank.get(name, {}).get("value")
        rows.append(f"| {name} | {r['main_metric']} | {r['value']:.3f} | {lo:.3f}–{hi:.3f} | {r.get('chance', float('nan')):.3f} | "
                    f"{'' if b is None else f'{b:.3f}'} | {r['n']} |")  # fmt: skip
        entries.append({"name": name, "metric": r["main_metric"], "value": r["value"]})
    return "\n".join(rows), entries


def model_card(processor, info: dict, repo_id: str | None, license: str, results: str | Path | None,
               datasets: list[str], adapter_only: bool = False) -> str:  # fmt: skip
    table, entries = _results_table(results)
    base = info.get("backbone")
    meta: dict[str, Any] = {
        "license": license,
        "library_name": "peft" if adapter_only else "transformers",
        "pipeline_tag": "image-text-to-text",
        "tags": ["ecg", "electrocardiogram", "medical", "ecgllm", "multimodal"] + (["lora"] if adapter_only else []),
    }  # fmt: skip
    if base:
        meta["base_model"] = base
    if datasets:
        meta["datasets"] = datasets
    if entries and repo_id:
        meta["model-index"] = [{"name": repo_id.split("/")[-1], "results": [
            {"task": {"type": "image-text-to-text"}, "dataset": {"name": e["name"], "type": e["name"]},
             "metrics": [{"type": e["metric"], "value": round(float(e["value"]), 4)}]} for e in entries]}]  # fmt: skip
    name = repo_id or "this model"
    leads = ", ".join(processor.ecg_leads)
    load = (f'from peft import PeftModel\nfrom transformers import AutoModelForImageTextToText, AutoProcessor\n'
            f'base = AutoModelForImageTextToText.from_pretrained("{base or "BASE"}", trust_remote_code=True)\n'
            f'model = PeftModel.from_pretrained(base, "{name}")') if adapter_only else (
            f'from transformers import AutoModelForImageTextToText, AutoProcessor\n'
            f'model = AutoModelForImageTextToText.from_pretrained("{name}", trust_remote_code=True)\n'
            f'processor = AutoProcessor.from_pretrained("{name}", trust_remote_code=True)')  # fmt: skip
    recipe = info.get("recipe", {})
    train = recipe.get("train", {})
    images = bool(processor.num_image_tokens or getattr(processor, "native", None) is not None)
    tokens_line = None
    if getattr(processor, "tokenizes_ecgs", False):
        c = processor.ecg_tokens["config"]
        reads = "the ECG is read as tokens in the language model's vocabulary"
        tokens_line = (f"- ECG tokens: leads {', '.join(c['leads'])} resampled to {c['fs']:g} Hz, {c['levels']} mu-law "
                       f"amplitude levels (clipped at {c['clip_mv']:g} mV) merged by BPE into {c['vocab_size']} tokens; "
                       "the tokenizer is in `processor_config.json` (`ecg_tokens`); tokenizing needs `pip install ecgllm`.")  # fmt: skip
    else:
        reads = (
            "an ECG time-series encoder"
            + (" and an image encoder" if images else "")
            + " projected into a language model"
        )
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# {name.split('/')[-1]}", "",
        "An ECG-language model built with [ecgllm](https://github.com/ecgllm/ecgllm): " + reads
        + (f" ({base})" if base else "") + ". It reads 12-lead ECGs" + (" (signal and/or a picture of the paper ECG)"
        if images else " (the signal)") + " and answers questions about them or writes a report.", "",
        "## Use", "", "```python", load, "```", "",
        "With `pip install ecgllm`, `import ecgllm.model` registers the classes and `trust_remote_code` is not needed.", "",
        "## Inputs", "",
        f"- ECG signal: {len(processor.ecg_leads)} leads in the order {leads}; {processor.ecg_seconds:g} s at "
        f"{processor.ecg_fs:g} Hz ({processor.ecg_samples} samples), millivolts; normalisation: "
        f"`{processor.ecg_normalization}` (clip at {processor.ecg_clip_mv:g} mV where clipping). Records at other rates or lengths are resampled and cropped/padded by ecgllm's `standardize`.",
        *([tokens_line] if tokens_line else []),
        *(["- ECG image: a page of ECG paper, resized by the image processor in `processor_config.json`."] if images else []),
        "- Prompts: the chat template in `chat_template.jinja`; ECGs and images are content items `{\"type\": \"ecg\"}` / `{\"type\": \"image\"}`.", "",
    ]  # fmt: skip
    if table:
        lines += ["## Evaluation", "", "Held-out split, greedy decoding; chance and blank-ECG (signal zeroed, page blank) columns for reference.", "", table, ""]  # fmt: skip
    if train:
        lines += ["## Training", "",
                  f"Mode `{recipe.get('lora', {}).get('mode')}`, learning rate {train.get('learning_rate')}, "
                  f"{train.get('num_train_epochs')} epoch(s), batch {train.get('per_device_train_batch_size')} per device "
                  f"x {train.get('gradient_accumulation_steps', 1)} accumulation steps."
                  + (f" The base was quantized to {info['dequantized']['bits']} bits in training and dequantized to fp32 for this merge." if info.get("dequantized") else ""), ""]  # fmt: skip
    lines += [
        "## Intended use and limitations", "",
        "For research on ECG-language modelling: benchmarking, error analysis, as a starting point for fine-tuning. "
        "**This model is not a medical device.** It has not been validated clinically, it can state findings that "
        "are not there and miss findings that are, and its output must not be used to diagnose or treat anyone. "
        "Scores on simulated or curated benchmarks do not transfer to clinical practice.", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _ship_code(out: Path) -> None:
    src = Path(__file__).parent / "model"
    for f in MODEL_FILES:
        shutil.copy2(src / f, out / f)


def _publish(tmp: Path, out: Path, info: dict) -> list[str]:
    """Check a finished OUT.tmp for local paths, then rename it to OUT; its file list."""
    bad = find_local_paths(
        tmp, [str(Path(info.get("checkpoint", "")).resolve()), os.getcwd(), str(Path.home())]
    )
    if bad:
        raise ExportError(f"local paths in {out.name}:\n  " + "\n  ".join(bad[:10]))
    if out.exists():
        shutil.rmtree(out)
    replace(tmp, out)
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def export_merged(model, processor, out: str | Path, info: dict, repo_id: str | None = None,
                  results: str | Path | None = None, license: str = "apache-2.0", datasets: list[str] = (),
                  max_shard_size: str | int = "2GB") -> list[str]:  # fmt: skip
    """Merge (fp32) and write the Hub-ready folder; written to OUT.tmp then renamed."""
    from .model.lora import merge_lora

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    merged = merge_lora(model).float()
    if hasattr(merged.config, "ecg_config") and merged.config.ecg_config is not None:
        merged.config.ecg_config.pretrained_path = None
    merged.config.auto_map = dict(AUTO_MAP)
    merged.save_pretrained(tmp, max_shard_size=max_shard_size)
    if (
        getattr(merged, "generation_config", None) is not None
        and not (tmp / "generation_config.json").exists()
    ):
        merged.generation_config.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    hub_base = info.get("backbone")
    for f in tmp.glob("*.json"):
        _rewrite_json(
            f,
            hub_base,
            {"auto_map": PROCESSOR_AUTO_MAP} if f.name == "processor_config.json" else None,
        )
    _ship_code(tmp)
    (tmp / "README.md").write_text(
        model_card(processor, info, repo_id, license, results, list(datasets))
    )
    return _publish(tmp, out, info)


def export_adapter(model, processor, out: str | Path, info: dict, repo_id: str | None = None,
                   results: str | Path | None = None, license: str = "apache-2.0", datasets: list[str] = ()) -> list[str]:  # fmt: skip
    """Adapter only (PEFT folder: LoRA weights + projectors/ECG encoder as modules_to_save), with
    the processor files and a card, for users who keep the base."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise ExportError("adapter-only export needs a LoRA checkpoint (this one is "
                          f"{info.get('mode')!r}): export the merged model instead")  # fmt: skip
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    for f in tmp.glob("*.json"):
        _rewrite_json(f, info.get("backbone"))
    (tmp / "README.md").write_text(
        model_card(processor, info, repo_id, license, results, list(datasets), adapter_only=True)
    )
    return _publish(tmp, out, info)


# --- verifying -----------------------------------------------------------------------------------

_CHILD = r"""
import json, sys, torch
from transformers import AutoModelForImageTextToText, AutoProcessor
folder, inputs, result = sys.argv[1:4]
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
AutoProcessor.from_pretrained(folder, trust_remote_code=True)
batch = torch.load(inputs, weights_only=True)
with torch.no_grad():
    logits = model(**batch).logits
    gen = model.generate(**batch, max_new_tokens=8, do_sample=False)
torch.save({"logits": logits, "generated": gen, "module": type(model).__module__}, result)
"""


def verify_inputs(processor, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A few fixed prompts with random ECGs (and a blank page when the model takes images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    content = [{"type": "ecg"}] if processor.takes_ecgs else []
    if processor.num_image_tokens:
        content.append({"type": "image"})
    texts, ecgs, images = [], [], []
    for i in range(n):
        msg = [
            {
                "role": "user",
                "content": content + [{"type": "text", "text": f"Describe ECG number {i}."}],
            }
        ]
        texts.append(processor.apply_chat_template(msg, add_generation_prompt=True))
        if processor.takes_ecgs:
            ecgs.append(
                (
                    0.3 * rng.standard_normal((len(processor.ecg_leads), processor.ecg_samples))
                ).astype(np.float32)
            )
        if processor.num_image_tokens:
            images.append(Image.new("RGB", (440, 340), (255, 240, 240)))
    side = processor.tokenizer.padding_side
    processor.tokenizer.padding_side = "left"
    try:
        batch = processor(text=texts, ecgs=ecgs or None, images=images or None)
    finally:
        processor.tokenizer.padding_side = side
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def verify_export(folder: str | Path, reference_model, processor, atol: float = 1e-4, rtol: float = 1e-4,
                  python: str | None = None, env: dict | None = None) -> dict:  # fmt: skip
    """Reload the exported folder in a fresh process (remote code, no ecgllm import) and compare
    its logits with the in-memory base + adapter on the same inputs (|diff| <= atol + rtol*|ref|),
    and its greedy generation token for token. Raises ExportError on mismatch."""
    batch = verify_inputs(processor)
    with torch.no_grad():
        ref = reference_model(**batch).logits.float()
        ref_gen = reference_model.generate(**batch, max_new_tokens=8, do_sample=False)
    with tempfile.TemporaryDirectory() as d:
        torch.save(batch, Path(d) / "inputs.pt")
        child_env = {
            **os.environ,
            **(env or {}),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        r = subprocess.run([python or sys.executable, "-c", _CHILD, str(Path(folder).resolve()), str(Path(d) / "inputs.pt"),
                            str(Path(d) / "out.pt")], capture_output=True, text=True, env=child_env, cwd=d)  # fmt: skip
        if r.returncode != 0:
            raise ExportError(
                f"the exported folder does not load in a fresh process:\n{r.stderr[-3000:]}"
            )
        got = torch.load(Path(d) / "out.pt", weights_only=True)
    diff = (got["logits"].float() - ref).abs()
    ok = bool((diff <= atol + rtol * ref.abs()).all())
    same_gen = got["generated"].shape == ref_gen.shape and bool((got["generated"] == ref_gen).all())
    report = {"max_abs_diff": float(diff.max()), "atol": atol, "rtol": rtol, "logits_match": ok,
              "generation_match": same_gen, "loaded_from": got["module"], "samples": int(ref.shape[0])}  # fmt: skip
    if not ok or not same_gen:
        raise ExportError(f"exported model differs from base + adapter: {report}")
    return report


# --- pushing -------------------------------------------------------------------------------------


def push_folder(folder: str | Path, repo_id: str, private: bool = False, dry_run: bool = False,
                api=None, token: str | None = None, commit_message: str = "Upload ECG-language model (ecgllm)") -> dict:  # fmt: skip
    """Upload a folder to the Hub with huggingface_hub. The token comes from `token`, HF_TOKEN or
    the login cache and is never printed; the upload is refused if any file contains it or a
    local path. dry_run lists the files and sizes and uploads nothing."""
    folder = Path(folder)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise ValueError(f"repo id must look like ORG/NAME, not {repo_id!r}")
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )
    if not files:
        raise ExportError(f"{folder} is empty")
    bad = find_local_paths(folder)
    if bad:
        raise ExportError("refusing to upload: local paths in\n  " + "\n  ".join(bad[:10]))
    plan = {
        "repo_id": repo_id,
        "private": private,
        "files": files,
        "bytes": sum(s for _, s in files),
        "dry_run": dry_run,
    }
    if dry_run:
        return plan
    if token is None:
        from huggingface_hub import get_token

        token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise PermissionError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    for name, _ in files:
        p = folder / name
        if p.suffix in TEXT_SUFFIXES and token in p.read_text(errors="replace"):
            raise ExportError(f"refusing to upload: {name} contains the access token")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, token=token, repo_type="model")
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, token=token, repo_type="model",
                               commit_message=commit_message)  # fmt: skip
    plan["commit"] = str(getattr(commit, "commit_url", commit))
    return plan
