"""The README's main job end to end on a small simulated database: interrupted mid-training and
re-run it completes; re-run again it reuses everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REAL, ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_quickstart_interrupted_resumed_and_reused(tmp_path):
    cmd = [sys.executable, str(ROOT / "recipes/quickstart.py"), "--out", str(tmp_path), "--n", "60", "--workers", "1",
           "--max-steps", "4", "--encoder-steps", "5", "--encoder-records", "40", "--eval-limit", "3",
           "--real", f"ludb={REAL / 'ludb'}", "--grpo", "2"]  # fmt: skip
    # 1. killed (SIGKILL, no chance to clean up) once stage 2 has started writing
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True
    )
    deadline = time.time() + 400
    while time.time() < deadline and not (tmp_path / "sft" / "base").exists() and p.poll() is None:
        time.sleep(0.2)
    assert p.poll() is None, "quickstart ended before it could be interrupted"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "sft" / "train_result.json").exists()
    # 2. the same command completes the run
    first = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "[1/8] simulated database: reusing" in out and "instruction data reused" in out
    assert "reusing" in out.split("[5/8]")[1].split("\n")[1]  # stage 1 finished before the kill
    assert "patients in two splits: 0; records skipped: 0" in out
    table = out[out.index("benchmark  metric") :].split("\n\n")[0].splitlines()
    names = {line.split()[0] for line in table[1:] if not line.startswith(" ")}
    assert names == {"detect", "ecgqa", "ground", "mcq", "measure", "report", "rhythm"}
    assert {"real_rhythm", "real_findings"} <= set(
        json.loads((tmp_path / "eval/results.json").read_text())["results"]
    )
    assert (tmp_path / "eval/report.html").exists() and (
        tmp_path / "eval/blank_ecg/results.json"
    ).exists()
    # the default SFT puts each ECG's rhythm measurements in the prompt (tiny_cpu.yaml
    # model.expert_features), so the text-only ablation runs and has its columns
    assert (tmp_path / "eval/text_only/results.json").exists() and "text only" in table[0]
    stamp = json.loads((tmp_path / "eval/text_only/samples.stamp.json").read_text())
    assert stamp["keep_expert_text"] and stamp["blank_ecg"]
    assert (tmp_path / "sft/loss_curve.png").exists() and (
        tmp_path / "align/loss_curve.png"
    ).exists()
    assert (tmp_path / "export/config.json").exists() and "verified in a fresh process" in out
    card = (tmp_path / "export/README.md").read_text()
    assert "| ecgqa | exact_match |" in card
    assert out.strip().splitlines()[-1].startswith("done: 60 records simulated")
    assert "  (report: the right rhythm stated in" in out
    res = json.loads((tmp_path / "eval/results.json").read_text())["results"]
    assert all(v["n"] == 3 for v in res.values())
    # the real-records table: the 3 LUDB records, rhythm and findings, with the blank-ECG columns
    # after the same questions on the simulated test split
    real = out[out.index("real records (never seen in training") :].splitlines()
    assert real[2].split()[6] == "text" and (tmp_path / "eval_real/ludb/text_only").is_dir()
    assert real[3].split()[0] == "simulated" and real[3].split()[-1] == "3"
    assert real[4].split()[0] == "ludb" and real[4].split()[-1] == "3"
    real = "\n".join(real)
    assert "  ludb: recall atrial fibrillation" in real
    # their findings scored by the table's list AUC alone (P(yes) beside it skipped: its time)
    f = json.loads((tmp_path / "eval_real/ludb/results.json").read_text())["results"][
        "real_findings"
    ]
    assert f["main_metric"] == "macro_auc_list" and "yes_scored" not in f
    # the optional GRPO stage: trained on the SFT model, evaluated, printed beside SFT
    grpo = out[out.index("+GRPO") :].split("\n\n")[0].splitlines()
    assert "GRPO - SFT [paired 95% CI]" in grpo[0] and grpo[-1].startswith("(* the paired")
    assert {line.split()[0] for line in grpo[1:-1] if not line.startswith(" ")} == names
    assert any(line.split()[0] == "accuracy_generate" for line in grpo[1:] if line.startswith(" "))
    assert json.loads((tmp_path / "grpo/grpo_result.json").read_text())["steps"] == 2
    assert (tmp_path / "eval_grpo/blank_ecg/results.json").exists()
    # 3. run again: everything is reused
    t = time.perf_counter()
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") >= 3 and "ECG encoder reused" in again.stdout
    assert f"reusing {tmp_path / 'grpo'}/final" in again.stdout
    assert time.perf_counter() - t < 120


def test_changed_simulation_settings_remove_what_was_built_from_the_old_database(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "recipes"))
    from quickstart import simulate_step

    simulate_step(tmp_path, 4, 0, 1, "balanced")
    (tmp_path / "instruct").mkdir()
    (tmp_path / "sft" / "final").mkdir(parents=True)
    simulate_step(tmp_path, 4, 0, 1, "balanced")
    assert "reusing" in capsys.readouterr().out and (tmp_path / "sft").exists()
    simulate_step(tmp_path, 4, 0, 1, "ptbxl")
    assert "removing what was built from the old database" in capsys.readouterr().out
    assert not (tmp_path / "instruct").exists() and not (tmp_path / "sft").exists()
    assert json.loads((tmp_path / "sim/simulation.json").read_text())["rhythms"] == "ptbxl"


def test_a_training_stage_is_trained_again_when_its_inputs_change(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "recipes"))
    import quickstart

    calls = []

    def fake_run(cmd, what):  # what recipes/sft.py leaves behind when it finishes
        calls.append(cmd)
        stage = tmp_path / "align"
        (stage / "final").mkdir(parents=True, exist_ok=True)
        (stage / "train_result.json").write_text(json.dumps({"steps": 1, "eval_loss": 0.5}))

    monkeypatch.setattr(quickstart, "run", fake_run)
    weights = tmp_path / "enc.safetensors"
    weights.write_text("v1")
    quickstart.train_stage("align", "tiny_cpu_align.yaml", tmp_path, [], [weights])
    quickstart.train_stage("align", "tiny_cpu_align.yaml", tmp_path, [], [weights])
    assert len(calls) == 1 and "reusing" in capsys.readouterr().out
    time.sleep(0.01)
    weights.write_text("v2")  # e.g. the encoder pretrained again
    os.utime(weights, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    quickstart.train_stage("align", "tiny_cpu_align.yaml", tmp_path, [], [weights])
    assert len(calls) == 2 and "training it again" in capsys.readouterr().out


def test_each_backbone_preset_is_a_pair_of_shipped_configs():
    """Every training setting of the quickstart lives in recipes/configs (it only sets paths)."""
    sys.path.insert(0, str(ROOT / "recipes"))
    from quickstart import PRESETS, TOKEN_PRESETS, WHOLE_SPLIT

    from ecgllm.benchmarks import available
    from ecgllm.train.config import load_config

    # whole-split benchmarks: of a preset that limits the others, and shipped benchmarks
    assert all(PRESETS[b][2] and set(w) <= set(available()) for b, w in WHOLE_SPLIT.items())

    for backbone, (align, sft, _) in PRESETS.items():
        a, s = (load_config(ROOT / "recipes/configs" / f) for f in (align, sft))
        assert a.lora.mode == "align" and s.lora.mode == "lora", backbone
        assert a.model.backbone == s.model.backbone == backbone
        assert s.model.init_from.endswith("align/final") and a.output.dir.endswith("/align")
    for backbone, (forecast, sft, _) in TOKEN_PRESETS.items():  # the tokenizer route
        f, s = (load_config(ROOT / "recipes/configs" / n) for n in (forecast, sft))
        assert f.lora.mode == "align" and s.lora.mode == "lora" and f.data.ecg_token_loss, backbone
        assert f.model.backbone == s.model.backbone and f.model.ecg == s.model.ecg == "none"
        assert s.model.init_from.endswith("forecast/final") and f.output.dir.endswith("/forecast")
    import re

    src = (ROOT / "recipes/quickstart.py").read_text()
    # paths, and the switches a user passes on its command line (--max-steps, --expert-features,
    # --retrieve): nothing the quickstart decides by itself
    paths = {"data.path", "model.ecg_weights", "model.init_from", "output.dir", "train.max_steps",
             "train.resume_from_checkpoint", "model.expert_features", "data.retrieve", "data.retrieval_index", "model.ecg_tokenizer"}  # fmt: skip
    assert set(re.findall(r"\b((?:model|data|lora|train|output|hub)\.\w+)=", src)) <= paths


def test_quickstart_tokens_route(tmp_path):
    """--route tokens: the ECG tokenizer learned on the training split (round trip printed), the
    forecasting stage, the same SFT, every benchmark with the blank ECG, the real records and a
    verified export; re-run, everything is reused."""
    cmd = [sys.executable, str(ROOT / "recipes/quickstart.py"), "--out", str(tmp_path), "--n", "60", "--workers", "1",
           "--max-steps", "4", "--eval-limit", "3", "--real", f"ludb={REAL / 'ludb'}", "--route", "tokens"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "validation round trip RMSE" in out and "[4/8] ECG tokenizer" in out
    rt = json.loads((tmp_path / "ecg_tokenizer/round_trip.json").read_text())
    assert rt["rmse_mv"] < 0.1 and rt["tokens_per_lead"] < rt["symbols_per_lead"]
    assert (tmp_path / "ecg_tokenizer/round_trip.png").exists()
    assert "forecast loss" in out and not (tmp_path / "ecg_encoder").exists()
    table = out[out.index("benchmark  metric") :].split("\n\n")[0].splitlines()
    names = {line.split()[0] for line in table[1:] if not line.startswith(" ")}
    assert names == {"detect", "ecgqa", "ground", "mcq", "measure", "report", "rhythm"}
    assert (tmp_path / "eval/blank_ecg/results.json").exists()
    assert "ludb " in out[out.index("real records (never seen") :]
    assert "verified in a fresh process" in out
    proc_cfg = json.loads((tmp_path / "export/processor_config.json").read_text())
    assert proc_cfg["ecg_tokens"]["config"]["leads"] == ["I", "II", "V2"]
    assert out.strip().splitlines()[-1].startswith("done: 60 records simulated")
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"reusing {tmp_path / 'ecg_tokenizer'}" in again.stdout
    assert f"reusing {tmp_path / 'forecast'}/final" in again.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "data_builders/ecg_tokenizer.py"), "--data", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "t")], capture_output=True, text=True, env=ENV)  # fmt: skip
    assert bad.returncode != 0 and "nope/records not found" in bad.stderr
