"""Kill-anywhere: every long job, killed with SIGKILL (no chance to clean up) and run again with
the same command, ends with what an uninterrupted run writes, and leaves nothing half-written.

Where each job is killed: (1) at a crash point (ecgllm/atomic.py: each side of every
write-then-rename, each answered batch) drawn with a seeded generator from those an uninterrupted
run passes, and (2) after a seeded random share of an uninterrupted run's wall time (anywhere:
imports, computing, writing a temporary file). The uninterrupted run is made first in the same
folder and moved aside, so that paths written into the outputs are the same.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
ENV.pop("ECGLLM_CRASH_AT", None)
ENV.pop("ECGLLM_CRASH_LOG", None)
VOLATILE = {"seconds", "resumed", "reused", "git_commit"}  # keys that say when or how, not what


def _run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **(env or {})})


def _ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _same_file(a: Path, b: Path, atol: float) -> None:
    if a.suffix == ".safetensors":
        ta, tb = load_file(str(a)), load_file(str(b))
        assert ta.keys() == tb.keys(), a
        for k in ta:
            torch.testing.assert_close(ta[k], tb[k], atol=atol, rtol=0, msg=f"{a}: {k}")
    elif a.suffix == ".json":
        assert _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text())), a
    elif a.suffix == ".jsonl":  # answers: the same set, whatever order the batches came in
        rows = [{(r["benchmark"], r["id"]): _strip(r) for r in map(json.loads, p.read_text().splitlines())}
                for p in (a, b)]  # fmt: skip
        assert rows[0].keys() == rows[1].keys(), a
        for k in rows[0]:
            _close(rows[0][k], rows[1][k], atol, f"{a}: {k}")
    else:
        assert a.read_bytes() == b.read_bytes(), a


def _close(x, y, atol: float, where: str) -> None:
    if isinstance(x, float) and isinstance(y, float):
        assert abs(x - y) <= atol, where
    elif isinstance(x, dict) and isinstance(y, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _close(x[k], y[k], atol, f"{where}.{k}")
    elif isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _close(u, v, atol, f"{where}[{i}]")
    else:
        assert x == y, where


def _datasets_equal(a: Path, b: Path) -> None:
    from datasets import load_from_disk

    da, db = load_from_disk(str(a)), load_from_disk(str(b))
    parts = da.keys() if hasattr(da, "keys") else [None]
    for p in parts:
        x, y = (da[p], db[p]) if p else (da, db)
        assert x.column_names == y.column_names and len(x) == len(y), (a, p)
        for i in range(len(x)):
            assert x[i] == y[i], (a, p, i)


def _compare(
    out: Path, ref: Path, files: list[str], datasets: tuple[str, ...] = (), atol: float = 0.0
) -> None:
    for name in files:
        for f in sorted(ref.glob(name)):
            rel = f.relative_to(ref)
            assert (out / rel).exists(), f"missing after the resumed run: {rel}"
            _same_file(out / rel, f, atol)
    for d in datasets:
        _datasets_equal(out / d, ref / d)
    left = [str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name]
    assert not left, f"half-written files left behind: {left}"


def _kill_and_resume(name: str, cmd: list[str], out: Path, check, resume: list[str] | None = None,
                     clean: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """The reference run, then one kill at a drawn crash point and one at a drawn time; after each,
    the same command (plus `resume`) is run again and `check(out, ref)` compares."""
    rng = random.Random(f"kill:{name}")
    log = out.parent / f"{name}.points"
    t = time.perf_counter()
    _ok(_run(cmd, {"ECGLLM_CRASH_LOG": str(log)}))
    seconds = time.perf_counter() - t
    points = log.read_text().splitlines()
    assert points, "the job passed no crash point"
    ref = out.with_name(out.name + "-reference")
    shutil.move(out, ref)
    for c in clean:  # inputs the job wrote next to its output (none are shared between runs)
        shutil.rmtree(out.parent / c, ignore_errors=True)
    k = rng.randint(1, len(points))
    killed = _run(cmd, {"ECGLLM_CRASH_AT": str(k)})
    assert killed.returncode == -signal.SIGKILL, (k, points[k - 1], killed.stderr[-2000:])
    again = _run(cmd + (resume or []))
    _ok(again)
    check(out, ref)
    # killed at a random moment (the process group: workers too)
    shutil.rmtree(out)
    delay = rng.uniform(0.2, 0.9) * seconds
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                         start_new_session=True)  # fmt: skip
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    _ok(_run(cmd + (resume or [])))
    check(out, ref)
    print(
        f"{name}: {len(points)} crash points, killed at #{k} ({points[k - 1].split(chr(9))[-1]}) and "
        f"after {delay:.1f} of {seconds:.1f} s; both resumed runs equal the uninterrupted one"
    )
    return {"points": len(points), "killed_at": points[k - 1], "delay": delay}


def test_build(sim_db, tmp_path):
    out = tmp_path / "instruct"
    cmd = [sys.executable, str(ROOT / "data_builders/build.py"), "--source", "synthetic", "--root", str(sim_db),
           "--out", str(out), "--limit", "24", "--chunk-size", "8", "--workers", "1", "--quiet"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(out, ref, ["build_report.json"], datasets=("records", "samples"))
        assert not (out / "_work").exists()

    _kill_and_resume("build", cmd, out, check)


def test_render(sim_db, tmp_path):
    out = tmp_path / "pages"
    cmd = [sys.executable, str(ROOT / "data_builders/render.py"), "--root", str(sim_db), "--out", str(out),
           "--limit", "8", "--dpi", "60", "--quiet"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(out, ref, ["*.png", "*.json", "render.stamp"])
        assert len(list(out.glob("*.png"))) == 8

    _kill_and_resume("render", cmd, out, check)


def test_encoder_pretraining(instruct, tmp_path):
    out = tmp_path / "encoder"
    cmd = [sys.executable, str(ROOT / "recipes/pretrain_ecg_encoder.py"), "--data", str(instruct), "--out", str(out),
           "--steps", "12", "--batch-size", "8", "--save-every", "3"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(out, ref, ["*.safetensors", "pretrain_summary.json", "config.json"])
        assert not (out / "checkpoint").exists()

    _kill_and_resume("pretrain", cmd, out, check)


def test_sft(instruct, tmp_path):
    out = tmp_path / "sft"
    cmd = [sys.executable, str(ROOT / "recipes/sft.py"), "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"),
           f"data.path={instruct}", f"output.dir={out}", "train.max_steps=4", "train.save_steps=2",
           "model.ecg_weights=null", "model.init_from=null", "lora.train_modules=[]", "lora.dropout=0",
           "train.per_device_train_batch_size=4", "data.limit_eval=8"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(
            out, ref, ["final/**/*.safetensors", "final/*.json", "base/*.safetensors"], atol=1e-5
        )
        a, b = (json.loads((d / "train_result.json").read_text()) for d in (out, ref))
        _close(_strip(a), _strip(b), 1e-5, "train_result")

    _kill_and_resume("sft", cmd, out, check, resume=["train.resume_from_checkpoint=latest"])


def test_eval(tiny_dir, instruct, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--data", str(instruct),
           "--out", str(out), "--benchmarks", "mcq,measure", "--limit", "6", "--batch-size", "2",
           "--max-new-tokens", "4"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(out, ref, ["samples.jsonl"], atol=1e-4)
        a, b = (json.loads((d / "results.json").read_text())["results"] for d in (out, ref))
        _close(_strip(a), _strip(b), 1e-4, "results")

    _kill_and_resume("eval", cmd, out, check)


def test_export(tmp_path):
    from tests.export.test_export import _lora_checkpoint

    ckpt = _lora_checkpoint(tmp_path / "run")
    out = tmp_path / "export"
    cmd = [sys.executable, str(ROOT / "recipes/merge_and_push.py"), "--checkpoint", str(ckpt), "--out", str(out),
           "--skip-verify"]  # fmt: skip

    def check(out: Path, ref: Path) -> None:
        _compare(out, ref, ["**/*.safetensors", "**/*.json", "README.md", "**/*.py"])
        assert sorted(p.name for p in out.rglob("*")) == sorted(p.name for p in ref.rglob("*"))

    _kill_and_resume("export", cmd, out, check)
