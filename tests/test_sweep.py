"""recipes/sweep.py: arms parsed and refused, trained and scored against the baseline and their own
blank ECG (paired, as eval/compare.py), reused on a re-run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from ecgllm.evaluation.compare import compare_runs
from ecgllm.evaluation.sweep import parse_arms
from tests.conftest import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
SWEEP = [sys.executable, str(ROOT / "recipes" / "sweep.py")]


def test_arms_are_parsed_and_bad_ones_refused():
    arms = parse_arms([["r8", "lora.r=8", "lora.alpha=16"], ["lr", "train.learning_rate=1e-3"]])
    assert arms == {"r8": ["lora.r=8", "lora.alpha=16"], "lr": ["train.learning_rate=1e-3"]}
    for specs, why in [
        ([["r8"]], "changes nothing"),
        ([["lora.r=8"]], "folder name"),
        ([["a/b", "lora.r=8"]], "folder name"),
        ([["baseline", "lora.r=8"]], "shared settings alone"),
        ([["r8", "lora.r=8"], ["r8", "lora.r=4"]], "twice"),
        ([["r8", "lora.r"]], "not KEY=VALUE"),
        (None, "at least one --arm"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_arms(specs)


def test_a_bad_setting_is_refused_before_anything_trains(tmp_path):
    r = subprocess.run([*SWEEP, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"), "--out", str(tmp_path),
                        "--arm", "bad", "lora.rank=8"], capture_output=True, text=True, env=ENV)  # fmt: skip
    assert r.returncode == 2 and "lora.rank" in r.stderr
    r = subprocess.run([*SWEEP, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"), "--out", str(tmp_path),
                        "--arm", "r8", "lora.r=8", "output.dir=x"], capture_output=True, text=True, env=ENV)  # fmt: skip
    assert r.returncode == 2 and "output.dir=x: the sweep places" in r.stderr
    assert not list(tmp_path.iterdir())


def test_a_sweep_trains_scores_and_compares_its_arms(instruct, tmp_path):
    shared = [f"data.path={instruct}", "model.ecg_weights=null", "model.init_from=null", "lora.r=16", "lora.alpha=32",
              "train.max_steps=2", "train.save_steps=0", "data.limit_eval=4"]  # fmt: skip
    cmd = [*SWEEP, "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"), "--out", str(tmp_path),
           "--arm", "r8", "lora.r=8", "lora.alpha=16", "--benchmarks", "mcq,rhythm", "--limit", "4",
           "--resamples", "50", *shared]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "sweep.json").read_text())
    assert list(res["arms"]) == ["baseline", "r8"]
    assert res["arms"]["r8"]["overrides"] == ["lora.r=8", "lora.alpha=16"]
    assert res["arms"]["r8"]["train"]["steps"] == 2
    for name in ("baseline", "r8"):
        assert (tmp_path / name / "eval" / "blank_ecg" / "results.json").exists()
        recipe = (tmp_path / name / "sft" / "final" / "recipe.yaml").read_text()
        assert ("r: 8" in recipe) == (name == "r8")
    base = res["arms"]["baseline"]["benchmarks"]
    assert set(base) == {"mcq", "rhythm"} and all(b["difference"] == 0 for b in base.values())
    # the columns are eval/compare.py's paired differences: against the baseline and the own blank ECG
    arm = res["arms"]["r8"]["benchmarks"]
    vs_base = compare_runs(
        tmp_path / "baseline/eval", tmp_path / "r8/eval", ["mcq", "rhythm"], n=50
    )
    vs_blank = compare_runs(
        tmp_path / "r8/eval/blank_ecg", tmp_path / "r8/eval", ["mcq", "rhythm"], n=50
    )
    for b in ("mcq", "rhythm"):
        assert arm[b]["difference"] == pytest.approx(vs_base[b][0]["difference"])
        assert arm[b]["ci95"] == pytest.approx(vs_base[b][0]["ci95"])
        assert arm[b]["over_blank"] == pytest.approx(vs_blank[b][0]["difference"])
        assert arm[b]["blank"] == pytest.approx(vs_blank[b][0]["a"]) and not math.isnan(
            arm[b]["blank"]
        )
        assert arm[b]["n"] == 4
    table = (tmp_path / "sweep.md").read_text()
    assert "| r8 | `lora.r=8 lora.alpha=16` |" in table and table.count("\n| baseline |") == 2
    assert "swept 1 arm(s)" in r.stdout
    # a re-run reuses a finished arm; against an existing evaluation of the baseline (the
    # quickstart's) nothing trains, and the baseline's row is that evaluation's, as before
    again = subprocess.run([*cmd, "--baseline-eval", str(tmp_path / "baseline/eval")], capture_output=True,
                           text=True, env=ENV, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("reusing") == 2 and "trained" not in again.stdout
    res2 = json.loads((tmp_path / "sweep.json").read_text())
    assert list(res2["arms"]) == ["baseline", "r8"] and res2["baseline"] == str(
        tmp_path / "baseline/eval"
    )
    assert res2["arms"]["r8"]["benchmarks"] == arm and res2["arms"]["baseline"]["train"] is None
    assert res2["arms"]["baseline"]["benchmarks"] == base
