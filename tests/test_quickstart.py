"""The README's main job runs on the embedded default and re-uses its work when re-run."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_quickstart_runs_and_resumes(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "recipes/quickstart.py"),
        "--out",
        str(tmp_path),
        "--n",
        "40",
        "--workers",
        "1",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "[1/3] simulated 40 records" in first.stdout
    assert "[3/3] instruction data built" in first.stdout
    assert "patients in two splits: 0; records skipped: 0" in first.stdout
    assert first.stdout.strip().splitlines()[-1].startswith("done: 40 records")
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "reusing" in second.stdout and "instruction data reused" in second.stdout
