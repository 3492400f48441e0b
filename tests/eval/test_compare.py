"""eval/compare.py: two runs' answers to the same questions, B - A with a paired bootstrap interval."""

import json

import numpy as np
import pytest

from ecgllm.evaluation.compare import compare_runs, paired_difference
from ecgllm.metrics.scores import bootstrap_ci

OPTS = ["yes", "no"]


def _run(path, right: list[bool], answer="yes"):
    """An ECG-QA run folder whose i-th answer is right when right[i]."""
    path.mkdir(parents=True)
    with open(path / "samples.jsonl", "w") as f:
        for i, ok in enumerate(right):
            wrong = "no" if answer == "yes" else "yes"
            f.write(json.dumps({"benchmark": "ecgqa", "id": f"q{i:03d}", "answer": [answer], "options": OPTS,
                                "question_type": "single-verify", "attribute_type": "scp_code",
                                "prediction": answer if ok else wrong}) + "\n")  # fmt: skip
        f.write(json.dumps({"benchmark": "ecgqa@validation", "id": "v0", "answer": ["yes"]}) + "\n")
        f.write('{"benchmark": "ecgqa", "id": "cut')  # a line cut by a crash: skipped
    return path


def test_paired_interval_is_that_of_the_per_question_differences(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.random(60) < 0.5
    b = a | (rng.random(60) < 0.3)  # B right wherever A is, and on some more
    res = compare_runs(_run(tmp_path / "a", list(a)), _run(tmp_path / "b", list(b)), n=400, seed=3)
    (row,) = res["ecgqa"]
    assert row["n"] == 60 and row["metric"] == "exact_match"
    assert row["a"] == pytest.approx(a.mean()) and row["b"] == pytest.approx(b.mean())
    assert row["difference"] == pytest.approx(b.mean() - a.mean())
    # the same resamples of the questions as bootstrap_ci over the per-question differences
    lo, hi = bootstrap_ci(b.astype(float) - a.astype(float), n=400, seed=3)
    assert row["ci95"] == pytest.approx([lo, hi]) and lo > 0


def test_runs_on_other_data_or_benchmarks_are_refused(tmp_path):
    a = _run(tmp_path / "a", [True, False, True])
    with pytest.raises(ValueError, match="q000 has another gold answer"):
        compare_runs(a, _run(tmp_path / "b", [True, True, True], answer="no"))
    with pytest.raises(ValueError, match="no answers to the benchmark 'report'"):
        compare_runs(a, a, benchmarks=["report"])
    with pytest.raises(FileNotFoundError, match="samples.jsonl does not exist"):
        compare_runs(a, tmp_path / "none")
    from ecgllm.benchmarks import load_benchmark

    with pytest.raises(ValueError, match="not paired"):
        paired_difference(load_benchmark("ecgqa"), [], [{}])


def test_cli_prints_the_table_and_a_summary(tmp_path, capsys):
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("compare_cli", ROOT / "eval" / "compare.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    a = _run(tmp_path / "a", [True] * 10 + [False] * 30)
    b = _run(tmp_path / "b", [True] * 30 + [False] * 10)
    cli.main([str(a), str(b), "--names", "SFT,GRPO", "--out", str(tmp_path / "cmp.json"),
              "--resamples", "200"])  # fmt: skip
    out = capsys.readouterr().out
    assert "GRPO - SFT" in out and "+0.500" in out and "*" in out
    assert "compared 1 benchmarks (1 metrics) of GRPO against SFT: 1 higher, 0 lower" in out
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert saved["results"]["ecgqa"][0]["difference"] == pytest.approx(0.5)
    with pytest.raises(SystemExit):
        cli.main([str(a), str(b), "--names", "SFT"])
