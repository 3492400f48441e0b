"""The answer form of lettered multiple-choice questions (model.choice_answer): "B. sinus rhythm"
as built, or "sinus rhythm (B)" read from the same rows by a processor of the name_letter form;
training, option scoring and generation all see the model's own form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgllm.data.collator import EcgCollator
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.data.tasks import common
from ecgllm.evaluation.answer import answer_rows
from ecgllm.model import EcgLlmProcessor, build_model
from ecgllm.model import processing_ecgllm as pe


def _lettered_rows(instruct, split="test", n=3):
    ds = EcgInstructionDataset(instruct, split)
    idx = [i for i in range(len(ds)) if ds.samples[i]["task"] in ("rhythm", "mcq")][:n]
    rows = [ds[i] for i in idx]  # (only the rows used are loaded with their signals and pages)
    assert rows, "the fixture holds lettered questions"
    return rows


def _text(msg) -> str:
    return "".join(c["text"] for c in msg["content"] if c["type"] == "text")


def test_the_shipped_processor_file_keeps_the_library_formats():
    # processing_ecgllm.py ships alone with exported checkpoints, so it holds its own copy
    assert pe.CHOICE_FORMATS == common.CHOICE_FORMATS and pe.LETTERS == common.LETTERS


def test_name_letter_rewrites_lettered_rows_only(instruct):
    _, letter = build_model()
    _, name = build_model(choice_answer="name_letter")
    row = _lettered_rows(instruct, n=1)[0]
    ask, ans = common.CHOICE_FORMATS["letter"]
    assert _text(row["messages"][0]).endswith(ask)
    gold = row["answer"][0]
    j = row["options"].index(gold)
    assert _text(row["messages"][1]) == f"{common.LETTERS[j]}. {gold}"
    assert letter.choice_messages(row["messages"], row["options"]) is row["messages"]
    got = name.choice_messages(row["messages"], row["options"])
    q = _text(got[0])
    assert q.endswith("Name the answer, then its letter.") and ask not in q
    assert q[: -len("Name the answer, then its letter.")] == _text(row["messages"][0])[: -len(ask)]
    assert _text(got[1]) == f"{gold} ({common.LETTERS[j]})" == name.choice_text(row["options"], j)
    assert row["messages"][1]["content"][0]["text"].startswith(common.LETTERS[j])  # not mutated
    # a question with options but not lettered (ECG-QA's choose) is left as it is
    ds = EcgInstructionDataset(instruct, "train")
    other = next(
        ds[i]
        for i in range(len(ds))
        if ds.samples[i]["task"] == "ecgqa" and ds.samples[i].get("options")
    )
    assert name.choice_messages(other["messages"], other["options"]) == other["messages"]
    # nor is a row with more options than letters (detection's label lists)
    many = [f"label {k}" for k in range(40)]
    assert name.choice_messages(other["messages"], many) == other["messages"]
    assert name.choice_messages(row["messages"], row["options"] + many)[1] == got[1]


def test_the_form_is_saved_with_the_processor_and_checked(tmp_path):
    _, proc = build_model(choice_answer="name_letter")
    proc.save_pretrained(tmp_path)
    assert EcgLlmProcessor.from_pretrained(tmp_path).choice_answer == "name_letter"
    with pytest.raises(
        ValueError, match="choice_answer must be one of letter, name_letter, not 'name'"
    ):
        build_model(choice_answer="name")
    from ecgllm.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="model.choice_answer must be one of letter, name_letter"):
        load_config(None, ["model.choice_answer=first"])


def test_training_supervises_the_models_form(instruct):
    _, proc = build_model(choice_answer="name_letter")
    rows = _lettered_rows(instruct, "train")
    batch = EcgCollator(proc, max_length=1024)(rows)
    tok = proc.tokenizer
    for r, row in enumerate(rows):
        lab = batch["labels"][r]
        said = tok.decode(lab[lab != -100].tolist(), skip_special_tokens=True).strip()
        j = row["options"].index(row["answer"][0])
        assert said == f"{row['answer'][0]} ({common.LETTERS[j]})"
        assert "Name the answer, then its letter." in tok.decode(batch["input_ids"][r])


def test_option_scores_are_of_the_models_form(instruct):
    torch.manual_seed(0)
    model, proc = build_model(choice_answer="name_letter")
    model.eval()
    from ecgllm.benchmarks import load_benchmark

    rows = _lettered_rows(instruct)
    recs = answer_rows(
        model, proc, EcgCollator(proc, max_length=1024), load_benchmark("mcq"), rows, batch_size=2
    )
    for rec, row in zip(recs, rows, strict=True):
        assert "loglik_letter" not in rec  # the letter follows the words: no score of its own
        assert rec["question"].endswith("Name the answer, then its letter.")  # as it was asked
        assert len(rec["loglik"]) == len(rec["loglik_norm"]) == len(row["options"])
        for j, o in enumerate(row["options"]):
            chars = len(f"{o} ({common.LETTERS[j]})")
            assert abs(rec["loglik_norm"][j] * chars - rec["loglik"][j]) < 1e-4
        assert np.isfinite(rec["loglik"]).all()


def test_every_benchmark_runs_on_a_name_letter_model(instruct, tmp_path):
    """eval/run.py on a model of the name_letter form: every benchmark (lettered and not) runs, and
    the lettered ones are scored by option text with no letter-only score."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ecgllm.benchmarks import available

    torch.manual_seed(0)
    model, proc = build_model(choice_answer="name_letter")
    model.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(root / "eval/run.py"), "--model", str(tmp_path / "m"), "--data", str(instruct),
           "--out", str(tmp_path / "e"), "--benchmarks", ",".join(available()), "--limit", "3",
           "--batch-size", "4", "--max-new-tokens", "6", "--no-report"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "e/results.json").read_text())["results"]
    assert set(res) == set(available())
    assert "accuracy_letter" not in res["mcq"] and "accuracy_norm" in res["mcq"]
    for line in (tmp_path / "e/samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["benchmark"] in ("mcq", "rhythm"):
            assert rec["question"].endswith("Name the answer, then its letter.")


def test_a_thinking_model_is_asked_and_scored_on_its_answer(instruct, monkeypatch):
    """A processor that thinks first (think_tokens, set by GRPO's think option): the question
    asks for the block, generation gets the extra tokens, and the prediction scored is the answer
    after "</think>" (the reasoning kept beside it); a block cut by the cap leaves no answer."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.evaluation import answer
    from ecgllm.model.processing_ecgllm import THINK_INSTRUCTION

    torch.manual_seed(0)
    model, proc = build_model(choice_answer="name_letter")
    proc.think_tokens = 16
    model.eval()
    rows = _lettered_rows(instruct)[:2]
    caps = []

    def fake(model, processor, collator, rows, max_new_tokens):
        caps.append(max_new_tokens)
        return ["<think>fast and irregular</think> atrial fibrillation (A)", "<think>slow, no"]

    monkeypatch.setattr(answer, "generate_batch", fake)
    bench = load_benchmark("mcq")
    recs = answer_rows(model, proc, EcgCollator(proc, max_length=1024), bench, rows, batch_size=2)
    assert caps == [bench.max_new_tokens + 16]
    assert [r["prediction"] for r in recs] == ["atrial fibrillation (A)", ""]
    assert [r["reasoning"] for r in recs] == ["fast and irregular", "slow, no"]
    assert all(r["question"].endswith(THINK_INSTRUCTION) for r in recs)
    with pytest.raises(ValueError, match="think_tokens must be >= 0"):
        EcgLlmProcessor(tokenizer=proc.tokenizer, think_tokens=-1)
