"""Model size and CPU training-step time: the tiny default and the real Gemma 3 270M (offline).

    python bench/model_step.py               # tiny (LLaMA-architecture, random init)
    python bench/model_step.py --gemma       # + Gemma 3 270M from the PyPI GGUF (needs .[gemma])

For each: parameter counts (total / trainable with LoRA r=16 + projectors + ECG encoder), the
seconds per LoRA training step (forward + backward + AdamW, batch of 2 samples with ECG signal
and page image), and the loss over a few steps on one batch (it must fall).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ecgllm.model import build_model
from ecgllm.model.factory import TINY_ECG, TINY_SIGLIP
from ecgllm.model.lora import prepare_for_training, trainable_summary
from ecgllm.render import render_ecg
from ecgllm.signal import STANDARD_12, ECGRecord
from ecgllm.signal.simulate import sample_condition, simulate


def batch(proc, n=2):
    rng = np.random.default_rng(0)
    texts, ecgs, images = [], [], []
    for i in range(n):
        s = simulate(sample_condition(rng), rng)
        rec = ECGRecord(s.signal, s.fs, list(STANDARD_12), str(i))
        msgs = [{"role": "user", "content": [{"type": "ecg"}, {"type": "image"}, {"type": "text", "text": "What is the heart rate of this ECG?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": f"{round(s.truth['hr_bpm'])} bpm"}]}]  # fmt: skip
        texts.append(proc.apply_chat_template(msgs))
        ecgs.append(s.signal)
        images.append(render_ecg(rec)[0])
    return proc(text=texts, ecgs=ecgs, images=images)


def run(name: str, backbone) -> None:
    t = time.perf_counter()
    torch.manual_seed(0)
    model, proc = build_model(backbone=backbone, vision=TINY_SIGLIP, ecg=TINY_ECG)
    load = time.perf_counter() - t
    total = sum(p.numel() for p in model.parameters())
    model = prepare_for_training(model, mode="lora", r=16, alpha=32)
    model.train()
    s = trainable_summary(model)
    b = batch(proc)
    labels = b["input_ids"].clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses, times = [], []
    for _ in range(5):
        t = time.perf_counter()
        loss = model(**b, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
        losses.append(round(loss.item(), 3))
    print(f"{name}: {total / 1e6:.2f} M parameters, {s['trainable'] / 1e6:.2f} M trainable "
          f"({100 * s['trainable'] / s['total']:.1f}%), load {load:.1f} s, {np.median(times[1:]):.2f} s/step "
          f"(batch 2, {b['input_ids'].shape[1]} tokens), loss {losses}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--gemma", action="store_true", help="also the real Gemma 3 270M (offline GGUF package)"
    )
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from ecgllm.model.factory import TINY_LLAMA

    run("tiny", TINY_LLAMA)
    if args.gemma:
        from ecgllm.model.gguf import gemma3_270m

        run("gemma-3-270m", str(gemma3_270m()))


if __name__ == "__main__":
    main()
