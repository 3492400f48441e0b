"""merge_and_push: merge -> Hub-ready folder -> fresh-process reload equality, model card, remote
code in a venv with only transformers, QLoRA refusal/dequantization, push against a stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT

TOKEN = "hf_TESTtokenNEVERprintedXYZ1234567890"


def _lora_checkpoint(root: Path, quantize: int | None = None) -> Path:
    """A training output as recipes/sft.py writes it: OUT/base (random-init base) and OUT/final
    (adapter with projectors + ECG encoder, processor, config, recipe.yaml)."""
    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training
    from ecgllm.train.checkpoint import save_model_files

    torch.manual_seed(0)
    model, proc = build_model()
    model.save_pretrained(root / "base")
    proc.save_pretrained(root / "base")
    model = prepare_for_training(model, mode="lora", r=8, alpha=16)
    with torch.no_grad():  # a trained-looking adapter: LoRA B is zero at init
        for n, p in model.named_parameters():
            if "lora_B" in n or "projector" in n:
                p.add_(0.05 * torch.randn_like(p))
    save_model_files(root / "final", model, proc, "lora")
    recipe = {"model": {"backbone": "tiny", "vision": "tiny", "ecg": "tiny"},
              "lora": {"mode": "lora", "r": 8, "quantize": quantize},
              "train": {"learning_rate": 2e-3, "num_train_epochs": 1, "per_device_train_batch_size": 8}}  # fmt: skip
    (root / "final/recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "final"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    ckpt = _lora_checkpoint(root)
    res = root / "eval"
    res.mkdir()
    (res / "results.json").write_text(json.dumps({"results": {
        "ecgqa": {"main_metric": "exact_match", "value": 0.61, "ci95": [0.55, 0.66], "chance": 0.25, "n": 300},
        "rhythm": {"main_metric": "accuracy_loglik", "value": 0.8, "ci95": [0.6, 0.9], "chance": 0.2, "n": 25}}}))  # fmt: skip
    (res / "blank_ecg").mkdir()
    (res / "blank_ecg/results.json").write_text(
        json.dumps({"results": {"ecgqa": {"value": 0.41}, "rhythm": {"value": 0.5}}})
    )
    out = root / "export"
    cmd = [sys.executable, str(ROOT / "recipes/merge_and_push.py"), "--checkpoint", str(ckpt), "--out", str(out),
           "--results", str(res), "--push-to-hub", "ecgllm/tiny-test", "--dry-run", "--max-shard-size", "300KB",
           "--dataset", "PULSE-ECG/ECGInstruct"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"root": root, "ckpt": ckpt, "out": out, "stdout": r.stdout}


def test_folder_card_and_verification(exported):
    out, stdout = exported["out"], exported["stdout"]
    files = sorted(p.name for p in out.iterdir())
    for f in ("config.json", "model.safetensors.index.json", "generation_config.json", "processor_config.json",
              "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "README.md",
              "configuration_ecgllm.py", "modeling_ecgllm.py", "processing_ecgllm.py", "ecg_encoder.py"):  # fmt: skip
        assert f in files, f
    assert len(list(out.glob("model-*.safetensors"))) >= 2  # sharded, with its index
    assert "verified in a fresh process (transformers_modules" in stdout  # remote code, not ecgllm
    assert "dry run: would upload" in stdout and "README.md" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert (
        cfg["auto_map"]["AutoModelForImageTextToText"]
        == "modeling_ecgllm.EcgLlmForConditionalGeneration"
    )
    assert (
        cfg["ecg_config"]["pretrained_path"] is None and cfg["text_config"]["model_type"] == "llama"
    )
    proc = json.loads((out / "processor_config.json").read_text())
    assert proc["auto_map"] == {"AutoProcessor": "processing_ecgllm.EcgLlmProcessor"}
    assert proc["ecg_fs"] == 500 and proc["ecg_leads"][:3] == ["I", "II", "III"]
    from ecgllm.export import find_local_paths

    assert find_local_paths(out, [str(exported["root"]), str(ROOT)]) == []
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "image-text-to-text"
    assert meta["datasets"] == ["PULSE-ECG/ECGInstruct"] and "ecg" in meta["tags"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.61
    assert "| ecgqa | exact_match | 0.610 | 0.550–0.660 | 0.250 | 0.410 | 300 |" in card
    assert "not a medical device" in card and "trust_remote_code=True" in card
    assert "500 Hz" in card and "I, II, III, aVR" in card


def test_merged_equals_base_plus_adapter_with_ecgllm_auto_classes(exported):
    """With ecgllm installed the Auto classes load the folder without remote code; its logits
    equal base + adapter."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ecgllm.export import load_checkpoint, verify_inputs

    ref, proc, info = load_checkpoint(exported["ckpt"])
    assert info["mode"] == "lora" and info["base_dir"].endswith("base")
    merged = AutoModelForImageTextToText.from_pretrained(exported["out"]).eval()
    assert type(merged).__module__ == "ecgllm.model.modeling_ecgllm"
    p2 = AutoProcessor.from_pretrained(exported["out"])
    batch = verify_inputs(p2)
    with torch.no_grad():
        a, b = ref(**batch).logits, merged(**batch).logits
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    # and the adapter really changed the model (the comparison is not vacuous)
    base = AutoModelForImageTextToText.from_pretrained(exported["root"] / "base").eval()
    with torch.no_grad():
        assert (base(**batch).logits - a).abs().max() > 1e-3


def test_loads_in_a_venv_with_only_transformers(exported, tmp_path):
    """A fresh venv with torch + transformers + pillow and no ecgllm: AutoModel + AutoProcessor
    with trust_remote_code=True load the folder and give the same logits."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin/python"
    import transformers

    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "torch==2.13.0",
                        f"transformers=={transformers.__version__}", "pillow"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    r = subprocess.run(
        [str(py), "-c", "import ecgllm"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert r.returncode != 0 and "No module named 'ecgllm'" in r.stderr
    from ecgllm.export import load_checkpoint, verify_export

    ref, proc, _ = load_checkpoint(exported["ckpt"])
    env["PYTHONPATH"] = ""
    check = verify_export(exported["out"], ref, proc, python=str(py), env=env)
    assert (
        check["logits_match"]
        and check["generation_match"]
        and check["loaded_from"].startswith("transformers_modules")
    )
    code = ("from transformers import AutoModel, AutoProcessor; import sys; "
            "m = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True); "
            "p = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True); "
            "print(type(m).__name__, type(p).__name__, p.ecg_fs)")  # fmt: skip
    r = subprocess.run([str(py), "-c", code, str(exported["out"])], capture_output=True, text=True, cwd=tmp_path,
                       env={**env, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["EcgLlmForConditionalGeneration", "EcgLlmProcessor", "500.0"]


def test_push_against_a_stand_in(exported, capsys, monkeypatch):
    from ecgllm.export import ExportError, push_folder

    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create_repo", kw))

        def upload_folder(self, **kw):
            folder = Path(kw["folder_path"])
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            for p in folder.rglob("*"):
                if p.is_file():
                    data = p.read_bytes()
                    assert TOKEN.encode() not in data and str(exported["root"]).encode() not in data
            calls.append(("upload_folder", {**kw, "files": files}))
            return type(
                "C", (), {"commit_url": "https://huggingface.co/ecgllm/tiny-test/commit/abc"}
            )()

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = exported["out"]
    plan = push_folder(out, "ecgllm/tiny-test", private=True, api=FakeApi())
    want = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == {
        "repo_id": "ecgllm/tiny-test",
        "private": True,
        "exist_ok": True,
        "token": TOKEN,
        "repo_type": "model",
    }
    assert calls[1][1]["files"] == want and [f for f, _ in plan["files"]] == want
    assert plan["commit"].endswith("/commit/abc")
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err and TOKEN not in json.dumps(plan)
    # a folder holding the token or a local path is refused before any upload
    (out / "notes.txt").write_text(f"token={TOKEN}")
    with pytest.raises(ExportError, match="notes.txt contains the access token"):
        push_folder(out, "ecgllm/tiny-test", api=FakeApi())
    (out / "notes.txt").write_text("trained in /home/alice/runs/x")
    with pytest.raises(ExportError, match="local paths"):
        push_folder(out, "ecgllm/tiny-test", api=FakeApi())
    (out / "notes.txt").unlink()
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PermissionError, match="no Hugging Face token"):
        push_folder(out, "ecgllm/tiny-test", api=FakeApi())
    with pytest.raises(ValueError, match="ORG/NAME"):
        push_folder(out, "not a repo", dry_run=True)


def test_qlora_refused_then_dequantized(tmp_path):
    from ecgllm.export import ExportError, export_merged, load_checkpoint

    ckpt = _lora_checkpoint(tmp_path, quantize=4)
    with pytest.raises(ExportError, match="trained on a 4-bit base"):
        load_checkpoint(ckpt)
    model, proc, info = load_checkpoint(ckpt, dequantize=True)
    assert info["dequantized"]["bits"] == 4 and info["dequantized"]["layers"] > 0
    files = export_merged(model, proc, tmp_path / "out", info)
    assert "model.safetensors" in files
    assert "dequantized to fp32" in (tmp_path / "out/README.md").read_text()


def test_adapter_only(exported, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from ecgllm.export import export_adapter, load_checkpoint

    model, proc, info = load_checkpoint(exported["ckpt"])
    files = export_adapter(model, proc, tmp_path / "adapter", info, repo_id="ecgllm/tiny-adapter")
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        "processor_config.json",
    } <= set(files)
    cfg = json.loads((tmp_path / "adapter/adapter_config.json").read_text())
    assert not cfg["base_model_name_or_path"]  # random-init tiny base: no local path leaks
    assert "library_name: peft" in (tmp_path / "adapter/README.md").read_text()
    base = AutoModelForImageTextToText.from_pretrained(exported["root"] / "base")
    again = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    from ecgllm.export import verify_inputs

    batch = verify_inputs(proc)
    with torch.no_grad():
        assert torch.allclose(again(**batch).logits, model(**batch).logits, atol=1e-5)


def test_path_scan_ignores_tokenizer_vocabularies(tmp_path):
    """Gemma's vocabulary has the token "~/": a vocabulary is data, not a path; a path in the
    rest of tokenizer.json (or any other file) is still found."""
    from ecgllm.export import find_local_paths

    tok = {"version": "1.0", "added_tokens": [{"content": "<ecg>"}], "normalizer": None,
           "model": {"type": "BPE", "vocab": {"~/": 1, "/home/": 2, "(\"~/": 3}, "merges": [["~", "/"]]}}  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok))
    (tmp_path / "vocab.json").write_text(json.dumps({"/home/": 0}))
    (tmp_path / "merges.txt").write_text("~ /\n")
    assert find_local_paths(tmp_path) == []
    tok["name_or_path"] = "/home/me/ckpt"
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok))
    (tmp_path / "config.json").write_text(json.dumps({"x": "~/models/base"}))
    hits = find_local_paths(tmp_path)
    assert (
        len(hits) == 2
        and hits[0].startswith("config.json")
        and hits[1].startswith("tokenizer.json")
    )


def test_the_recipes_hub_section_is_where_it_is_pushed(exported, tmp_path):
    import shutil

    ckpt = tmp_path / "final"
    shutil.copytree(exported["ckpt"], ckpt)
    recipe = yaml.safe_load((ckpt / "recipe.yaml").read_text())
    recipe["hub"] = {"push": True, "repo_id": "ecgllm/from-recipe", "private": True}
    (ckpt / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    cmd = [sys.executable, str(ROOT / "recipes/merge_and_push.py"), "--checkpoint", str(ckpt),
           "--out", str(tmp_path / "export"), "--dry-run", "--skip-verify", "--base", str(exported["root"] / "base")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "to ecgllm/from-recipe (private):" in r.stdout
    from ecgllm.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="hub.repo_id must be ORG/NAME"):
        load_config(None, ["hub.push=true"])
