"""recipes/sft.py end to end on CPU: configs, learning, exact resume, DDP and DeepSpeed equal to
one process, ZeRO-3 adapters saved non-empty, SIGTERM, stage chaining, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgllm.train.config import ConfigError, load_config
from tests.conftest import REAL, ROOT

CONFIGS = sorted((ROOT / "recipes/configs").glob("*.yaml"))
SFT = str(ROOT / "recipes/sft.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
MODEL_ARGS = [  # the tiny_cpu.yaml chain without its stage-0/1 inputs, LoRA on the linears only
    "model.ecg_weights=null",
    "model.init_from=null",
    "lora.train_modules=[]",
    "lora.train_ecg_encoder=true",
    "lora.r=16",
    "lora.alpha=32",
    "lora.mode=lora",
    "lora.dropout=0",
]
BASE = [
    *MODEL_ARGS,
    "train.per_device_train_batch_size=4",
    "train.logging_steps=1",
    "data.limit_eval=16",
]


def _run(
    args: list[str], launcher: list[str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [
        SFT,
        "--config",
        str(ROOT / "recipes/configs/tiny_cpu.yaml"),
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _losses(out: Path, step: int) -> list[float]:
    return json.loads((out / f"checkpoint-{step:06d}" / "trainer_state.json").read_text())["losses"]


def test_every_shipped_config_loads_and_starts_with_its_command():
    assert len(CONFIGS) >= 9
    for path in CONFIGS:
        cfg = load_config(path)
        first = path.read_text().splitlines()[0]
        assert first.startswith("#") and cfg.lora.mode in ("align", "lora", "full")
        assert (
            "recipes/sft.py"
            in path.read_text().split("\n", 3)[1] + path.read_text().split("\n", 3)[2]
        ), path


def _encoder_file(d: Path) -> Path:
    from safetensors.torch import save_file

    from ecgllm.model.configuration_ecgllm import EcgEncoderConfig
    from ecgllm.model.ecg_encoder import EcgEncoder
    from ecgllm.model.factory import TINY_ECG

    torch.manual_seed(1)
    f = d / "ecg_encoder.safetensors"
    save_file(EcgEncoder(EcgEncoderConfig(**TINY_ECG)).state_dict(), str(f))
    return f


STAND_INS = {"meta-llama/": "llama", "google/gemma-2": "gemma2", "Qwen/": "qwen2"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_configs_build_with_tiny_stand_ins(path, instruct, tmp_path):
    """Hub backbones are replaced by tiny configs of the same architecture (nothing downloads)."""
    from ecgllm.model.factory import TINY_GEMMA2, TINY_LLAMA, TINY_QWEN2
    from ecgllm.train.setup import setup_model

    cfg = load_config(path, [f"data.path={instruct}"])
    tiny = {"llama": TINY_LLAMA, "gemma2": TINY_GEMMA2, "qwen2": TINY_QWEN2}
    if isinstance(cfg.model.backbone, str) and cfg.model.backbone != "tiny":
        kind = next((v for k, v in STAND_INS.items() if cfg.model.backbone.startswith(k)), "gemma3")
        cfg.model.backbone = dict(
            tiny.get(kind, TINY_LLAMA),
            model_type="gemma3_text" if kind == "gemma3" else tiny[kind]["model_type"],
        )
        cfg.model.vision = "tiny"
        cfg.model.ecg = "tiny"
    cfg.lora.quantize = None  # bitsandbytes 4-bit is tested in tests/model
    if cfg.model.ecg_weights:  # the embedded default's stage-0 output: a stand-in encoder file
        cfg.model.ecg_weights = str(_encoder_file(tmp_path))
    cfg.model.init_from = None
    if cfg.model.ecg_tokenizer:  # the tokenizer route's ECG tokenizer: one learned here
        from ecgllm.data.dataset import split_signals
        from ecgllm.model.ecg_tokenizer import EcgTokenizer, EcgTokenizerConfig

        x, m, _ = split_signals(instruct, "train")
        EcgTokenizer.train(x, m, EcgTokenizerConfig(vocab_size=200)).save_pretrained(
            tmp_path / "tok"
        )
        cfg.model.ecg_tokenizer = str(tmp_path / "tok")
    model, proc, _ = setup_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['train.learning_rat'\]"):
        load_config(None, ["train.learning_rat=1"])
    with pytest.raises(ConfigError, match="with a section in"):
        load_config(None, ["trian.x=1"])
    (tmp_path / "s.yaml").write_text("trian:\n  x: 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="lora.mode must be"):
        load_config(None, ["lora.mode=qlora"])
    (tmp_path / "x.yaml").write_text("model:\n  backbone: tiny\n  colour: red\n")
    with pytest.raises(ConfigError, match="model.colour"):
        load_config(tmp_path / "x.yaml")
    for bad in ("0", "{ecgqa: many}", "[3]"):
        with pytest.raises(ConfigError, match="data.max_per_task must be"):
            load_config(None, [f"data.max_per_task={bad}"])
    with pytest.raises(ConfigError, match=r"data.max_per_task: unknown task family \['ecqga'\]"):
        load_config(None, ["data.max_per_task={ecqga: 10}"])
    assert load_config(None, ["data.max_per_task={ecgqa: 10, rhythm: 5}"]).data.max_per_task == {
        "ecgqa": 10,
        "rhythm": 5,
    }
    tok = ["model.ecg_tokenizer=runs/x/ecg_tokenizer"]
    with pytest.raises(ConfigError, match="ECG tokens replace the ECG encoder; set model.ecg=none"):
        load_config(None, tok)
    with pytest.raises(ConfigError, match="lora.mode align trains projectors"):
        load_config(None, [*tok, "model.ecg=none", "lora.mode=align"])
    with pytest.raises(ConfigError, match="data.augment acts on the ECG encoder's inputs"):
        load_config(None, [*tok, "model.ecg=none", "data.augment=true"])
    with pytest.raises(ConfigError, match="data.ecg_token_loss needs model.ecg_tokenizer"):
        load_config(None, ["data.ecg_token_loss=true"])
    cfg = load_config(None, ["train.learning_rate=1e-4", "data.tasks=[report,detect]"])
    assert cfg.train.learning_rate == 1e-4 and cfg.data.tasks == ["report", "detect"]


@pytest.fixture(scope="module")
def single(instruct, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    r = _run([f"data.path={instruct}", f"output.dir={out}", "train.max_steps=6", "train.save_steps=3",
              "train.save_total_limit=5", *BASE])  # fmt: skip
    return out, r


def test_training_runs_logs_and_saves(single):
    out, r = single
    assert "trained 6 steps" in r.stdout
    losses = _losses(out, 6)
    assert len(losses) == 6 and losses[-1] < losses[0]
    for p in ("final/adapter/adapter_model.safetensors", "final/config.json", "final/processor_config.json",
              "base/model.safetensors", "log.csv", "loss_curve.png", "checkpoint-000003/state"):  # fmt: skip
        assert (out / p).exists(), p
    assert not list(out.glob("*.tmp")) and not list(out.glob(".state-*"))


def test_resume_equals_uninterrupted(single, tmp_path):
    out, _ = single
    import shutil

    again = tmp_path / "again"
    shutil.copytree(out, again)
    shutil.rmtree(again / "checkpoint-000006")
    shutil.rmtree(again / "final")
    r = _run([f"data.path={_data(out)}",
              f"output.dir={again}", "train.max_steps=6", "train.save_steps=3", "train.save_total_limit=5",
              "train.resume_from_checkpoint=latest", *BASE])  # fmt: skip
    assert "trained 6 steps" in r.stdout
    torch.testing.assert_close(
        torch.tensor(_losses(again, 6)), torch.tensor(_losses(out, 6)), atol=1e-5, rtol=0
    )


def _data(out: Path) -> str:
    import yaml

    return yaml.safe_load((out / "checkpoint-000003" / "recipe.yaml").read_text())["data"]["path"]


@pytest.fixture(scope="module")
def reference(instruct, tmp_path_factory):
    """One process, batch 8: the reference losses for the distributed runs (global batch 8)."""
    out = tmp_path_factory.mktemp("ref")
    _run([f"data.path={instruct}", f"output.dir={out}", "train.max_steps=3", *MODEL_ARGS,
          "train.per_device_train_batch_size=8", "data.limit_eval=16"])  # fmt: skip
    return out


def test_packing_trains_with_the_same_losses(instruct, reference, tmp_path):
    _run([f"data.path={instruct}", f"output.dir={tmp_path}", "train.max_steps=3", *MODEL_ARGS,
          "train.per_device_train_batch_size=8", "data.limit_eval=16", "data.packing=true"])  # fmt: skip
    torch.testing.assert_close(
        torch.tensor(_losses(tmp_path, 3)), torch.tensor(_losses(reference, 3)), atol=1e-5, rtol=0
    )


LAUNCH = [str(Path(sys.executable).parent / "accelerate"), "launch"]


@pytest.mark.xdist_group("distributed")  # one launch on the default port at a time
@pytest.mark.parametrize("how", ["ddp", "zero2", "zero3"])
def test_distributed_runs_match_one_process(how, instruct, reference, tmp_path):
    pytest.importorskip("deepspeed") if how != "ddp" else None
    launcher = {
        "ddp": [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--main_process_port", "29531"],
        "zero2": [*LAUNCH, "--config_file", str(ROOT / "recipes/accelerate/cpu_zero2.yaml")],
        "zero3": [*LAUNCH, "--config_file", str(ROOT / "recipes/accelerate/cpu_zero3.yaml")],
    }[how]
    env_cpu = {"ACCELERATE_USE_CPU": "1"}
    os.environ.update(env_cpu)
    ENV.update(env_cpu)
    _run(
        [f"data.path={instruct}", f"output.dir={tmp_path}", "train.max_steps=3", *BASE],
        launcher=launcher,
    )
    # tolerance: the same global batch; only the order of float reductions differs
    torch.testing.assert_close(
        torch.tensor(_losses(tmp_path, 3)), torch.tensor(_losses(reference, 3)), atol=1e-5, rtol=0
    )
    if (
        how == "zero3"
    ):  # the gathered adapter is complete: base + adapter reproduces the 1-process model
        from peft import PeftModel
        from safetensors.torch import load_file
        from transformers import AutoModelForImageTextToText

        import ecgllm.model  # noqa: F401 - registers the Auto classes

        a = load_file(str(tmp_path / "final/adapter/adapter_model.safetensors"))
        b = load_file(str(reference / "final/adapter/adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(v.numel() > 0 for v in a.values())
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=0)
        base = AutoModelForImageTextToText.from_pretrained(tmp_path / "base")
        m = PeftModel.from_pretrained(base, tmp_path / "final/adapter")
        assert any("lora_B" in n and p.abs().sum() > 0 for n, p in m.named_parameters())


def test_sigterm_saves_and_resume_finishes(instruct, tmp_path):
    cmd = [sys.executable, SFT, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"), f"data.path={instruct}",
           f"output.dir={tmp_path}", "train.max_steps=400", *BASE]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    log = tmp_path / "log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 6):
        time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM at step" in out
    ckpts = sorted(tmp_path.glob("checkpoint-*"))
    assert ckpts and (ckpts[-1] / "trainer_state.json").exists()


def test_align_then_sft_and_dry_run(instruct, tmp_path):
    align = tmp_path / "align"
    cfg = str(ROOT / "recipes/configs/tiny_cpu_align.yaml")
    from ecgllm.train.encoder_pretrain import pretrain_encoder

    enc = pretrain_encoder(instruct, tmp_path / "enc", steps=3, batch_size=8, progress=False)
    assert enc["codes"] and enc["loss_first"] > 0 and "val_macro_auc_one_token" in enc
    from safetensors.torch import load_file

    saved = load_file(enc["weights"])  # with the training split's output statistics
    assert not torch.equal(saved["feature_std"], torch.ones_like(saved["feature_std"]))
    assert 0 < enc["output_mean_direction_share"] <= 1
    again = pretrain_encoder(instruct, tmp_path / "enc", steps=3, batch_size=8, progress=False)
    assert again["reused"]
    w = enc["weights"]
    r = subprocess.run([sys.executable, SFT, "--config", cfg, f"data.path={instruct}", f"output.dir={align}",
                        "train.max_steps=3", f"model.ecg_weights={w}", "train.logging_steps=1"],
                       capture_output=True, text=True, env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert (align / "final" / "trainable.safetensors").exists()
    from safetensors.torch import load_file

    # align: projectors + the random LLM's vocabulary layers; the pretrained encoder stays frozen
    trained = load_file(str(align / "final/trainable.safetensors"))
    assert {k.split(".")[0] for k in trained} == {
        "ecg_projector",
        "image_projector",
        "language_model",
    }
    assert {"language_model.model.embed_tokens.weight", "language_model.lm_head.weight"} <= set(
        trained
    )
    # stage 2 as shipped (LoRA r64 + embeddings/LM head as modules_to_save), then its adapter
    sft = tmp_path / "sft2"
    r = subprocess.run([sys.executable, SFT, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"),
                        f"data.path={instruct}", f"output.dir={sft}", f"model.init_from={align / 'final'}",
                        f"model.ecg_weights={w}", "train.max_steps=2", "data.limit_eval=4"],
                       capture_output=True, text=True, env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    adapter = load_file(str(sft / "final/adapter/adapter_model.safetensors"))
    assert "base_model.model.language_model.model.embed_tokens.weight" in adapter
    assert (sft / "base/config.json").exists()
    assert (sft / "final/recipe.yaml").exists()
    # a stage started from that LoRA stage continues its factors (not only its modules_to_save)
    from ecgllm.train.config import load_config
    from ecgllm.train.setup import setup_model

    over = [f"model.ecg_weights={w}", f"model.init_from={sft / 'final'}", f"data.path={instruct}"]
    model, _, _ = setup_model(load_config(ROOT / "recipes/configs/tiny_cpu.yaml", over))
    own = dict(model.named_parameters())
    lora_b = [k for k in adapter if ".lora_B." in k]
    assert lora_b and adapter[lora_b[0]].abs().sum() > 0  # trained (B starts at zero)
    for k in lora_b:
        assert torch.equal(own[k.replace(".lora_B.", ".lora_B.default.")].detach(), adapter[k])
    with pytest.raises(ValueError, match="lora.r differs"):
        setup_model(load_config(ROOT / "recipes/configs/tiny_cpu.yaml", [*over, "lora.r=8"]))
    r = _run([f"data.path={instruct}", f"output.dir={tmp_path / 'sft'}", f"model.init_from={align / 'final'}",
              f"model.ecg_weights={w}", "--dry-run", "train.gradient_accumulation_steps=2", "lora.mode=lora",
              "data.max_per_task={ecgqa: 3, mcq: 2}"])  # fmt: skip
    d = json.loads(r.stdout[r.stdout.index("{\n") : r.stdout.rindex("}") + 1])
    by_task = d["train_samples_by_task"]
    assert by_task["ecgqa"] == 3 and by_task["mcq"] == 2 and by_task["report"] > 3
    assert d["train_samples"] == sum(by_task.values())
    assert d["world_size"] == 1 and d["effective_batch"] == 16 and d["zero_stage"] == 0
    assert (
        0 < d["trainable_params"] < d["total_params"]
        and d["memory_per_device_gib"]["total_gib"] > 0
    )
    assert "dry run: 1 process(es), effective batch 16" in r.stdout


def test_native_vlm_backbone_trains_through_its_own_processor(instruct, tmp_path):
    """A Gemma 3 vision-language backbone from a local folder (as from the Hub): the recipe's
    collator sends pages through Gemma3Processor (its image expansion and token_type_ids), the
    SigLIP tower stays the backbone's own, and LoRA + the ECG path train."""
    from transformers import (
        AutoConfig,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
        PreTrainedTokenizerFast,
    )

    from ecgllm.model.chat_templates import CHAT_TEMPLATES
    from ecgllm.model.tokenizer import TINY_DIR
    from tests.model.test_model import _gemma3_parts

    tok, spec, image_processor, _, kwargs, family, _ = _gemma3_parts(
        PreTrainedTokenizerFast, TINY_DIR
    )
    backbone = tmp_path / "gemma3-vlm"
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(
        AutoConfig.for_model(spec.pop("model_type"), **spec)
    ).save_pretrained(backbone)
    Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATES[family],
                    **kwargs).save_pretrained(backbone)  # fmt: skip
    out = tmp_path / "run"
    r = _run([*BASE, f"model.backbone={backbone}", f"data.path={instruct}", f"output.dir={out}",
              "train.max_steps=3", "data.limit_eval=4", "data.tasks=[report,mcq]"])  # fmt: skip
    res = json.loads((out / "train_result.json").read_text())
    assert res["steps"] == 3 and res["last_loss"] < 20 and res["eval_loss"] is not None
    assert "trained 3 steps" in r.stdout and res["dropped"] == {}
    final = out / "final"
    assert (final / "adapter" / "adapter_model.safetensors").exists()
    proc = json.loads((final / "processor_config.json").read_text())
    assert proc["native_processor_class"] == "Gemma3Processor"
    bad = subprocess.run([sys.executable, SFT, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"), *BASE,
                          f"model.backbone={backbone}", f"data.path={instruct}", f"output.dir={tmp_path / 'bad'}",
                          "data.packing=true"], capture_output=True, text=True, env=ENV)  # fmt: skip
    assert (
        bad.returncode == 2
        and "config error: data.packing: packing is not supported with a native VLM" in bad.stderr
    )


def test_several_datasets_train_together(instruct, tmp_path):
    """data.path as a list (simulated default + your real records): one dataset, each row read
    from its own records; the recipe's dry run counts the samples of both."""
    from ecgllm.data import BuildConfig, build_dataset
    from ecgllm.data.dataset import EcgInstructionDataset

    real = tmp_path / "ludb"
    build_dataset(BuildConfig(source="ludb", root=str(REAL / "ludb"), out=str(real), tasks=("report", "rhythm"),
                              single_split="train"), progress=False)  # fmt: skip
    a, b = EcgInstructionDataset(instruct, "train"), EcgInstructionDataset(real, "train")
    both = EcgInstructionDataset([instruct, real], "train")
    assert len(both) == len(a) + len(b) and list(both.samples["task"]) == list(
        a.samples["task"]
    ) + list(b.samples["task"])
    last, own = both[len(both) - 1], b[len(b) - 1]
    assert last["id"] == own["id"] and np.array_equal(last["signal"], own["signal"])
    assert both[0]["id"] == a[0]["id"] and both.record(own["record_ids"][0])["source"] == "ludb"
    r = _run([f"data.path=[{instruct}, {real}]", f"output.dir={tmp_path / 'sft'}", "model.ecg_weights=null",
              "model.init_from=null", "--dry-run"])  # fmt: skip
    d = json.loads(r.stdout[r.stdout.index("{\n") : r.stdout.rindex("}") + 1])
    assert d["train_samples"] == len(a) + len(b) and d["train_samples_by_task"]["rhythm"] == 3


def test_encoder_with_rhythm_tokens(instruct, tmp_path):
    """Stage 0 with rhythm tokens: they alone are asked the rhythm and the rate, the real-records
    probe reads them, and the saved weights load into a model with the same encoder settings."""
    from ecgllm.model import build_model
    from ecgllm.model.ecg_encoder import load_encoder_weights
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.train.encoder_pretrain import pretrain_encoder

    cfg = {**TINY_ECG, "rhythm_tokens": 1}
    ludb = ROOT / "tests" / "fixtures" / "real" / "ludb"
    enc = pretrain_encoder(instruct, tmp_path / "enc", encoder_config=cfg, steps=2, batch_size=8,
                           progress=False, real=[("ludb", str(ludb))])  # fmt: skip
    (probe,) = enc["real"].values()
    assert probe["n"] >= 1 and 0 <= probe["balanced_accuracy"] <= 1
    model, proc = build_model(ecg=cfg)
    load_encoder_weights(model.ecg_encoder, enc["weights"])
    assert model.config.num_ecg_tokens == 25 + 4 + 1 == proc.num_ecg_tokens
    # SFT's measurement swap keeps what the rhythm tokens read (the encoder's rhythm_features)
    ecg = "{" + ", ".join(f"{k}: {v}" for k, v in {**cfg, "rhythm_features": [0, 6]}.items()) + "}"
    r = _run([f"data.path={instruct}", f"output.dir={tmp_path / 'sft'}", "model.ecg_weights=null",
              "model.init_from=null", f"model.ecg={ecg}", "data.augment={measurement_swap: 1.0}",
              "--dry-run"])  # fmt: skip
    d = json.loads(r.stdout[r.stdout.index("{\n") : r.stdout.rindex("}") + 1])
    assert d["augment"]["measurement_swap"] == 1.0 and d["augment"]["swap_keep"] == [0, 6]


def test_encoder_with_verdict_token(instruct, tmp_path):
    """Stage 0 with a verdict token: encoder and head train as without it, then the head becomes
    the encoder's own (saved with it); a head of the wrong size is refused, and the last token
    carries the head's verdict into a model."""
    import json

    import torch

    from ecgllm.model import build_model
    from ecgllm.model.ecg_encoder import load_encoder_weights
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.train.encoder_pretrain import pretrain_encoder

    with pytest.raises(ValueError, match="verdict_outputs is 3, but"):
        pretrain_encoder(instruct, tmp_path / "bad", encoder_config={**TINY_ECG, "verdict_outputs": 3},
                         steps=1, batch_size=8, progress=False)  # fmt: skip
    plain = pretrain_encoder(instruct, tmp_path / "plain", steps=2, batch_size=8, progress=False)
    n_codes = len(plain["codes"])
    cfg = {**TINY_ECG, "verdict_outputs": n_codes + 6}
    enc = pretrain_encoder(
        instruct, tmp_path / "enc", encoder_config=cfg, steps=2, batch_size=8, progress=False
    )
    saved = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert saved["verdict_outputs"] == n_codes + 6
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / d / "ecg_encoder.safetensors")) for d in ("plain", "enc"))
    head = load_file(str(tmp_path / "enc" / "head.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("feature_"))  # trained alike
    assert torch.equal(b["verdict_head.weight"], head["weight"])
    model, proc = build_model(ecg=cfg)
    load_encoder_weights(model.ecg_encoder, enc["weights"])
    assert model.config.num_ecg_tokens == 25 + 4 + 1 == proc.num_ecg_tokens
    e = model.ecg_encoder.eval()
    x = torch.randn(2, 12, 5000) * 0.3
    meas = torch.randn(2, e.config.measurement_dim)
    out = e(x, None, meas)
    assert out.shape == (2, 30, 64)
    with torch.no_grad():  # a different verdict moves only the last token
        e.verdict_head.bias += 5.0
    out2 = e(x, None, meas)
    assert torch.allclose(out[:, :-1], out2[:, :-1]) and not torch.allclose(out[:, -1], out2[:, -1])


def test_verdict_token_on_rhythm_tokens(instruct, tmp_path):
    """With rhythm tokens the verdict is the head's reading of them: only the outputs stage 0
    asked of those tokens (the rhythm statements and the rate) are kept, the others zeroed, and
    the verdict token depends on the rhythm measurements alone (not on the signal or the other
    measurements), so that SFT's signal swap leaves it the record's own."""
    import torch
    from safetensors.torch import load_file

    from ecgllm.model import build_model
    from ecgllm.model.ecg_encoder import load_encoder_weights
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.text.vocab import RHYTHM_CLASSES
    from ecgllm.train.encoder_pretrain import REGRESSION, pretrain_encoder

    plain = pretrain_encoder(instruct, tmp_path / "plain", steps=1, batch_size=8, progress=False)
    codes = plain["codes"]
    cfg = {
        **TINY_ECG,
        "rhythm_tokens": 1,
        "rhythm_features": [0, 1, 2],
        "verdict_outputs": len(codes) + 6,
    }
    enc = pretrain_encoder(
        instruct, tmp_path / "enc", encoder_config=cfg, steps=2, batch_size=8, progress=False
    )
    head = load_file(str(tmp_path / "enc" / "head.safetensors"))
    vh = load_file(enc["weights"])["verdict_head.weight"]
    rate = [i for i, c in enumerate(codes) if c in RHYTHM_CLASSES] + [
        len(codes) + REGRESSION.index("hr_bpm")
    ]
    other = [i for i in range(len(codes) + 6) if i not in rate]
    assert rate and torch.equal(vh[rate], head["weight"][rate]) and not vh[other].any()
    model, _ = build_model(ecg=cfg)
    load_encoder_weights(model.ecg_encoder, enc["weights"])
    e = model.ecg_encoder.eval()
    x, meas = torch.randn(2, 12, 5000) * 0.3, torch.randn(2, e.config.measurement_dim)
    n = e.config.measurement_dim // 2
    moved = meas.clone()
    moved[:, [5, 20, n + 5]] += 1.0  # measurements the rhythm tokens do not read
    out, out2 = e(x, None, meas), e(torch.randn(2, 12, 5000) * 0.3, None, moved)
    assert torch.allclose(out[:, -2:], out2[:, -2:], atol=1e-5)  # rhythm + verdict tokens
    rhythm = meas.clone()
    rhythm[:, 0] += 1.0
    assert not torch.allclose(e(x, None, rhythm)[:, -1], out[:, -1])
