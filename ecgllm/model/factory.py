"""Building models and processors: tiny ones from configs (tests, the embedded default) and real
ones from a backbone name or local path.

    model, processor = build_model(backbone=TINY_LLAMA, vision=TINY_SIGLIP, ecg={"hidden_size": 64, "pool": 4})
    model, processor = build_model(backbone="meta-llama/Llama-3.2-1B-Instruct",
                                   vision="google/siglip-base-patch16-224", ecg={})   # downloads once
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .chat_templates import stop_at_turn_end, template_for
from .configuration_ecgllm import EcgLlmConfig
from .modeling_ecgllm import EcgLlmForConditionalGeneration
from .processing_ecgllm import EcgLlmProcessor
from .tokenizer import ensure_placeholder_tokens, load_tiny_tokenizer

# Tiny configs: a few hundred thousand parameters, CPU seconds.
TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2048,
    "max_position_embeddings": 1024,
}
TINY_GEMMA2 = {
    "model_type": "gemma2",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 2048,
    "max_position_embeddings": 1024,
    "sliding_window": 64,
}
TINY_GEMMA3 = {**TINY_GEMMA2, "model_type": "gemma3_text"}
TINY_QWEN2 = {**TINY_LLAMA, "model_type": "qwen2"}
TINY_SIGLIP = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 64,
    "patch_size": 16,
}
TINY_ECG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "pool": 4,
    "measurement_tokens": 4,
}
# fmt: skip


def _as_config(spec: str | dict | None):
    if spec is None:
        return None, None
    if isinstance(spec, dict):
        spec = dict(spec)
        return AutoConfig.for_model(spec.pop("model_type"), **spec), None
    cfg = AutoConfig.from_pretrained(spec)
    return cfg, spec


def _vision_config(spec: str | dict | None):
    cfg, path = _as_config(spec)
    if (
        cfg is not None
        and hasattr(cfg, "vision_config")
        and cfg.model_type != "siglip_vision_model"
    ):
        cfg = cfg.vision_config  # a full CLIP/SigLIP checkpoint: keep its vision tower
    return cfg, path


class _Size:
    def __init__(self, image_size: int):
        self.image_size = image_size


def image_processor_for(vision_cfg, path: str | None):
    from transformers import AutoImageProcessor

    if path is not None:
        return AutoImageProcessor.from_pretrained(path)
    try:  # the PIL backend: no torchvision needed
        from transformers import SiglipImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import SiglipImageProcessor as ImageProcessor
    size = vision_cfg.image_size
    return ImageProcessor(size={"height": size, "width": size})


def build_model(
    backbone: str | dict = TINY_LLAMA,
    vision: str | dict | None = TINY_SIGLIP,
    ecg: dict | None = TINY_ECG,
    tokenizer: Any = None,
    chat_family: str | None = None,
    ecg_projector: str = "mlp2x_gelu",
    ecg_query_tokens: int = 32,
    image_projector: str = "mlp2x_gelu",
    image_pool: int = 1,
    vision_feature_layer: int = -1,
    dtype=None,
    ecg_seconds: float = 10.0,
    ecg_fs: float = 500.0,
    ecg_normalization: str = "clip",
    expert_features: str = "none",
    ecg_tokenizer: Any = None,
    choice_answer: str = "letter",
) -> tuple[EcgLlmForConditionalGeneration, EcgLlmProcessor]:
    """A model and its processor. `backbone`/`vision`: a config dict (random init) or a hub name /
    local path (pretrained weights). `ecg`: EcgEncoderConfig kwargs (None: no ECG encoder).

    A backbone that is itself a vision-language model (its config has a vision_config) keeps its
    own vision tower (`vision` is ignored) and gets only the ECG encoder; its images go through
    the backbone's own processor (pixel_values and its extra inputs passed to the model as is):
    this processor then handles the ECG signals and text only.

    `ecg_tokenizer` (an EcgTokenizer or its folder; the tokenizer route, with `ecg=None`): the
    LLM's vocabulary gains the ECG tokens (new embedding rows, initialised deterministically so a
    base rebuilt from its hub name matches the trained one) and each ECG is read as its tokens.

    `choice_answer`: how the model answers lettered multiple-choice questions ("letter": "B. sinus
    rhythm"; "name_letter": "sinus rhythm (B)"), kept in the processor (ecgllm.data.tasks.common
    CHOICE_FORMATS)."""
    if ecg_tokenizer is not None:
        from .ecg_tokenizer import EcgTokenizer

        if ecg is not None:
            raise ValueError("ECG tokens (ecg_tokenizer) replace the ECG encoder: set ecg to none")
        if not isinstance(ecg_tokenizer, EcgTokenizer):
            ecg_tokenizer = EcgTokenizer.from_pretrained(ecg_tokenizer)
        if ecg_tokenizer.config.input_fs != ecg_fs:
            raise ValueError(
                f"the ECG tokenizer takes signals at {ecg_tokenizer.config.input_fs:g} Hz, the model at {ecg_fs:g} Hz"
            )
    text_cfg, text_path = _as_config(backbone)
    native = getattr(text_cfg, "vision_config", None) is not None  # Gemma 3 / Qwen2.5-VL / Mllama
    vis_cfg, vis_path = _vision_config(None if native else vision)
    native_proc = None
    if native and text_path and tokenizer is None:  # the backbone's own processor handles images
        from transformers import AutoProcessor

        native_proc = AutoProcessor.from_pretrained(text_path)
        tokenizer = native_proc.tokenizer
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(text_path) if text_path else load_tiny_tokenizer()
    ecg_tok, img_tok = ensure_placeholder_tokens(tokenizer)
    if not getattr(tokenizer, "chat_template", None) or chat_family:
        tokenizer.chat_template = template_for(text_cfg.model_type, chat_family)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ecg_cfg = None
    if ecg is not None:
        ecg_cfg = {
            **copy.deepcopy(ecg),
            "n_samples": int(round(ecg_fs * ecg_seconds)),
            "sampling_rate": ecg_fs,
        }
        if ecg_cfg.get("measurement_tokens") or ecg_cfg.get("rhythm_tokens"):
            from ..signal.features import MEASUREMENT_DIM

            ecg_cfg["measurement_dim"] = MEASUREMENT_DIM
    config = EcgLlmConfig(
        text_config=text_cfg, vision_config=vis_cfg, ecg_config=ecg_cfg, ecg_projector=ecg_projector,
        ecg_query_tokens=ecg_query_tokens,
        image_projector=image_projector, ecg_token_id=tokenizer.convert_tokens_to_ids(ecg_tok),
        image_token_id=tokenizer.convert_tokens_to_ids(img_tok), image_pool=image_pool,
        vision_feature_layer=vision_feature_layer, native_vision=native,
    )  # fmt: skip
    model = EcgLlmForConditionalGeneration(config)
    if text_path:
        from transformers import AutoModelForImageTextToText

        auto = AutoModelForImageTextToText if native else AutoModelForCausalLM
        model.language_model = auto.from_pretrained(text_path, dtype=dtype)
    if vis_path:  # a vision tower class loads its weights from a full CLIP/SigLIP checkpoint too
        model.vision_tower = type(model.vision_tower).from_pretrained(vis_path, dtype=dtype)
    if len(tokenizer) > model.language_model.get_input_embeddings().weight.shape[0]:
        model.language_model.resize_token_embeddings(len(tokenizer))
        model.config.text_config.vocab_size = len(tokenizer)
    if ecg_tokenizer is not None:
        tokenizer.add_tokens(ecg_tokenizer.added_tokens(), special_tokens=True)
        grow_embeddings(model.language_model, len(tokenizer))
        model.config.text_config.vocab_size = len(tokenizer)
    if native_proc is not None:
        image_processor = native_proc.image_processor
        native_kwargs = {
            k: getattr(native_proc, k) for k in ("image_seq_length",) if hasattr(native_proc, k)
        }
    else:
        # a signal-only model still carries an image processor (ProcessorMixin requires one);
        # with num_image_tokens 0 the processor refuses images
        image_processor = image_processor_for(
            vis_cfg if vis_cfg is not None else _Size(224), vis_path
        )
        native_kwargs = None
    processor = EcgLlmProcessor(
        image_processor,
        tokenizer,
        native_processor_class=type(native_proc).__name__ if native_proc is not None else None,
        native_kwargs=native_kwargs,
        ecg_token=ecg_tok, image_token=img_tok, num_ecg_tokens=config.num_ecg_tokens,
        num_image_tokens=config.num_image_tokens, ecg_fs=ecg_fs, ecg_seconds=ecg_seconds,
        ecg_normalization=ecg_normalization, ecg_expert_features=expert_features,
        ecg_measurement_dim=(
            config.ecg_config.measurement_dim
            if config.ecg_config is not None and config.ecg_config.uses_measurements else 0
        ),
        ecg_tokens=ecg_tokenizer.to_document() if ecg_tokenizer is not None else None,
        choice_answer=choice_answer,
    )  # fmt: skip
    stop_at_turn_end(model, tokenizer)
    return model, processor


def grow_embeddings(language_model, n: int, seed: int = 0) -> None:
    """Resize the LLM's embeddings (and an untied output head) to `n` rows, the new rows drawn from
    a seeded normal with the old rows' mean and spread: the same rows every time, unlike
    transformers' mean_resizing (random draws), so a base rebuilt from a hub name gets exactly
    the rows training started from."""
    import torch

    old = language_model.get_input_embeddings().weight.shape[0]
    if n <= old:
        return
    language_model.resize_token_embeddings(n, mean_resizing=False)
    g = torch.Generator().manual_seed(seed)
    mats = [language_model.get_input_embeddings().weight]
    out = language_model.get_output_embeddings()
    if out is not None and out.weight is not mats[0]:
        mats.append(out.weight)
    with torch.no_grad():
        for w in mats:
            ref = w[:old].float()
            noise = torch.randn((n - old, w.shape[1]), generator=g) * ref.std()
            w[old:] = (ref.mean(0) + noise).to(w.dtype)
