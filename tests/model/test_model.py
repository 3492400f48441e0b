"""The multimodal model on tiny random configs: round trips, LoRA, gradients, mixed batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ecgllm.model import EcgLlmConfig, build_model
from ecgllm.model.factory import (
    TINY_ECG,
    TINY_GEMMA2,
    TINY_GEMMA3,
    TINY_LLAMA,
    TINY_QWEN2,
    TINY_SIGLIP,
)
from ecgllm.model.lora import merge_lora, prepare_for_training, trainable_summary


def _ecg(seed=0):
    return (np.random.default_rng(seed).normal(0, 0.3, (12, 5000))).astype(np.float32)


def _page(seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (170, 220, 3), dtype=np.uint8))


def _msgs(items, answer="72 bpm", q="What is the heart rate?"):
    return [{"role": "user", "content": [*[{"type": t} for t in items], {"type": "text", "text": q}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, proc = build_model()
    model.eval()
    return model, proc


def _batch(proc, convs, ecgs, images):
    texts = [proc.apply_chat_template(c) for c in convs]
    return proc(text=texts, ecgs=ecgs, images=images)


@pytest.mark.parametrize(
    "backbone", [TINY_LLAMA, TINY_GEMMA2, TINY_GEMMA3, TINY_QWEN2], ids=lambda b: b["model_type"]
)
def test_each_backbone_family_builds_and_trains(backbone):
    torch.manual_seed(0)
    model, proc = build_model(backbone=backbone)
    b = _batch(proc, [_msgs(["ecg", "image"])], [_ecg()], [_page()])
    out = model(**b, labels=b["input_ids"])
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.ecg_projector.net[0].weight.grad is not None
    assert model.config.text_config.model_type == backbone["model_type"]


def test_save_reload_identical_logits(tiny, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, proc = tiny
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "ecgllm" and cfg["text_config"]["model_type"] == "llama"
    assert (
        cfg["ecg_config"]["pool"] == 4
        and cfg["vision_config"]["model_type"] == "siglip_vision_model"
    )
    pcfg = json.loads((tmp_path / "processor_config.json").read_text())
    assert (
        pcfg["ecg_fs"] == 500.0 and pcfg["ecg_leads"][3] == "aVR" and pcfg["num_ecg_tokens"] == 29
    )
    m2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    p2 = AutoProcessor.from_pretrained(tmp_path)
    b1 = _batch(proc, [_msgs(["ecg", "image"])], [_ecg()], [_page()])
    b2 = _batch(p2, [_msgs(["ecg", "image"])], [_ecg()], [_page()])
    assert torch.equal(b1["input_ids"], b2["input_ids"]) and torch.equal(
        b1["pixel_values"], b2["pixel_values"]
    )
    with torch.no_grad():
        # not bit for bit: from_pretrained memory-maps the safetensors file, so a reloaded tensor can
        # start at an address that is not 64-byte aligned, and the vectorised CPU LayerNorm then
        # rounds ~1 ulp differently (cloning the reloaded weights gives identical logits)
        assert torch.allclose(model(**b1).logits, m2(**b2).logits, rtol=0, atol=1e-5)


def test_mixed_modality_batch_matches_single_samples(tiny):
    model, proc = tiny
    proc.tokenizer.padding_side = "right"
    convs = [
        _msgs(["ecg", "image"]),
        _msgs(["image"]),
        _msgs([]),
        _msgs(["ecg", "ecg"], q="Compare the two ECGs."),
    ]
    ecgs, images = [_ecg(0), _ecg(1), _ecg(2)], [_page(0), _page(1)]
    batch = _batch(proc, convs, ecgs, images)
    assert batch["ecg_values"].shape[0] == 3 and batch["pixel_values"].shape[0] == 2
    with torch.no_grad():
        full = model(**batch).logits
        singles = [
            model(**_batch(proc, [convs[0]], [ecgs[0]], [images[0]])).logits,
            model(**_batch(proc, [convs[1]], None, [images[1]])).logits,
            model(**_batch(proc, [convs[2]], None, None)).logits,
            model(**_batch(proc, [convs[3]], ecgs[1:], None)).logits,
        ]
    for i, s in enumerate(singles):
        n = s.shape[1]
        torch.testing.assert_close(full[i, :n], s[0], atol=1e-5, rtol=1e-4)


def test_placeholder_mismatch_and_truncation_errors(tiny):
    model, proc = tiny
    text = proc.apply_chat_template(_msgs(["ecg", "ecg"]))
    with pytest.raises(ValueError, match="2 <ecg> placeholders but 1 ECGs"):
        proc(text=[text], ecgs=[_ecg()])
    b = proc(text=[text], ecgs=[_ecg(), _ecg(1)])
    with pytest.raises(
        ValueError,
        match="expected 1 ECG\\(s\\) x 29 placeholder tokens = 29 in input_ids, found 58",
    ):
        model(
            input_ids=b["input_ids"],
            ecg_values=b["ecg_values"][:1],
            ecg_measurements=b["ecg_measurements"][:1],
        )
    with pytest.raises(ValueError, match="no ecg_values"):
        model(input_ids=b["input_ids"])
    with pytest.raises(ValueError, match="truncation cut into a placeholder run"):
        proc(text=[text], ecgs=[_ecg(), _ecg(1)], truncation=True, max_length=30)
    with pytest.raises(ValueError, match="expected \\(12, 5000\\)"):
        proc(text=[proc.apply_chat_template(_msgs(["ecg"]))], ecgs=[np.zeros((12, 4000))])


def test_ecg_records_are_standardized_by_the_processor(tiny, real):
    from ecgllm.signal import read_record

    _, proc = tiny
    rec = read_record(real / "ptbxl/records100/00000/00001_lr")  # 100 Hz
    values, mask = proc.process_ecgs([rec])
    assert values.shape == (1, 12, 5000) and mask.all()


def test_lead_mask_is_respected(tiny):
    model, _ = tiny
    x = torch.from_numpy(_ecg())[None]
    meas = torch.zeros(1, model.config.ecg_config.measurement_dim)  # the same measurements
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 7] = False
    y = x.clone()
    y[0, 7] += 5.0  # a missing lead's values must not matter
    with torch.no_grad():
        assert torch.equal(
            model.get_ecg_features(x, mask, meas), model.get_ecg_features(y, mask, meas)
        )
        assert not torch.equal(
            model.get_ecg_features(x, None, meas), model.get_ecg_features(y, None, meas)
        )
        one = torch.zeros(1, 12, dtype=torch.bool)
        one[0, 1] = True  # a single lead still works
        assert torch.isfinite(model.get_ecg_features(x, one, meas)).all()


def _grads(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_reach_exactly_the_configured_parameters():
    torch.manual_seed(0)
    model, proc = build_model()
    model.train()
    model = prepare_for_training(model, mode="align", train_ecg_encoder=False)
    b = _batch(proc, [_msgs(["ecg", "image"])], [_ecg()], [_page()])
    model(**b, labels=b["input_ids"]).loss.backward()
    assert _grads(model) == {
        n for n, p in model.named_parameters() if n.startswith(("ecg_projector", "image_projector"))
    }

    model, proc = build_model()
    model.train()
    peft = prepare_for_training(model, mode="lora", r=4, alpha=8)
    names = [n for n, _ in peft.named_parameters() if "lora_" in n]
    assert names and all(".language_model." in n for n in names)
    assert not any("vision_tower" in n or "lm_head" in n or "embed_tokens" in n for n in names)
    b = _batch(proc, [_msgs([])], None, None)  # text only: encoders still run (ZeRO-3 safety)
    peft(**b, labels=b["input_ids"]).loss.backward()
    got = _grads(peft)
    want = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert got == want
    assert any("ecg_encoder" in n for n in got) and any("image_projector" in n for n in got)
    s = trainable_summary(peft)
    lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    assert 0 < s["trainable"] < s["total"] and s["trainable.language_model"] == lora


def test_base_plus_adapter_equals_merged(tmp_path):
    from peft import PeftModel

    torch.manual_seed(0)
    base, proc = build_model()
    base.save_pretrained(tmp_path / "base")
    peft = prepare_for_training(base, mode="lora", r=4, alpha=8, dropout=0.0)
    with torch.no_grad():  # move away from LoRA's zero init and the projectors' init
        for p in peft.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    peft.eval()
    peft.save_pretrained(tmp_path / "adapter")
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")).keys()
    assert any("ecg_projector" in k for k in keys) and any("ecg_encoder" in k for k in keys)
    b = _batch(proc, [_msgs(["ecg", "image"])], [_ecg()], [_page()])
    with torch.no_grad():
        ref = peft(**b).logits
        from transformers import AutoModelForImageTextToText

        reloaded = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tmp_path / "base"),
                                             tmp_path / "adapter").eval()  # fmt: skip
        merged = merge_lora(reloaded).eval()
        torch.testing.assert_close(reloaded(**b).logits, ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(merged(**b).logits, ref, atol=1e-4, rtol=0)
    assert type(merged).__name__ == "EcgLlmForConditionalGeneration"


# transformers >= 5.2x hands generate()'s KV cache over as `cache`; passing the deprecated
# `past_key_values` beside it warned at every decoding step
@pytest.mark.filterwarnings("error:.*past_key_values.*:FutureWarning")
def test_generate_with_and_without_cache(tiny):
    model, proc = tiny
    text = proc.apply_chat_template(_msgs(["ecg", "image"])[:1], add_generation_prompt=True)
    b = proc(text=[text], ecgs=[_ecg()], images=[_page()])
    a = model.generate(**b, max_new_tokens=6, do_sample=False)
    c = model.generate(**b, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(a, c) and a.shape[1] == b["input_ids"].shape[1] + 6


def test_signal_only_and_image_only_models():
    m, p = build_model(vision=None)
    assert m.vision_tower is None and p.num_image_tokens == 0
    with pytest.raises(ValueError, match="no vision tower"):
        p.process_images([_page()])
    b = _batch(p, [_msgs(["ecg"])], [_ecg()], None)
    assert torch.isfinite(m(**b, labels=b["input_ids"]).loss)
    m, p = build_model(ecg=None)
    assert m.ecg_encoder is None and m.config.num_ecg_tokens == 0
    b = _batch(p, [_msgs(["image"])], None, [_page()])
    assert torch.isfinite(m(**b, labels=b["input_ids"]).loss)


def test_pretrained_ecg_encoder_hook(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    m, _ = build_model()
    save_file(
        {k: v.contiguous() for k, v in m.ecg_encoder.state_dict().items()},
        str(tmp_path / "enc.safetensors"),
    )
    m2, _ = build_model(ecg={**TINY_ECG, "pretrained_path": str(tmp_path / "enc.safetensors")})
    for k, v in m.ecg_encoder.state_dict().items():
        assert torch.equal(v, m2.ecg_encoder.state_dict()[k])
    with pytest.raises(FileNotFoundError, match="not found"):
        build_model(ecg={**TINY_ECG, "pretrained_path": str(tmp_path / "missing.safetensors")})


def test_ecg_output_standardization_is_fitted_saved_and_reloaded(tmp_path, caplog):
    from safetensors.torch import save_file

    from ecgllm.model.ecg_encoder import load_encoder_weights

    torch.manual_seed(2)
    m, proc = build_model()
    enc = m.ecg_encoder.eval()
    x = torch.from_numpy(np.stack([_ecg(s) for s in range(6)]))
    meas = proc.measurements(list(x.numpy()), np.ones((6, 12), bool))
    raw = enc(x, None, meas)
    assert torch.equal(
        enc.feature_mean, torch.zeros_like(enc.feature_mean)
    )  # identity until fitted
    stats = enc.fit_output_stats([(x[:3], None, meas[:3]), (x[3:], None, meas[3:])])  # pooled
    assert stats["tokens"] == 6 * raw.shape[1] and 0 < stats["mean_direction_share"] <= 1
    h = enc(x, None, meas).reshape(-1, raw.shape[-1])
    assert h.mean(0).abs().max() < 1e-4 and torch.allclose(
        h.std(0, unbiased=False), torch.ones(h.shape[1]), atol=1e-3
    )
    assert torch.allclose(enc(x, None, meas), (raw - enc.feature_mean) / enc.feature_std, atol=1e-5)
    # saved with the model, reloaded from the folder (not re-initialised to identity)
    m.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    from transformers import AutoModelForImageTextToText

    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(again.ecg_encoder.feature_std, enc.feature_std)
    assert torch.allclose(again.ecg_encoder(x, None, meas), enc(x, None, meas), atol=1e-6)
    # and with the encoder's own weights file; a file from before the statistics loads as identity
    state = {k: v.contiguous() for k, v in enc.state_dict().items()}
    save_file(state, str(tmp_path / "enc.safetensors"))
    fresh, _ = build_model()
    load_encoder_weights(fresh.ecg_encoder, tmp_path / "enc.safetensors")
    assert torch.equal(fresh.ecg_encoder.feature_mean, enc.feature_mean)
    old = {k: v for k, v in state.items() if not k.startswith("feature_")}
    save_file(old, str(tmp_path / "old.safetensors"))
    load_encoder_weights(fresh.ecg_encoder, tmp_path / "old.safetensors")
    assert torch.equal(fresh.ecg_encoder.feature_std, torch.ones_like(enc.feature_std))
    assert torch.allclose(fresh.ecg_encoder.eval()(x, None, meas), raw, atol=1e-6)
    assert "no output statistics" in caplog.text
    with pytest.raises(ValueError, match="at least one record"):
        enc.fit_output_stats([])


def test_config_round_trip_and_token_counts(tmp_path):
    cfg = EcgLlmConfig(
        text_config=TINY_LLAMA, vision_config=TINY_SIGLIP, ecg_config={"pool": 2}, image_pool=2
    )
    assert cfg.num_ecg_tokens == 50 and cfg.num_image_tokens == 4
    cfg.save_pretrained(tmp_path)
    again = EcgLlmConfig.from_pretrained(tmp_path)
    assert (
        again.ecg_config.pool == 2
        and again.vision_config.image_size == 64
        and again.image_pool == 2
    )


def test_qlora_4bit_grads_survive_an_eval_forward():
    """bitsandbytes 4-bit on CPU: after a no-grad eval forward, LoRA grads must still exist."""
    pytest.importorskip("bitsandbytes")
    from ecgllm.model.lora import quantize_language_model

    torch.manual_seed(0)
    m, p = build_model(vision=None)
    m = quantize_language_model(m, bits=4)
    peft = prepare_for_training(m, mode="lora", r=4, alpha=8)
    b = _batch(p, [_msgs(["ecg"])], [_ecg()], None)
    peft.eval()
    with torch.no_grad():
        peft(**b)
    peft.train()
    peft(**b, labels=b["input_ids"]).loss.backward()
    lora = [(n, q) for n, q in peft.named_parameters() if "lora_" in n]
    assert lora and all(q.grad is not None for _, q in lora)


TINY_GEMMA3_VLM = {
    "model_type": "gemma3",
    "mm_tokens_per_image": 4,
    "image_token_id": 2000,
    "boi_token_index": 2001,
    "eoi_token_index": 2002,
    "text_config": {**TINY_GEMMA3, "vocab_size": 2100},
    "vision_config": {**TINY_SIGLIP},
}
TINY_QWEN25_VL = {
    "model_type": "qwen2_5_vl", "image_token_id": 2000, "video_token_id": 2001, "vision_start_token_id": 2002,
    "vision_end_token_id": 2003,
    "text_config": {"model_type": "qwen2_5_vl_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2100,
                    "rope_scaling": {"type": "mrope", "mrope_section": [2, 2, 4]}},
    "vision_config": {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "fullatt_block_indexes": [0],
                      "window_size": 56},
}  # fmt: skip
TINY_MLLAMA = {
    "model_type": "mllama", "image_token_index": 2000,
    "text_config": {"model_type": "mllama_text_model", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2100, "cross_attention_layers": [1],
                    "pad_token_id": 0},
    "vision_config": {"model_type": "mllama_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                      "num_global_layers": 1, "attention_heads": 2, "image_size": 32, "patch_size": 16, "max_num_tiles": 2,
                      "vision_output_dim": 64, "intermediate_layers_indices": [0], "supported_aspect_ratios": [[1, 1], [1, 2]]},
}  # fmt: skip


def _native(spec):
    from transformers import AutoConfig

    spec = json.loads(json.dumps(spec))
    vlm = AutoConfig.for_model(spec.pop("model_type"), **spec)
    cfg = EcgLlmConfig(text_config=vlm, ecg_config=TINY_ECG, native_vision=True, ecg_token_id=5)
    from ecgllm.model import EcgLlmForConditionalGeneration

    return EcgLlmForConditionalGeneration(cfg)


@pytest.mark.parametrize(
    "spec", [TINY_GEMMA3_VLM, TINY_QWEN25_VL, TINY_MLLAMA], ids=["gemma3", "qwen2_5_vl", "mllama"]
)
def test_native_multimodal_backbones_keep_their_image_path(spec):
    torch.manual_seed(0)
    model = _native(spec)
    ecg_run = [5] * model.config.num_ecg_tokens
    if spec["model_type"] == "gemma3":
        img = [2001] + [2000] * 4 + [2002]
        extra = {"pixel_values": torch.randn(1, 3, 64, 64)}
    elif spec["model_type"] == "mllama":  # cross-attention to 2 tiles of one image
        img = [2000]
        extra = {"pixel_values": torch.randn(1, 1, 2, 3, 32, 32), "aspect_ratio_ids": torch.tensor([[2]]),
                 "aspect_ratio_mask": torch.tensor([[[1, 1]]])}  # fmt: skip
    else:
        # 28x28 image -> 2x2 patches of 14 -> merged 2x2 -> 1 token; grid (t=1, h=2, w=2)
        img = [2002, 2000, 2003]
        extra = {
            "pixel_values": torch.randn(4, 3 * 2 * 14 * 14),
            "image_grid_thw": torch.tensor([[1, 2, 2]]),
        }
    ids = torch.tensor([[1, 7, *ecg_run, *img, 8, 9, 10]])
    if spec["model_type"] == "gemma3":
        extra["token_type_ids"] = (ids == 2000).long()
    if spec["model_type"] == "mllama":
        extra["cross_attention_mask"] = torch.ones(1, ids.shape[1], 1, 2, dtype=torch.long)
    with (
        torch.no_grad()
    ):  # Gemma 3 zero-initialises its image projection; a trained one is not zero
        for n, p in model.language_model.named_parameters():
            # Mllama's cross-attention gates also start at zero
            if (
                "mm_input_projection" in n
                or "cross_attn_attn_gate" in n
                or "cross_attn_mlp_gate" in n
            ):
                p.normal_(0, 0.5)
    model.train()
    meas = torch.zeros(1, model.config.ecg_config.measurement_dim)
    out = model(
        input_ids=ids,
        ecg_values=torch.randn(1, 12, 5000),
        ecg_measurements=meas,
        labels=ids,
        **extra,
    )
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.ecg_projector.net[0].weight.grad is not None
    towers = ("vision_tower", "visual", "vision_model")
    vision = [p for n, p in model.language_model.named_parameters() if any(k in n for k in towers)]
    assert vision and any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision)
    peft = prepare_for_training(model, mode="lora", r=4, alpha=8)
    names = [n for n, _ in peft.named_parameters() if "lora_" in n]
    assert names and not any(
        k in n for n in names for k in ("vision_tower", "visual", "vision_model")
    )
    with pytest.raises(ValueError, match="no ecg_values"):
        model(input_ids=ids, **extra)


def test_build_model_detects_a_native_vlm_backbone():
    m, p = build_model(backbone=json.loads(json.dumps(TINY_GEMMA3_VLM)), ecg=TINY_ECG)
    assert m.config.native_vision and m.vision_tower is None and m.image_projector is None
    assert (
        type(m.language_model).__name__ == "Gemma3ForConditionalGeneration"
        and p.num_image_tokens == 0
    )


def _gemma3_parts(tok_cls, tiny_dir):
    try:
        from transformers import Gemma3ImageProcessorPil as IP
    except ImportError:  # pragma: no cover
        from transformers import Gemma3ImageProcessor as IP
    tok = tok_cls.from_pretrained(str(tiny_dir), extra_special_tokens={
        "boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"})  # fmt: skip
    spec = json.loads(json.dumps(TINY_GEMMA3_VLM))
    spec.update(image_token_id=tok.convert_tokens_to_ids("<image_soft_token>"), boi_token_index=tok.boi_token_id,
                eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"))  # fmt: skip
    return (
        tok,
        spec,
        IP(size={"height": 64, "width": 64}),
        "Gemma3Processor",
        {"image_seq_length": 4},
        "gemma",
        4,
    )


def _mllama_parts(tok_cls, tiny_dir):
    try:
        from transformers import MllamaImageProcessorPil as IP
    except ImportError:  # pragma: no cover
        from transformers import MllamaImageProcessor as IP
    tok = tok_cls.from_pretrained(str(tiny_dir), extra_special_tokens={"image_token": "<|image|>"})
    spec = json.loads(json.dumps(TINY_MLLAMA))
    spec["image_token_index"] = tok.convert_tokens_to_ids("<|image|>")
    return (
        tok,
        spec,
        IP(size={"height": 32, "width": 32}, max_image_tiles=2),
        "MllamaProcessor",
        {},
        "llama3",
        1,
    )


@pytest.mark.parametrize("parts", [_gemma3_parts, _mllama_parts], ids=["gemma3", "mllama"])
def test_native_vlm_processor_round_trip(parts, tmp_path):
    """The backbone's own processor expands image tokens and makes pixel_values (and its extra
    inputs); ours adds ECGs; both survive save/reload and give the same logits."""
    from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast

    from ecgllm.model import EcgLlmProcessor
    from ecgllm.model.chat_templates import CHAT_TEMPLATES
    from ecgllm.model.tokenizer import TINY_DIR

    tok, spec, image_processor, cls, kwargs, family, n_img = parts(
        PreTrainedTokenizerFast, TINY_DIR
    )
    torch.manual_seed(0)
    model = _native(spec)
    model.config.ecg_token_id = tok.convert_tokens_to_ids("<ecg>")
    proc = EcgLlmProcessor(image_processor, tok, chat_template=CHAT_TEMPLATES[family], num_ecg_tokens=model.config.num_ecg_tokens,
                           native_processor_class=cls, native_kwargs=kwargs,
                           ecg_measurement_dim=model.config.ecg_config.measurement_dim)  # fmt: skip
    text = proc.apply_chat_template(_msgs(["ecg", "image"]))
    assert f"<ecg>{proc.image_token}" in text
    b = proc(text=[text], ecgs=[_ecg()], images=[_page()])
    assert {"pixel_values", "ecg_values", "lead_mask", "ecg_measurements"} <= set(b)
    img_id = spec.get("image_token_id", spec.get("image_token_index"))
    assert int((b["input_ids"] == img_id).sum()) == n_img
    assert int((b["input_ids"] == model.config.ecg_token_id).sum()) == model.config.num_ecg_tokens
    with torch.no_grad():
        model.eval()
        ref = model(**b).logits
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    p2 = AutoProcessor.from_pretrained(tmp_path)
    assert type(p2).__name__ == "EcgLlmProcessor" and type(p2.native).__name__ == cls
    b2 = p2(text=[text], ecgs=[_ecg()], images=[_page()])
    assert b.keys() == b2.keys() and all(torch.equal(b[k], b2[k]) for k in b)
    m2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(**b2).logits, ref)


@pytest.mark.parametrize("backbone", [TINY_LLAMA, TINY_GEMMA3], ids=lambda b: b["model_type"])
def test_supervised_logits_only_gives_the_same_loss_and_gradients(backbone):
    """The recipe's training forward runs the LM head only where a supervised token is
    predicted: same loss (summed / num_items_in_batch, or the mean) and the same gradients."""
    torch.manual_seed(0)
    model, proc = build_model(backbone=backbone)
    model = prepare_for_training(model, mode="lora", r=4, alpha=8, dropout=0.0)
    model.train()
    convs = [
        _msgs(["ecg", "image"]),
        _msgs(["ecg"], answer="sinus rhythm, a longer answer", q="Rhythm?"),
    ]
    b = _batch(proc, convs, [_ecg(), _ecg(1)], [_page()])
    labels = b["input_ids"].clone()
    labels[b["attention_mask"] == 0] = -100
    labels[:, :-6] = -100
    b["labels"] = labels
    n = (labels[:, 1:] != -100).sum()
    runs = []
    for sup in (False, True):
        model.zero_grad()
        out = model(**b, num_items_in_batch=n, supervised_logits_only=sup)
        out.loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        runs.append((out, grads))
    (full, g_full), (sup, g_sup) = runs
    assert torch.allclose(full.loss, sup.loss, atol=1e-6)
    assert sup.logits.shape[1] < full.logits.shape[1]
    assert g_full.keys() == g_sup.keys() and g_full
    for k in g_full:
        assert torch.allclose(g_full[k], g_sup[k], atol=1e-6), k
    mean = model(**b, supervised_logits_only=True).loss
    assert torch.allclose(mean, model(**b).loss, atol=1e-6)


def test_measurement_tokens():
    """A tiny ECG encoder with 4 measurement tokens and 2 rhythm tokens after its 25 time tokens
    (the default has no rhythm tokens: see EcgEncoderConfig); the processor makes
    ecg_measurements from the mV signal; without them the encoder says what it needs. The rhythm
    measurements (rate, RR irregularity, P waves) reach the rhythm tokens only, every other
    measurement the measurement tokens only."""
    from ecgllm.model.factory import TINY_ECG
    from ecgllm.signal.features import FEATURE_NAMES, RHYTHM_INDEX

    torch.manual_seed(0)
    model, proc = build_model(ecg={**TINY_ECG, "rhythm_tokens": 2})
    model.eval()
    enc = model.ecg_encoder
    assert (
        enc.config.measurement_tokens == 4
        and enc.config.rhythm_tokens == 2
        and list(enc.config.rhythm_features) == list(RHYTHM_INDEX)
        and proc.num_ecg_tokens == 31 == model.config.num_ecg_tokens
    )
    x = torch.randn(2, 12, 5000) * 0.1
    with pytest.raises(ValueError, match=r"pass ecg_measurements \[2, 154\]"):
        enc(x)
    inputs = proc.ecg_inputs(list(x.numpy()), [np.ones(12, bool), np.eye(12, dtype=bool)[1]])
    assert inputs["ecg_measurements"].shape == (2, 154)
    assert inputs["lead_mask"][1].sum() == 1  # the record's own mask is applied here, once
    out = enc(inputs["ecg_values"], inputs["lead_mask"], inputs["ecg_measurements"])
    assert out.shape == (2, 31, enc.config.hidden_size)
    n = len(FEATURE_NAMES)
    for name, changed in (("hr_bpm", slice(29, 31)), ("qrs_ms", slice(25, 29))):
        for col in (FEATURE_NAMES.index(name), n + FEATURE_NAMES.index(name)):  # value, flag
            m2 = inputs["ecg_measurements"].clone()
            m2[:, col] += 1.0
            out2 = enc(inputs["ecg_values"], inputs["lead_mask"], m2)
            same = torch.isclose(out, out2).all(-1).all(0)  # per token
            assert not same[changed].any() and same.sum() == 31 - 2 - 2 * (name == "qrs_ms"), (
                name,
                col,
                same,
            )


def test_qformer_fusion_projector(tmp_path):
    """ecg_projector qformer: ecg_query_tokens tokens per ECG whatever the encoder makes, trained
    with the LLM frozen (align), saved and reloaded with the same logits."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.manual_seed(0)
    model, proc = build_model(vision=None, ecg_projector="qformer", ecg_query_tokens=6)
    assert proc.num_ecg_tokens == model.config.num_ecg_tokens == 6
    b = _batch(proc, [_msgs(["ecg"])], [_ecg()], None)
    assert int((b["input_ids"] == model.config.ecg_token_id).sum()) == 6
    peft = prepare_for_training(model, mode="align")
    peft(**b, labels=b["input_ids"]).loss.backward()
    grads = {n: p.grad for n, p in peft.named_parameters() if p.requires_grad}
    assert any("queries" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert not any("language_model" in n for n in grads)  # the LLM stays frozen
    model, proc = build_model(vision=None, ecg_projector="qformer", ecg_query_tokens=6)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    m2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert AutoProcessor.from_pretrained(tmp_path).num_ecg_tokens == 6
    with torch.no_grad():
        assert torch.allclose(model.eval()(**b).logits, m2(**b).logits, atol=1e-5)
    with pytest.raises(ValueError, match="'linear', 'mlp2x_gelu' or 'qformer'"):
        build_model(vision=None, ecg_projector="perceiver")


def test_generation_stops_at_the_end_of_a_turn(tmp_path):
    """A backbone whose EOS is not its turn end (the GGUF Gemma: <eos>, turns end at
    <end_of_turn>) stops generating at the turn end too, after build_model and after a reload."""
    from ecgllm.model.tokenizer import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<end_of_turn>", "<start_of_turn>"]})
    model, proc = build_model(backbone=TINY_GEMMA3, tokenizer=tok, chat_family="gemma")
    end, eos = tok.convert_tokens_to_ids("<end_of_turn>"), TINY_GEMMA3.get("eos_token_id", 1)
    assert model.generation_config.eos_token_id == [eos, end]
    model.generation_config.eos_token_id = eos  # as saved before generation stopped at turn ends
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    from ecgllm.evaluation.runner import load

    reloaded, _ = load(str(tmp_path), None, None)
    assert reloaded.generation_config.eos_token_id == [eos, end]
    # the tiny default's turn end (<|end|>) is its EOS: one id, as before
    tiny, tiny_proc = build_model()
    assert tiny.generation_config.eos_token_id == tiny_proc.tokenizer.convert_tokens_to_ids(
        "<|end|>"
    )
