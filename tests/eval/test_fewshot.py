"""Few-shot ECG-QA: episodes (meta split, support/query splits, same queries for every K, lead
subsets), in-context answering and its command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ecgllm.evaluation.fewshot import (
    FewShotSettings,
    answer_of,
    build_episodes,
    class_key,
    episode_rows,
    is_meta_test,
    paired_difference,
    run_fewshot,
)

S = dict(n_way=2, k_shot=2, min_support=2, queries=1, episodes=3, meta_test_share=1.0)


@pytest.fixture(scope="module")
def splits(instruct):
    from ecgllm.data.dataset import EcgInstructionDataset

    tr, te = EcgInstructionDataset(instruct, "train"), EcgInstructionDataset(instruct, "test")
    return tr, te, tr.samples.to_list(), te.samples.to_list()


def test_episodes(splits):
    tr_ds, te_ds, train, test = splits
    s = FewShotSettings(**S)
    eps = build_episodes(train, test, s, "single-verify")
    assert len(eps) == 3 and eps == build_episodes(train, test, s, "single-verify")  # seeded
    zero = build_episodes(train, test, FewShotSettings(**{**S, "k_shot": 0}), "single-verify")
    for ep, z in zip(eps, zero, strict=True):
        assert (
            ep.classes == z.classes and ep.queries == z.queries and z.support == []
        )  # same queries
        assert len(set(ep.classes)) == 2 and len(ep.support) == 4 and len(ep.queries) == 2
        assert sorted(class_key(train[i]) for i in ep.support) == sorted(
            ep.classes * 2
        )  # K per class
        assert {class_key(test[i]) for i in ep.queries} == set(ep.classes)
        assert not {train[i]["patient_id"] for i in ep.support} & {
            test[i]["patient_id"] for i in ep.queries
        }
        for c, i in zip(ep.candidates, ep.queries, strict=True):  # the question's own options
            assert {"no", "yes"} <= set(c) and c == sorted(set(test[i]["options"]))
    # verify episodes are paired: each question asked with both answers, so the support cannot
    # give a query's answer away (unpaired, the support answers the query's own question only
    # with the query's answer: copying it scores 1.0)
    from ecgllm.data.tasks.common import question_text

    def support_answers(ep, i):
        return {
            answer_of(train[j])
            for j in ep.support
            if question_text(train[j]) == question_text(test[i])
        }

    for ep in eps:
        assert len({k.split("|")[1] for k in ep.classes}) == 1
        assert all(support_answers(ep, i) == {"no", "yes"} for i in ep.queries)
    unpaired = build_episodes(
        train, test, FewShotSettings(**{**S, "paired_verify": False}), "single-verify"
    )
    assert len(unpaired) == 3  # (this small build has one such question: unpaired draws it too)
    three = build_episodes(train, test, FewShotSettings(**{**S, "n_way": 3}), "single-verify")
    assert [e.classes for e in three] == [e.classes for e in eps]  # odd n_way: n_way - 1 classes
    # the meta split: a class is on one side only, about the asked share on each
    keys = {class_key(x) for x in train if x["task"] == "ecgqa"}
    held = [k for k in keys if is_meta_test(k, 0.5, 0)]
    assert 0 < len(held) < len(keys)
    half = build_episodes(
        train, test, FewShotSettings(**{**S, "meta_test_share": 0.5}), "single-verify"
    )
    # (paired verify classes are split by their question: its yes and no stay on one side)
    assert all(is_meta_test(k.rsplit("|", 1)[0], 0.5, 0) for ep in half for k in ep.classes)
    from ecgllm.evaluation.fewshot import _pools

    for qt in ("single-verify", "single-choose", "single-query"):
        st = FewShotSettings(**{**S, "meta_test_share": 0.5})
        sides = [_pools(train, qt, st, held) for held in (True, False)]
        assert all(sides) and not set(sides[0]) & set(sides[1])
        if qt == "single-verify":  # a question on one side only
            qs = [{k.rsplit("|", 1)[0] for k in side} for side in sides]
            assert not qs[0] & qs[1]
    # answers balanced within an episode: a yes class and a no class, when both exist
    both = build_episodes(train, test, FewShotSettings(**{**S, "episodes": 6}), "single-verify")
    assert len(both) == 6 and all(
        sorted(k.split("|", 2)[2] for k in ep.classes) == ["no", "yes"] for ep in both
    )

    # a pool that cannot give even answers gives no episode (not a "no"-heavy one), and says why:
    # every "yes" verify class made a "no" class of another question (in both splits alike)
    def all_no(xs):
        out = []
        for x in xs:
            if x.get("question_type") == "single-verify" and answer_of(x) == "yes":
                user = {**x["messages"][0], "content": [
                    {**it, "text": it["text"].replace("?", " at rest?")} if it["type"] == "text" else it
                    for it in x["messages"][0]["content"]]}  # fmt: skip
                x = {
                    **x,
                    "messages": [
                        user,
                        {**x["messages"][1], "content": [{"type": "text", "text": "no"}]},
                    ],
                }
            out.append(x)
        return out

    no_tr, no_te = all_no(train), all_no(test)
    why: dict = {}
    assert build_episodes(no_tr, no_te, s, "single-verify", why=why) == [] and why == {"paired": 0}
    unp = FewShotSettings(**{**S, "paired_verify": False})
    why = {}
    assert build_episodes(no_tr, no_te, unp, "single-verify", why=why) == []
    assert why["unbalanced"] == 3 and set(why["answers"]) == {"no"}
    loose = build_episodes(
        no_tr,
        no_te,
        FewShotSettings(**{**S, "balanced": False, "paired_verify": False}),
        "single-verify",
    )
    assert len(loose) == 3 and all(
        [k.split("|", 2)[2] for k in ep.classes] == ["no", "no"] for ep in loose
    )
    # choose questions as built (paired_choose off): the class is the finding chosen, the
    # candidates the query's own options
    unpaired = FewShotSettings(**{**S, "paired_choose": False})
    choose = build_episodes(train, test, unpaired, "single-choose")
    assert choose
    for ep in choose:
        assert all(k.split("|")[1] == "" for k in ep.classes)
        assert all(
            c == sorted(set(test[i]["options"]))
            for c, i in zip(ep.candidates, ep.queries, strict=True)
        )
        assert not ep.query_questions and not ep.support_questions
    # paired (the default): every support sample and query asked over its own answer and another
    # class of the episode that its record lacks, so both options are answers the support shows
    with pytest.raises(ValueError, match="record_statements"):
        build_episodes(train, test, s, "single-choose")
    from ecgllm.data.tasks.ecgqa import CHOOSE
    from ecgllm.evaluation.fewshot import record_statements

    have = record_statements(tr_ds)
    assert "sinus rhythm" in set().union(*have.values()) and "normal ecg" not in set().union(
        *have.values()
    )
    why: dict = {}
    paired = build_episodes(train, test, s, "single-choose", why=why, statements=have)
    assert paired and paired == build_episodes(train, test, s, "single-choose", statements=have)
    assert len(paired) + why.get("paired_choose", 0) + why.get("unbalanced", 0) == s.episodes
    for ep in paired:
        named = {k.split("|", 2)[2] for k in ep.classes}
        assert len(ep.query_questions) == len(ep.queries) and len(ep.support_questions) == len(
            ep.support
        )
        asked = [*((train[i], q, None) for i, q in zip(ep.support, ep.support_questions, strict=True)),
                 *((test[i], q, c) for i, q, c in zip(ep.queries, ep.query_questions, ep.candidates, strict=True))]  # fmt: skip
        for x, q, c in asked:
            a, rec = answer_of(x), have[x["record_ids"][0]]
            (other,) = named - {a}  # (2-way: the other class)
            assert a in rec and other not in rec
            assert q in (CHOOSE.format(a, other), CHOOSE.format(other, a))
            assert c is None or c == sorted([a, other, "none"])
    rows = episode_rows(paired[0], tr_ds, te_ds, leads=12)
    prompt = " ".join(
        it["text"] for it in rows[0]["messages"][0]["content"] if it["type"] == "text"
    )
    assert all(f"{q} Answer: " in prompt for q in paired[0].support_questions)
    assert prompt.endswith(paired[0].query_questions[0]) and rows[0]["gold"] == answer_of(
        test[paired[0].queries[0]]
    )
    # zero-shot on the same queries (K does not decide which episodes are askable)
    zero_c = build_episodes(
        train, test, FewShotSettings(**{**S, "k_shot": 0}), "single-choose", statements=have
    )
    assert [(e.queries, e.query_questions) for e in zero_c] == [
        (e.queries, e.query_questions) for e in paired
    ]
    # query questions: N answers of one question
    for ep in build_episodes(train, test, s, "single-query"):
        assert len({k.split("|")[1] for k in ep.classes}) == 1 and len(ep.candidates[0]) == 2
    # the prompt: K*N support ECGs then the query, every ECG on the lead subset
    rows = episode_rows(eps[0], tr_ds, te_ds, leads=1)
    assert len(rows) == sum(len(c) for c in eps[0].candidates)  # per query, one row per candidate
    r = rows[0]
    n_ecg = sum(1 for it in r["messages"][0]["content"] if it["type"] == "ecg")
    assert n_ecg == 5 == len(r["signal"]) == len(r["record_ids"])
    assert r["lead_mask"].sum(axis=1).tolist() == [1] * 5 and r["lead_mask"][:, 1].all()  # lead II
    assert not r["signal"][:, 0].any()
    with pytest.raises(ValueError, match="leads must be one of"):
        FewShotSettings(leads=4)


def test_paired_difference_by_hand():
    d = paired_difference([0.8, 1.0, 0.6], [0.6, 0.6, 0.6])  # differences 0.2, 0.4, 0.0
    sd = np.std([0.2, 0.4, 0.0], ddof=1)  # 0.2
    half = 4.302652729749462 * sd / np.sqrt(3)  # t(0.975, df 2)
    assert d["difference"] == pytest.approx(0.2) and d["episodes"] == 3
    assert d["ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    assert paired_difference([0.5], [0.5])["difference"] == 0.0  # one episode: no interval
    assert np.isnan(paired_difference([0.5], [0.5])["ci95"][0])
    assert paired_difference([0.5, 0.5], [0.5]) is None and paired_difference([], []) is None


def test_in_context_answers_and_command_line(instruct, tiny_dir, tmp_path):
    from ecgllm.evaluation import load

    model, proc = load(str(tiny_dir), None, None)
    s = FewShotSettings(**{**S, "episodes": 2, "question_types": ("single-verify",)})
    r = run_fewshot(model, proc, instruct, tmp_path / "fs", s, progress=False)
    v = r["results"]["single-verify"]
    assert 0 <= v["accuracy"] <= 1 and 1 / 3 <= v["chance"] <= 1 / 2 and v["episodes"] == 2
    assert 1 / 2 <= v["majority"] <= 1  # 2-way: the commoner answer of each episode's queries
    assert json.loads((tmp_path / "fs" / "fewshot.json").read_text())["settings"]["k_shot"] == 2
    from tests.conftest import ROOT
    from tests.train.test_recipe import ENV  # the subprocess environment the recipe tests use

    cmd = [sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--data", str(instruct),
           "--out", str(tmp_path / "cli"), "--fewshot", "2,1", "--fewshot-episodes", "1", "--fewshot-leads", "12,1",
           "--ablation"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    table = json.loads((tmp_path / "cli" / "fewshot.json").read_text())
    assert [(x["leads"], x["run"]) for x in table["runs"]] == [
        (12, "kshot"), (12, "zeroshot"), (12, "blank"), (1, "kshot"), (1, "zeroshot"), (1, "blank")]  # fmt: skip
    assert [(x["leads"], x["minus"]) for x in table["differences"]] == [
        (12, "zeroshot"), (12, "blank"), (1, "zeroshot"), (1, "blank")]  # fmt: skip
    for x, d in zip(table["runs"][::3], table["differences"][::2], strict=True):  # K-shot - 0-shot
        ep = x["results"]["single-verify"].get("per_episode")
        assert ep is None or len(ep) == d["results"]["single-verify"]["episodes"]
    assert "- 0-shot" in p.stdout and "- blank" in p.stdout
    assert "1-shot blank" in p.stdout and p.stdout.strip().splitlines()[-1].startswith(
        "done: 2-way 1-shot"
    )
    bad = subprocess.run(cmd[:-7] + ["--fewshot", "2"], capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "error: --fewshot 2" in bad.stderr
    assert np.isfinite(
        [x["results"]["single-verify"].get("accuracy", 0) for x in table["runs"]]
    ).all()


def test_meta_training_and_adapted_evaluation(instruct, tiny_dir, tmp_path, splits):
    """First-order MAML of the fusion module on meta-train classes; evaluation adapts on each
    support set and restores the weights afterwards."""
    import torch

    from ecgllm.evaluation import load
    from ecgllm.evaluation.fewshot import fusion_parameters, load_fusion
    from tests.conftest import ROOT
    from tests.train.test_recipe import ENV  # the subprocess environment the recipe tests use

    _, _, train, _ = splits
    s = FewShotSettings(**{**S, "meta_test_share": 0.5})
    for ep in build_episodes(train, train, s, "single-verify", meta_train=True):
        assert not set(ep.support) & set(ep.queries)
        assert not any(is_meta_test(k.rsplit("|", 1)[0], 0.5, 0) for k in ep.classes)  # by question
    out = tmp_path / "meta"
    cmd = [sys.executable, str(ROOT / "recipes/meta_train.py"), "--model", str(tiny_dir), "--data", str(instruct),
           "--out", str(out), "--n-way", "2", "--k-shot", "2", "--queries", "1", "--meta-steps", "3",
           "--inner-lr", "0.01", "--outer-lr", "0.01"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((out / "meta_train.json").read_text())
    assert len(summary["losses"]) == 3 and np.isfinite(summary["losses"]).all()
    model, proc = load(str(tiny_dir), None, None)
    before = [t.detach().clone() for t in fusion_parameters(model)]
    load_fusion(model, out / "ecg_projector.safetensors")
    meta = [t.detach().clone() for t in fusion_parameters(model)]
    assert any(not torch.equal(a, b) for a, b in zip(before, meta, strict=True))  # it learned
    # (the mechanics: the 60-record fixture has too few held-out classes at share 0.5)
    st = FewShotSettings(**{**S, "episodes": 1, "adapt_steps": 1,
                            "question_types": ("single-verify",)})  # fmt: skip
    r = run_fewshot(model, proc, instruct, tmp_path / "adapted", st, progress=False)
    assert 0 <= r["results"]["single-verify"]["accuracy"] <= 1
    assert all(
        torch.equal(a, b) for a, b in zip(meta, fusion_parameters(model), strict=True)
    )  # restored
    with pytest.raises(ValueError, match="not this model's parameters"):
        bad = tmp_path / "bad.safetensors"
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(bad))
        load_fusion(model, bad)


def test_in_context_meta_training(instruct, tiny_dir, tmp_path, splits):
    """MetaICL: the rows trained on are the rows in-context evaluation asks (support set in the
    prompt, query ECG last) with the query's gold answer; fusion-only leaves the LLM as it was,
    fusion+lora trains the adapter too, and the saved weights load into a model of the same kind."""
    import torch

    from ecgllm.evaluation import load
    from ecgllm.evaluation.fewshot import load_fusion
    from ecgllm.model.lora import prepare_for_training
    from ecgllm.train.meta import MetaSettings, incontext_rows, meta_train, tuned_parameters

    for bad, match in [({"algorithm": "reptile"}, "algorithm must be one of"),
                       ({"tune": "all"}, "tune must be one of"),
                       ({"tune": "fusion+lora"}, "needs algorithm 'incontext' or 'calibrated'")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            MetaSettings(**bad)
    tr, _, train, _ = splits
    s = FewShotSettings(**{**S, "meta_test_share": 0.5})
    ep = build_episodes(train, train, s, "single-verify", meta_train=True)[0]
    rows = incontext_rows(ep, train, tr, 12)
    assert len(rows) == len(ep.queries) and all(r["candidate"] == r["gold"] for r in rows)
    assert [r["gold"] for r in rows] == [answer_of(train[q]) for q in ep.queries]
    asked = {
        r["id"]: r["messages"][0] for r in episode_rows(ep, tr, tr, 12)
    }  # what evaluation scores
    assert asked == {r["id"]: r["messages"][0] for r in rows}  # the same prompts
    assert (
        rows[0]["record_ids"][-len(train[ep.queries[0]]["record_ids"]) :]
        == train[ep.queries[0]]["record_ids"]
    )
    assert len(rows[0]["signal"]) == len(ep.support) + 1  # the support ECGs, then the query's

    model, proc, ms = _meta_trains_fusion_only(tiny_dir, instruct, tmp_path / "f", "incontext", 3)
    fusion = tuned_parameters(model, "fusion")
    with pytest.raises(ValueError, match="needs a model with a LoRA adapter"):
        meta_train(
            model,
            proc,
            instruct,
            tmp_path / "x",
            MetaSettings(**{**ms, "tune": "fusion+lora"}),
            progress=False,
        )

    torch.manual_seed(0)
    peft = prepare_for_training(
        load(str(tiny_dir), None, None)[0], mode="lora", r=4, alpha=8, dropout=0.0
    )
    lora = {n: p.detach().clone() for n, p in peft.named_parameters() if "lora_B" in n}
    r = meta_train(peft, proc, instruct, tmp_path / "fl", MetaSettings(**{**ms, "tune": "fusion+lora"}),
                   progress=False)  # fmt: skip
    assert r["tensors_trained"] > len(fusion)
    assert any(
        not torch.equal(p, lora[n]) for n, p in peft.named_parameters() if n in lora
    )  # LoRA trained
    torch.manual_seed(0)
    fresh = prepare_for_training(
        load(str(tiny_dir), None, None)[0], mode="lora", r=4, alpha=8, dropout=0.0
    )
    load_fusion(fresh, tmp_path / "fl" / "ecg_projector.safetensors")
    trained = dict(peft.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in fresh.named_parameters() if "lora_" in n)


def test_answer_bias_by_hand():
    """The fitted bias maximises the support's mean log-likelihood under softmax(score + bias)
    minus l2/2 |bias|^2: against a hand solution, and what it does to a biased model's answers."""
    from scipy.optimize import brentq

    from ecgllm.evaluation.fewshot import fit_answer_bias

    l2 = 0.01
    # equal scores, 3 "yes" and 2 "no": by symmetry b_yes = -b_no = d/2, and the gradient
    # 0.6 (1 - p) - 0.4 p - l2 d / 2 = 0 with p = sigmoid(d)
    b = fit_answer_bias([(["y", "n"], [0.0, 0.0], g) for g in "yyynn"], l2)
    d = brentq(lambda d: 0.6 - 1 / (1 + np.exp(-d)) - l2 * d / 2, -10, 10)
    assert b["y"] - b["n"] == pytest.approx(d, abs=1e-5) and b["y"] == pytest.approx(
        -b["n"], abs=1e-6
    )
    # one input for all (a blank ECG), answers even: the bias all but cancels the model's lean
    # (0.5 - sigmoid(2 + d) = l2 d / 2: the penalty keeps a trace of it)
    b = fit_answer_bias([(["y", "n"], [-1.0, -3.0], g) for g in "yyynnn"], l2)
    d = brentq(lambda d: 0.5 - 1 / (1 + np.exp(-2 - d)) - l2 * d / 2, -10, 10)
    assert b["y"] - b["n"] == pytest.approx(d, abs=1e-5) and abs(2 + d) < 0.05
    # a model that ranks right but says "no" to everything (yes - no: -1 for "yes" samples, -3
    # for "no" ones): calibrated, it answers each by its ECG; an answer the support never gives
    # ("not sure") is pushed down
    sup = [(["y", "n", "u"], [-2.0, -1.0, -4.0], "y")] * 3 + [
        (["y", "n", "u"], [-3.0, 0.0, -4.0], "n")
    ] * 3
    b = fit_answer_bias(sup, l2)
    for ks, ll, g in sup:
        assert ks[int(np.argmax(np.add(ll, [b[k] for k in ks])))] == g
    assert b["u"] < min(b["y"], b["n"])
    assert fit_answer_bias([], l2) == {}


def test_calibrated_answers(instruct, tiny_dir, tmp_path, capsys):
    """Calibrated on the support set: each query asked alone (its scores those of zero-shot), the
    support's scores fitted; with every ECG blank each paired verify question is answered alike
    (one query "yes", one "no": 0.5 an episode)."""
    from ecgllm.evaluation import load

    model, proc = load(str(tiny_dir), None, None)
    s = FewShotSettings(
        **{**S, "episodes": 2, "calibrate": True, "question_types": ("single-verify",)}
    )
    r = run_fewshot(model, proc, instruct, tmp_path / "cal", s, progress=False)
    assert r["results"]["single-verify"]["episodes"] == 2
    blank = run_fewshot(model, proc, instruct, tmp_path / "calb", s, blank_ecg=True, progress=False)
    assert blank["results"]["single-verify"]["per_episode"] == [0.5, 0.5]
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("run_cli", ROOT / "eval" / "run.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    t = cli.main(["--model", str(tiny_dir), "--data", str(instruct), "--out", str(tmp_path / "cli"),
                  "--fewshot", "2,2", "--fewshot-episodes", "2", "--fewshot-calibrate", "--ablation"])  # fmt: skip
    assert (
        t["runs"][0]["settings"]["calibrate"]
        and "calibrated on the support set" in capsys.readouterr().out
    )
    assert [x["run"] for x in t["runs"]] == ["kshot", "zeroshot", "blank"]
    assert (tmp_path / "cli" / "fewshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the plot
    assert not t["runs"][1]["settings"]["k_shot"] and t["runs"][2]["blank_ecg"]
    bad = subprocess.run([sys.executable, str(ROOT / "eval/run.py"), "--model", str(tiny_dir), "--data",
                          str(instruct), "--out", str(tmp_path / "bad"), "--fewshot", "2,2", "--fewshot-calibrate",
                          "--fewshot-adapt-steps", "1"], capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "choose one" in bad.stderr
    # with the answer-state readout: still constant on blank ECGs; readout needs calibrate
    sr = FewShotSettings(**{**S, "episodes": 2, "calibrate": True, "readout": True,
                            "question_types": ("single-verify",)})  # fmt: skip
    assert run_fewshot(model, proc, instruct, tmp_path / "ro", sr, progress=False)["results"]["single-verify"]["episodes"] == 2  # fmt: skip
    blank = run_fewshot(model, proc, instruct, tmp_path / "rob", sr, blank_ecg=True, progress=False)
    assert blank["results"]["single-verify"]["per_episode"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="needs calibrate"):
        FewShotSettings(readout=True)
    t = cli.main(["--model", str(tiny_dir), "--data", str(instruct), "--out", str(tmp_path / "clir"),
                  "--fewshot", "2,2", "--fewshot-episodes", "1", "--fewshot-readout", "--fewshot-readout-l2", "0.5"])  # fmt: skip
    st = t["runs"][0]["settings"]
    assert st["calibrate"] and st["readout"] and st["readout_l2"] == 0.5
    assert "answer-state readout" in capsys.readouterr().out
    # the candidate readout (with the answer-state one): a blank ECG gives each question's
    # candidates the same states in every sample, so its answers stay constant too
    sc = FewShotSettings(**{**S, "episodes": 2, "calibrate": True, "readout": True,
                            "candidate_readout": True, "question_types": ("single-verify",)})  # fmt: skip
    blank = run_fewshot(model, proc, instruct, tmp_path / "crb", sc, blank_ecg=True, progress=False)
    assert blank["results"]["single-verify"]["per_episode"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="needs calibrate"):
        FewShotSettings(candidate_readout=True)
    with pytest.raises(ValueError, match="candidate_l2 must be > 0"):
        FewShotSettings(calibrate=True, candidate_readout=True, candidate_l2=0)
    t = cli.main(["--model", str(tiny_dir), "--data", str(instruct), "--out", str(tmp_path / "clic"),
                  "--fewshot", "2,2", "--fewshot-episodes", "1", "--fewshot-candidate-readout",
                  "--fewshot-candidate-l2", "0.5"])  # fmt: skip
    st = t["runs"][0]["settings"]
    assert st["calibrate"] and st["candidate_readout"] and not st["readout"]
    assert st["candidate_l2"] == 0.5 and "with candidate readout" in capsys.readouterr().out


def test_answer_readout_by_hand():
    """With answer states, the readout is a conditional logit with per-answer weights: on a yes/no
    support with no model lean it is binary logistic regression, the "yes" - "no" weights and bias
    those of scikit-learn's fit with the matching penalty; identical states give identical shifts."""
    from sklearn.linear_model import LogisticRegression

    from ecgllm.evaluation.fewshot import AnswerReadout, bias_shift, fit_answer_readout

    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -2.0]
    y = np.where(x[:, 0] + 0.2 * x[:, 1] / 5 + rng.normal(scale=0.7, size=24) > 0, "y", "n")
    lam = 0.1
    r = fit_answer_readout([(["y", "n"], [0.0, 0.0], g) for g in y], 1e-9, list(x), lam)
    z = (x - r.mean) / r.scale
    # by symmetry w_y = -w_n, so the penalty is lam/4 |w_y - w_n|^2 on the mean NLL: sklearn's
    # C sum(NLL) + |w|^2/2 with an unpenalised intercept matches at C = 2 / (lam n)
    sk = LogisticRegression(C=2 / (lam * len(y)), tol=1e-10, max_iter=10_000).fit(z, y == "y")
    assert np.allclose(r.weights["y"] - r.weights["n"], sk.coef_[0], atol=1e-4)
    assert r.bias["y"] - r.bias["n"] == pytest.approx(sk.intercept_[0], abs=1e-4)
    for xi in x[:5]:  # the shift of each answer: bias + weights over the standardised state
        d = r.shift("y", xi) - r.shift("n", xi)
        assert d == pytest.approx(
            float(sk.decision_function(((xi - r.mean) / r.scale)[None])[0]), abs=1e-4
        )
    # without states it is fit_answer_bias; an answer never offered shifts by 0
    assert fit_answer_readout([(["y", "n"], [0.0, 0.0], g) for g in "yyn"]).weights == {}
    assert r.shift("not sure", x[0]) == 0.0
    with pytest.raises(ValueError, match="answer state"):
        r.shift("y")
    # identical states (a blank ECG): every sample shifted alike
    same = fit_answer_readout([(["y", "n"], [0.0, 0.0], g) for g in "yyn"], 0.01, [x[0]] * 3, lam)
    rows = [{"id": f"s{i}", "candidate": c, "messages": [{"content": [{"text": "Q?"}]}]}
            for i in range(3) for c in ("yes", "no")]  # fmt: skip
    shifts = bias_shift("single-choose", rows, same, {f"s{i}": x[0] for i in range(3)})
    assert shifts[0::2] == [shifts[0]] * 3 and shifts[1::2] == [shifts[1]] * 3
    assert bias_shift("single-choose", rows[:2], AnswerReadout({"yes": 1.0})) == [1.0, 0.0]


def test_selection_episodes(instruct, tiny_dir, tmp_path, splits, capsys):
    """Selection episodes (for choosing settings): meta-train classes only, support from the
    training split, queries from the validation split (no patient in both); the command line's
    --fewshot-select runs them."""
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.evaluation.fewshot import record_statements

    tr, _, train, _ = splits
    va = EcgInstructionDataset(instruct, "validation")
    val = va.samples.to_list()
    s = FewShotSettings(**{**S, "meta_test_share": 0.5, "selection": True})
    patient = dict(zip(tr.records["record_id"], tr.records["patient_id"], strict=True))
    for t in ("single-verify", "single-choose", "single-query"):
        eps = build_episodes(train, val, s, t, meta_train=True, statements=record_statements(tr))
        assert len(eps) == 3, t
        for ep in eps:
            assert not any(is_meta_test(c, 0.5, 0) for c in _question_sides(ep.classes, t))
            q_cls = {class_key(val[i]) for i in ep.queries}
            s_cls = {class_key(train[i]) for i in ep.support}
            assert q_cls <= set(ep.classes) and s_cls <= set(ep.classes)
            assert not {patient[val[i]["record_ids"][0]] for i in ep.queries} & {
                patient[train[i]["record_ids"][0]] for i in ep.support
            }
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("run_cli", ROOT / "eval" / "run.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    t = cli.main(["--model", str(tiny_dir), "--data", str(instruct), "--out", str(tmp_path / "sel"),
                  "--fewshot", "2,2", "--fewshot-episodes", "2", "--fewshot-readout", "--fewshot-select"])  # fmt: skip
    assert t["runs"][0]["settings"]["selection"]
    # (the small build has enough support per class, min_support 5, for query episodes only)
    assert [r["results"]["single-query"]["episodes"] for r in t["runs"]] == [2, 2]
    assert "selection: meta-train classes, validation queries" in capsys.readouterr().out


def _question_sides(classes: list[str], qtype: str) -> list[str]:
    """What the meta split hashes per class: the question for paired verify classes."""
    return [c.rsplit("|", 1)[0] if qtype.endswith("verify") else c for c in classes]


def test_candidate_readout_by_hand():
    """The candidate readout is a conditional logit with one weight vector over each candidate's
    own state: with two candidates and no model lean it is binary logistic regression on the
    difference of their standardised states, its weights and the bias difference scikit-learn's
    with the matching penalty; a candidate's shift needs its state."""
    from sklearn.linear_model import LogisticRegression

    from ecgllm.evaluation.fewshot import bias_shift, fit_answer_readout

    rng = np.random.default_rng(1)
    n, lam = 30, 0.05
    c = rng.normal(size=(n, 2, 3)) * [1.0, 4.0, 0.2] + [1.0, -3.0, 0.0]
    y = np.where(
        (c[:, 0] - c[:, 1]) @ [1.0, 0.1, 2.0] + rng.normal(scale=0.8, size=n) > 0.3, "A", "B"
    )
    scored = [(["A", "B"], [0.0, 0.0], g) for g in y]
    r = fit_answer_readout(scored, 1e-9, candidate_states=list(c), candidate_l2=lam)
    assert r.weights == {} and r.shared is not None
    # one shared vector v: the penalty is lam/2 |v|^2 on the mean NLL, sklearn's C = 1 / (lam n)
    d = (c[:, 0] - c[:, 1]) / r.candidate_scale
    sk = LogisticRegression(C=1 / (lam * n), tol=1e-10, max_iter=10_000).fit(d, y == "A")
    assert np.allclose(r.shared, sk.coef_[0], atol=1e-4)
    assert r.bias["A"] - r.bias["B"] == pytest.approx(sk.intercept_[0], abs=1e-4)
    for ci in c[:5]:
        got = r.shift("A", None, ci[0]) - r.shift("B", None, ci[1])
        want = float(sk.decision_function(((ci[0] - ci[1]) / r.candidate_scale)[None])[0])
        assert got == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError, match="state of candidate 'A'"):
        r.shift("A")
    with pytest.raises(ValueError, match="a row per candidate"):
        fit_answer_readout(scored, candidate_states=[ci[:1] for ci in c])
    # with both readouts, per row: the answer state by id, the candidate state by position
    both = fit_answer_readout(scored, 0.01, list(c[:, 0]), 1.0, list(c), lam)
    rows = [{"id": "s0", "candidate": k, "messages": [{"content": [{"text": "Q?"}]}]} for k in "AB"]
    got = bias_shift("single-choose", rows, both, {"s0": c[0, 0]}, list(c[0]))
    assert got == pytest.approx([both.shift(k, c[0, 0], c[0, j]) for j, k in enumerate("AB")])


def test_answer_states(tiny_dir, splits):
    """answer_states: the last hidden state at the position that predicts the answer's first token,
    the same as the last position of the prompt run alone."""
    import torch

    from ecgllm.data.collator import EcgCollator
    from ecgllm.evaluation import load
    from ecgllm.evaluation.fewshot import Episode, alone_rows, answer_states, candidate_states

    tr, te, train, test = splits
    model, proc = load(str(tiny_dir), None, None)
    model.eval()
    picked = [i for i, t in enumerate(test) if t["question_type"].startswith("single-")][:3]
    ep = Episode("single-verify", [], [], picked, [sorted(set(test[i]["options"])) for i in picked])
    rows = alone_rows(ep, tr, te, 12)
    col = EcgCollator(proc, max_length=1 << 16)
    got = answer_states(model, col, rows, 2)
    assert len(picked) == len(got) == 3 and {r["id"] for r in rows} == set(got)
    r = rows[0]
    batch = col.candidate_batch([r], {})
    n = int((batch["labels"][0] != -100).int().argmax()) - 1
    with torch.no_grad():
        out = model(**{k: v if k != "input_ids" and k != "attention_mask" else v[:, : n + 1]
                       for k, v in batch.items() if k != "labels"}, output_hidden_states=True)  # fmt: skip
    assert np.allclose(got[r["id"]], out.hidden_states[-1][0, -1].float().numpy(), atol=1e-4)
    # candidate_states: per row, the last layer's mean over the row's answer tokens, as when the
    # row is run alone (here batched with the others, padded)
    cands = candidate_states(model, col, rows, 3)
    assert len(cands) == len(rows)
    for j in (0, len(rows) - 1):
        batch = col.candidate_batch([rows[j]], {})
        span = batch.pop("labels")[0] != -100
        with torch.no_grad():
            h = model(**batch, output_hidden_states=True).hidden_states[-1][0]
        assert np.allclose(cands[j], h[span].mean(0).float().numpy(), atol=1e-4)
    assert not np.allclose(cands[0], cands[1])  # a sample's candidates differ


def test_calibrated_meta_training(instruct, tiny_dir, tmp_path, splits):
    """Calibrated meta-training: each query's candidates scored alone (with gradients, equal to
    evaluation's scores), shifted by the bias the support set fits, its loss the gold answer's
    cross-entropy among them (by hand); the fusion module learns, the LLM stays."""
    import torch

    from ecgllm.data.collator import EcgCollator
    from ecgllm.evaluation import load
    from ecgllm.evaluation.answer import loglik_batch
    from ecgllm.evaluation.fewshot import _scored, fit_answer_bias
    from ecgllm.train.meta import (
        _calibrated_step,
        row_logliks,
        tuned_parameters,
    )

    tr, _, train, _ = splits
    model, proc = load(str(tiny_dir), None, None)
    model.eval()
    ep = build_episodes(train, train, FewShotSettings(**{**S, "meta_test_share": 0.5}), "single-verify", meta_train=True)[0]  # fmt: skip
    col = EcgCollator(proc, max_length=1 << 16)
    import dataclasses

    rows = episode_rows(dataclasses.replace(ep, support=[]), tr, tr, 12)
    ll = row_logliks(model, col, rows, 4)
    assert ll.requires_grad and ll.detach().numpy() == pytest.approx(
        loglik_batch(model, col, rows, 4), abs=1e-4
    )
    from ecgllm.evaluation.fewshot import Episode

    srows = episode_rows(
        Episode("single-verify", ep.classes, [], ep.support, ep.support_candidates), tr, tr, 12
    )
    bias = fit_answer_bias(
        _scored("single-verify", srows, loglik_batch(model, col, srows, 4)), 0.01
    )
    want = []
    for q in ep.queries:
        mine = [
            (r, float(v.detach()))
            for r, v in zip(rows, ll, strict=True)
            if r["id"].startswith(train[q]["id"] + "@")
        ]
        sc = {
            r["candidate"]: v + bias[f"{r['messages'][0]['content'][-1]['text']}|{r['candidate']}"]
            for r, v in mine
        }
        want.append(np.log(np.exp(list(sc.values())).sum()) - sc[answer_of(train[q])])
    params = [p for _, p in tuned_parameters(model, "fusion")]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.SGD(params, lr=0.0)
    got = _calibrated_step(model, col, ep, tr, 12, params, opt, 4)
    assert got == pytest.approx(float(np.mean(want)), abs=1e-4)

    _meta_trains_fusion_only(tiny_dir, instruct, tmp_path / "c", "calibrated", 2)


def _meta_trains_fusion_only(tiny_dir, instruct, out, algorithm: str, steps: int):
    """meta_train with `algorithm` on the tiny model (fusion only): finite losses, the LLM as it
    was, the fusion module changed. Returns the model and its processor."""
    import torch

    from ecgllm.evaluation import load
    from ecgllm.train.meta import MetaSettings, meta_train, tuned_parameters

    ms = dict(n_way=2, k_shot=2, queries=1, meta_steps=steps, outer_lr=1e-2, meta_test_share=0.5,
              question_types=("single-verify",), algorithm=algorithm)  # fmt: skip
    model, proc = load(str(tiny_dir), None, None)
    llm = {n: p.detach().clone() for n, p in model.named_parameters() if "ecg_projector" not in n}
    fusion = [p.detach().clone() for _, p in tuned_parameters(model, "fusion")]
    r = meta_train(model, proc, instruct, out, MetaSettings(**ms), progress=False)
    assert r["settings"]["algorithm"] == algorithm and np.isfinite(r["losses"]).all()
    assert all(
        torch.equal(p, llm[n]) for n, p in model.named_parameters() if n in llm
    )  # LLM frozen
    assert any(
        not torch.equal(a, p)
        for a, (_, p) in zip(fusion, tuned_parameters(model, "fusion"), strict=True)
    )
    return model, proc, ms
