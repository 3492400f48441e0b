"""GRPO's objective against a hand computation, and the rewards against the benchmark scorers."""

from __future__ import annotations

import math

import pytest
import torch

from ecgllm.train.grpo import RewardWeights, group_advantages, grpo_loss, reward


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    a = group_advantages(r, eps=0.0 + 1e-12)
    sd = math.sqrt(1 / 3)  # unbiased SD of 1, 0, 0, 1
    assert torch.allclose(a[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / sd, atol=1e-5)
    assert torch.equal(group_advantages(r)[1], torch.zeros(4))  # no spread: no signal
    assert torch.allclose(group_advantages(r, scale=False)[0], torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    old = torch.tensor([[-1.2, -1.5, 0.0], [-0.5, -0.9, -0.5]])
    ref = torch.tensor([[-1.0, -1.0, 0.0], [-0.4, -0.5, -0.5]])
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, stats = grpo_loss(logp, old, ref, adv, mask, eps_low=0.2, beta=0.1)
    # by hand, token by token
    want_rows = []
    for i in range(2):
        toks = []
        for t in range(3):
            if not mask[i, t]:
                continue
            rho = math.exp(float(logp[i, t] - old[i, t]))
            a = float(adv[i])
            surr = min(rho * a, min(max(rho, 0.8), 1.2) * a)
            d = float(ref[i, t] - logp[i, t])
            kl = math.exp(d) - d - 1
            toks.append(-surr + 0.1 * kl)
        want_rows.append(sum(toks) / len(toks))
    assert float(loss) == pytest.approx(sum(want_rows) / 2, abs=1e-6)
    loss.backward()
    assert logp.grad is not None and logp.grad[0, 2] == 0  # masked token: no gradient
    # per-token aggregation (DAPO) and clip-higher: the same tokens pooled
    tok, _ = grpo_loss(logp.detach(), old, None, adv, mask, eps_low=0.2, eps_high=0.28, beta=0.0,
                       aggregation="per_token")  # fmt: skip
    vals = []
    for i in range(2):
        for t in range(3):
            if mask[i, t]:
                rho = math.exp(float(logp[i, t] - old[i, t]))
                a = float(adv[i])
                vals.append(-min(rho * a, min(max(rho, 0.8), 1.28) * a))
    assert float(tok) == pytest.approx(sum(vals) / len(vals), abs=1e-6)
    assert 0 <= stats["clip_fraction"] <= 1 and stats["kl"] >= 0
    with pytest.raises(ValueError, match="per_sequence or per_token"):
        grpo_loss(logp, old, None, adv, mask, aggregation="mean")


def test_rewards_agree_with_the_scorers():
    from ecgllm.metrics.scores import mcq_accuracy, measurement_errors

    opts = ["atrial fibrillation", "sinus rhythm", "atrial flutter"]
    row = {"task": "rhythm", "options": opts, "answer": ["sinus rhythm"]}
    for text in ("B. sinus rhythm", "A", "no idea", "B"):
        right = mcq_accuracy([text], ["sinus rhythm"], [opts])["accuracy"] == 1.0
        parsed = mcq_accuracy([text], ["sinus rhythm"], [opts])["unparsed_rate"] == 0.0
        assert reward(text, row) == pytest.approx(
            (0.1 if parsed else 0.0) + (1.0 if right else 0.0)
        )
    m = {"task": "measure", "value": 72.0, "tolerance": 5.0}
    assert reward("74 bpm", m) == pytest.approx(1.1)
    assert measurement_errors(["74 bpm"], [72.0], [5.0])["within_tolerance"] == 1.0
    assert reward("82 bpm", m) == pytest.approx(0.1 + (1 - 10 / 15))  # partial credit
    assert reward("100 bpm", m) == pytest.approx(0.1) and reward("fast", m) == 0.0
    rep = {
        "task": "report",
        "messages": [{}, {"content": [{"text": "sinus rhythm. left ventricular hypertrophy."}]}],
    }
    assert reward("sinus rhythm. left ventricular hypertrophy.", rep) == pytest.approx(1.1)
    assert reward("sinus rhythm.", rep) == pytest.approx(0.1 + 2 / 3)
    assert reward("sinus rhythm.", rep, RewardWeights(correct=2.0, format=0.0)) == pytest.approx(
        4 / 3
    )
    with pytest.raises(ValueError, match="without options"):
        reward("x", {"task": "ecgqa"})
    # ECG-QA: the benchmark's exact match of option sets (an answer of several items counts)
    from ecgllm.metrics.scores import qa_exact_match

    opts = ["p duration", "qt interval", "rr interval", "none"]
    qa = {"task": "ecgqa", "options": opts, "answer": ["qt interval", "rr interval"]}
    for text in (
        "qt interval; rr interval",
        "rr interval, qt interval",
        "rr interval",
        "none",
        "?",
    ):
        em = qa_exact_match([text], [qa["answer"]], [opts])
        want = (0.0 if em["unparsed_rate"] else 0.1) + em["exact_match"]
        assert reward(text, qa) == pytest.approx(want)
    assert reward("qt interval; rr interval", qa) == pytest.approx(1.1)


def test_ground_reward_is_the_ground_scorer():
    """A grounded answer earns its finding F1 (the benchmark's headline), the format reward when it
    states a finding, and `evidence` x the mean of its cited-measurement F1 and lead F1."""
    import json

    from ecgllm.metrics.grounding import ground_scores

    ev = {"findings": [{"finding": "STACH", "leads": [], "measurements": {"hr_bpm": 118.0}},
                       {"finding": "CRBBB", "leads": ["V1", "V2"], "measurements": {"qrs_ms": 138.0}}]}  # fmt: skip
    truth = {"hr_bpm": 118.0, "qrs_ms": 138.0, "pr_ms": 150.0}
    row = {"task": "ground", "answer": ["STACH", "CRBBB"], "evidence": json.dumps(ev),
           "features": json.dumps(truth)}  # fmt: skip
    only_f1 = RewardWeights(format=0.0, evidence=0.0)
    for text in ("Sinus tachycardia: rate 120 bpm. Complete right bundle branch block: QRS 140 ms in V1-V2.",
                 "Sinus tachycardia: rate 120 bpm.", "Normal ECG.", "nothing to say"):  # fmt: skip
        f1 = ground_scores([text], [row["answer"]], [ev], [truth])["finding_f1"]
        assert reward(text, row, only_f1) == pytest.approx(f1)
    # both findings, both values within tolerance, leads exact: 0.1 + 1 + 0.25
    full = (
        "Sinus tachycardia: rate 120 bpm. Complete right bundle branch block: QRS 140 ms in V1-V2."
    )
    assert reward(full, row) == pytest.approx(1.35)
    # one finding (F1 2/3), rate right (P 1, recall 1/2: F1 2/3), no leads named (lead F1 0)
    assert reward("Sinus tachycardia: rate 120 bpm.", row) == pytest.approx(
        0.1 + 2 / 3 + 0.25 * (2 / 3 + 0) / 2
    )
    # a wrong rate: cited precision 0
    assert reward("Sinus tachycardia: rate 90 bpm.", row) == pytest.approx(0.1 + 2 / 3)
    assert reward("", row) == 0.0
    # sampled to the ground benchmark's length (a shorter cap would reward cut answers)
    from ecgllm.train.grpo import task_token_caps

    assert task_token_caps(("ground", "mcq", "measure")) == {"ground": 96, "mcq": 24, "measure": 16}


def test_placeholder_tokens_are_never_sampled(instruct, tmp_path):
    """A model that would sample its ECG/image placeholder token at every position (a hook on the
    LM head pushes them up): the model's generate() suppresses them by default, as do GRPO's
    sampling and eval's greedy answers, so a step runs (a sampled <ecg> would give the scoring pass
    more placeholders than ECGs)."""
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training
    from ecgllm.model.modeling_ecgllm import placeholder_token_ids
    from ecgllm.train.grpo import GrpoSettings, grpo_train

    torch.manual_seed(0)
    model, proc = build_model()
    holders = placeholder_token_ids(model)
    assert model.config.ecg_token_id in holders

    def push(module, args, out):
        out = out.clone()
        out[..., holders] += 1e4
        return out

    model.get_output_embeddings().register_forward_hook(push)
    batch = EcgCollator(proc).prompt_batch([EcgInstructionDataset(instruct, "train")[0]])
    with torch.no_grad():
        with pytest.raises(ValueError, match="placeholder"):  # the hook works: <ecg> is generated
            model.generate(**batch, max_new_tokens=3, do_sample=False, suppress_tokens=None)
        kept = model.generate(**batch, max_new_tokens=3, do_sample=False)  # suppressed by default
    assert not set(kept[0, batch["input_ids"].shape[1] :].tolist()) & set(holders)
    from ecgllm.evaluation.answer import generate_batch  # eval's greedy answers suppress them too

    row = EcgInstructionDataset(instruct, "train")[0]
    assert len(generate_batch(model, proc, EcgCollator(proc), [row], 3)) == 1
    policy = prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0)
    s = GrpoSettings(tasks=("mcq",), steps=1, prompts_per_step=2, group_size=2, max_new_tokens=4)
    assert grpo_train(policy, proc, instruct, tmp_path, s, progress=False)["steps"] == 1


def test_grpo_trains_the_adapter(instruct, tmp_path):
    """Two GRPO steps on the tiny model: completions sampled in groups, rewarded by the scorers,
    the adapter (and only it) moves; log and adapter written."""
    import csv

    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training
    from ecgllm.train.grpo import GrpoSettings, completion_logprobs, grpo_train

    torch.manual_seed(0)
    model, proc = build_model()
    model.save_pretrained(tmp_path / "base")
    policy = prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0)
    lora = {n: p.detach().clone() for n, p in policy.named_parameters() if "lora_B" in n}
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if "embed_tokens" in n}
    s = GrpoSettings(tasks=("mcq",), steps=2, prompts_per_step=2, group_size=2, max_new_tokens=6,
                     learning_rate=1e-2, beta=0.1)  # fmt: skip
    r = grpo_train(policy, proc, instruct, tmp_path, s, progress=False)
    assert r["steps"] == 2 and (tmp_path / "final/adapter/adapter_config.json").exists()
    log = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(log) == 2 and all(
        0 <= float(x["reward"]) <= 1.1 and float(x["kl"]) >= 0 for x in log
    )
    moved = [n for n, p in policy.named_parameters() if n in lora and not torch.equal(p, lora[n])]
    assert moved  # B starts at zero: any step with a nonzero advantage moves it
    assert all(torch.equal(p, frozen[n]) for n, p in policy.named_parameters() if n in frozen)
    # the log-probabilities follow generation's positions: a left-padded prompt gives the same
    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset

    ds = EcgInstructionDataset(instruct, "train")
    row = ds[0]
    col = EcgCollator(proc)
    policy.eval()
    one = col.prompt_batch([row])
    seq = torch.cat([one["input_ids"], torch.tensor([[5, 6, 7]])], dim=1)
    m = torch.ones(1, 3, dtype=torch.long)
    alone = completion_logprobs(policy, one, seq, one["input_ids"].shape[1], m)
    n0 = one["input_ids"].shape[1]
    other = next(
        ds[j] for j in range(1, len(ds)) if col.prompt_batch([ds[j]])["input_ids"].shape[1] > n0
    )
    two = col.prompt_batch([row, other])  # row 0 now left-padded
    seq2 = torch.cat([two["input_ids"], torch.tensor([[5, 6, 7], [5, 6, 7]])], dim=1)
    both = completion_logprobs(
        policy, two, seq2, two["input_ids"].shape[1], torch.ones(2, 3, dtype=torch.long)
    )
    assert two["input_ids"].shape[1] > n0 and torch.allclose(both[0], alone[0], atol=1e-4)

    # the recipe: the adapter just written trains on from the base
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.train.test_recipe import ENV  # the subprocess environment the recipe tests use

    cmd = [sys.executable, str(ROOT / "recipes/grpo.py"), "--model", str(tmp_path / "base"), "--adapter",
           str(tmp_path / "final/adapter"), "--data", str(instruct), "--out", str(tmp_path / "again"), "--steps", "1",
           "--prompts-per-step", "1", "--group-size", "2", "--max-new-tokens", "4", "--tasks", "measure"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1].startswith("done: 1 GRPO steps")
    # a fresh adapter on the merged SFT model: the policy starts as its reference (KL 0)
    first = next(csv.DictReader(open(tmp_path / "again/log.csv")))
    assert abs(float(first["kl"])) < 1e-4 and (tmp_path / "again/base/config.json").exists()


def _policy(tmp_path=None):
    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training

    torch.manual_seed(0)
    model, proc = build_model()
    if tmp_path is not None:
        model.save_pretrained(tmp_path / "base")
        proc.save_pretrained(tmp_path / "base")
    return prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0), proc


def _adapter(path):
    from safetensors.torch import load_file

    return load_file(str(path / "final/adapter/adapter_model.safetensors"))


def test_grpo_resumes_to_the_same_adapter(instruct, tmp_path):
    """Stopped after its step-2 checkpoint and resumed, a run ends where the uninterrupted one
    does: same log, same adapter."""
    import csv
    import shutil

    from ecgllm.train.grpo import GrpoSettings, grpo_train

    s = GrpoSettings(tasks=("mcq", "measure"), steps=4, prompts_per_step=2, group_size=3, max_new_tokens=6,
                     learning_rate=1e-2, beta=0.1, save_steps=2, temperature=1.5)  # fmt: skip
    policy, proc = _policy()
    whole = tmp_path / "whole"
    grpo_train(policy, proc, instruct, whole, s, progress=False)
    assert [p.name for p in whole.glob("checkpoint-*")] == ["checkpoint-000002"]
    ckpt = whole / "checkpoint-000002"
    assert (ckpt / "adapter/adapter_config.json").exists() and (ckpt / "state").is_dir()
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copytree(ckpt, cut / ckpt.name)  # what a run killed after step 2's checkpoint leaves
    policy, proc = _policy()
    r = grpo_train(policy, proc, instruct, cut, GrpoSettings(**{**s.__dict__, "resume_from_checkpoint": "latest"}),
                   progress=False)  # fmt: skip
    assert r["steps"] == 4
    a, b = _adapter(whole), _adapter(cut)
    assert a.keys() == b.keys() and any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    rows = [list(csv.DictReader(open(d / "log.csv"))) for d in (whole, cut)]
    assert len(rows[0]) == 4 and rows[0] == rows[1]
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        grpo_train(
            policy,
            proc,
            instruct,
            cut,
            GrpoSettings(resume_from_checkpoint=str(tmp_path)),
            progress=False,
        )


def test_dynamic_sampling_redraws_groups_without_spread(instruct, tmp_path, monkeypatch):
    """DAPO's dynamic sampling: a prompt whose G rewards are all equal is replaced by another draw
    (up to max_draws), so the trained groups carry an advantage; without it they are trained as
    drawn. The log's reward averages every sampled completion, redraws included."""
    import csv
    import zlib

    from ecgllm.train import grpo
    from ecgllm.train.grpo import GrpoSettings, grpo_train

    seen = []

    def fake_reward(completion, row, weights=None):  # half of the prompts give every sample 0.5
        seen.append(row["id"])
        if zlib.crc32(row["id"].encode()) % 2:
            return 0.5
        return float(len(completion) % 3)

    monkeypatch.setattr(grpo, "reward", fake_reward)
    logs = {}
    for draws in (1, 6):
        policy, proc = _policy()
        s = GrpoSettings(tasks=("mcq", "measure"), steps=3, prompts_per_step=4, group_size=3, max_new_tokens=6,
                         learning_rate=1e-2, temperature=1.5, max_draws=draws)  # fmt: skip
        seen.clear()
        grpo_train(policy, proc, instruct, tmp_path / str(draws), s, progress=False)
        logs[draws] = (list(csv.DictReader(open(tmp_path / str(draws) / "log.csv"))), len(seen))
    plain, n_plain = logs[1]
    dyn, n_dyn = logs[6]
    assert "draws" not in plain[0] and n_plain == 3 * 4 * 3  # steps x prompts x G, no redraw
    assert all(float(r["spread"]) == 1.0 for r in dyn)  # every trained group has an advantage
    draws = sum(float(r["draws"]) for r in dyn) * 4 * 3  # groups per prompt -> completions
    assert n_dyn == round(draws) > n_plain
    with pytest.raises(ValueError, match="max_draws"):
        grpo_train(
            policy, proc, instruct, tmp_path / "x", GrpoSettings(max_draws=0), progress=False
        )


@pytest.mark.xdist_group("distributed")  # one launch on the default port at a time
def test_two_processes_equal_one(instruct, tmp_path):
    """recipes/grpo.py on 2 DDP processes (gloo) takes the steps of one process at the same
    prompts per step, dynamic sampling's redraws included: the same rewards and draws in the log,
    the same adapter."""
    import csv
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT
    from tests.train.test_recipe import ENV

    policy, _ = _policy(tmp_path)
    policy.save_pretrained(tmp_path / "sft_adapter")  # an "SFT adapter" to merge (B = 0)
    args = ["--model", str(tmp_path / "base"), "--adapter", str(tmp_path / "sft_adapter"), "--processor",
            str(tmp_path / "base"), "--data", str(instruct), "--steps", "2", "--prompts-per-step", "2",
            "--group-size", "3", "--max-new-tokens", "6", "--learning-rate", "0.01", "--temperature", "1.5",
            "--tasks", "mcq,measure", "--max-draws", "3"]  # fmt: skip
    grpo = str(ROOT / "recipes/grpo.py")
    one = subprocess.run([sys.executable, grpo, *args, "--out", str(tmp_path / "one")], capture_output=True,
                         text=True, env=ENV, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", "29537"]  # fmt: skip
    two = subprocess.run([*launch, grpo, *args, "--out", str(tmp_path / "two")], capture_output=True, text=True,
                         env={**ENV, "ACCELERATE_USE_CPU": "1"}, timeout=600)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stdout and "on 1 process(es)" in one.stdout
    logs = [list(csv.DictReader(open(tmp_path / d / "log.csv"))) for d in ("one", "two")]
    assert [r["reward"] for r in logs[0]] == [r["reward"] for r in logs[1]]
    for col in ("length", "draws", "spread"):
        assert [r[col] for r in logs[0]] == [r[col] for r in logs[1]]
    assert any(float(r["draws"]) > 1 for r in logs[0])  # a redraw happened
    a, b = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    assert a.keys() == b.keys() and any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:  # only the order of float reductions differs
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)


def test_think_then_answer(instruct, tmp_path, monkeypatch):
    """GRPO's `think` option: the answer after "</think>" is rewarded as the scorers would (plus
    a formed block's bonus), the prompts ask for the block, completions get the extra tokens, the
    log counts the completions that thought, and the processor saved with the adapter asks and
    reads the model the same way in evaluation."""
    import csv
    import json

    from ecgllm.metrics.parsing import split_reasoning
    from ecgllm.model.processing_ecgllm import THINK_INSTRUCTION
    from ecgllm.train import grpo
    from ecgllm.train.grpo import GrpoSettings, grpo_train, think_reward

    assert split_reasoning("<think>fast, irregular</think> A. atrial fibrillation") == (
        "fast, irregular",
        "A. atrial fibrillation",
    )
    assert split_reasoning("<think>fast, irregular") == ("fast, irregular", "")  # cut at the cap
    assert split_reasoning(" B") == (None, "B") and split_reasoning(None) == (None, "")
    assert split_reasoning("<think>\n\n</think>\n\nB") == ("", "B")  # Qwen3's empty block
    opts = ["atrial fibrillation", "sinus rhythm"]
    row = {"task": "rhythm", "options": opts, "answer": ["sinus rhythm"]}
    assert think_reward("<think>regular, 70 bpm</think> B. sinus rhythm", row) == (
        pytest.approx(reward("B. sinus rhythm", row) + 0.1),
        True,
    )
    assert think_reward("<think>regular</think> A", row) == (pytest.approx(0.1 + 0.1), True)
    assert think_reward("B. sinus rhythm", row) == (pytest.approx(1.1), False)  # no block
    assert think_reward("<think>regular, 70 b", row) == (0.0, False)  # open: no answer
    assert think_reward("<think>x</think>", row) == (0.0, False)

    # a policy that thinks on every other completion (the tiny model never would)
    policy, proc = _policy()
    made = []
    orig_generate = type(policy).generate

    def generate(self, *a, **kw):
        made.append(kw["max_new_tokens"])
        return orig_generate(self, *a, **kw)

    calls = []

    def reasoning(completion, row):
        calls.append(completion)
        return think_reward(
            f"<think>looked</think> {completion}" if len(calls) % 2 else completion, row
        )

    monkeypatch.setattr(type(policy), "generate", generate)
    monkeypatch.setattr(grpo, "think_reward", reasoning)
    s = GrpoSettings(tasks=("mcq",), steps=2, prompts_per_step=2, group_size=2, max_new_tokens=4,
                     think=6, learning_rate=1e-2)  # fmt: skip
    grpo_train(policy, proc, instruct, tmp_path, s, progress=False)
    assert made and set(made) == {4 + 6}
    log = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [float(x["thought"]) for x in log] and all(0 < float(x["thought"]) <= 1 for x in log)
    saved = json.loads((tmp_path / "final/processor_config.json").read_text())
    assert saved["think_tokens"] == 6
    from transformers import AutoProcessor

    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset

    again = AutoProcessor.from_pretrained(tmp_path / "final")
    asked = EcgCollator(again).asked(EcgInstructionDataset(instruct, "train")[0])
    user = next(m for m in asked if m["role"] == "user")
    assert [it["text"] for it in user["content"] if it.get("type") == "text"][-1].endswith(
        THINK_INSTRUCTION
    )
    with pytest.raises(ValueError, match="think must be >= 0"):
        grpo_train(policy, proc, instruct, tmp_path / "x", GrpoSettings(think=-1), progress=False)
