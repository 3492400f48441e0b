"""Retrieval-augmented prompts: the index, exact search, no leakage, the prompt text in training
and evaluation batches, and the settings' checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecgllm.retrieval import ReportIndex, Retriever, embed


@pytest.fixture(scope="module")
def index_dir(instruct, tmp_path_factory):
    import sys
    from pathlib import Path

    from ecgllm.train.encoder_pretrain import pretrain_encoder

    root = tmp_path_factory.mktemp("retrieval")
    pretrain_encoder(instruct, root / "enc", steps=2, batch_size=8, progress=False)
    sys.path.insert(0, str(Path(__file__).parents[1] / "data_builders"))
    try:
        import retrieval_index
    finally:
        sys.path.pop(0)
    r = retrieval_index.main(
        ["--data", str(instruct), "--encoder", str(root / "enc"), "--out", str(root / "idx")]
    )
    assert r["records"] > 0
    return root / "idx"


def _records(instruct):
    from datasets import load_from_disk

    return load_from_disk(str(instruct / "records"))


def test_index_holds_the_training_split_and_search_is_exact(instruct, index_dir, monkeypatch):
    recs = _records(instruct)
    index = ReportIndex.load(index_dir)
    train = [r for r in recs if r["split"] == "train" and r["report"]]
    assert sorted(index.record_ids) == sorted(r["record_id"] for r in train)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-5)
    assert json.loads((index_dir / "index.json").read_text())["meta"]["split"] == "train"
    # self-contained: its encoder travels with it
    assert (
        index.meta["encoder"] == str(index_dir / "encoder")
        and (index_dir / "encoder" / "config.json").exists()
    )
    # a record's own embedding finds itself first when nothing is excluded
    first = index.search(index.embeddings[:3], k=1)
    assert [f[0] for f in first] == [0, 1, 2]
    # numpy and faiss (exact inner product) agree
    q = index.embeddings[::5]
    got = index.search(q, k=4)
    brute = [list(np.argsort(-(index.embeddings @ v), kind="stable")[:4]) for v in q]
    assert got == brute
    import ecgllm.retrieval as retrieval

    monkeypatch.setattr(retrieval, "FAISS_MIN", 0)
    fresh = ReportIndex.load(index_dir)
    fq = fresh.search(q, k=4)
    assert fresh._faiss is not None
    sims = index.embeddings @ q.T
    for a, b, j in zip(fq, got, range(len(q)), strict=True):  # same neighbours up to float ties
        assert np.allclose(sorted(sims[a, j]), sorted(sims[b, j]), atol=1e-5)


def test_no_leakage(instruct, index_dir):
    """Test records read only training reports, and no record reads its own patient's."""
    recs = _records(instruct)
    index = ReportIndex.load(index_dir)
    retriever = Retriever(index, k=3)
    split_of = {r["record_id"]: r["split"] for r in recs}
    for r in recs:
        x = np.asarray(r["signal"], np.float32)
        hits = retriever.neighbours(x, r["lead_mask"], r["patient_id"], r["record_id"])
        assert len(hits) == 3
        for i in hits:
            assert split_of[index.record_ids[i]] == "train"
            assert index.patient_ids[i] != str(r["patient_id"])
            assert index.record_ids[i] != r["record_id"]


def test_prompts_carry_the_neighbours_reports(instruct, index_dir):
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.model import build_model

    proc = build_model(expert_features="rhythm")[1]
    retriever = Retriever(ReportIndex.load(index_dir), k=2)
    ds = EcgInstructionDataset(instruct, "test")
    row = ds[0]
    text = proc.tokenizer.decode(EcgCollator(proc, retriever=retriever)([row])["input_ids"][0])
    want = retriever.reports(row["signal"][0], row["lead_mask"][0], row["patient_id"])
    assert "Reports of similar ECGs: (1) " in text and all(w in text for w in want)
    assert text.index("Measured:") < text.index("Reports of similar ECGs")  # measurements first
    blank = EcgCollator(proc, retriever=retriever, blank_ecg=True)([row])["input_ids"][0]
    assert "Similar ECGs: none found." in proc.tokenizer.decode(blank)
    assert not embed(
        retriever.encoder, [np.zeros((12, 5000), np.float32)], [np.ones(12, bool)]
    ).any()


def test_evaluation_and_recipe_settings(instruct, index_dir, tiny_dir, tmp_path):
    from ecgllm.evaluation import load
    from ecgllm.evaluation.runner import run_benchmarks
    from ecgllm.train.config import ConfigError, load_config

    model, proc = load(str(tiny_dir), None, None)
    r = run_benchmarks(model, proc, instruct, tmp_path / "ev", ["mcq"], limit=2, progress=False,
                       retrieve=2, retrieval_index=str(index_dir))  # fmt: skip
    assert r["config"]["retrieve"] == 2 and r["results"]["mcq"]["n"] == 2
    stamp = json.loads((tmp_path / "ev" / "samples.stamp.json").read_text())
    assert (
        stamp["retrieval"]["k"] == 2
        and stamp["retrieval"]["index"] == ReportIndex.load(index_dir).fingerprint()
    )
    with pytest.raises(ConfigError, match="data.retrieval_index set"):
        load_config(None, ["data.retrieve=2"])
    with pytest.raises(FileNotFoundError, match="retrieval_index.py"):
        ReportIndex.load(tmp_path)
    with pytest.raises(ValueError, match="needs a retrieval index"):
        run_benchmarks(model, proc, instruct, tmp_path / "ev2", ["mcq"], limit=1, retrieve=1)


def test_recipe_trains_with_retrieval_and_expert_features(instruct, index_dir, tmp_path, capsys):
    """sft.py with data.retrieve and model.expert_features: trains, saves the processor's setting;
    the quickstart's index step builds once, then reuses."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.train.test_recipe import BASE, ENV

    out = tmp_path / "sft"
    cmd = [sys.executable, str(ROOT / "recipes/sft.py"), "--config", str(ROOT / "recipes/configs/tiny_cpu.yaml"),
           *BASE, f"data.path={instruct}", f"output.dir={out}", "train.max_steps=2", "data.retrieve=2",
           f"data.retrieval_index={index_dir}", "model.expert_features=all"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert json.loads((out / "train_result.json").read_text())["steps"] == 2
    assert (
        json.loads((out / "final" / "processor_config.json").read_text())["ecg_expert_features"]
        == "all"
    )
    sys.path.insert(0, str(ROOT / "recipes"))
    try:
        import quickstart
    finally:
        sys.path.pop(0)
    enc = index_dir.parent / "enc"
    first = quickstart.retrieval_step(tmp_path, instruct, enc)
    assert ReportIndex.load(first).record_ids == ReportIndex.load(index_dir).record_ids
    quickstart.retrieval_step(tmp_path, instruct, enc)
    assert "reusing the retrieval index" in capsys.readouterr().out
