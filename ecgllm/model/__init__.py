"""The multimodal model: config, ECG encoder, modeling, processor, tokenizer, LoRA helpers.

Importing this package registers the classes with the transformers Auto classes, so
`AutoModelForImageTextToText.from_pretrained(dir)` and `AutoProcessor.from_pretrained(dir)` load
a saved EcgLlm checkpoint.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_ecgllm import EcgEncoderConfig, EcgLlmConfig
from .modeling_ecgllm import EcgLlmForConditionalGeneration
from .processing_ecgllm import EcgLlmProcessor

AutoConfig.register("ecgllm", EcgLlmConfig, exist_ok=True)
AutoConfig.register("ecgllm_ecg_encoder", EcgEncoderConfig, exist_ok=True)
AutoModel.register(EcgLlmConfig, EcgLlmForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(EcgLlmConfig, EcgLlmForConditionalGeneration, exist_ok=True)
AutoProcessor.register(EcgLlmConfig, EcgLlmProcessor, exist_ok=True)

from .factory import build_model  # noqa: E402

__all__ = [
    "EcgEncoderConfig",
    "EcgLlmConfig",
    "EcgLlmForConditionalGeneration",
    "EcgLlmProcessor",
    "build_model",
]
