"""eval/run.py: benchmarks from the registry, streamed and resumable results, ablation, sweep,
report.html (looked at in headless Chromium)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT


def _run(tiny_dir, instruct, out, *extra, benchmarks="ecgqa,mcq,measure,report"):
    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--data", str(instruct), "--out", str(out),
           "--benchmarks", benchmarks, "--limit", "6", "--batch-size", "4", "--max-new-tokens", "6", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True)


def test_results_resume_and_ablation(tiny_dir, instruct, tmp_path):
    r = _run(tiny_dir, instruct, tmp_path / "a", "--no-report")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("evaluated: ecgqa exact_match")
    res = json.loads((tmp_path / "a/results.json").read_text())
    assert set(res["results"]) == {"ecgqa", "mcq", "measure", "report"}
    e = res["results"]["ecgqa"]
    assert e["n"] == 6 and len(e["ci95"]) == 2 and e["ci95"][0] <= e["value"] <= e["ci95"][1]
    assert 0 < e["chance"] < 1 and e["chance_basis"] == "a uniformly random option"
    assert 0 <= e["prior"] <= 1  # the question-only prior (the fixture has a train split)
    assert "by_question_type" in e and "by_attribute_type" in e
    assert 0 <= res["results"]["mcq"]["unparsed_rate"] <= 1 and "bleu4" in res["results"]["report"]
    assert "accuracy_loglik" in res["results"]["mcq"] and "confusion" in res["results"]["mcq"]
    assert (
        res["results"]["measure"]["chance_basis"] == "always the training median of each quantity"
    )
    assert res["model"]["fingerprint"] and res["data"]["fingerprint"] and res["versions"]["torch"]
    lines = (tmp_path / "a/samples.jsonl").read_text().splitlines()
    assert len(lines) == 24 and all("prediction" in json.loads(x) for x in lines)
    # a crash after 10 predictions (the 11th line half-written): the rerun completes the rest
    (tmp_path / "b").mkdir()
    (tmp_path / "b/samples.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:20])
    (tmp_path / "b/samples.stamp.json").write_text((tmp_path / "a/samples.stamp.json").read_text())
    r = _run(tiny_dir, instruct, tmp_path / "b", "--no-report")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "answering afresh" not in r.stderr
    again = json.loads((tmp_path / "b/results.json").read_text())
    assert again["results"] == res["results"]
    # answers made by another model (here: other weights) are never reused
    stamp = json.loads((tmp_path / "b/samples.stamp.json").read_text())
    (tmp_path / "b/samples.stamp.json").write_text(json.dumps(stamp | {"model": "0" * 16}))
    r = _run(tiny_dir, instruct, tmp_path / "b", "--no-report")
    assert (
        r.returncode == 0
        and "written by another model, data or settings: answering afresh" in r.stderr
    )
    assert len((tmp_path / "b/samples.jsonl").read_text().splitlines()) == 24
    assert json.loads((tmp_path / "b/results.json").read_text())["results"] == res["results"]
    # answers that lack a method's field (a method added to the benchmark since) are redone
    recs = [json.loads(x) for x in (tmp_path / "b/samples.jsonl").read_text().splitlines()]
    n_mcq = sum(r.pop("loglik", None) is not None for r in recs)
    (tmp_path / "b/samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = _run(tiny_dir, instruct, tmp_path / "b", "--no-report")
    assert r.returncode == 0 and "answering afresh" not in r.stderr and n_mcq > 0
    assert len((tmp_path / "b/samples.jsonl").read_text().splitlines()) == 24 + n_mcq
    assert json.loads((tmp_path / "b/results.json").read_text())["results"] == res["results"]
    r = _run(tiny_dir, instruct, tmp_path / "c", "--blank-ecg", "--no-report")
    assert (
        r.returncode == 0
        and json.loads((tmp_path / "c/results.json").read_text())["config"]["blank_ecg"] is True
    )
    bad = _run(tiny_dir, instruct, tmp_path / "d", benchmarks="ecgqa,arena")
    assert bad.returncode == 2 and "unknown benchmark(s) ['arena']" in bad.stderr
    bad = _run(tiny_dir, instruct, tmp_path / "d", "--sweep", "blur=1")
    assert bad.returncode == 2 and "bad sweep part 'blur=1'" in bad.stderr


def test_all_benchmarks_ablation_sweep_report(tiny_dir, instruct, tmp_path):
    from ecgllm.benchmarks import available

    out = tmp_path / "e"
    r = _run(tiny_dir, instruct, out, "--limit", "4", "--ablation", "--sweep", "noise=0.2;leads=1",
             benchmarks=",".join(available()))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())["results"]
    assert set(res) == set(available())
    d = res["detect"]
    assert (
        d["auc_basis"].startswith("p(label next")
        and "exact_match_generate" in d
        and d["chance"] == 0.5
    )
    assert all(0 <= v["f1"] <= 1 for v in d["per_label"].values())
    assert (
        d["list_scored"]["auc_basis"].startswith("p(label next") and len(d["macro_auc_ci95"]) == 2
    )
    assert d["main_metric"] == "macro_auc_list" and d["value"] == d["list_scored"]["macro_auc"]
    g = res["ground"]
    assert {"finding_f1", "measurement_precision", "lead_f1"} <= set(g)
    for line in (out / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["benchmark"] == "detect":
            labels = [o for o in rec["options"] if o != "none"]
            assert set(rec["label_scores"]) == set(labels) == set(rec["label_scores_list"])
            assert all(0 < p < 1 for p in rec["label_scores"].values())
            assert 0 < sum(rec["label_scores_list"].values()) < len(labels)
        if rec["benchmark"] in ("mcq", "rhythm"):
            assert len(rec["loglik"]) == len(rec["options"]) == len(rec["loglik_letter"])
            for j, o in enumerate(rec["options"]):  # normalised = span sum / answer characters
                chars = len(f"{'ABCDEFGHIJ'[j]}. {o}")
                assert abs(rec["loglik_norm"][j] * chars - rec["loglik"][j]) < 1e-4
                assert rec["loglik_letter"][j] >= rec["loglik"][j] - 1e-6  # one token of the sum
    assert {"accuracy_letter", "accuracy_norm"} <= set(res["mcq"])
    blank = json.loads((out / "blank_ecg/results.json").read_text())
    assert blank["config"]["blank_ecg"] and blank["config"]["blank_image"]
    sweep = json.loads((out / "sweep/sweep.json").read_text())
    assert set(sweep["settings"]) == {"none=0", "noise=0.2", "leads=1"}
    assert json.loads((out / "sweep/leads-1/results.json").read_text())["config"][
        "perturbation"
    ] == ["leads", 1.0]
    page = (out / "report.html").read_text()
    for part in ("<h2>Scores</h2>", "Detection per label", "Confusion matrices", "<h2>By group</h2>",
                 "ecgqa: exact_match by question type", "measure: within_tolerance by attribute_type", "Robustness", "<h2>Examples</h2>", "data:image/jpeg;base64", "blank ECG"):  # fmt: skip
        assert part in page, part
    assert "src='/" not in page and "file://" not in page  # self-contained
    from ecgllm.report import find_chromium, screenshot

    if find_chromium() is None:
        if os.environ.get("ECGLLM_REQUIRE_BROWSER"):
            pytest.fail("ECGLLM_REQUIRE_BROWSER is set but no Chromium is installed")
        pytest.skip("no Chromium here (CI installs it: .ci/run)")
    png = screenshot(out / "report.html", tmp_path / "report.png", height=2400)
    from PIL import Image

    im = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert im.shape == (2400, 1200)
    ink = (im < 200).mean()
    assert 0.01 < ink < 0.6, ink  # text, tables and plots drawn: neither blank nor a black page


def test_loglik_is_the_training_loss(tiny_dir, instruct):
    """The likelihood scorer uses exactly the tokens and positions the training loss uses."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import ecgllm.model  # noqa: F401
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation import loglik_batch

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    proc = AutoProcessor.from_pretrained(tiny_dir)
    ds = EcgInstructionDataset(instruct, "test")
    rows = [ds[i] for i in range(3)]
    col = EcgCollator(proc)
    ll = loglik_batch(model, col, rows, batch_size=2)
    for r, v in zip(rows, ll, strict=True):
        b = col([r])
        with torch.no_grad():
            loss = model(**b).loss
        n = int((b["labels"][:, 1:] != -100).sum())
        assert v == pytest.approx(-loss.item() * n, rel=1e-4)


@pytest.mark.parametrize("backbone", ["llama", "gemma3", "gemma3-window"])
def test_candidates_of_one_sample_share_their_prompt_pass(tiny_dir, instruct, backbone):
    """token_logprobs runs a sample's shared prompt once and continues its KV cache with each
    candidate: the same log-probabilities as a plain full pass per candidate (every position's
    logits), for option candidates (the prompt shared up to the answer) and verify questions
    (shared only up to the question; the yes and the no of one question share it whole, and it
    runs once for both), in chunks smaller than the sample's candidates, the LM head given only
    the supervised (row, position) pairs. On Gemma 3 (sliding-window layers) alike, and when the
    padding of the questions' rests could reach its window, each row's rest in its own pass."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import ecgllm.model  # noqa: F401
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation.answer import _with_turns, token_logprobs

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    proc = AutoProcessor.from_pretrained(tiny_dir)
    if backbone != "llama":  # a tiny Gemma 3: its window above the prompts, or within them
        from ecgllm.model import build_model
        from ecgllm.model.factory import TINY_ECG, TINY_GEMMA3, TINY_SIGLIP

        torch.manual_seed(0)
        window = 1024 if backbone == "gemma3" else 48
        model, proc = build_model(
            backbone={**TINY_GEMMA3, "sliding_window": window}, vision=TINY_SIGLIP, ecg=TINY_ECG
        )
        model.eval()
    ds = EcgInstructionDataset(instruct, "test")
    rows = [ds[i] for i in range(len(ds)) if ds[i]["task"] == "detect"][:2]
    col = EcgCollator(proc)
    items = [_with_turns(r, None, o) for r in rows for o in r["options"][:5]]
    verify = [_with_turns(rows[0], f"Does this ECG show symptoms of {o}?", a)
              for o in rows[0]["options"][:3] for a in ("yes", "no")]  # fmt: skip
    items += verify
    fed = []  # the tokens each forward pass was given (the new ones, not its cache)
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: fed.append(
            int(kw["attention_mask"][:, -kw["input_ids"].shape[1] :].sum())
        ),
        with_kwargs=True,
    )
    got = token_logprobs(model, col, items, batch_size=3, with_ids=True)
    for it, (ids, lp) in zip(items, got, strict=True):
        b = col.candidate_batch([it])
        with torch.no_grad():
            full = torch.log_softmax(
                model(**{k: v for k, v in b.items() if k != "labels"}).logits[0].float(), -1
            )
        lab = b["labels"][0]
        at = (lab[1:] != -100).nonzero().squeeze(-1)
        assert ids == lab[at + 1].tolist()
        np.testing.assert_allclose(lp, full[at, lab[at + 1]].tolist(), rtol=1e-4, atol=1e-4)
    # the verify questions: their shared start once, each question's rest once for its yes and
    # its no, then each candidate's own tokens (from the one that predicts its answer)
    b = col.candidate_batch(verify)
    ids, att = b["input_ids"], b["attention_mask"]
    same = int(((ids == ids[:1]) & (att == 1)).all(0).long().cumprod(0).sum())
    starts = [int((lab != -100).nonzero()[0]) - 1 for lab in b["labels"]]
    assert starts[0::2] == starts[1::2] and len(set(starts)) > 1  # (questions of unequal length)
    fed.clear()
    with torch.no_grad():
        token_logprobs(model, col, verify, batch_size=3)
    hook.remove()
    each = same + sum(int(att[i].sum()) - same for i in range(len(verify)))  # a rest per row
    want = (
        same
        + sum(s - same for s in starts[0::2])
        + sum(int(att[i].sum()) - s for i, s in enumerate(starts))
    )
    assert want < each and sum(fed) == (each if backbone == "gemma3-window" else want)


def test_list_scores_are_next_item_probabilities(tiny_dir, instruct):
    """Detection's list score: p(label | the greedy items before it), the separator and the
    label's tokens and not the end of turn, read off a full-vocabulary forward pass; the labels
    that can come first are disjoint continuations, so their probabilities add to at most 1."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import ecgllm.model  # noqa: F401
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation.answer import _with_turns, list_scores

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    proc = AutoProcessor.from_pretrained(tiny_dir)
    ds = EcgInstructionDataset(instruct, "test")
    row = next(ds[i] for i in range(len(ds)) if ds[i]["task"] == "detect" and ds[i]["attribute_type"] == "superdiagnostic")  # fmt: skip
    labels = [o for o in row["options"] if o != "none"]
    col = EcgCollator(proc)
    first, second = labels[0], labels[2]
    got = list_scores(model, col, [row, row], ["none", f"{first} and {second}"], batch_size=3)
    assert set(got[0]) == set(got[1]) == set(labels)
    assert 0 < sum(got[0].values()) <= 1 + 1e-5
    assert got[1][first] == pytest.approx(got[0][first], rel=1e-4)  # nothing before the first
    assert got[1][labels[1]] != pytest.approx(got[0][labels[1]], rel=1e-3)  # after "<first>"

    def by_hand(answer: str, start: str) -> float:
        """log p of the answer's tokens after `start`'s, from all the logits of one forward."""
        b = col.candidate_batch([_with_turns(row, None, answer)])
        with torch.no_grad():
            lp = torch.log_softmax(model(**b).logits[0, :-1].float(), -1)
        sup = (b["labels"][0, 1:] != -100).nonzero().squeeze(-1).tolist()
        ids = b["labels"][0, 1:][sup].tolist()
        tail = len(
            col.candidate_batch([_with_turns(row, None, "")])["labels"][0].ne(-100).nonzero()
        )
        base = col.candidate_batch([_with_turns(row, None, start)])["labels"][0]
        base = base[base != -100].tolist()[: -tail or None]
        k = next(
            (i for i, (a, c) in enumerate(zip(ids, base, strict=False)) if a != c),
            min(len(ids), len(base)),
        )
        return sum(lp[q, ids[j]].item() for j, q in enumerate(sup[: len(sup) - tail]) if j >= k)

    assert got[1][labels[1]] == pytest.approx(
        np.exp(by_hand(f"{first}; {labels[1]}", first)), rel=1e-3
    )
    assert got[0][second] == pytest.approx(np.exp(by_hand(second, "")), rel=1e-3)


def test_registry_and_chance():
    from ecgllm.benchmarks import available, load_benchmark
    from ecgllm.evaluation import chance_level, score_detect

    assert {"ecgqa", "detect", "mcq", "rhythm", "report", "measure", "ground"} <= set(available())
    b = load_benchmark("rhythm")
    rows = [{"task": "mcq", "attribute_type": "rhythm"}, {"task": "mcq", "attribute_type": "finding"},
            {"task": "ecgqa", "attribute_type": "rhythm"}]  # fmt: skip
    assert b.select(rows) == [0] and b.methods == ("generate", "loglik")
    recs = [{"options": ["a", "b", "c"], "answer": ["a"]}, {"options": ["a", "b"], "answer": ["a", "b"]},
            {"options": ["a", "b", "c", "d"], "answer": ["d"]}]  # fmt: skip
    assert chance_level(load_benchmark("ecgqa"), recs, None)[0] == pytest.approx(
        (1 / 3 + 0 + 1 / 4) / 3
    )
    # detect AUC from P(yes) equals scikit-learn's per label
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    opts = ["x", "y", "none"]
    recs = []
    for _ in range(30):
        ans = [lab for lab in ("x", "y") if rng.random() < 0.5] or ["none"]
        recs.append({"options": opts, "answer": ans, "attribute_type": "s", "prediction": ", ".join(ans),
                     "label_scores": {"x": float(rng.random()), "y": float(rng.random())}})  # fmt: skip
    res = score_detect(load_benchmark("detect"), recs)
    want = np.mean([roc_auc_score([lab in r["answer"] for r in recs], [r["label_scores"][lab] for r in recs])
                    for lab in ("x", "y")])  # fmt: skip
    assert res["macro_auc"] == pytest.approx(want) and res["exact_match_generate"] == 1.0
    assert "list_scored" not in res
    for r in recs:  # the list score: the same AUC, on its own scores
        r["label_scores_list"] = {"x": float(rng.random()), "y": float(rng.random())}
    res = score_detect(load_benchmark("detect"), recs)
    want = np.mean([roc_auc_score([lab in r["answer"] for r in recs], [r["label_scores_list"][lab] for r in recs])
                    for lab in ("x", "y")])  # fmt: skip
    assert res["macro_auc_list"] == pytest.approx(want) == res["list_scored"]["macro_auc"]
    assert res["macro_auc"] != pytest.approx(want)


def test_question_prior():
    """ECG-QA's prior: the training split's most frequent answer to the same question text; for a
    text never seen (a choose question naming its own options), the most frequent answer of its
    question and attribute type that its options allow."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.evaluation.scoring import question_prior

    def row(q, a, qt="single-query", at="axis"):
        return {"messages": [{"role": "user", "content": [{"type": "ecg", "text": None}, {"type": "text", "text": q}]}],
                "answer": a, "question_type": qt, "attribute_type": at}  # fmt: skip

    train = [row("What axis?", ["normal"]), row("What axis?", ["normal"]), row("What axis?", ["left"]),
             row("X or Y?", ["x"], "single-choose", "scp"), row("Y or Z?", ["z"], "single-choose", "scp"),
             row("Z or X?", ["z"], "single-choose", "scp")]  # fmt: skip
    b = load_benchmark("ecgqa")
    assert b.prior
    recs = [
        {"question": "What axis?", "options": ["normal", "left"], "answer": ["normal"]},
        {"question": "What axis?", "options": ["normal", "left"], "answer": ["left"]},
        # unseen text: z (2 of the kind's answers) beats x (1); y is never a training answer
        {"question": "X or Z?", "options": ["x", "z", "none"], "answer": ["z"],
         "question_type": "single-choose", "attribute_type": "scp"},
        {"question": "X or Y?", "options": ["x", "y", "none"], "answer": ["y"],
         "question_type": "single-choose", "attribute_type": "scp"},
    ]  # fmt: skip
    assert question_prior(b, recs, train) == pytest.approx(2 / 4)


def test_registry_rejects_bad_files(tmp_path):
    from ecgllm.benchmarks import load_benchmark

    p = tmp_path / "b.yaml"
    p.write_text("name: b\ntask: mcq\nscorer: mcq\nmetric: accuracy\nshots: 5\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['shots'\]"):
        load_benchmark(p)
    p.write_text("name: b\ntask: mcq\nscorer: mcq\nmetric: accuracy\nmethods: [beam]\n")
    with pytest.raises(ValueError, match="methods must be"):
        load_benchmark(p)
    with pytest.raises(ValueError, match="unknown benchmark 'arena'"):
        load_benchmark("arena")
    p.write_text("name: b\ntask: mcq\nscorer: mcq\nmetric: accuracy\nprior: true\n")
    with pytest.raises(ValueError, match="prior is scored for the exact_match scorer only"):
        load_benchmark(p)


def test_official_ecgqa_json_is_read_as_is(tiny_dir, instruct, sim_db, real, tmp_path):
    """--ecgqa-json: official ECG-QA files (here written by our exporter in the official format)
    plus the PTB-XL folder they refer to; converted once, then scored."""
    import shutil

    from ecgllm.data.interop import export_ecgqa

    export_ecgqa(instruct, tmp_path / "ecgqa" / "test" / "00000.json", split="test")
    shutil.copy(real / "ecgqa/ptbxl/answers_for_each_template.csv", tmp_path / "ecgqa")
    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--ecgqa-json",
           str(tmp_path / "ecgqa" / "test" / "00000.json"), "--ptbxl-root", str(sim_db), "--out", str(tmp_path / "o"),
           "--benchmarks", "ecgqa", "--limit", "4", "--max-new-tokens", "4", "--no-report"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "o/results.json").read_text())["results"]["ecgqa"]
    assert res["n"] == 4 and (tmp_path / "o/ecgqa_data/samples").exists()
    r = subprocess.run(cmd[:-1] + ["--data", str(instruct)], capture_output=True, text=True)
    assert r.returncode == 2 and "exactly one of --data, --ecgqa-json and --real" in r.stderr


def test_real_records_benchmark(tiny_dir, real, tmp_path):
    """eval/run.py --real: the shared kind of real records built once into OUT/real_data and scored
    by real_rhythm (balanced accuracy, per-class recall, AF sensitivity/specificity) and
    real_findings, with the blank-ECG ablation."""
    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--real", str(real / "ludb"),
           "--source", "ludb", "--out", str(tmp_path / "r"), "--ablation", "--no-report", "--batch-size", "4",
           "--max-new-tokens", "4"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "real records: 3 of 3" in r.stdout and "real_rhythm balanced_accuracy" in r.stdout
    res = json.loads((tmp_path / "r/results.json").read_text())["results"]
    rr = res["real_rhythm"]
    assert rr["n"] == 3 and set(rr["recall"]) == {
        "sinus bradycardia",
        "atrial fibrillation",
        "sinus rhythm",
    }
    assert rr["n_positive"] == 1 and rr["n_negative"] == 2 and 0 <= rr["balanced_accuracy"] <= 1
    assert rr["chance"] == pytest.approx(1 / 6) and rr["main_metric"] == "balanced_accuracy"
    f = res["real_findings"]
    assert (
        f["n"] == 3 and f["auc_basis"].startswith("p(label next") and "macro_auc" in f["yes_scored"]
    )
    blank = json.loads((tmp_path / "r/blank_ecg/results.json").read_text())["results"]
    assert blank["real_rhythm"]["n"] == 3
    # rerun: the built real data and the answers are reused
    r2 = subprocess.run(cmd, capture_output=True, text=True)
    assert r2.returncode == 0 and "real records:" not in r2.stdout
    bad = subprocess.run(
        cmd[:4] + ["--real", str(real / "ludb"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--real and --source go together" in bad.stderr


def test_three_option_scorings():
    """score_mcq: the whole span (headline), the letter alone and the length-normalised span pick
    differently when the options differ in length; the benchmark's metric names the headline."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.evaluation.scoring import score_mcq

    bench = load_benchmark("mcq")
    rec = {"options": ["sinus rhythm", "atrial fibrillation with rapid ventricular response"],
           "answer": ["atrial fibrillation with rapid ventricular response"],
           "loglik": [-3.0, -5.0], "loglik_letter": [-2.0, -0.5],
           "loglik_norm": [-3.0 / 15, -5.0 / 55]}  # fmt: skip
    res = score_mcq(bench, [rec])
    assert (
        res["accuracy_loglik"] == 0.0
        and res["accuracy_letter"] == 1.0
        and res["accuracy_norm"] == 1.0
    )
    assert res["per_sample"] == [False]  # the headline's samples feed its interval


def test_real_rhythm_groups_hold_balanced_accuracy():
    """real_rhythm's by_group figure is the balanced accuracy of the option log-likelihood picks
    (it was the generated answers' plain accuracy under that name)."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.evaluation.scoring import score_rhythm

    bench = load_benchmark("real_rhythm")
    opts = ["sinus rhythm", "atrial fibrillation"]

    def rec(gold, ll, said):  # the generated letter always names the other option
        return {"options": opts, "answer": [gold], "loglik": ll, "loglik_letter": ll,
                "loglik_norm": ll, "prediction": said}  # fmt: skip

    recs = [rec("sinus rhythm", [-1.0, -2.0], "B. atrial fibrillation")] * 3 + [
        rec("atrial fibrillation", [-2.0, -1.0], "A. sinus rhythm")
    ]
    res = score_rhythm(bench, recs)
    assert res["balanced_accuracy"] == 1.0 and res["accuracy_generate"] == 0.0
    assert res["by_group"] == {"all": {"balanced_accuracy": 1.0, "accuracy": 1.0, "n": 4}}
    # by the length-normalised option score too: here it picks the other option for the AF record
    recs[-1] = {**recs[-1], "loglik_norm": [-0.1, -0.2]}
    res = score_rhythm(bench, recs)
    assert res["balanced_accuracy"] == 1.0
    assert (
        res["norm_scored"]["balanced_accuracy"] == 0.5 and res["norm_scored"]["sensitivity"] == 0.0
    )


def test_detection_calibrated_on_the_validation_split(tiny_dir, instruct, tmp_path):
    """--calibrate: per-label Platt scaling fitted on validation answers (kept for re-runs),
    applied to the test scores; the headline (macro AUC of the raw scores) is unchanged."""
    from ecgllm.evaluation import load
    from ecgllm.evaluation.runner import run_benchmarks
    from ecgllm.metrics.calibration import apply_platt, brier, fit_platt

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.6 + 0.3 * y + rng.normal(0, 0.15, 200), 0.01, 0.99)  # says "yes" to everything
    p = fit_platt(s, y)
    c = apply_platt(s, p)
    assert p["a"] > 0 and np.all(np.diff(c[np.argsort(s)]) >= -1e-12)  # monotone
    assert brier(c, y) < brier(s, y)
    assert fit_platt([0.2, 0.9], [1, 1]) == {"constant": 2.5 / 3, "n": 2}
    model, proc = load(str(tiny_dir), None, None)
    plain = run_benchmarks(
        model, proc, instruct, tmp_path / "a", ["detect"], limit=4, progress=False
    )
    r = run_benchmarks(
        model, proc, instruct, tmp_path / "b", ["detect"], limit=4, progress=False, calibrate=True
    )
    d = r["results"]["detect"]
    assert d["value"] == plain["results"]["detect"]["value"]
    assert {"macro_f1", "brier", "brier_raw", "by_group"} <= set(d["calibrated"])
    lines = [json.loads(x) for x in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    assert sum(x["benchmark"] == "detect@validation" for x in lines) == 4
    again = run_benchmarks(
        model, proc, instruct, tmp_path / "b", ["detect"], limit=4, progress=False, calibrate=True
    )
    assert json.dumps(again["results"]["detect"]["calibrated"]) == json.dumps(
        d["calibrated"]
    )  # reused
    assert len((tmp_path / "b" / "samples.jsonl").read_text().splitlines()) == len(lines)


def test_unlimited_benchmarks_score_the_whole_split(tiny_dir, instruct, tmp_path):
    """unlimited: the named benchmarks take every test question whatever limit says."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation import load
    from ecgllm.evaluation.runner import run_benchmarks

    model, proc = load(str(tiny_dir), None, None)
    kw = {"limit": 2, "max_new_tokens": 2, "progress": False}
    r = run_benchmarks(
        model, proc, instruct, tmp_path / "a", ["ecgqa", "measure"], unlimited=("ecgqa",), **kw
    )
    whole = len(load_benchmark("ecgqa").select(EcgInstructionDataset(instruct, "test").samples))
    assert whole > 2 and r["results"]["ecgqa"]["n"] == whole and r["results"]["measure"]["n"] == 2
    assert r["config"]["unlimited"] == ["ecgqa"] and r["config"]["limit"] == 2
    with pytest.raises(ValueError, match=r"unlimited: unknown benchmark\(s\) \['ecqga'\]"):
        run_benchmarks(model, proc, instruct, tmp_path / "b", ["ecgqa"], unlimited=("ecqga",), **kw)


def test_skipped_methods_are_not_answered(tiny_dir, instruct, tmp_path):
    """skip_methods: detection without P(yes) answers and scores the list alone; a headline's own
    method, every method of a benchmark, or an unknown method name is an error before any work."""
    from ecgllm.benchmarks import load_benchmark
    from ecgllm.evaluation import load
    from ecgllm.evaluation.runner import run_benchmarks

    model, proc = load(str(tiny_dir), None, None)
    kw = {"limit": 2, "max_new_tokens": 4, "progress": False}
    r = run_benchmarks(model, proc, instruct, tmp_path / "a", ["detect", "measure"], skip_methods=("yes_prob",), **kw)  # fmt: skip
    d = r["results"]["detect"]
    assert "macro_auc_list" in d and "macro_auc" not in d and "yes_scored" not in d
    assert r["benchmarks"]["detect"]["methods"] == ["generate", "list_prob"]
    assert r["config"]["skip_methods"] == ["yes_prob"] and r["results"]["measure"]["n"] == 2
    recs = [json.loads(x) for x in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert all("label_scores" not in x for x in recs if x["benchmark"] == "detect")
    with pytest.raises(
        ValueError, match="detect: its headline macro_auc_list needs method 'list_prob'"
    ):
        run_benchmarks(model, proc, instruct, tmp_path / "b", ["detect"], skip_methods=("list_prob",), **kw)  # fmt: skip
    with pytest.raises(ValueError, match=r"measure: skipping \['generate'\] leaves none"):
        run_benchmarks(model, proc, instruct, tmp_path / "b", ["measure"], skip_methods=("generate",), **kw)  # fmt: skip
    with pytest.raises(ValueError, match=r"skip_methods: unknown method\(s\) \['yes'\]"):
        run_benchmarks(model, proc, instruct, tmp_path / "b", ["detect"], skip_methods=("yes",), **kw)  # fmt: skip
    assert load_benchmark("mcq").without(("yes_prob",)) == load_benchmark("mcq")
    assert not (tmp_path / "b").exists()


def test_misread_records_listed():
    """report.misreads: the single-answer option questions answered wrong by log-likelihood,
    with the record's measurements, ordered by gold answer, answer, rate; multi-answer ones skipped."""
    from ecgllm.report import _misread_table, misreads

    opts = ["sinus rhythm", "sinus bradycardia", "atrial flutter"]

    def rec(rid, gold, ll, hr, bench="real_rhythm"):
        return {"benchmark": bench, "record_ids": [rid], "options": opts, "answer": [gold], "loglik": ll,
                "features": json.dumps({"hr_bpm": hr, "rr_sd_ms": 12.0, "pr_ms": None})}  # fmt: skip

    recs = [rec("a", "sinus rhythm", [-1, -0.5, -3], 61.0), rec("b", "sinus rhythm", [-0.1, -2, -3], 70.0),
            rec("c", "sinus rhythm", [-2, -3, -0.2], 80.0), rec("d", "sinus rhythm", [-2, -0.3, -3], 59.0),
            {**rec("e", "sinus rhythm", [-2, -0.3, -3], 50.0), "answer": ["sinus rhythm", "atrial flutter"]},
            {"benchmark": "report", "prediction": "x"}]  # fmt: skip
    out = misreads(recs)
    rows = out["real_rhythm"]
    assert [r["records"] for r in rows] == ["c", "d", "a"]  # b is right, e has two answers
    assert (
        rows[1]["pick"] == "sinus bradycardia"
        and rows[1]["hr_bpm"] == 59.0
        and rows[1]["pr_ms"] is None
    )
    page = _misread_table("real_rhythm", rows, limit=2)
    assert "3 misread" in page and "59.0" in page and "1 more not shown" in page
