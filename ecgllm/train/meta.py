"""Meta-training of the fusion module over few-shot episodes: first-order MAML (Finn et al. 2017,
FOMAML), the ECG-LM paper's setting with the LLM and the ECG encoder frozen.

    s = MetaSettings(n_way=5, k_shot=5, queries=2, meta_steps=200)
    r = meta_train(model, processor, "runs/default/instruct", "runs/meta", s)

Each step draws an episode of a meta-train class set (ecgllm.evaluation.fewshot: the classes the
seeded meta split did not hold out; support and query samples both from the training split,
never the same sample), adapts the fusion parameters (the ECG projector: `qformer`, or an MLP /
linear projector) with `inner_steps` gradient steps on the support set, takes the query loss at
the adapted parameters and applies its gradient, as the first-order approximation, to the
parameters before adaptation (Adam at `outer_lr`). Evaluate with the same inner loop:
eval/run.py --fewshot N,K --fewshot-adapt-steps `inner_steps` on the meta-test classes.
Output: OUT/ecg_projector.safetensors (the meta-learned fusion weights, keys as in the model),
OUT/meta_train.json (settings, query losses); written whole, then renamed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..evaluation.fewshot import (
    QUESTION_TYPES,
    FewShotSettings,
    adapt,
    build_episodes,
    fusion_parameters,
    sample_rows,
)


@dataclass(frozen=True)
class MetaSettings:
    n_way: int = 5  # classes per episode
    k_shot: int = 5  # support samples per class
    queries: int = 2  # query samples per class
    meta_steps: int = 200  # episodes trained on
    inner_steps: int = 1  # gradient steps on the support set per episode
    inner_lr: float = FewShotSettings.adapt_lr  # the inner loop's learning rate
    outer_lr: float = 1e-4  # Adam's learning rate on the meta-gradient
    leads: int = 12  # leads kept in every ECG
    meta_test_share: float = 0.5  # the same split as evaluation's (FewShotSettings)
    seed: int = 0
    question_types: tuple[str, ...] = field(default=QUESTION_TYPES)


def meta_train(model, processor, data_dir: str | Path, out: str | Path, s: MetaSettings,
               batch_size: int = 8, progress: bool = True) -> dict:  # fmt: skip
    from tqdm.auto import tqdm

    from ..atomic import replace, write_text
    from ..data.collator import EcgCollator
    from ..data.dataset import EcgInstructionDataset

    ds = EcgInstructionDataset(data_dir, "train")
    train = ds.samples.to_list()
    fs = FewShotSettings(n_way=s.n_way, k_shot=s.k_shot, queries=s.queries, episodes=max(1, s.meta_steps),
                         leads=s.leads, meta_test_share=s.meta_test_share, seed=s.seed, min_support=s.k_shot,
                         question_types=s.question_types)  # fmt: skip
    pool = [
        ep for t in s.question_types for ep in build_episodes(train, train, fs, t, meta_train=True)
    ]
    if not pool:
        raise ValueError(
            f"{data_dir}: no meta-train episode ({s.n_way}-way {s.k_shot}-shot) can be built"
        )
    params = fusion_parameters(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=s.outer_lr)
    collator = EcgCollator(processor)
    rng = np.random.default_rng(s.seed)
    model.train()
    losses = []
    for _ in tqdm(range(s.meta_steps), desc="meta-train", unit="ep", disable=not progress):
        ep = pool[int(rng.integers(len(pool)))]
        saved = [p.detach().clone() for p in params]
        adapt(
            model,
            collator,
            sample_rows(ep.support, ds, s.leads),
            params,
            s.inner_steps,
            s.inner_lr,
            batch_size,
        )
        q = sample_rows(ep.queries, ds, s.leads)
        grads = [torch.zeros_like(p) for p in params]
        total = 0.0
        for b in range(0, len(q), batch_size):
            loss = model(**collator(q[b : b + batch_size])).loss * (
                len(q[b : b + batch_size]) / len(q)
            )
            for g, gi in zip(
                grads, torch.autograd.grad(loss, params, allow_unused=True), strict=True
            ):
                if gi is not None:
                    g += gi
            total += float(loss)
        with (
            torch.no_grad()
        ):  # first order: the adapted point's gradient, applied before adaptation
            for p, v, g in zip(params, saved, grads, strict=True):
                p.copy_(v)
                p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    names = [
        n
        for n, p in model.named_parameters()
        if "ecg_projector" in n and "original_module" not in n
    ]
    tmp = out / "ecg_projector.safetensors.tmp"
    save_file({n: p.detach().contiguous() for n, p in zip(names, params, strict=True)}, str(tmp))
    replace(tmp, out / "ecg_projector.safetensors")
    summary = {"settings": asdict(s), "episodes_available": len(pool), "query_loss_first": losses[0],
               "query_loss_last10": float(np.mean(losses[-10:])), "losses": losses}  # fmt: skip
    write_text(out / "meta_train.json", json.dumps(summary, indent=1))
    return summary
