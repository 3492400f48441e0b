"""Train an ECG-language model: stage `align` (LLM frozen) or `sft` (LoRA / full), one recipe.

    python recipes/sft.py --config recipes/configs/tiny_cpu.yaml                         # 1 CPU
    python recipes/sft.py --config recipes/configs/tiny_cpu.yaml train.max_steps=20 lora.r=8
    python recipes/sft.py --config recipes/configs/tiny_cpu.yaml --dry-run               # sizes, memory
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/sft.py --config ...
    accelerate launch --config_file recipes/accelerate/zero3.yaml recipes/sft.py --config recipes/configs/llama31_8b_zero3.yaml

Features (config key: what it does):
- lora.mode align | lora | full: what trains (align: projectors + ECG encoder; lora: + LoRA on the
  LLM's linears; full: everything); model.init_from: start from a previous stage's output.
- data.group_by_length: batches of similar length (less padding); data.packing: each micro-batch
  packed into as few rows as fit (same loss, less padding); data.max_length: longer samples
  are cut at the end (never inside a placeholder run) or dropped and counted.
- train.*: HF TrainingArguments names; the loss is averaged over all supervised tokens of the
  global batch (every process, every accumulation step), so 1 process and N processes at the same
  global batch give the same losses.
- train.save_steps / save_total_limit: atomic checkpoints (adapter + projectors + processor +
  optimizer/scheduler/RNG state); train.resume_from_checkpoint: "latest" or a folder, continuing
  exactly; SIGTERM saves a checkpoint and exits.
- data.curriculum: stages of task families, each for a share of the run's steps (describe ->
  choose -> verify -> everything), resumable like any run.
- model.gradient_checkpointing, train.mixed_precision (bf16 on GPU), output.report_to csv |
  tensorboard; a loss curve PNG at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ecgllm.atomic import replace, write_text
from ecgllm.cli import describe
from ecgllm.data.collator import (
    EcgCollator,
    approx_lengths,
    curriculum_order,
    length_grouped_order,
    stage_steps,
)
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.model.lora import trainable_summary
from ecgllm.retrieval import retriever_for
from ecgllm.train.checkpoint import latest_checkpoint, save_checkpoint, save_model_files
from ecgllm.train.config import ConfigError, RecipeConfig, check_curriculum, load_config
from ecgllm.train.logs import MetricLog
from ecgllm.train.setup import (
    make_accelerator,
    memory_estimate,
    param_groups,
    scheduler,
    setup_model,
    total_steps,
)

log = logging.getLogger("sft")


class Subset(Dataset):
    def __init__(self, base: EcgInstructionDataset, indices: list[int]):
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.base[self.indices[i]]


def cap_per_task(idx: list[int], tasks: list[str], cap: int | dict | None, seed: int) -> list[int]:
    """At most `cap` (an int, or {task: n}) samples of each task family from `idx`: a seeded random
    subset, in the original order."""
    if cap is None:
        return idx
    rng = np.random.default_rng(seed)
    by_task: dict[str, list[int]] = {}
    for i in idx:
        by_task.setdefault(tasks[i], []).append(i)
    keep: set[int] = set()
    for task, members in by_task.items():
        n = cap.get(task) if isinstance(cap, dict) else cap
        keep.update(
            members
            if n is None or len(members) <= n
            else rng.choice(members, n, replace=False).tolist()
        )
    return [i for i in idx if i in keep]


class SFTRecipe:
    def __init__(self, cfg: RecipeConfig, dry_run: bool = False):
        self.cfg = cfg
        self.dry_run = dry_run
        self.stop_requested = False

    # --- setup -------------------------------------------------------------------------------
    def setup_accelerator(self) -> None:
        from accelerate.utils import set_seed

        self.acc, self.mixed_precision = make_accelerator(
            self.cfg.train.mixed_precision, self.cfg.train.gradient_accumulation_steps
        )
        set_seed(self.cfg.train.seed, deterministic=False)
        self.out = Path(self.cfg.output.dir)
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)

    def setup_model(self) -> None:
        plugin = getattr(self.acc.state, "deepspeed_plugin", None)
        if plugin is not None:
            # build the whole model on each process and let ZeRO-3 partition it at prepare():
            # under zero.Init the composite model would initialise already-split sub-models
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
        try:
            self.model, self.processor, self.random_init = setup_model(
                self.cfg, base_dir=self.out if self.acc.is_main_process else None
            )
        finally:
            if plugin is not None:
                plugin.set_deepspeed_weakref()
        self.summary = trainable_summary(self.model)

    def setup_data(self) -> None:
        c = self.cfg.data
        self.train_ds = EcgInstructionDataset(c.path, "train")
        self.eval_ds = EcgInstructionDataset(c.path, "validation")

        def pick(ds: EcgInstructionDataset, limit: int | None) -> list[int]:
            return [i for i, t in enumerate(ds.samples["task"]) if not c.tasks or t in c.tasks][
                :limit
            ]

        all_tasks = list(self.train_ds.samples["task"])
        self.train_idx = cap_per_task(
            pick(self.train_ds, c.limit_train), all_tasks, c.max_per_task, self.cfg.train.seed
        )
        self.train_tasks = [all_tasks[i] for i in self.train_idx]
        self.eval_idx = pick(self.eval_ds, c.limit_eval)
        if not self.train_idx:
            raise ConfigError(f"no training samples in {c.path} for tasks {c.tasks}")
        self.lengths = approx_lengths(
            self.train_ds,
            self.train_idx,
            self.processor.ecg_length_estimate,
            self.processor.num_image_tokens,
        )
        from ecgllm.data.augment import SignalAugment

        try:
            augment = SignalAugment.from_dict(c.augment)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"data.augment: {e}") from None
        if augment and augment.measurement_swap and augment.swap_keep is None:
            # a swapped ECG keeps what the encoder's rhythm tokens read
            ecg_cfg = getattr(self.model.config, "ecg_config", None)
            rhythm = getattr(ecg_cfg, "rhythm_features", None)
            if rhythm:
                augment = dataclasses.replace(augment, swap_keep=tuple(rhythm))
        try:
            retriever = retriever_for(c.retrieve, c.retrieval_index)
        except (OSError, ValueError) as e:
            raise ConfigError(f"data.retrieval_index: {e}") from None
        try:
            self.collator = EcgCollator(self.processor, max_length=c.max_length, packing=c.packing,
                                        augment=augment, seed=self.cfg.train.seed, retriever=retriever,
                                        ecg_token_loss=c.ecg_token_loss)  # fmt: skip
        except ValueError as e:  # packing with a native VLM backbone
            raise ConfigError(f"data.packing: {e}; set data.packing=false") from None
        self.eval_collator = EcgCollator(self.processor, max_length=c.max_length, retriever=retriever,
                                         ecg_token_loss=c.ecg_token_loss)  # fmt: skip

    def setup_optimizer(self) -> None:
        t = self.cfg.train
        self.steps_per_epoch, self.total = total_steps(
            self.cfg, len(self.train_idx), self.acc.num_processes
        )
        self.stages = self.curriculum_plan()
        if self.stages:  # the staged run is one long "epoch": resume skips into it as into any
            self.steps_per_epoch = self.total
        plugin = getattr(self.acc.state, "deepspeed_plugin", None)
        if plugin is not None:  # fill the DeepSpeed config's "auto" values from ours
            ds = plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = t.per_device_train_batch_size
            ds["gradient_accumulation_steps"] = t.gradient_accumulation_steps
            ds["gradient_clipping"] = t.max_grad_norm
            ds["train_batch_size"] = (
                t.per_device_train_batch_size
                * t.gradient_accumulation_steps
                * self.acc.num_processes
            )
            h = (
                self.acc.unwrap_model(self.model).config.llm_hidden_size
                if hasattr(self.model, "config")
                else 1024
            )
            zero = ds.setdefault("zero_optimization", {})
            for key, value in (("reduce_bucket_size", h * h), ("stage3_prefetch_bucket_size", int(0.9 * h * h)),
                               ("stage3_param_persistence_threshold", 10 * h)):  # fmt: skip
                if zero.get(key) == "auto":
                    zero[key] = value
        groups = param_groups(
            self.model, t.learning_rate, t.projector_learning_rate, t.weight_decay
        )
        self.optimizer = torch.optim.AdamW(groups, lr=t.learning_rate)
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.scheduler = scheduler(
            self.optimizer, t.lr_scheduler_type, int(t.warmup_ratio * self.total), self.total
        )
        self.acc.register_for_checkpointing(self.scheduler)

    def curriculum_plan(self) -> list[tuple[tuple[str, ...], int]]:
        """data.curriculum as (task families, optimizer steps) per stage; [] without one."""
        stages = check_curriculum(self.cfg.data.curriculum)
        if not stages:
            return []
        present = list(dict.fromkeys(self.train_tasks))
        steps = stage_steps([share for _, share in stages], self.total)
        plan = []
        for k, ((fam, _), n) in enumerate(zip(stages, steps, strict=True), 1):
            fam = tuple(present) if fam is None else fam
            if not any(t in fam for t in present):
                raise ConfigError(f"data.curriculum stage {k}: no training samples of {list(fam)} in "
                                  f"{self.cfg.data.path} (families present: {', '.join(present)})")  # fmt: skip
            plan.append((fam, n))
            log.info("curriculum stage %d: steps %d, tasks %s", k, n, ", ".join(fam))
        return plan

    def order(self, epoch: int) -> list[int]:
        """Positions in train_idx for one epoch (with a curriculum: for the whole run), identical
        on every process."""
        g = self.cfg.train.per_device_train_batch_size * self.acc.num_processes
        if self.stages:
            per_step = g * self.cfg.train.gradient_accumulation_steps
            lengths = self.lengths if self.cfg.data.group_by_length else None
            return curriculum_order(
                self.train_tasks, self.stages, per_step, self.cfg.train.seed, lengths, g
            )
        seed = self.cfg.train.seed * 1000 + epoch
        if self.cfg.data.group_by_length:
            return length_grouped_order(self.lengths, g, seed)
        return np.random.default_rng(seed).permutation(len(self.train_idx)).tolist()

    def loader(self, epoch: int, skip: int = 0):
        order = self.order(epoch)
        ds = Subset(self.train_ds, [self.train_idx[i] for i in order])
        dl = DataLoader(ds, batch_size=self.cfg.train.per_device_train_batch_size, shuffle=False,
                        collate_fn=self.collator, drop_last=True)  # fmt: skip
        dl = self.acc.prepare(dl)
        return self.acc.skip_first_batches(dl, skip) if skip else dl

    # --- steps -------------------------------------------------------------------------------
    def _global_tokens(self, batches: list[dict]) -> torch.Tensor:
        local = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        return self.acc.gather(torch.tensor([local], device=self.acc.device)).sum()

    def train_step(self, batches: list[dict]) -> float:
        """One optimizer step over the accumulation micro-batches; returns the global mean loss."""
        n_items = self._global_tokens(batches).clamp(min=1)
        scale = self.acc.num_processes * len(batches)
        total = torch.zeros((), device=self.acc.device)
        for b in batches:
            with self.acc.accumulate(self.model):
                out = self.model(**b, num_items_in_batch=n_items, supervised_logits_only=True)
                self.acc.backward(out.loss * scale)
                total += out.loss.detach()
                if self.acc.sync_gradients and self.cfg.train.max_grad_norm > 0:
                    self.acc.clip_grad_norm_(
                        [p for p in self.model.parameters() if p.requires_grad],
                        self.cfg.train.max_grad_norm,
                    )
                self.optimizer.step()
                self.optimizer.zero_grad()
        self.scheduler.step()
        return float(self.acc.reduce(total, reduction="sum"))

    @torch.no_grad()
    def evaluate(self) -> float | None:
        if not self.eval_idx:
            return None
        self.model.eval()
        ds = Subset(self.eval_ds, self.eval_idx)
        dl = self.acc.prepare(DataLoader(ds, batch_size=self.cfg.train.per_device_eval_batch_size,
                                         collate_fn=self.eval_collator))  # fmt: skip
        loss_sum = torch.zeros((), device=self.acc.device)
        count = torch.zeros((), device=self.acc.device)
        for b in dl:
            n = (b["labels"][:, 1:] != -100).sum()
            out = self.model(**b, num_items_in_batch=n.clamp(min=1), supervised_logits_only=True)
            loss_sum += out.loss * n
            count += n
        self.model.train()
        return float(self.acc.reduce(loss_sum, "sum") / self.acc.reduce(count, "sum").clamp(min=1))

    def save(self, step: int, state: dict) -> Path:
        sd = self.acc.get_state_dict(self.model)  # gathers ZeRO-3 shards on every rank
        tmp_state = self.out / f".state-{step:06d}"
        self.acc.save_state(str(tmp_state), safe_serialization=True)
        path = None
        if self.acc.is_main_process:
            path = save_checkpoint(self.out, step, self.acc.unwrap_model(self.model), self.processor, self.cfg.lora.mode,
                                   state, self.cfg.to_dict(), keep=self.cfg.train.save_total_limit,
                                   state_dict=sd, state_dir=tmp_state)  # fmt: skip
        self.acc.wait_for_everyone()
        return path or self.out / f"checkpoint-{step:06d}"

    # --- the loop ----------------------------------------------------------------------------
    def train(self) -> dict:
        t0 = time.perf_counter()
        cfg, acc = self.cfg, self.acc
        metrics = MetricLog(self.out, cfg.output.report_to, enabled=acc.is_main_process)
        step, losses = 0, []
        resume = cfg.train.resume_from_checkpoint
        ckpt = None
        if resume == "latest":  # none yet (killed before the first save): a fresh start
            ckpt = latest_checkpoint(self.out)
            if ckpt is None:
                log.info(
                    "resume_from_checkpoint=latest: no checkpoint in %s yet, starting", self.out
                )
        elif resume:
            ckpt = Path(resume)
            if not (ckpt / "trainer_state.json").exists():
                raise ConfigError(f"resume_from_checkpoint={resume!r}: not a checkpoint folder")
        if ckpt is not None:
            acc.load_state(str(ckpt / "state"))
            st = json.loads((ckpt / "trainer_state.json").read_text())
            step, losses = st["global_step"], st["losses"]
            metrics.truncate_after(step)
            log.info("resumed from %s at step %d", ckpt, step)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        g = cfg.train.gradient_accumulation_steps
        bar = None
        if acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total, initial=step, desc="train", unit="step")
        self.model.train()
        while step < self.total and not self.stop_requested:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            it = iter(self.loader(epoch, skip=in_epoch * g))
            for _ in range(in_epoch, self.steps_per_epoch):
                batches = [b for _, b in zip(range(g), it, strict=False)]
                if len(batches) < g:
                    break
                # dropout randomness from (seed, step, rank) alone: a resumed run draws exactly what
                # the uninterrupted one drew, whatever data loading consumed in between
                torch.manual_seed(cfg.train.seed * 1_000_003 + step * 1009 + acc.process_index)
                loss = self.train_step(batches)
                step += 1
                losses.append(round(loss, 6))
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}")
                if step % cfg.train.logging_steps == 0 or step == 1:
                    metrics.write(step, "train", loss=loss, lr=self.scheduler.get_last_lr()[0])
                if cfg.train.eval_steps and step % cfg.train.eval_steps == 0:
                    ev = self.evaluate()
                    if ev is not None:
                        metrics.write(step, "validation", loss=ev)
                state = {"global_step": step, "epoch": epoch, "losses": losses}
                if (
                    cfg.train.save_steps and step % cfg.train.save_steps == 0
                ) or self.stop_requested:
                    self.save(step, state)
                if step >= self.total or self.stop_requested:
                    break
        if bar is not None:
            bar.close()
        if self.stop_requested:
            log.warning(
                "SIGTERM: saved checkpoint at step %d; resume with train.resume_from_checkpoint=latest",
                step,
            )
            return {"stopped_at": step, "losses": losses}
        ev = self.evaluate()
        if ev is not None:
            metrics.write(step, "validation", loss=ev)
        state = {
            "global_step": step,
            "epoch": step // self.steps_per_epoch,
            "losses": losses,
            "eval_loss": ev,
        }
        if cfg.train.save_steps == 0 or step % cfg.train.save_steps:
            self.save(step, state)
        final = self.out / "final"
        sd = acc.get_state_dict(self.model)  # collective under ZeRO-3: every rank calls it
        if acc.is_main_process:
            import yaml

            tmp = self.out / "final.tmp"  # written whole, then swapped in
            shutil.rmtree(tmp, ignore_errors=True)
            save_model_files(
                tmp, acc.unwrap_model(self.model), self.processor, cfg.lora.mode, state_dict=sd
            )
            (tmp / "recipe.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            shutil.rmtree(final, ignore_errors=True)
            replace(tmp, final)
            metrics.plot()
            metrics.close()
        acc.wait_for_everyone()
        secs = time.perf_counter() - t0
        result = {"steps": step, "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                  "eval_loss": ev, "seconds": round(secs, 1), "output": str(final), "dropped": dict(self.collator.dropped)}  # fmt: skip
        if acc.is_main_process:
            write_text(
                self.out / "train_result.json", json.dumps(result, indent=1)
            )  # marks it done
        return result

    def _on_sigterm(self, signum, frame) -> None:
        self.stop_requested = True

    def describe(self) -> dict:
        """The --dry-run report."""
        plugin = getattr(self.acc.state, "deepspeed_plugin", None)
        zero = int(plugin.zero_stage) if plugin is not None else 0
        offload = bool(
            plugin is not None
            and getattr(plugin, "offload_optimizer_device", "none") not in (None, "none")
        )
        t = self.cfg.train
        eff = t.per_device_train_batch_size * self.acc.num_processes * t.gradient_accumulation_steps
        mem = memory_estimate(
            self.acc.unwrap_model(self.model),
            zero,
            self.acc.num_processes,
            self.mixed_precision,
            offload,
        )
        return {"world_size": self.acc.num_processes, "effective_batch": eff, "zero_stage": zero,
                "mixed_precision": self.mixed_precision, "train_samples": len(self.train_idx),
                "train_samples_by_task": dict(Counter(self.train_tasks)),
                "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total,
                "curriculum": [{"tasks": list(f), "steps": n} for f, n in self.stages] or None,
                "trainable_params": self.summary["trainable"], "total_params": self.summary["total"],
                "augment": dataclasses.asdict(self.collator.augment) if self.collator.augment else None,
                "memory_per_device_gib": {k: round(v, 3) for k, v in mem.items() if k.endswith("gib")}}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config keys (YAML sections, or section.key=value overrides):\n"
        + describe(RecipeConfig),
    )
    ap.add_argument("--config", default=None, help="YAML config (recipes/configs/*.yaml)")
    ap.add_argument("--dry-run", action="store_true", help="print sizes and memory, do not train")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:  # a bad key or value, and what setup finds (no samples for the tasks, packing + VLM)
        cfg = load_config(args.config, args.overrides)
        r = SFTRecipe(cfg, dry_run=args.dry_run)
        r.setup_accelerator()
        r.setup_model()
        r.setup_data()
    except (ConfigError, FileNotFoundError, ValueError) as e:
        # a missing dataset / encoder / previous stage, weights that do not fit: one line, no traceback
        ap.exit(2, f"config error: {e}\n")
    r.setup_optimizer()
    if args.dry_run:
        d = r.describe()
        if r.acc.is_main_process:
            print(json.dumps(d, indent=1))
            print(f"dry run: {d['world_size']} process(es), effective batch {d['effective_batch']}, "
                  f"{d['trainable_params']:,} of {d['total_params']:,} parameters train, "
                  f"~{d['memory_per_device_gib']['total_gib']:.2f} GiB/device before activations")  # fmt: skip
        return d
    result = r.train()
    if r.acc.is_main_process:
        if "stopped_at" in result:
            print(
                f"stopped by SIGTERM at step {result['stopped_at']}; checkpoint saved in {cfg.output.dir}"
            )
        else:
            print(f"trained {result['steps']} steps in {result['seconds']:.1f} s: loss {result['first_loss']:.4f} -> "
                  f"{result['last_loss']:.4f}, eval loss {result['eval_loss'] if result['eval_loss'] is None else round(result['eval_loss'], 4)}; "
                  f"model in {result['output']}, loss curve {Path(cfg.output.dir) / 'loss_curve.png'}")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
