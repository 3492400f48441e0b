"""The tiny model's tokenizer (shipped, built here from ECG instruction text) and placeholder
tokens for real backbones.

    tok = load_tiny_tokenizer()                         # byte-level BPE, 2k vocab, chat template
    ecg_tok, img_tok = ensure_placeholder_tokens(tok)   # reuse reserved tokens where the
                                                        # tokenizer has them, else add two
Placeholder embeddings are always replaced by projected features, so their rows never need
training: reusing a reserved token (Llama 3 `<|reserved_special_token_N|>`, Gemma `<unusedN>`,
Qwen `<|image_pad|>`/`<|video_pad|>`) keeps the vocabulary unchanged; otherwise two tokens are
added and the embedding matrices grow by two rows that are never read.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from .chat_templates import CHAT_TEMPLATES

TINY_DIR = Path(str(resources.files("ecgllm") / "resources" / "tiny_tokenizer"))
SPECIAL = ["<pad>", "<s>", "<|end|>", "<ecg>", "<image>", "<|system|>", "<|user|>", "<|assistant|>"]
ECG_TOKEN, IMAGE_TOKEN = "<ecg>", "<image>"
RESERVED = {
    "ecg": ["<|reserved_special_token_10|>", "<unused10>", "<|video_pad|>"],
    "image": ["<|reserved_special_token_11|>", "<unused11>", "<|image_pad|>"],
}


def train_tiny_tokenizer(
    texts, out_dir: str | Path = TINY_DIR, vocab_size: int = 2048
) -> PreTrainedTokenizerFast:
    """Byte-level BPE on `texts` (deterministic for the same texts), saved to `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|end|>", pad_token="<pad>",
                                   extra_special_tokens=SPECIAL[3:])  # fmt: skip
    fast.chat_template = CHAT_TEMPLATES["ecgllm"]
    fast.save_pretrained(str(out_dir))
    return fast


def load_tiny_tokenizer() -> PreTrainedTokenizerFast:
    if not (TINY_DIR / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"{TINY_DIR} is missing: run python data_builders/tiny_tokenizer.py to rebuild it"
        )
    return PreTrainedTokenizerFast.from_pretrained(str(TINY_DIR))


def ensure_placeholder_tokens(tokenizer) -> tuple[str, str]:
    """(ecg_token, image_token) strings present in `tokenizer`'s vocabulary as single tokens:
    ours if present, else a reserved token of the family, else two added special tokens."""
    vocab = tokenizer.get_vocab()
    out = []
    for kind, ours in (("ecg", ECG_TOKEN), ("image", IMAGE_TOKEN)):
        if ours in vocab:
            out.append(ours)
            continue
        found = next((t for t in RESERVED[kind] if t in vocab), None)
        if found is None:
            tokenizer.add_special_tokens(
                {"additional_special_tokens": [ours]}, replace_extra_special_tokens=False
            )
            found = ours
        out.append(found)
    return out[0], out[1]
