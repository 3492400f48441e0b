"""GRPO after SFT with verifiable rewards from the benchmark scorers (ecgllm.train.grpo): the SFT
adapter is merged into its base (saved as OUT/base), a fresh LoRA adapter on it is the policy,
and the same model with that adapter disabled, i.e. the SFT model, is the KL reference.

    python recipes/grpo.py --model runs/default/sft/base --adapter runs/default/sft/final/adapter \\
        --processor runs/default/sft/final --data runs/default/instruct --out runs/grpo --steps 100
    python eval/run.py --model runs/grpo/base --adapter runs/grpo/final/adapter \\
        --processor runs/grpo/final --data runs/default/instruct --out runs/grpo/eval --ablation

Checkpoints every --save-steps; re-run with --resume-from-checkpoint latest after a stop. On
several processes (DDP; the same steps as one process at the same --prompts-per-step):

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 recipes/grpo.py ...   # CPUs
    accelerate launch --multi_gpu --num_processes 8 recipes/grpo.py ...                          # GPUs

TRL's GRPOTrainer is not used: it drives text-only (or its own VLM processors') generation and
cannot pass this model's ECG inputs (ecg_values, lead_mask, ecg_measurements) through sampling
and scoring.
"""

from __future__ import annotations

import argparse
import sys

from ecgllm.cli import add_fields, field_values
from ecgllm.train.grpo import GrpoSettings, grpo_train
from ecgllm.train.setup import make_accelerator


def load_policy(model_dir: str, adapter: str, processor_dir: str | None, out: str, r: int, alpha: int,
                save: bool = True, seed: int = 0):  # fmt: skip
    """The SFT model (base + its adapter, merged) saved to OUT/base (by one process: `save`;
    written whole, then renamed), with a fresh LoRA adapter on it as the policy: disabling that
    adapter gives back the SFT model, the KL reference."""
    import shutil
    from pathlib import Path

    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ecgllm import model as _model  # noqa: F401 - registers the Auto classes
    from ecgllm.model.lora import merge_lora, prepare_for_training

    for p in (model_dir, adapter):
        if not Path(p).exists():
            raise FileNotFoundError(f"{p} does not exist")
    proc = AutoProcessor.from_pretrained(processor_dir or str(Path(adapter).parent))
    sft = merge_lora(
        PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(model_dir), adapter)
    )
    if save:
        from ecgllm.atomic import replace

        base, tmp = Path(out) / "base", Path(out) / "base.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        sft.save_pretrained(tmp)
        proc.save_pretrained(tmp)
        shutil.rmtree(base, ignore_errors=True)
        replace(tmp, base)
    torch.manual_seed(seed)  # the fresh adapter's A matrices: the same on every process and run
    policy = prepare_for_training(
        sft, mode="lora", r=r, alpha=alpha, dropout=0.0, train_ecg_encoder=False
    )
    return policy, proc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="the SFT base (sft/base)")
    ap.add_argument(
        "--adapter", required=True, help="the SFT adapter, trained further (sft/final/adapter)"
    )
    ap.add_argument("--processor", default=None, help="default: the adapter's parent folder")
    ap.add_argument("--data", required=True, help="a dataset built by data_builders/build.py")
    ap.add_argument("--out", required=True)
    add_fields(ap, GrpoSettings, choices={"aggregation": ("per_token", "per_sequence")})
    a = ap.parse_args(argv)
    acc, _ = make_accelerator("no")
    try:
        s = GrpoSettings(**field_values(a, GrpoSettings))
        policy, proc = load_policy(a.model, a.adapter, a.processor, a.out, a.lora_r, a.lora_alpha,
                                   save=acc.is_main_process, seed=s.seed)  # fmt: skip
        acc.wait_for_everyone()
        r = grpo_train(policy, proc, a.data, a.out, s, accelerator=acc)
    except (ValueError, FileNotFoundError, KeyError) as e:
        sys.exit(f"error: {e}")
    if acc.is_main_process:
        print(f"done: {r['steps']} GRPO steps on {r['processes']} process(es), mean reward {r['reward_first_fifth']:.3f} "
              f"(first fifth) -> {r['reward_last_fifth']:.3f} (last fifth) in {r['seconds']:.0f} s -> {r['output']}")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
