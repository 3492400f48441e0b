"""GRPO with verifiable rewards: the objective, the rewards and a training loop (recipes/grpo.py).

    adv = group_advantages(rewards)                       # [prompts, G] -> [prompts, G]
    loss, stats = grpo_loss(logp, old_logp, ref_logp, adv.flatten(), mask)
    r = reward(completion, row)                           # from the benchmark scorers, no judge
    grpo_train(policy, processor, "runs/default/instruct", "runs/grpo", GrpoSettings(steps=100))

The loop: per step, `prompts_per_step` training rows of the chosen tasks, each sampled
`group_size` times (temperature sampling, the row repeated so every completion has its own ECG
inputs), rewarded, advantages per group, one AdamW step on the policy's trainable parameters
(one update per sampled batch, so the old policy is the current one and the ratio starts at 1);
the reference is the same PeftModel with its adapter disabled (recipes/grpo.py merges the
SFT adapter first and adds a fresh one, so the reference is the SFT model). Checkpoints and
resume as sft.py's; one process or DDP through accelerate (see grpo_train).

Objective (Shao et al. 2024, DeepSeekMath; the DAPO variant of Yu et al. 2025 as options):
- advantages: each completion's reward minus its group's mean (the G completions of one prompt),
  divided by the group's standard deviation (`scale=True`, GRPO; `False` drops the division, as
  Dr. GRPO does, so that groups with little spread are not blown up);
- per token, the PPO clipped surrogate min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)
  with rho = p_new / p_old (`eps_high > eps_low` is DAPO's clip-higher);
- minus beta times the KL to the reference policy, by the k3 estimator exp(ref - new) - (ref -
  new) - 1 (unbiased, always >= 0); beta = 0 is DAPO's no-KL;
- aggregation: `per_sequence` (GRPO: mean over each completion's tokens, then over completions)
  or `per_token` (DAPO: sum over all tokens of the batch / their count, so long completions are
  not down-weighted);
- dynamic sampling (DAPO, `max_draws` > 1): a group whose G rewards are all equal has zero
  advantages and teaches nothing but the KL, so its prompt is replaced by a newly drawn one until
  a group's rewards differ or `max_draws` groups were sampled for that slot (the last is kept).
  DAPO over-samples a batch and refills it; redrawing per prompt slot gives the same effect and
  keeps every slot's draws a function of (seed, step, slot) alone, so several processes still
  take the steps of one. The log's `draws` (groups sampled per prompt) and `spread` (share of
  trained groups whose rewards differ) show what it costs and finds.
- think, then answer (`think` > 0): every question asks for reasoning inside <think> </think>
  first (processor.think_tokens, saved with the adapter, so evaluation asks the same), the
  completion gets `think` more tokens, and think_reward pays the answer after the block plus
  RewardWeights.think for a formed one (R1-Zero style: the block is learned from the reward).

Rewards are the benchmark scorers applied to one completion (ecgllm.metrics): the chosen option
(parse_choice) against the gold one, the number (parse_number) within the measurement's tolerance
(partial credit falling to 0 at three tolerances), the report's SCP statements (F1 of
extract_scp_codes against the reference's), a grounded interpretation's findings, cited
measurements and leads (the ground scorer, ecgllm.metrics.grounding), and a format reward (the
answer parses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """rewards [prompts, G] -> advantages of the same shape (see the module doc)."""
    r = rewards.float()
    centred = r - r.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (r.std(dim=1, keepdim=True, unbiased=True) + eps)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, eps_low: float = 0.2,
              eps_high: float | None = None, beta: float = 0.04,
              aggregation: str = "per_sequence") -> tuple[torch.Tensor, dict]:  # fmt: skip
    """logp/old_logp/ref_logp [N, T] per-token log-probabilities of N completions (the policy with
    grad, the sampling policy, the reference); advantages [N]; mask [N, T] 1 on completion
    tokens. Returns the loss to minimise and detached statistics (kl, clip fraction)."""
    if aggregation not in ("per_sequence", "per_token"):
        raise ValueError(f"aggregation must be per_sequence or per_token, not {aggregation!r}")
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = advantages[:, None].to(logp.dtype)
    hi = 1 + (eps_low if eps_high is None else eps_high)
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - eps_low, hi) * a)
    per_token = -surrogate
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    if aggregation == "per_sequence":
        loss = ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).mean()
    else:
        loss = (per_token * m).sum() / m.sum().clamp(min=1)
    with torch.no_grad():
        n = m.sum().clamp(min=1)
        clipped = ((ratio < 1 - eps_low) | (ratio > hi)).to(m.dtype)
        stats = {"kl": float((kl * m).sum() / n), "clip_fraction": float((clipped * m).sum() / n)}
    return loss, stats


@dataclass(frozen=True)
class RewardWeights:
    correct: float = (
        1.0  # the chosen option / the number within tolerance / the report's statements
    )
    format: float = 0.1  # the answer parses at all
    evidence: float = 0.25  # ground: the mean of cited-measurement F1 and lead F1 where defined
    think: float = 0.1  # with GrpoSettings.think: a closed <think> block before a non-empty answer


def think_reward(completion: str, row: dict, weights: RewardWeights = RewardWeights()) -> tuple[float, bool]:  # fmt: skip
    """(reward, formed) of a completion asked to think first ("<think> ... </think> answer",
    GrpoSettings.think): the task's reward of the answer after the block (split_reasoning), plus
    `weights.think` when the block is formed (closed, then a non-empty answer). A completion with
    no block is rewarded as it is, without the bonus (a model that never thinks still learns
    its answers); a block left open at the token cap has no answer and earns 0."""
    from ..metrics.parsing import split_reasoning

    reasoning, answer = split_reasoning(completion)
    if reasoning is None:
        return reward(answer, row, weights), False
    if not answer:
        return 0.0, False
    return reward(answer, row, weights) + weights.think, True


def reward(completion: str, row: dict, weights: RewardWeights = RewardWeights()) -> float:
    """The reward of one completion to a benchmark row (its task decides the scorer): mcq,
    rhythm -> the option; ecgqa -> the set of options named equals the gold set (its benchmark's
    exact match, so a right answer of several items counts); measure -> the number; report -> SCP
    statement F1;
    ground -> finding F1 plus its evidence (measurements and leads)."""
    from ..metrics.parsing import parse_choice, parse_number

    task = row.get("task")
    if task == "measure":
        got = parse_number(completion)
        if got is None:
            return 0.0
        tol = float(row.get("tolerance") or 1.0)
        err = abs(got - float(row["value"]))
        return weights.format + weights.correct * (
            1.0 if err <= tol else max(0.0, 1 - err / (3 * tol))
        )
    if task == "ground":
        return _ground_reward(completion, row, weights)
    if task == "report":
        from ..text.extract import extract_scp_codes

        got, want = (
            extract_scp_codes(completion),
            extract_scp_codes(row["messages"][-1]["content"][0]["text"]),
        )
        if not got and not want:
            return weights.format + weights.correct
        f1 = 2 * len(got & want) / (len(got) + len(want)) if (got or want) else 0.0
        return (weights.format if got else 0.0) + weights.correct * f1
    options = list(row.get("options") or [])
    if not options:
        raise ValueError(f"no reward for task {task!r} without options")
    if task == "ecgqa":  # the benchmark's exact match: the set of options named is the gold set
        from ..metrics.scores import qa_exact_match

        em = qa_exact_match([completion], [row["answer"]], [options])
        return 0.0 if em["unparsed_rate"] else weights.format + weights.correct * em["exact_match"]
    pick = parse_choice(completion, options)
    if pick is None:
        return 0.0
    return weights.format + weights.correct * float(pick == row["answer"][0])


def _ground_reward(completion: str, row: dict, weights: RewardWeights) -> float:
    """A grounded interpretation (the ground benchmark's scorer on this one answer): the format
    reward when it states a finding, `correct` x its finding F1 (the headline metric), and
    `evidence` x the mean of what its evidence earns where the sample defines it: the cited
    measurements' F1 (precision over the values it cites, recall over the evidence's values, each
    within the scorer's tolerance) and the lead F1."""
    import json
    import math

    from ..metrics.grounding import ground_scores, stated_findings

    s = ground_scores([completion], [list(row.get("answer") or [])],
                      [json.loads(row.get("evidence") or "{}")], [json.loads(row.get("features") or "{}")])  # fmt: skip
    p, r = s["measurement_precision"], s["measurement_recall"]
    if math.isnan(p) and math.isnan(r):
        meas = math.nan
    else:  # citing nothing against evidence values is recall 0; citing values none asked for, P only
        p, r = (0.0 if math.isnan(p) else p), (p if math.isnan(r) else r)
        meas = 2 * p * r / (p + r) if p + r else 0.0
    parts = [x for x in (meas, s["lead_f1"]) if not math.isnan(x)]
    fmt = weights.format if stated_findings(completion) else 0.0
    return (
        fmt
        + weights.correct * s["finding_f1"]
        + weights.evidence * (sum(parts) / len(parts) if parts else 0.0)
    )


# --- the training loop ---------------------------------------------------------------------------


def task_token_caps(tasks) -> dict[str, int]:
    """Each task's completion cap: the max_new_tokens of the shipped benchmark named like the task,
    else of one whose task it is (ground 96, report 64, detect 48, ecgqa 32, mcq 24, measure 16),
    else the benchmark default (48). A cap below the benchmark's would reward truncated answers
    (a grounded interpretation is 40-90 tokens)."""
    from ..benchmarks import Benchmark, available, load_benchmark

    benches = [load_benchmark(n) for n in available()]
    out = {}
    for t in tasks:
        named = [b for b in benches if b.name == t] or [b for b in benches if b.task == t]
        out[t] = named[0].max_new_tokens if named else Benchmark.max_new_tokens
    return out


@dataclass(frozen=True)
class GrpoSettings:
    tasks: tuple[str, ...] = (
        "mcq",
        "rhythm",
        "measure",
    )  # task families whose rewards are optimised
    steps: int = 50  # optimizer steps (one per batch of sampled groups)
    prompts_per_step: int = 4  # prompts per step, over all processes (a multiple of their number)
    group_size: int = 4  # completions sampled per prompt (G)
    temperature: float = 1.0  # sampling temperature
    max_new_tokens: int = 0  # completion length cap; 0: each task's benchmark's (task_token_caps)
    learning_rate: float = 1e-5  # AdamW on the policy's trainable parameters (LoRA, projectors)
    beta: float = 0.04  # KL to the reference (the adapter-disabled base); 0: DAPO's no-KL
    eps_low: float = 0.2  # clip range below 1
    eps_high: float = 0.28  # clip range above 1 (DAPO's clip-higher; = eps_low for plain GRPO)
    aggregation: str = "per_token"  # per_token (DAPO) or per_sequence (GRPO)
    scale_advantages: bool = True  # divide by the group's SD (GRPO); false: Dr. GRPO
    # DAPO's dynamic sampling: a prompt whose G rewards are all equal (no advantage, no signal) is
    # replaced by another drawn prompt, up to this many draws per prompt (1: off, plain GRPO)
    max_draws: int = 1
    # "think, then answer": > 0 asks every prompt for reasoning inside <think> </think> before the
    # answer, allows this many more tokens per completion and rewards the answer after the block
    # plus a well-formed block (think_reward); saved in the processor (think_tokens), so that
    # evaluation asks and reads the model the same way. 0: answers only
    think: int = 0
    seed: int = 0
    lora_r: int = 16  # rank of the fresh GRPO adapter (recipes/grpo.py)
    lora_alpha: int = 32  # its scale numerator
    save_steps: int = 50  # a checkpoint every this many steps (0: none before the end)
    save_total_limit: int = 2  # checkpoints kept (the newest)
    resume_from_checkpoint: str = ""  # "latest" (none yet: start) or a checkpoint folder


def completion_logprobs(model, batch: dict, sequences: torch.Tensor, prompt_len: int, mask: torch.Tensor,
                        ) -> torch.Tensor:  # fmt: skip
    """Per-token log p of the completions sequences[:, prompt_len:] under `model`, given the
    prompt batch's ECG/page inputs; positions follow the attention mask (left padding), as in
    generation. Returns [N, T] (zeros outside `mask`)."""
    attn = torch.cat([batch["attention_mask"], mask.to(batch["attention_mask"].dtype)], dim=1)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
    keep = torch.arange(prompt_len - 1, sequences.shape[1] - 1)
    logits = model(
        input_ids=sequences, attention_mask=attn, position_ids=pos, logits_to_keep=keep, **extra
    ).logits
    lp = torch.log_softmax(logits.float(), dim=-1)
    tok = lp.gather(-1, sequences[:, prompt_len:, None]).squeeze(-1)
    return tok * mask


def _end_tokens(tok) -> set[int]:
    eos = {
        tok.eos_token_id,
        tok.convert_tokens_to_ids("<|end|>"),
        tok.convert_tokens_to_ids("<end_of_turn>"),
    }
    return eos - {None, tok.unk_token_id}  # fmt: skip


def _resume_point(out, resume: str):
    """The checkpoint to continue from (None: start), as sft.py's train.resume_from_checkpoint."""
    from pathlib import Path

    from .checkpoint import latest_checkpoint

    if not resume:
        return None
    if resume == "latest":
        return latest_checkpoint(out)
    ckpt = Path(resume)
    if not (ckpt / "trainer_state.json").exists():
        raise ValueError(f"resume_from_checkpoint={resume!r}: not a checkpoint folder")
    return ckpt


def grpo_train(policy, processor, data_dir, out, s: GrpoSettings, progress: bool = True,
               accelerator=None) -> dict:  # fmt: skip
    """GRPO on `policy` (a PeftModel whose adapter trains; the reference is the same model with the
    adapter disabled) over the training split's rows of `s.tasks`. Writes OUT/checkpoint-N every
    `save_steps` (adapter, processor, trainer_state.json with the log and the prompt sampler's
    state, state/ = accelerate's optimizer and model state), OUT/final (adapter + processor),
    OUT/log.csv (per step: loss, mean reward, KL, clip fraction, completion length; with dynamic
    sampling also draws and spread; with think the share of completions that thought) and
    OUT/grpo_result.json (last: marks the run done).

    Distributed (`accelerate launch` / torchrun, DDP): every process draws the same prompts and
    takes its share (prompt j goes to process j mod world); each prompt's group is sampled with a
    seed of (seed, step, j) alone, and the loss is normalised by the global token (per_token) or
    prompt (per_sequence) count, so a run on W processes takes the same steps as one process
    at the same `prompts_per_step` (tested). Sampling one group at a time is what makes that
    hold (a batched sampler draws each row's tokens from a shared random stream); the cost is
    smaller generation batches. DeepSpeed ZeRO is not supported here: sampling under ZeRO-3 needs
    the partitioned weights gathered for every generated token."""
    import csv
    import io
    import json
    import shutil
    import time
    from contextlib import nullcontext
    from dataclasses import asdict
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from ..atomic import replace, write_text
    from ..data.collator import EcgCollator
    from ..data.dataset import EcgInstructionDataset
    from ..model.modeling_ecgllm import placeholder_token_ids
    from .checkpoint import save_checkpoint, save_model_files
    from .setup import make_accelerator

    if s.aggregation not in ("per_sequence", "per_token"):
        raise ValueError(f"aggregation must be per_sequence or per_token, not {s.aggregation!r}")
    if s.max_draws < 1:
        raise ValueError(f"max_draws must be >= 1 (1: no dynamic sampling), not {s.max_draws}")
    if s.think < 0:
        raise ValueError(f"think must be >= 0 (tokens for reasoning; 0: none), not {s.think}")
    if s.think and not hasattr(processor, "think_messages"):
        raise ValueError(f"think needs an EcgLlmProcessor, not {type(processor).__name__}")
    acc = accelerator or make_accelerator("no")[0]
    world, rank = acc.num_processes, acc.process_index
    if getattr(acc.state, "deepspeed_plugin", None) is not None:
        raise ValueError("GRPO runs on one process or DDP; DeepSpeed ZeRO is not supported")
    if s.prompts_per_step % world:
        raise ValueError(
            f"prompts_per_step ({s.prompts_per_step}) must be a multiple of the {world} processes"
        )
    ds = EcgInstructionDataset(data_dir, "train")
    pool = [i for i, t in enumerate(ds.samples["task"]) if t in s.tasks]
    if not pool:
        raise ValueError(f"{data_dir}: no training sample of the tasks {list(s.tasks)}")
    caps = {t: s.max_new_tokens for t in s.tasks} if s.max_new_tokens else task_token_caps(s.tasks)
    caps = {t: c + s.think for t, c in caps.items()}
    # the processor asks every question to think first (collator.asked) and is saved so
    processor.think_tokens = s.think
    tok = processor.tokenizer
    eos = _end_tokens(tok)
    # a sampled ECG/image placeholder would break the completion's scoring pass (more placeholders
    # than inputs: seen at temperature 1 on the tiny model, an image-only prompt sampling <ecg>)
    holders = placeholder_token_ids(policy) or None
    collator = EcgCollator(processor)
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "the policy has no trainable parameter (load the adapter with is_trainable=True)"
        )
    out = Path(out)
    ckpt = _resume_point(out, s.resume_from_checkpoint)
    model, opt = acc.prepare(policy, torch.optim.AdamW(params, lr=s.learning_rate))
    inner = acc.unwrap_model(model)  # generation and the reference go around the DDP wrapper
    rng = np.random.default_rng(s.seed)
    step, log_rows = 0, []

    def sample_group(prompt: int):
        """G completions of training row `prompt` (from the current torch seed), each cut after
        its first end token (mask), and their rewards."""
        rows = [ds[prompt] for _ in range(s.group_size)]  # the prompt G times
        batch = collator.prompt_batch(rows)
        with torch.no_grad():
            seqs = inner.generate(**batch, do_sample=True, temperature=s.temperature, top_k=0,
                                  max_new_tokens=caps[rows[0]["task"]], suppress_tokens=holders)  # fmt: skip
        p_len = batch["input_ids"].shape[1]
        comp = seqs[:, p_len:]
        mask = torch.ones_like(comp)
        for r in range(comp.shape[0]):  # up to and including the first end token
            ends = [k for k, t in enumerate(comp[r].tolist()) if t in eos]
            if ends:
                mask[r, ends[0] + 1 :] = 0
        texts = tok.batch_decode(
            comp * mask + (1 - mask) * tok.pad_token_id, skip_special_tokens=True
        )
        scored = [think_reward(t.strip(), row) if s.think else (reward(t.strip(), row), False)
                  for t, row in zip(texts, rows, strict=True)]  # fmt: skip
        rewards = torch.tensor([r for r, _ in scored])
        return rows, batch, seqs, p_len, mask, rewards, sum(f for _, f in scored)

    if ckpt is not None:
        acc.load_state(str(ckpt / "state"))
        st = json.loads((ckpt / "trainer_state.json").read_text())
        step, log_rows = st["global_step"], st["log"]
        rng.bit_generator.state = st["rng"]
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    recipe = json.loads(json.dumps(asdict(s)))  # tuples as lists, for the YAML
    t0 = time.perf_counter()
    bar = tqdm(
        total=s.steps,
        initial=step,
        desc="grpo",
        unit="step",
        disable=not (progress and acc.is_main_process),
    )
    while step < s.steps:
        idx = rng.choice(
            pool, s.prompts_per_step, replace=len(pool) < s.prompts_per_step
        )  # same on every process
        groups, tokens = [], 0
        # completions sampled, their reward sum, kept groups with a spread; float64 so that the
        # processes' partial sums add up exactly as one process's (the log compares equal)
        # (and the completions with a formed think block)
        drawn = torch.zeros(4, dtype=torch.float64)
        inner.eval()
        for j in range(rank, s.prompts_per_step, world):
            prompt = int(idx[j])
            for draw in range(s.max_draws):  # the last draw is trained even without a spread
                if draw:  # a redraw depends on (seed, step, slot, draw) alone: DDP == one process
                    seq_seed = np.random.SeedSequence((s.seed, step, j, draw))
                    prompt = int(pool[np.random.default_rng(seq_seed).integers(len(pool))])
                    torch.manual_seed(int(seq_seed.generate_state(1)[0]))
                else:
                    torch.manual_seed(s.seed * 1_000_003 + step * 1009 + j)
                rows, batch, seqs, p_len, mask, rewards, formed = sample_group(prompt)
                drawn += torch.tensor(
                    [len(rows), float(rewards.double().sum()), 0.0, formed], dtype=torch.float64
                )
                if bool(rewards.max() > rewards.min()):
                    drawn[2] += 1
                    break  # a group with a spread
            with torch.no_grad(), inner.disable_adapter():
                ref = completion_logprobs(inner, batch, seqs, p_len, mask)
            groups.append((j, batch, seqs, p_len, mask, rewards, ref))
            tokens += int(mask.sum())
        n_tokens = float(acc.reduce(torch.tensor(float(tokens), device=acc.device), "sum"))
        model.train()
        # loss, kl*tokens, clipped*tokens, tokens; then completions drawn, their reward, spread groups
        sums = torch.cat([torch.zeros(4, dtype=torch.float64), drawn]).to(acc.device)
        for i, (j, batch, seqs, p_len, mask, rewards, ref) in enumerate(groups):
            adv = group_advantages(rewards[None], scale=s.scale_advantages)[0]
            torch.manual_seed(s.seed * 1_000_003 + step * 1009 + j)  # dropout, if any
            last = i == len(groups) - 1
            with acc.no_sync(model) if not last else nullcontext():
                logp = completion_logprobs(model, batch, seqs, p_len, mask)
                loss, stats = grpo_loss(logp, logp.detach(), ref, adv, mask, s.eps_low, s.eps_high, s.beta,
                                        s.aggregation)  # fmt: skip
                n = float(mask.sum())
                w = (
                    n / max(n_tokens, 1.0)
                    if s.aggregation == "per_token"
                    else 1.0 / s.prompts_per_step
                )
                # DDP averages the processes' gradients: times world, their sum is the global loss's
                acc.backward(loss * w * world)
            sums[:4] += torch.tensor([float(loss.detach()) * w, stats["kl"] * n, stats["clip_fraction"] * n, n],
                                     dtype=torch.float64, device=acc.device)  # fmt: skip
        opt.step()
        opt.zero_grad(set_to_none=True)
        sums = acc.reduce(sums, "sum")
        completions = s.prompts_per_step * s.group_size
        step += 1
        # reward: the mean over every completion sampled (redraws included), so that the curve
        # follows the policy rather than the filter; the others are over the trained groups
        row = {"step": step, "loss": float(sums[0]), "reward": float(sums[5]) / float(sums[4]),
               "kl": float(sums[1] / sums[3].clamp(min=1)), "clip_fraction": float(sums[2] / sums[3].clamp(min=1)),
               "length": float(sums[3]) / completions}  # fmt: skip
        if s.max_draws > 1:
            row |= {
                "draws": float(sums[4]) / completions,
                "spread": float(sums[6]) / s.prompts_per_step,
            }
        if s.think:  # share of the sampled completions with a formed think block
            row["thought"] = float(sums[7]) / float(sums[4])
        log_rows.append(row)
        bar.update()
        bar.set_postfix(reward=f"{log_rows[-1]['reward']:.3f}")
        if s.save_steps and step % s.save_steps == 0 and step < s.steps:
            tmp_state = out / f".state-{step:06d}"
            acc.save_state(str(tmp_state), safe_serialization=True)
            if acc.is_main_process:
                save_checkpoint(out, step, inner, processor, "lora", {"global_step": step, "log": log_rows,
                                "rng": rng.bit_generator.state}, recipe, keep=s.save_total_limit,
                                state_dir=tmp_state)  # fmt: skip
            acc.wait_for_everyone()
    bar.close()
    inner.eval()
    final = out / "final"
    result = {}
    if acc.is_main_process:
        tmp = out / "final.tmp"  # written whole, then swapped in
        shutil.rmtree(tmp, ignore_errors=True)
        save_model_files(tmp, inner, processor, "lora")
        shutil.rmtree(final, ignore_errors=True)
        replace(tmp, final)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(log_rows[0]))
        w.writeheader()
        w.writerows(log_rows)
        write_text(out / "log.csv", buf.getvalue())
    first = float(np.mean([r["reward"] for r in log_rows[: max(1, len(log_rows) // 5)]]))
    last = float(np.mean([r["reward"] for r in log_rows[-max(1, len(log_rows) // 5) :]]))
    result = {"steps": step, "reward_first_fifth": first, "reward_last_fifth": last, "processes": world,
              "seconds": round(time.perf_counter() - t0, 1), "output": str(final)}  # fmt: skip
    if acc.is_main_process:
        write_text(out / "grpo_result.json", json.dumps(result, indent=1))
    acc.wait_for_everyone()
    return result
