"""Training-step throughput and peak memory: our recipe's step against a plain transformers
LlavaForConditionalGeneration + Trainer of the same size on the same samples, each in its own
process (peak RSS is per process), plus the padding fraction with and without length grouping
and packing (data.packing), and our step with packed micro-batches.

    python bench/train.py --data runs/default/instruct --steps 30

Both use the same tiny LLaMA text config, the same tiny SigLIP tower, batch 8, AdamW, fp32 on
CPU; ours additionally runs the ECG encoder on every sample (its samples carry signal + image).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def run_ours(data: str, steps: int, bs: int, packing: bool = False) -> dict:
    import torch

    from ecgllm.data.collator import EcgCollator
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.model import build_model
    from ecgllm.model.lora import prepare_for_training

    torch.manual_seed(0)
    model, proc = build_model()
    model = prepare_for_training(model, mode="lora", r=16, alpha=32)
    model.train()
    ds = EcgInstructionDataset(data, "train")
    col = EcgCollator(proc, max_length=512, packing=packing)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tokens = 0
    t = time.perf_counter()  # like the Trainer's: loading, collating (images, ECGs) and the step
    for s in range(steps):
        b = col([ds[i] for i in range(s * bs, (s + 1) * bs)])
        model(**b, supervised_logits_only=True).loss.backward()  # as recipes/sft.py does
        opt.step()
        opt.zero_grad()
        tokens += int(
            (b["input_ids"] != proc.tokenizer.pad_token_id).sum()
        )  # same count packed or not
    return {"tokens_per_s": tokens / (time.perf_counter() - t)}


def run_llava(data: str, steps: int, bs: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        Trainer,
        TrainingArguments,
    )

    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.model import build_model
    from ecgllm.model.factory import TINY_LLAMA, TINY_SIGLIP

    torch.manual_seed(0)
    _, proc = build_model()  # our tokenizer and image processor, for identical inputs
    tok = proc.tokenizer
    img_id = tok.convert_tokens_to_ids(proc.image_token)
    text = dict(TINY_LLAMA)
    vis = dict(TINY_SIGLIP)
    cfg = LlavaConfig(text_config=AutoConfig.for_model(text.pop("model_type"), **text),
                      vision_config=AutoConfig.for_model(vis.pop("model_type"), **vis), image_token_index=img_id,
                      image_seq_length=proc.num_image_tokens, vision_feature_select_strategy="full",
                      vision_feature_layer=-1)  # fmt: skip
    model = LlavaForConditionalGeneration(cfg)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
                                             modules_to_save=["multi_modal_projector"]))  # fmt: skip
    ds = EcgInstructionDataset(data, "train")
    rows = []
    for i in range(steps * bs):
        r = ds[i]
        msgs = [
            {"role": m["role"], "content": [c for c in m["content"] if c["type"] != "ecg"]}
            for m in r["messages"]
        ]
        out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                      ecg_token=proc.ecg_token, image_token=proc.image_token)  # fmt: skip
        ids, mask = [], []
        for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True):
            k = proc.num_image_tokens if t == img_id else 1
            ids += [t] * k
            mask += [m] * k
        rows.append({"ids": ids, "mask": mask, "image": r["images"][0]})

    def collate(batch):
        w = max(len(b["ids"]) for b in batch)
        input_ids = torch.full((len(batch), w), tok.pad_token_id)
        labels = torch.full((len(batch), w), -100)
        att = torch.zeros((len(batch), w), dtype=torch.long)
        for j, b in enumerate(batch):
            n = len(b["ids"])
            input_ids[j, :n] = torch.tensor(b["ids"])
            att[j, :n] = 1
            labels[j, :n] = torch.where(
                torch.tensor(b["mask"], dtype=torch.bool), torch.tensor(b["ids"]), -100
            )
        return {"input_ids": input_ids, "attention_mask": att, "labels": labels,
                "pixel_values": proc.process_images([b["image"] for b in batch])}  # fmt: skip

    tokens = sum(len(r["ids"]) for r in rows)
    args = TrainingArguments(output_dir="/tmp/ecgllm-bench-llava", per_device_train_batch_size=bs, max_steps=steps,
                             learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    t = time.perf_counter()
    trainer.train()
    return {"tokens_per_s": tokens / (time.perf_counter() - t)}


def child(which: str, data: str, steps: int, bs: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--data",
        data,
        "--steps",
        str(steps),
        "--batch",
        str(bs),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise RuntimeError(f"{which} run failed")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def padding(data: str, bs: int) -> tuple[float, float, float, float]:
    from ecgllm.data.collator import length_grouped_order, padding_fraction
    from ecgllm.data.dataset import EcgInstructionDataset
    from ecgllm.model import build_model

    _, proc = build_model()
    ds = EcgInstructionDataset(data, "train")
    from ecgllm.data.collator import approx_lengths

    lengths = approx_lengths(ds, list(range(len(ds))), proc.num_ecg_tokens, proc.num_image_tokens)
    import numpy as np

    plain = np.random.default_rng(0).permutation(len(lengths)).tolist()
    grouped = length_grouped_order(lengths, bs, 0)
    return (padding_fraction(lengths, plain, bs), padding_fraction(lengths, grouped, bs),
            padding_fraction(lengths, plain, bs, pack_to=512), padding_fraction(lengths, grouped, bs, pack_to=512))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="runs/default/instruct")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--child", choices=["ours", "ours_packed", "llava"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.child == "llava":
            print(json.dumps(run_llava(a.data, a.steps, a.batch)))
        else:
            print(json.dumps(run_ours(a.data, a.steps, a.batch, packing=a.child == "ours_packed")))
        return
    ours, llava = child("ours", a.data, a.steps, a.batch), child("llava", a.data, a.steps, a.batch)
    ours_packed = child("ours_packed", a.data, a.steps, a.batch)
    print(f"{'':28s} {'tokens/s':>10s} {'peak RSS MiB':>13s}")
    print(
        f"{'ecgllm step (ECG + image)':28s} {ours['tokens_per_s']:10.0f} {ours['peak_rss_mib']:13.0f}"
    )
    print(
        f"{'Llava + Trainer (image)':28s} {llava['tokens_per_s']:10.0f} {llava['peak_rss_mib']:13.0f}"
    )
    print(f"ratio ours/baseline: {ours['tokens_per_s'] / llava['tokens_per_s']:.2f}x tokens/s, "
          f"{ours['peak_rss_mib'] / llava['peak_rss_mib']:.2f}x memory")  # fmt: skip
    plain, grouped, packed, both = padding(a.data, a.batch)
    print(f"padding fraction, batch {a.batch}: random order {plain:.1%}, length-grouped {grouped:.1%}; "
          f"packed into rows of 512: random order {packed:.1%}, length-grouped {both:.1%}")  # fmt: skip
    print(f"{'ecgllm step, packed':28s} {ours_packed['tokens_per_s']:10.0f} {ours_packed['peak_rss_mib']:13.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
