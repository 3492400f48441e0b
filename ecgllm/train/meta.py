"""Meta-training of the fusion module over few-shot episodes: first-order MAML (Finn et al. 2017,
FOMAML), the ECG-LM paper's setting with the LLM and the ECG encoder frozen; or MetaICL (Min et
al., NAACL 2022), training on episodes asked in context.

    s = MetaSettings(n_way=5, k_shot=5, queries=2, meta_steps=200)
    r = meta_train(model, processor, "runs/default/instruct", "runs/meta", s)
    s = MetaSettings(n_way=2, k_shot=5, algorithm="incontext", tune="fusion+lora", outer_lr=1e-4)

`algorithm="fomaml"` (default): each step draws an episode of a meta-train class set
(ecgllm.evaluation.fewshot: the classes the seeded meta split did not hold out; support and query
samples both from the training split, never the same sample), adapts the fusion parameters (the
ECG projector: `qformer`, or an MLP / linear projector) with `inner_steps` gradient steps on the
support set, takes the query loss at the adapted parameters and applies its gradient, as the
first-order approximation, to the parameters before adaptation (Adam at `outer_lr`). Evaluate
with the same inner loop on the meta-test classes: eval/run.py --fewshot N,K
--fewshot-adapt-steps `inner_steps`.

`algorithm="incontext"` (MetaICL): each step draws a meta-train episode in the same way and asks
its queries exactly as in-context evaluation does (the K*N support examples with their answers in
the prompt, then the query ECG and question: ecgllm.evaluation.fewshot.episode_rows); the loss is
the query answer's, and Adam at `outer_lr` applies its gradient; no inner loop. A model whose SFT
never showed several answered ECGs before a question reads the support set as noise (measured:
in context, K-shot fell below zero-shot on both backbones); this teaches it the format on the
meta-train classes. Evaluate in context: eval/run.py --fewshot N,K (no --fewshot-adapt-steps).

`algorithm="calibrated"`: each step draws a meta-train episode, scores its support samples alone
(no gradient) and fits evaluation's answer bias on them (fewshot.fit_answer_bias), scores the
queries' candidates alone with gradients, shifts them by the bias, and takes each query's
cross-entropy of its gold answer among its candidates; Adam at `outer_lr`. First order: the bias
is held fixed. It trains what calibrated evaluation uses, answers' scores that separate within
an episode's classes. Evaluate with eval/run.py --fewshot N,K --fewshot-calibrate.

`tune`: "fusion" trains the ECG projector only (the paper's frozen LLM); "fusion+lora" also the
LLM's LoRA weights (a model loaded with its adapter), as MetaICL tunes the LM.
Output: OUT/ecg_projector.safetensors (the meta-learned weights, keys as in the model; loaded by
eval/run.py --fewshot-fusion), OUT/meta_train.json (settings, query losses); written whole, then
renamed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..evaluation.fewshot import (
    QUESTION_TYPES,
    Episode,
    FewShotSettings,
    adapt,
    alone_rows,
    answer_of,
    bias_shift,
    build_episodes,
    episode_rows,
    fusion_parameters,
    record_statements,
    sample_rows,
    support_bias,
)

ALGORITHMS = ("fomaml", "incontext", "calibrated")
TUNED = ("fusion", "fusion+lora")


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
    # fomaml: adapt on the support set, the query loss there (the paper's setting); incontext:
    # MetaICL, the support set in the prompt and the loss on the query's answer (no inner loop);
    # calibrated: the query's candidates scored alone, shifted by the bias fitted on the support
    # set (evaluation's `calibrate`), the loss the cross-entropy of its answer among them
    algorithm: str = "fomaml"
    # the weights trained: fusion (the ECG projector; LLM frozen) or fusion+lora (also the
    # adapter's LoRA weights; not with fomaml, whose inner loop adapts the fusion module)
    tune: str = "fusion"

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {self.algorithm!r}")
        if self.tune not in TUNED:
            raise ValueError(f"tune must be one of {TUNED}, not {self.tune!r}")
        if self.tune != "fusion" and self.algorithm == "fomaml":
            raise ValueError(
                f"tune={self.tune!r} needs algorithm 'incontext' or 'calibrated' (FOMAML adapts the fusion module)"
            )
        if self.meta_steps < 1:
            raise ValueError(f"meta_steps must be >= 1, not {self.meta_steps}")


def tuned_parameters(model, tune: str) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of what meta-training trains: the fusion module's (fusion_parameters),
    and with "fusion+lora" the LoRA weights of the model's adapter."""
    fusion = {id(p) for p in fusion_parameters(model)}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in fusion]
    if tune == "fusion+lora":
        lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
        if not lora:
            raise ValueError("tune='fusion+lora' needs a model with a LoRA adapter (--adapter)")
        named += lora
    return named


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
    statements = record_statements(ds)
    pool = [
        ep
        for t in s.question_types
        for ep in build_episodes(train, train, fs, t, meta_train=True, statements=statements)
    ]
    if not pool:
        raise ValueError(
            f"{data_dir}: no meta-train episode ({s.n_way}-way {s.k_shot}-shot) can be built"
        )
    named = tuned_parameters(model, s.tune)
    params = [p for _, p in named]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=s.outer_lr)
    # in context, a prompt holds N*K + 1 ECGs: no cut (a cut would drop the query)
    collator = EcgCollator(processor, max_length=1 << 16)
    rng = np.random.default_rng(s.seed)
    model.train()
    losses = []
    for _ in tqdm(range(s.meta_steps), desc="meta-train", unit="ep", disable=not progress):
        ep = pool[int(rng.integers(len(pool)))]
        if s.algorithm == "incontext":
            rows = incontext_rows(ep, train, ds, s.leads)
            losses.append(_incontext_step(model, collator, rows, params, opt, batch_size))
            continue
        if s.algorithm == "calibrated":
            losses.append(
                _calibrated_step(model, collator, ep, ds, s.leads, params, opt, batch_size)
            )
            continue
        saved = [p.detach().clone() for p in params]
        adapt(
            model,
            collator,
            sample_rows(ep.support, ds, s.leads, ep.support_questions),
            params,
            s.inner_steps,
            s.inner_lr,
            batch_size,
        )
        q = sample_rows(ep.queries, ds, s.leads, ep.query_questions)
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

    tmp = out / "ecg_projector.safetensors.tmp"
    save_file({n: p.detach().contiguous() for n, p in named}, str(tmp))
    replace(tmp, out / "ecg_projector.safetensors")
    summary = {"settings": asdict(s), "episodes_available": len(pool), "tensors_trained": len(named),
               "query_loss_first": losses[0], "query_loss_last10": float(np.mean(losses[-10:])), "losses": losses}  # fmt: skip
    write_text(out / "meta_train.json", json.dumps(summary, indent=1))
    return summary


def incontext_rows(ep: Episode, samples: list[dict], ds, leads: int) -> list[dict]:
    """The rows one MetaICL step trains on: the episode's queries asked with its support set in
    the prompt, as in-context evaluation asks them (fewshot.episode_rows), each with its gold
    answer as the assistant turn. `samples`: the training split's samples, `ds` its dataset."""
    golds = [[answer_of(samples[q])] for q in ep.queries]
    return episode_rows(dataclasses.replace(ep, candidates=golds), ds, ds, leads)


def row_logliks(model, collator, rows: list[dict], batch_size: int) -> torch.Tensor:
    """[len(rows)] sum of log p(assistant tokens | prompt) per row, with gradients (what
    evaluation.answer.loglik_batch computes without them, faster)."""
    out = []
    for b in range(0, len(rows), batch_size):
        batch = collator(rows[b : b + batch_size])
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:].to(logits.device)
        keep = target != -100
        lp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out.append((lp * keep).sum(-1))
    return torch.cat(out)


def _calibrated_step(model, collator, ep: Episode, ds, leads: int, params, opt, batch_size: int) -> float:  # fmt: skip
    """One step of calibrated meta-training: the support samples scored alone (no gradient) fit
    the answer bias (fewshot.fit_answer_bias), the queries' candidates scored alone with it, and
    the loss is each query's cross-entropy of its gold answer among its calibrated candidates;
    first order: the bias is held fixed (its dependence on the weights through the support's
    scores is dropped, as FOMAML drops the inner loop's)."""
    bias = support_bias(model, collator, ep, ds, leads, batch_size, FewShotSettings.calibrate_l2)
    rows = alone_rows(ep, ds, ds, leads)
    ll = row_logliks(model, collator, rows, batch_size)
    shift = torch.tensor(bias_shift(ep.question_type, rows, bias), dtype=ll.dtype, device=ll.device)
    scores = ll + shift
    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by.setdefault(r["id"], []).append(i)
    loss = torch.stack([
        torch.logsumexp(scores[ix], 0) - scores[ix][[rows[i]["candidate"] for i in ix].index(rows[ix[0]]["gold"])]
        for ix in by.values()
    ]).mean()  # fmt: skip
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def _incontext_step(model, collator, rows: list[dict], params, opt, batch_size: int) -> float:
    """One MetaICL step on `rows` (incontext_rows): the query answers' loss, one Adam step."""
    total = 0.0
    for b in range(0, len(rows), batch_size):
        part = rows[b : b + batch_size]
        loss = model(**collator(part)).loss * (len(part) / len(rows))
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total
