"""Stage 0 distributed: `accelerate launch --multi_gpu --num_processes 2` of
recipes/pretrain_ecg_encoder.py trains the same encoder as one process, for each objective."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT

# launched processes meet on accelerate's default port: one such test at a time (pytest-xdist)
pytestmark = pytest.mark.xdist_group("distributed")


@pytest.mark.parametrize("objective", ["supervised", "masked", "contrastive"])
def test_two_processes_train_what_one_does(instruct, tmp_path, objective):
    from tests.train.test_recipe import ENV

    script = str(ROOT / "recipes/pretrain_ecg_encoder.py")
    args = ["--data", str(instruct), "--steps", "4", "--batch-size", "8", "--objective", objective,
            "--save-every", "2"]  # fmt: skip
    one = subprocess.run([sys.executable, script, *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=ENV, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", "29541"]  # fmt: skip
    two = subprocess.run([*launch, script, *args, "--out", str(tmp_path / "two")], capture_output=True,
                         text=True, env={**ENV, "ACCELERATE_USE_CPU": "1"}, timeout=600)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stdout and "on 1 process(es)" in one.stdout
    assert two.stdout.count("ECG encoder trained") == 1  # the main process reports
    a, b = (load_file(str(tmp_path / d / "ecg_encoder.safetensors")) for d in ("one", "two"))
    assert a.keys() == b.keys()
    # only the order of float reductions differs; Adam turns a rounding-sized gradient into a
    # step of up to lr (1e-3) on a weight whose gradient is near zero (seen: 6.5e-5 on one of
    # 4096 contrastive weights on one machine), so 1e-4 is the bound: a real divergence (another
    # batch, a missed all-reduce) moves most weights by ~1e-3
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)
    s1, s2 = (
        json.loads((tmp_path / d / "pretrain_summary.json").read_text()) for d in ("one", "two")
    )
    assert s2["processes"] == 2 and s1["settings"] == {
        **s2["settings"],
        "data": s1["settings"]["data"],
    }
    assert s1["loss_last"] == pytest.approx(s2["loss_last"], rel=1e-4)


def test_batch_must_divide_among_processes(instruct, tmp_path):
    from tests.train.test_recipe import ENV

    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", "29543"]  # fmt: skip
    r = subprocess.run([*launch, str(ROOT / "recipes/pretrain_ecg_encoder.py"), "--data", str(instruct),
                        "--out", str(tmp_path / "x"), "--steps", "2", "--batch-size", "7"], capture_output=True,
                       text=True, env={**ENV, "ACCELERATE_USE_CPU": "1"}, timeout=600)  # fmt: skip
    assert (
        r.returncode != 0
        and "batch_size 7 must divide among the 2 processes" in r.stderr + r.stdout
    )
