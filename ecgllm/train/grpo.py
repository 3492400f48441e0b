"""GRPO with verifiable rewards: the objective and the rewards (the training loop is not built yet).

    adv = group_advantages(rewards)                       # [prompts, G] -> [prompts, G]
    loss, stats = grpo_loss(logp, old_logp, ref_logp, adv.flatten(), mask)
    r = reward(completion, row)                           # from the benchmark scorers, no judge

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
  not down-weighted).

Rewards are the benchmark scorers applied to one completion (ecgllm.metrics): the chosen option
(parse_choice) against the gold one, the number (parse_number) within the measurement's tolerance
(partial credit falling to 0 at three tolerances), the report's SCP statements (F1 of
extract_scp_codes against the reference's), and a format reward (the answer parses).
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


def reward(completion: str, row: dict, weights: RewardWeights = RewardWeights()) -> float:
    """The reward of one completion to a benchmark row (its task decides the scorer): mcq,
    rhythm, ecgqa verify/choose -> the option; measure -> the number; report -> SCP statement F1."""
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
    pick = parse_choice(completion, options)
    if pick is None:
        return 0.0
    return weights.format + weights.correct * float(pick == row["answer"][0])
