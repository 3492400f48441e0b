"""eval/run.py: streamed, resumable, fingerprinted results on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from ecgllm.model import build_model

    torch.manual_seed(0)
    model, proc = build_model()
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return d


def _run(tiny_dir, instruct, out, *extra):
    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--data", str(instruct), "--out", str(out),
           "--benchmarks", "ecgqa,mcq,measure,report", "--limit", "6", "--batch-size", "4", "--max-new-tokens", "6", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True)


def test_results_resume_and_ablation(tiny_dir, instruct, tmp_path):
    r = _run(tiny_dir, instruct, tmp_path / "a")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("evaluated: ecgqa exact_match")
    res = json.loads((tmp_path / "a/results.json").read_text())
    assert set(res["results"]) == {"ecgqa", "mcq", "measure", "report"}
    assert res["results"]["ecgqa"]["n"] == 6 and len(res["results"]["ecgqa"]["ci95"]) == 2
    assert 0 <= res["results"]["mcq"]["unparsed_rate"] <= 1 and "bleu4" in res["results"]["report"]
    assert res["model"]["fingerprint"] and res["data"]["fingerprint"] and res["versions"]["torch"]
    lines = (tmp_path / "a/samples.jsonl").read_text().splitlines()
    assert len(lines) == 24 and all("prediction" in json.loads(x) for x in lines)
    # a crash after 10 predictions (the 11th line half-written): the rerun completes the rest
    (tmp_path / "b").mkdir()
    (tmp_path / "b/samples.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:20])
    r = _run(tiny_dir, instruct, tmp_path / "b")
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((tmp_path / "b/results.json").read_text())
    assert again["results"] == res["results"]
    r = _run(tiny_dir, instruct, tmp_path / "c", "--blank-ecg")
    assert (
        r.returncode == 0
        and json.loads((tmp_path / "c/results.json").read_text())["config"]["blank_ecg"] is True
    )
    bad = _run(tiny_dir, instruct, tmp_path / "d", "--benchmarks", "ecgqa,arena")
    assert bad.returncode == 2 and "unknown benchmark(s) ['arena']" in bad.stderr
