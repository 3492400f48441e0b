"""Chat templates per backbone family, with content items {"type": "ecg"} / {"type": "image"}
rendered as the processor's placeholder strings, and {% generation %} markers around assistant
replies so that `apply_chat_template(..., return_assistant_tokens_mask=True)` yields the exact
supervised spans (training masks everything else; no string search).

`ecgllm` is the default for tokenizers that ship none (our tiny tokenizer, the GGUF Gemma).
"""

from __future__ import annotations

_CONTENT = (
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'ecg' -%}{{ ecg_token | default('<ecg>') }}"
    "{%- elif item['type'] == 'image' -%}{{ image_token | default('<image>') }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
)


def _template(
    start: str, role_map: dict[str, str], end: str, gen_prompt: str, bos: str = ""
) -> str:
    roles = (
        "".join(
            f"{{%- {'if' if i == 0 else 'elif'} message['role'] == '{k}' -%}}{{%- set r = '{v}' -%}}"
            for i, (k, v) in enumerate(role_map.items())
        )
        + "{%- endif -%}"
    )
    # no "-" whitespace control right after a literal: it would eat the template's newlines
    return (
        bos
        + "{%- for message in messages -%}"
        + roles
        + start
        + "{% if message['role'] == 'assistant' %}{% generation %}"
        + _CONTENT
        + end
        + "{% endgeneration %}{% else %}"
        + _CONTENT
        + end
        + "{% endif %}"
        + "{% endfor %}"
        + "{% if add_generation_prompt %}"
        + gen_prompt
        + "{% endif %}"
    )


# the token that ends a turn in each family's template (generation stops there too: stop_at_turn_end)
END_OF_TURN = {
    "ecgllm": "<|end|>",
    "llama3": "<|eot_id|>",
    "gemma": "<end_of_turn>",
    "chatml": "<|im_end|>",
}
CHAT_TEMPLATES = {
    "ecgllm": _template("<|{{ r }}|>\n", {"system": "system", "user": "user", "assistant": "assistant"},
                        END_OF_TURN["ecgllm"] + "\n", "<|assistant|>\n"),
    "llama3": _template("<|start_header_id|>{{ r }}<|end_header_id|>\n\n",
                        {"system": "system", "user": "user", "assistant": "assistant"}, END_OF_TURN["llama3"],
                        "<|start_header_id|>assistant<|end_header_id|>\n\n", bos="{{ bos_token }}"),
    "gemma": _template("<start_of_turn>{{ r }}\n", {"system": "user", "user": "user", "assistant": "model"},
                       END_OF_TURN["gemma"] + "\n", "<start_of_turn>model\n", bos="{{ bos_token }}"),
    "chatml": _template("<|im_start|>{{ r }}\n", {"system": "system", "user": "user", "assistant": "assistant"},
                        END_OF_TURN["chatml"] + "\n", "<|im_start|>assistant\n"),
}  # fmt: skip
FAMILY_OF_MODEL_TYPE = {"llama": "llama3", "gemma": "gemma", "gemma2": "gemma", "gemma3_text": "gemma",
                        "gemma3": "gemma", "qwen2": "chatml", "qwen3": "chatml", "qwen2_5_vl": "chatml",
                        "mllama": "llama3"}  # fmt: skip


def template_for(model_type: str | None, family: str | None = None) -> str:
    """Our template for a backbone family (explicit `family`, else by model_type; default ecgllm)."""
    name = family or FAMILY_OF_MODEL_TYPE.get(model_type or "", "ecgllm")
    if name not in CHAT_TEMPLATES:
        raise ValueError(
            f"chat template family must be one of {sorted(CHAT_TEMPLATES)}, not {name!r}"
        )
    return CHAT_TEMPLATES[name]


def stop_at_turn_end(model, tokenizer) -> None:
    """Make generation stop at the chat template's end-of-turn token as well as at EOS (Gemma's
    <end_of_turn>, Llama 3's <|eot_id|>, ChatML's <|im_end|>), as the backbones' own generation
    configs do. A backbone loaded without one (the GGUF Gemma 3: EOS <eos> only) otherwise writes
    past its answer ("B. sinus rhythm<end_of_turn>\n... B. sinus rhythm ...") to max_new_tokens.
    `model` may be a PeftModel; a model saved after this keeps it in generation_config.json."""
    template = getattr(tokenizer, "chat_template", None) or ""
    gc = getattr(model, "generation_config", None)
    if gc is None:
        return
    eos = gc.eos_token_id
    ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    add = []
    for end in END_OF_TURN.values():
        tid = tokenizer.convert_tokens_to_ids(end) if end in template else None
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids + add:
            add.append(tid)
    if add:  # otherwise left exactly as it was
        gc.eos_token_id = ids + add
