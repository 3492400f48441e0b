"""Supervised pretraining of the ECG encoder on a built dataset's records.

    summary = pretrain_encoder("runs/default/instruct", "runs/default/ecg_encoder", steps=600)
    # then: model.ecg_weights=runs/default/ecg_encoder/ecg_encoder.safetensors in a recipe config

Real ECG-LLMs start from a pretrained ECG encoder (PULSE and GEM from ECG foundation models,
ECG-Chat from a contrastively trained one); an encoder learned from scratch inside the LLM's
language loss gets little gradient and the LLM learns to answer from its priors instead (seen on
the embedded default: the same scores with the ECG blanked). This is the small, local version:
every output token of the encoder learns the records' SCP statements (multi-label BCE) and their measured
intervals (standardized regression: HR, PR, QRS, QT, QTc, axis) on the training split only;
validation AUC and errors are reported on the validation split. Supervising every token (not
only their mean) matters: the LLM reads individual ECG positions through attention, so each one
should carry the record-level findings. The saved file loads with
`ecgllm.model.ecg_encoder.load_encoder_weights` (the recipe's `model.ecg_weights`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from dataclasses import replace as replace_fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import Stamp, replace, write_text
from ..model.configuration_ecgllm import EcgEncoderConfig
from ..model.ecg_encoder import EcgEncoder

log = logging.getLogger(__name__)

REGRESSION = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg")
MEASUREMENT_DROPOUT = 0.1  # share of measurements hidden from the encoder in each training sample


def _targets(records, codes: list[str] | None):
    labels = [set(json.loads(x or "{}")) for x in records["labels"]]
    if codes is None:
        counts: dict[str, int] = {}
        for s in labels:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        codes = sorted(c for c, n in counts.items() if n >= 3)
    y = np.array([[c in s for c in codes] for s in labels], dtype=np.float32)
    reg = np.full((len(labels), len(REGRESSION)), np.nan, dtype=np.float32)
    for i, f in enumerate(records["features"]):
        summary = json.loads(f or "{}").get("summary", {})
        for j, k in enumerate(REGRESSION):
            if summary.get(k) is not None:
                reg[i, j] = summary[k]
    return codes, y, reg


def measurement_vectors(signals: np.ndarray, masks: np.ndarray, fs: float = 500.0,
                        progress: bool = True) -> np.ndarray:  # fmt: skip
    """[N, MEASUREMENT_DIM] measurement vectors of [N, 12, n] mV signals (ecgllm.signal.features)."""
    from tqdm.auto import tqdm

    from ..signal.features import measurement_vector

    return np.stack([measurement_vector(x, fs, m) for x, m in
                     tqdm(zip(signals, masks, strict=True), total=len(signals), desc="measure", unit="rec",
                          disable=not progress)])  # fmt: skip


def rhythm_probe(enc: EcgEncoder, head: nn.Module, codes: list[str], x: np.ndarray, m: np.ndarray,
                 meas: np.ndarray | None, gold: list[str]) -> dict:  # fmt: skip
    """The stage-0 head's rhythm (the most likely of RHYTHM_CLASSES among `codes`) on records with
    known rhythm `gold`: per-class recall, balanced accuracy, AF sensitivity/specificity. A cheap
    check of whether the encoder reads rhythm on records it was not trained on (real ones)."""
    from ..text.vocab import RHYTHM_CLASSES

    cols = [codes.index(c) for c in RHYTHM_CLASSES if c in codes]
    names = [c for c in RHYTHM_CLASSES if c in codes]
    # with rhythm tokens those carry the rhythm, else the measurement tokens when there are some
    # (before a verdict token, which is last)
    k = enc.config.rhythm_tokens or enc.config.measurement_tokens
    v = 1 if enc.config.verdict_outputs else 0
    enc.eval()
    with torch.no_grad():
        logits = []
        for i in range(0, len(x), 64):
            args = [torch.from_numpy(x[i : i + 64]), torch.from_numpy(m[i : i + 64])]
            if meas is not None:
                args.append(torch.from_numpy(meas[i : i + 64]))
            h = enc(*args)
            h = h[:, h.shape[1] - v - k : h.shape[1] - v] if k else h
            logits.append(head(h).mean(1)[:, cols])
    picks = [names[int(j)] for j in torch.cat(logits).argmax(1)] if logits else []
    return rhythm_report(gold, picks)


def rhythm_report(gold: list[str], picks: list[str]) -> dict:
    """Per-class recall, balanced accuracy, AF sensitivity/specificity and the confusion
    (gold -> picked -> count) of rhythm picks against the gold rhythms."""
    from ..metrics.scores import class_recall

    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, picks, strict=True):
        confusion.setdefault(g, {})
        confusion[g][p] = confusion[g].get(p, 0) + 1
    return class_recall(gold, picks, positive="AFIB") | {"confusion": confusion}


def real_rhythm_inputs(source: str, root: str | Path, cfg, measured: bool, progress: bool = True):
    """real_rhythm_set at the encoder's rate, plus the measurement vectors when the encoder
    takes them: (signals, masks, measurements or None, gold rhythms)."""
    rx, rm, gold = real_rhythm_set(source, root, cfg.sampling_rate, progress)
    rmeas = measurement_vectors(rx, rm, cfg.sampling_rate, progress) if measured else None
    return rx, rm, rmeas, gold


def real_rhythm_set(source: str, root: str | Path, fs: float = 500.0, progress: bool = True):
    """Standardized records of a real folder with exactly one of RHYTHM_CLASSES (not paced):
    (signals [N, 12, n], lead masks, gold rhythm codes)."""
    from ..signal.databases import open_database
    from ..signal.preprocess import standardize
    from ..text.vocab import RHYTHM_CLASSES

    xs, ms, gold = [], [], []
    for rec in open_database(source, root).records():
        have = [c for c in RHYTHM_CLASSES if c in rec.labels]
        if len(have) != 1 or "PACE" in rec.labels:
            continue
        r = standardize(rec, fs=fs)
        xs.append(r.signal)
        ms.append(r.lead_mask)
        gold.append(have[0])
    if not xs:
        raise ValueError(f"{root}: no {source} record with one of the rhythms {RHYTHM_CLASSES}")
    return np.stack(xs).astype(np.float32), np.stack(ms).astype(bool), gold


OBJECTIVES = ("supervised", "contrastive", "masked")


@dataclass(frozen=True)
class PretrainSettings:
    """pretrain_encoder's training settings (recipes/pretrain_ecg_encoder.py's options)."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # records per step
    learning_rate: float = 1e-3  # peak learning rate (AdamW; warm-up, then cosine decay)
    seed: int = 0  # initialisation, batches and augmentation
    save_every: int = 100  # save the training state to OUT/checkpoint every N steps (0: never)
    # supervised: the records' statements and intervals; contrastive: ECG <-> report text (CLIP
    # or SigLIP loss against a frozen sentence encoder; zero-shot by label prompts afterwards);
    # masked: hidden time spans reconstructed from the rest (SimMIM / ST-MEM style, no labels)
    objective: str = "supervised"
    text_model: str = "minilm"  # contrastive: text tower (minilm, the PyPI package; or a folder)
    contrastive_dim: int = 128  # contrastive: the shared embedding size
    contrastive_loss: str = "clip"  # contrastive: clip (softmax per batch) or siglip (per pair)
    mask_ratio: float = 0.75  # masked: share of the time spans hidden and reconstructed

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if self.contrastive_loss not in ("clip", "siglip"):
            raise ValueError(
                f"contrastive_loss must be clip or siglip, not {self.contrastive_loss!r}"
            )
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), not {self.mask_ratio}")


_D = PretrainSettings()


def pretrain_encoder(data_dir: str | Path, out: str | Path, encoder_config: dict | None = None,
                     steps: int = _D.steps, batch_size: int = _D.batch_size,
                     learning_rate: float = _D.learning_rate, seed: int = _D.seed, progress: bool = True,
                     augment: dict | bool | None = True, real: list[tuple[str, str]] | None = None,
                     save_every: int = _D.save_every, objective: str = _D.objective,
                     text_model: str = _D.text_model, contrastive_dim: int = _D.contrastive_dim,
                     contrastive_loss: str = _D.contrastive_loss, mask_ratio: float = _D.mask_ratio,
                     ) -> dict:  # fmt: skip
    """Train, validate and save OUT/ecg_encoder.safetensors (+ its head, config and metrics).
    `augment`: SignalAugment settings (True = the defaults). `real`: (source, folder) pairs of
    real records on which the trained head's rhythm is reported (summary["real"]). Reuses a
    finished run with the same settings; every `save_every` steps the whole training state
    (weights, optimizer, schedule, every random generator) is saved to OUT/checkpoint, from which
    an interrupted run with the same settings resumes and ends with the same weights as an
    uninterrupted one."""
    from datasets import load_from_disk
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from ..metrics.scores import multilabel
    from ..model.factory import TINY_ECG

    out = Path(out)
    from ..data.augment import SignalAugment
    from ..signal.features import MEASUREMENT_DIM

    PretrainSettings(
        objective=objective, contrastive_loss=contrastive_loss, mask_ratio=mask_ratio
    )  # checks
    contrastive, masked = objective == "contrastive", objective == "masked"
    aug = SignalAugment.from_dict(augment)
    settings = {"data": str(data_dir), "encoder": encoder_config or TINY_ECG, "steps": steps,
                "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                "output_stats": "train", "augment": asdict(aug) if aug else None,
                "real": [list(r) for r in real or []]}  # fmt: skip
    if contrastive:  # (a supervised run's settings keep their old form: its stamps stay valid)
        settings.update(objective=objective, text_model=text_model, contrastive_dim=contrastive_dim,
                        contrastive_loss=contrastive_loss)  # fmt: skip
    if masked:
        settings.update(objective=objective, mask_ratio=mask_ratio)
    done = Stamp(out / "pretrain_summary.json")  # the summary holds the settings that made it
    if done.matches(settings, key="settings") and (out / "ecg_encoder.safetensors").exists():
        shutil.rmtree(out / "checkpoint", ignore_errors=True)  # killed just before removing it
        return done.read() | {"reused": True}
    from .setup import make_accelerator

    # data parallel (accelerate launch / torchrun): every process draws the same batch and the
    # same augmentation, runs its contiguous share of the batch, and the gradients are summed
    # (each share's loss is its part of the whole batch's), so N processes train what one does
    acc, _ = make_accelerator()
    world, rank, dev = acc.num_processes, acc.process_index, acc.device
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must divide among the {world} processes")
    share = batch_size // world
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    records = load_from_disk(str(Path(data_dir) / "records"))
    if "signal" not in records.column_names:
        raise ValueError(f"{data_dir}/records has no signals: build with the signal modality")
    splits = np.array(records["split"])
    tr, va = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "validation")
    if len(tr) < batch_size:
        raise ValueError(
            f"{data_dir}: {len(tr)} training records, fewer than one batch of {batch_size}"
        )
    codes, y, reg = _targets(records, None)
    mu, sd = np.nanmean(reg[tr], 0), np.nanstd(reg[tr], 0) + 1e-6
    sig = records.select_columns(["signal", "lead_mask"]).with_format("numpy")
    x_all = np.stack([sig[i]["signal"] for i in range(len(records))]).astype(np.float32)
    m_all = np.stack([sig[i]["lead_mask"] for i in range(len(records))]).astype(bool)
    kw = dict(encoder_config or TINY_ECG)
    if kw.get("measurement_tokens") or kw.get("rhythm_tokens"):
        kw["measurement_dim"] = MEASUREMENT_DIM
    cfg = EcgEncoderConfig(**kw)
    # a verdict token (EcgEncoderConfig.verdict_outputs): the encoder and head train exactly as
    # without it, and the trained head is then put into the encoder as its verdict head (when
    # the head trained inside the encoder, on every token including the verdict's own, it read
    # real records worse: LUDB rhythm 0.624 vs 0.791)
    final_cfg, cfg = cfg, EcgEncoderConfig(**{**kw, "verdict_outputs": 0})
    meas_all = (
        measurement_vectors(x_all, m_all, cfg.sampling_rate, progress)
        if cfg.uses_measurements
        else None
    )
    enc = EcgEncoder(cfg)
    n_out = len(codes) + len(REGRESSION)
    text_feat = text_ids = None
    if (contrastive or masked) and final_cfg.verdict_outputs:
        raise ValueError(
            f"verdict_outputs needs the supervised objective (its head is the verdict), not {objective}"
        )
    if contrastive:
        from ..evaluation.zeroshot import ContrastiveHead, TextTower
        from ..evaluation.zeroshot import contrastive_loss as pair_loss

        reports = [r or "" for r in records["report"]]
        if not any(reports[i] for i in tr):
            raise ValueError(
                f"{data_dir}: the training records have no report text to contrast with"
            )
        tower = TextTower(text_model)
        uniq, inverse = tower.encode_unique(reports)
        text_feat, text_ids = torch.from_numpy(uniq), torch.from_numpy(inverse)
        log.info("contrastive: %d distinct reports of %d records", len(uniq), len(reports))
    if final_cfg.verdict_outputs and final_cfg.verdict_outputs != n_out:
        raise ValueError(f"verdict_outputs is {final_cfg.verdict_outputs}, but {data_dir} gives the head {n_out} "
                         f"outputs ({len(codes)} statements + {len(REGRESSION)} intervals)")  # fmt: skip
    if contrastive:
        head = ContrastiveHead(cfg.hidden_size, text_feat.shape[1], contrastive_dim)
    elif masked:
        head = MaskedHead(cfg)
    else:
        head = nn.Linear(cfg.hidden_size, n_out)
    enc.to(dev)
    head.to(dev)
    params = [*enc.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))),
    )
    pos_w = torch.from_numpy(np.clip((len(tr) - y[tr].sum(0)) / np.maximum(y[tr].sum(0), 1), 1, 20))
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_w.to(dev), reduction="none")
    # with measurement tokens, the rhythm and the rate are theirs to carry: the waveform tokens
    # are not asked for them (on the simulator they learn rate cues that real records break)
    # with rhythm tokens, those carry the rhythm and the rate alone and are asked nothing else
    # (they see only the rhythm measurements)
    k_meas, k_rhy = cfg.measurement_tokens, cfg.rhythm_tokens
    from ..text.vocab import RHYTHM_CLASSES

    rate_outputs = [i for i, c in enumerate(codes) if c in RHYTHM_CLASSES] + [
        len(codes) + REGRESSION.index("hr_bpm")
    ]
    n_tok = cfg.num_tokens
    weight = torch.ones(n_tok, n_out)
    # the last `carriers` tokens carry the rate outputs
    carriers = k_rhy or k_meas
    if carriers:
        weight[: n_tok - carriers, rate_outputs] = 0.0
    if k_rhy:
        other = sorted(set(range(n_out)) - set(rate_outputs))
        weight[n_tok - k_rhy :, other] = 0.0

    gen = torch.Generator().manual_seed(seed)
    measurement_drop = replace_fields(SignalAugment.off(), measurement_dropout=MEASUREMENT_DROPOUT)

    def forward(idx: np.ndarray, augment: bool, rows: slice | None = None) -> torch.Tensor:
        """The batch `idx` (augmented when training), through the encoder (and head) for the
        `rows` of it this process runs (None: all)."""
        x, m = torch.from_numpy(x_all[idx]), torch.from_numpy(m_all[idx])
        meas = torch.from_numpy(meas_all[idx]) if meas_all is not None else None
        if augment and aug is not None:  # the encoder must not memorise records or recordings
            x, m = aug(x, m, gen)
        if augment and meas is not None:  # no single measurement may carry a label alone
            meas = measurement_drop.measurements(meas, gen)
        pm = head.draw_mask(len(idx), mask_ratio, gen) if masked else None
        total = head.total(m, pm) if masked else None  # the whole batch's, whatever the share
        if rows is not None:
            x, m, pm = x[rows], m[rows], pm[rows] if masked else None
            meas = meas[rows] if meas is not None else None
        x, m = x.to(dev), m.to(dev)
        meas = meas.to(dev) if meas is not None else None
        if masked:
            pm = pm.to(dev)
            h = enc(x, m, meas, patch_mask=pm, mask_embedding=head.mask_embedding)
            return head.loss(h, x, m, pm, total)
        h = enc(x, m, meas)
        if contrastive:
            return h  # [B, tokens, hidden]: the head pools and projects
        return head(h)  # [B, tokens, outputs]: every token is asked for the whole record's labels

    def supervised_loss(
        o: torch.Tensor, idx: np.ndarray, rows: slice | None = None
    ) -> torch.Tensor:
        """The batch `idx`'s loss, or with `rows` (the share `o` holds) that share's part of it:
        normalised by the whole batch's counts, so the shares' losses sum to the batch's."""
        t = o.shape[1]
        w = weight.to(o.device)
        r_all = torch.from_numpy((reg[idx] - mu) / sd)[:, None].expand(-1, t, -1).to(o.device)
        wc, wr = w[None, :, : len(codes)], w[None, :, len(codes) :]
        # each output averaged over the tokens that carry it, then over outputs
        norm_c = (wc.sum((0, 1)) * len(idx)).clamp(min=1)
        norm_r = (wr * ~torch.isnan(r_all)).sum((0, 1)).clamp(min=1)
        sel = slice(None) if rows is None else rows
        r, yy = r_all[sel], torch.from_numpy(y[idx][sel])[:, None].expand(-1, t, -1).to(o.device)
        lc = bce(o[..., : len(codes)], yy)
        loss = ((lc * wc).sum((0, 1)) / norm_c).mean()
        se = ((o[..., len(codes) :] - r.nan_to_num()) ** 2) * (wr * ~torch.isnan(r)).to(o.dtype)
        return loss + 0.5 * (se.sum((0, 1)) / norm_r).mean()

    def sum_over_processes(t: torch.Tensor) -> torch.Tensor:
        return acc.reduce(t, reduction="sum") if world > 1 else t

    def sync_gradients() -> None:
        """Sum the shares' gradients (one flat all-reduce)."""
        if world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = sum_over_processes(torch.cat([g.reshape(-1) for g in grads]))
        at = 0
        for g in grads:
            g.copy_(flat[at : at + g.numel()].view_as(g))
            at += g.numel()

    t0 = time.perf_counter()
    enc.train()
    losses: list[float] = []
    ckpt = out / "checkpoint"
    start = 0
    if (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=True)  # tensors, numbers, strings only
        if state["settings"] == json.loads(json.dumps(settings)):
            enc.load_state_dict(state["encoder"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            rng.bit_generator.state = state["numpy_rng"]
            gen.set_state(state["augment_rng"])
            torch.set_rng_state(state["torch_rng"])
            start, losses = state["step"], state["losses"]
            log.info("resuming the ECG encoder at step %d of %d from %s", start, steps, ckpt)
    bar = tqdm(range(start, steps), desc="ecg encoder", unit="step", disable=not progress,
               initial=start, total=steps)  # fmt: skip
    rows = slice(rank * share, (rank + 1) * share) if world > 1 else None
    for step in bar:
        if save_every > 0 and step > start and step % save_every == 0:
            if acc.is_main_process:
                _save_state(ckpt, step, settings, enc, head, opt, sched, rng, gen, losses)
            acc.wait_for_everyone()
        idx = rng.choice(tr, batch_size, replace=False)
        o = forward(idx, augment=True, rows=rows)
        if contrastive:  # records with the same report are each other's positives
            e = head.ecg(o)
            if world > 1:  # every share's ECG embeddings (gradients flow back to their process)
                from torch.distributed.nn.functional import all_gather

                e = torch.cat(all_gather(e))
            ids = text_ids[idx]
            # every process computes the whole batch's loss: each takes 1/world of it
            loss = pair_loss(e, head.text(text_feat[ids].to(dev)), ids.to(dev), head.scale(),
                             contrastive_loss) / world  # fmt: skip
        elif masked:
            loss = o  # forward() returned the share's part of the reconstruction loss
        else:
            loss = supervised_loss(o, idx, rows)
        opt.zero_grad()
        loss.backward()
        sync_gradients()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(sum_over_processes(loss.detach())))
    if not acc.is_main_process:  # the main process validates and saves
        return {"main": False, "process": rank, "processes": world}
    # validation, probes and saving on the CPU (forward() reads `dev` when called)
    dev = torch.device("cpu")
    enc.to(dev)
    head.to(dev)
    enc.eval()
    metrics: dict = {}
    if masked:  # the reconstruction of hidden spans on the validation split, against predicting 0
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed + 1)
            mse, var = [], []
            for i in range(0, len(va), 64):
                j = va[i : i + 64]
                x, m = torch.from_numpy(x_all[j]), torch.from_numpy(m_all[j])
                meas = torch.from_numpy(meas_all[j]) if meas_all is not None else None
                pm = head.draw_mask(len(j), mask_ratio, g)
                h = enc(x, m, meas, patch_mask=pm, mask_embedding=head.mask_embedding)
                mse.append(float(head.loss(h, x, m, pm)) * len(j))
                var.append(float(head.loss(None, x, m, pm)) * len(j))
        if len(va):
            metrics = {"val_mse": sum(mse) / len(va), "val_r2": 1 - sum(mse) / max(sum(var), 1e-12),
                       "val_basis": "masked spans reconstructed (R2 against predicting 0)"}  # fmt: skip
    elif contrastive:
        metrics = _contrastive_checks(
            enc, head, tower, codes, y, va, x_all, m_all, meas_all, real, progress
        )
    elif len(va):
        with torch.no_grad():
            o = torch.cat([forward(va[i : i + 64], augment=False) for i in range(0, len(va), 64)])
            # a single token's predictions (what any one LLM position sees): the last measurement
            # token when there are some (with rhythm tokens it no longer carries the rate outputs)
            tok = o[:, n_tok - k_rhy - 1 if k_meas else 0].numpy()
            o = ((o * weight[None]).sum(1) / weight.sum(0).clamp(min=1)).numpy()
        ml = multilabel(y[va], 1 / (1 + np.exp(-o[:, : len(codes)])), codes)
        pred = o[:, len(codes) :] * sd + mu
        mae = {
            k: float(np.nanmean(np.abs(pred[:, j] - reg[va, j]))) for j, k in enumerate(REGRESSION)
        }
        one = multilabel(y[va], 1 / (1 + np.exp(-tok[:, : len(codes)])), codes)
        metrics = {"val_macro_auc": ml["macro_auc"], "val_macro_auc_one_token": one["macro_auc"], "val_mae": mae,
                   "val_auc": {k: v["auc"] for k, v in ml["per_label"].items() if "auc" in v}}  # fmt: skip
    # the LLM sees the encoder's output standardized with the training split's statistics (see
    # EcgEncoder.fit_output_stats); fitted after validation, whose head saw the raw output
    if real and not contrastive and not masked:
        metrics["real"] = {}
        for source, root in real:
            rx, rm, rmeas, gold = real_rhythm_inputs(
                source, root, cfg, meas_all is not None, progress
            )
            r = rhythm_probe(enc, head, codes, rx, rm, rmeas, gold)
            metrics["real"][f"{source}:{root}"] = r
    if final_cfg.verdict_outputs:  # the trained head becomes the encoder's verdict head
        # (the outputs stage 0 asked of the tokens it reads: with rhythm tokens, rhythm and rate)
        enc = _with_verdict(enc, head, final_cfg, trained=weight[n_tok - 1] > 0)
        cfg = final_cfg
    stats = enc.fit_output_stats(
        tuple(
            torch.from_numpy(a[tr[i : i + 64]]) for a in (x_all, m_all, meas_all) if a is not None
        )
        for i in range(0, len(tr), 64)
    )
    metrics["output_mean_direction_share"] = stats["mean_direction_share"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "ecg_encoder.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(tmp))
    replace(tmp, out / "ecg_encoder.safetensors")
    tmp = out / "head.safetensors.tmp"  # the label/interval head, for probing the encoder later
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp))
    replace(tmp, out / "head.safetensors")
    write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    summary = {"settings": settings, "codes": codes, "train_records": len(tr), "val_records": len(va),
               "processes": world,
               "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
               "seconds": round(time.perf_counter() - t0, 1), **metrics,
               "weights": str(out / "ecg_encoder.safetensors")}  # fmt: skip
    write_text(done.path, json.dumps(summary, indent=1, default=float))
    shutil.rmtree(ckpt, ignore_errors=True)
    return summary


def _with_verdict(
    enc: EcgEncoder, head: nn.Linear, cfg: EcgEncoderConfig, trained: torch.Tensor | None = None
) -> EcgEncoder:
    """`enc` (trained without a verdict token) as an encoder of `cfg` (verdict_outputs set) whose
    verdict head is `head`: its verdict = the head's outputs averaged over the rhythm tokens (else
    the measurement tokens), what the rhythm probe reads. `trained` [outputs] bool: the outputs
    stage 0 trained on those tokens; the others are zeroed (with rhythm tokens, the statements:
    the head's reading of them there is noise). The verdict embedding is a fixed random
    projection (the encoder is frozen after stage 0; the LLM's projector learns to read it)."""
    out = EcgEncoder(cfg)
    missing, unexpected = out.load_state_dict(enc.state_dict(), strict=False)
    if unexpected or any(not k.startswith("verdict_") for k in missing):
        raise RuntimeError(f"verdict encoder: missing {missing}, unexpected {unexpected}")
    out.verdict_head.load_state_dict(head.state_dict())
    if trained is not None and not bool(trained.all()):
        with torch.no_grad():
            out.verdict_head.weight[~trained] = 0.0
            out.verdict_head.bias[~trained] = 0.0
    return out.eval()


def _save_state(
    ckpt: Path, step: int, settings: dict, enc, head, opt, sched, rng, gen, losses
) -> None:
    """OUT/checkpoint/state.pt: everything the loop needs to go on exactly as if never stopped
    (written to a temporary folder, then swapped in)."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"step": step, "settings": json.loads(json.dumps(settings)), "encoder": enc.state_dict(),
                "head": head.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "numpy_rng": rng.bit_generator.state, "augment_rng": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "losses": list(losses)}, tmp / "state.pt")  # fmt: skip
    shutil.rmtree(ckpt, ignore_errors=True)
    replace(tmp, ckpt)


def _contrastive_checks(
    enc, head, tower, codes, y, va, x_all, m_all, meas_all, real, progress
) -> dict:
    """A contrastive encoder's validation: zero-shot macro AUC over the statements on the
    validation split (label prompts, ecgllm.evaluation.zeroshot), and the zero-shot rhythm (the
    closest of the rhythm prompts) of the real records."""
    from ..evaluation.zeroshot import ContrastiveEncoder, label_aucs
    from ..text.vocab import RHYTHM_CLASSES

    z = ContrastiveEncoder(enc, head, tower)
    out: dict = {}
    if len(va):
        s = z.zero_shot(x_all[va], m_all[va], None if meas_all is None else meas_all[va], codes)
        zs = label_aucs(y[va], s, codes)
        out.update(val_macro_auc=zs["macro_auc"], val_auc={k: v["auc"] for k, v in zs["per_label"].items()},
                   val_basis="zero-shot: cosine to each statement's name")  # fmt: skip
    if real:
        out["real"] = {}
        for source, root in real:
            rx, rm, rmeas, gold = real_rhythm_inputs(
                source, root, enc.config, meas_all is not None, progress
            )
            names = list(RHYTHM_CLASSES)
            picks = [names[int(j)] for j in z.zero_shot(rx, rm, rmeas, names).argmax(1)]
            out["real"][f"{source}:{root}"] = rhythm_report(gold, picks) | {"basis": "zero-shot"}
    enc.train()
    return out


class MaskedHead(nn.Module):
    """Masked pretraining's parts that do not ship with the encoder: the mask embedding and a
    linear decoder from each pooled time token to the `pool` patches it covers (all leads, the
    encoder's input scale). Masking is by whole pooled spans (pool x patch_size samples, 200 ms on
    the tiny encoder), so a token never sees part of what it reconstructs."""

    def __init__(self, cfg: EcgEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.mask_embedding = nn.Parameter(torch.zeros(cfg.hidden_size))
        nn.init.normal_(self.mask_embedding, std=0.02)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.pool * cfg.n_leads * cfg.patch_size)

    def spans(self) -> int:
        return (self.cfg.n_samples // self.cfg.patch_size) // self.cfg.pool

    def draw_mask(self, batch: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
        """[B, n_patches] bool: round(ratio * spans) spans hidden per record, chosen at random."""
        s, k = self.spans(), max(1, round(ratio * self.spans()))
        order = torch.rand(batch, s, generator=gen).argsort(dim=1)
        span = torch.zeros(batch, s, dtype=torch.bool)
        span.scatter_(1, order[:, :k], True)
        return span.repeat_interleave(self.cfg.pool, dim=1)

    def _hidden(self, m: torch.Tensor, pm: torch.Tensor) -> torch.Tensor:
        """[B, spans, leads, 1]: 1 where a hidden span meets a present lead."""
        hidden = pm[:, :: self.cfg.pool][:, : self.spans()]  # [B, spans]
        return (hidden[:, :, None] & m.bool()[:, None, :]).to(torch.float32)[..., None]

    def total(self, m: torch.Tensor, pm: torch.Tensor) -> torch.Tensor:
        """How many samples a batch's loss averages over (its hidden spans of present leads)."""
        return (self._hidden(m, pm).sum() * self.cfg.pool * self.cfg.patch_size).clamp(min=1)

    def loss(
        self, h: torch.Tensor | None, x: torch.Tensor, m: torch.Tensor, pm: torch.Tensor,
        total: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Mean squared error over the hidden spans' samples of the present leads (h None: of
        predicting zeros, the baseline); with `total` (MaskedHead.total of the whole batch), this
        share's part of the whole batch's mean."""
        c = self.cfg
        b, s = x.shape[0], self.spans()
        n = s * c.pool * c.patch_size
        target = (
            (x[:, :, :n] * c.input_scale)
            .reshape(b, c.n_leads, s, c.pool * c.patch_size)
            .permute(0, 2, 1, 3)
        )
        if h is None:
            pred = torch.zeros_like(target)
        else:
            pred = self.decoder(h[:, :s]).reshape(b, s, c.pool, c.n_leads, c.patch_size)
            pred = pred.permute(0, 1, 3, 2, 4).reshape(b, s, c.n_leads, c.pool * c.patch_size)
        w = self._hidden(m, pm).to(target.dtype)
        total = self.total(m, pm) if total is None else total.to(target.device)
        return (((pred - target) ** 2) * w).sum() / total
