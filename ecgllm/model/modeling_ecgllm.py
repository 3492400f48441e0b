"""EcgLlmForConditionalGeneration: ECG encoder + vision tower -> projectors -> causal LLM.

    model = EcgLlmForConditionalGeneration(config)
    out = model(input_ids, attention_mask, ecg_values=ecg [N_ecg, 12, 5000], lead_mask=[N_ecg, 12],
                pixel_values=[N_img, 3, H, W], labels=labels)
    ids = model.generate(**processor(...), max_new_tokens=32)

Each ECG appears in `input_ids` as `config.num_ecg_tokens` copies of `ecg_token_id`, each image
as `config.num_image_tokens` copies of `image_token_id` (the processor expands them); their
embeddings are replaced by the projected features, in order, across the whole batch, so a batch
may mix signal-only, image-only, both and text-only samples. In training every encoder runs every
step (on a dummy input when a batch has none of its modality, its output multiplied by zero) so
that all processes run the same modules: ZeRO-3 and FSDP hang otherwise.

Native multimodal backbones (config.native_vision: Gemma 3, Qwen2.5-VL, Llama 3.2 Vision) keep
their own image path: pixel_values and their extra inputs (image_grid_thw, token_type_ids,
aspect_ratio_ids, ...) go to the backbone unchanged, and only the ECG features are added, by a
hook on the backbone's input-embedding layer that fills the ECG placeholder positions.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_ecgllm import EcgLlmConfig
from .ecg_encoder import EcgEncoder, load_encoder_weights
from .ecg_zoo import ZooEncoder, build_ecg_encoder


class QueryFusion(nn.Module):
    """Q-Former-style fusion (BLIP-2): `n_queries` learned query tokens, each layer self-attention
    among the queries, cross-attention from the queries to the encoder's tokens and an MLP
    (pre-norm, residual), then a Linear to the LLM's width. The LLM gets n_queries tokens per ECG
    whatever the encoder makes, and the module trains with the LLM frozen (lora.mode: align). The
    queries do not see the question (BLIP-2 at inference, not InstructBLIP's instruction-aware
    variant)."""

    def __init__(self, in_dim: int, out_dim: int, n_queries: int, n_layers: int = 2):
        super().__init__()
        heads = next(h for h in (8, 4, 2, 1) if in_dim % h == 0)
        self.queries = nn.Parameter(torch.randn(1, n_queries, in_dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleDict({
                "norm1": nn.LayerNorm(in_dim), "self_attn": nn.MultiheadAttention(in_dim, heads, batch_first=True),
                "norm2": nn.LayerNorm(in_dim), "cross_attn": nn.MultiheadAttention(in_dim, heads, batch_first=True),
                "norm3": nn.LayerNorm(in_dim),
                "mlp": nn.Sequential(nn.Linear(in_dim, 4 * in_dim), nn.GELU(), nn.Linear(4 * in_dim, in_dim)),
            })
            for _ in range(n_layers)
        )  # fmt: skip
        self.out = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.queries.expand(x.shape[0], -1, -1).to(x.dtype)
        for layer in self.layers:
            h = layer["norm1"](q)
            q = q + layer["self_attn"](h, h, h, need_weights=False)[0]
            q = q + layer["cross_attn"](layer["norm2"](q), x, x, need_weights=False)[0]
            q = q + layer["mlp"](layer["norm3"](q))
        return self.out(q)


class Projector(nn.Module):
    """`linear`: one Linear; `mlp2x_gelu`: Linear-GELU-Linear (LLaVA-1.5's projector); `qformer`:
    QueryFusion with `n_queries` output tokens."""

    def __init__(self, kind: str, in_dim: int, out_dim: int, n_queries: int = 0):
        super().__init__()
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        elif kind == "mlp2x_gelu":
            self.net = nn.Sequential(
                nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
            )
        elif kind == "qformer":
            if n_queries < 1:
                raise ValueError("the qformer projector needs ecg_query_tokens >= 1")
            self.net = QueryFusion(in_dim, out_dim, n_queries)
        else:
            raise ValueError(f"projector must be 'linear', 'mlp2x_gelu' or 'qformer', not {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EcgLlmPreTrainedModel(PreTrainedModel):
    config_class = EcgLlmConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _no_split_modules = ["EcgEncoder", "StMemEncoder", "EcgFounderEncoder", "MerlResNetEncoder",
                         "MerlVitEncoder", "EcgFmEncoder", "HeartLangEncoder"]  # fmt: skip
    _skip_keys_device_placement = ["past_key_values"]

    def _init_weights(self, module: nn.Module) -> None:
        # only our own modules; the language model and vision tower initialise themselves
        if isinstance(module, (Projector, EcgEncoder, ZooEncoder)):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, std=0.02)
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)
                elif isinstance(sub, nn.LayerNorm):
                    nn.init.ones_(sub.weight)
                    nn.init.zeros_(sub.bias)
            if isinstance(
                module, (EcgEncoder, ZooEncoder)
            ):  # output standardization: identity until fitted
                nn.init.zeros_(module.feature_mean)
                nn.init.ones_(module.feature_std)


def placeholder_token_ids(model) -> list[int]:
    """The ECG and image placeholder token ids of a model (an EcgLlm model, a PeftModel around
    one, or a native VLM: whichever it has). They stand for inputs in a prompt and must never be
    generated: a sampled placeholder leaves a completion with more placeholders than inputs, which
    the next forward rejects. EcgLlmForConditionalGeneration.generate suppresses them by default;
    for another model pass `suppress_tokens=placeholder_token_ids(model)`."""
    cfg = getattr(model, "config", None)
    ids = (getattr(cfg, "ecg_token_id", None), getattr(cfg, "image_token_id", None))
    return [int(t) for t in ids if isinstance(t, int) and t >= 0]


def _last_positions(logits_to_keep: int | torch.Tensor, embeds: torch.Tensor) -> int | torch.Tensor:
    """`logits_to_keep=k` (the last k positions) as an index tensor. The backbones slice the
    hidden states with it, and a slice of a [B, L, d] tensor is not contiguous, so the LM head's
    linear runs as a broadcast bmm: on CPU with Gemma's 262k vocabulary 5x slower than the mm an
    index (a contiguous copy) gets (32 rows: 1.04 s against 0.20 s; the prefill of generate and
    every cached scoring pass keep 1 position). The logits are the same."""
    length = embeds.shape[1]
    if isinstance(logits_to_keep, int) and 0 < logits_to_keep < length:
        return torch.arange(length - logits_to_keep, length, device=embeds.device)
    return logits_to_keep


def _cache_kwargs(lm: nn.Module, past_key_values, kwargs: dict) -> dict:
    """`kwargs` for the language model with the KV cache passed once, by the name it takes:
    transformers >= 5.2x calls it `cache` (generate() hands it over so, in kwargs) and
    `past_key_values` is its deprecated name, which warns on every call; older 5.x take only
    `past_key_values`."""
    if past_key_values is None or "cache" in kwargs:
        return kwargs
    name = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    return {**kwargs, name: past_key_values}


class EcgLlmForConditionalGeneration(EcgLlmPreTrainedModel, GenerationMixin):
    def __init__(self, config: EcgLlmConfig):
        super().__init__(config)
        text = config.text_config
        if config.native_vision:
            from transformers import AutoModelForImageTextToText

            self.language_model = AutoModelForImageTextToText.from_config(text)
        else:
            self.language_model = AutoModelForCausalLM.from_config(text)
        hidden = config.llm_hidden_size
        self.vision_tower = (
            AutoModel.from_config(config.vision_config)
            if config.vision_config is not None
            else None
        )
        self.ecg_encoder = (
            build_ecg_encoder(config.ecg_config) if config.ecg_config is not None else None
        )
        self.image_projector = (
            Projector(config.image_projector, config.vision_config.hidden_size, hidden)
            if self.vision_tower is not None
            else None
        )
        self.ecg_projector = (
            Projector(
                config.ecg_projector, config.ecg_config.hidden_size, hidden, config.ecg_query_tokens
            )
            if self.ecg_encoder is not None
            else None
        )
        self.post_init()
        if config.ecg_config is not None and config.ecg_config.pretrained_path:
            load_encoder_weights(self.ecg_encoder, config.ecg_config.pretrained_path)

    # --- embeddings delegate to the language model ---
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    # --- modality features ---
    def get_ecg_features(
        self,
        ecg_values: torch.Tensor,
        lead_mask: torch.Tensor | None = None,
        ecg_measurements: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ecg_values [N, 12, n_samples] (mV), lead_mask [N, 12] bool, ecg_measurements
        [N, measurement_dim] (when the encoder has measurement tokens) -> [N, num_ecg_tokens,
        text hidden]."""
        if self.ecg_encoder is None:
            raise ValueError("this model has no ECG encoder (config.ecg_config is None)")
        dtype = next(self.ecg_projector.parameters()).dtype
        if ecg_measurements is not None:
            ecg_measurements = ecg_measurements.to(dtype)
        return self.ecg_projector(
            self.ecg_encoder(ecg_values.to(dtype), lead_mask, ecg_measurements)
        )

    def _modality_features(self, ids: torch.Tensor, values: torch.Tensor | None, token_id: int,
                           what: str, name: str, encode, dummy) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # fmt: skip
        """(features of the given inputs, None) when there are any; (None, zero) in training when
        there are none, `zero` being the encoder run on a dummy input times 0 (every parameter
        gets a gradient each step, which DDP / ZeRO-3 / FSDP need); an error when `ids` hold
        placeholders for inputs that were not given."""
        if values is not None and values.shape[0] > 0:
            return encode(), None
        n_tokens = int((ids == token_id).sum()) if ids is not None else 0
        if n_tokens:
            raise ValueError(
                f"input_ids hold {n_tokens} {what} placeholder tokens but no {name} were given"
            )
        if self.training and self.config.always_run_encoders:
            return None, dummy().sum() * 0.0
        return None, None

    def _ecg_features(self, ids, ecg_values, lead_mask, ecg_measurements, device):
        cfg = self.config.ecg_config

        def dummy():
            x = torch.zeros(1, cfg.n_leads, cfg.n_samples, device=device)
            m = (
                torch.zeros(1, cfg.measurement_dim, device=device)
                if cfg.uses_measurements
                else None
            )
            return self.get_ecg_features(x, None, m)

        return self._modality_features(
            ids, ecg_values, self.config.ecg_token_id, "ECG", "ecg_values",
            lambda: self.get_ecg_features(ecg_values, lead_mask, ecg_measurements), dummy,
        )  # fmt: skip

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [N, 3, H, W] -> [N, num_image_tokens, text hidden] (patch features of
        `vision_feature_layer`, average-pooled `image_pool` x `image_pool`)."""
        if self.vision_tower is None:
            raise ValueError("this model has no vision tower (config.vision_config is None)")
        out = self.vision_tower(
            pixel_values=pixel_values.to(self.vision_tower.dtype), output_hidden_states=True
        )
        feats = out.hidden_states[self.config.vision_feature_layer]
        if (
            feats.shape[1]
            != (self.config.vision_config.image_size // self.config.vision_config.patch_size) ** 2
        ):
            feats = feats[:, 1:]  # CLIP-style towers prepend a class token
        k = self.config.image_pool
        if k > 1:
            n, t, d = feats.shape
            side = int(round(t**0.5))
            grid = feats.reshape(n, side, side, d).permute(0, 3, 1, 2)
            feats = nn.functional.avg_pool2d(grid, k).flatten(2).transpose(1, 2)
        return self.image_projector(feats)

    @staticmethod
    def _scatter(
        embeds: torch.Tensor, mask: torch.Tensor, feats: torch.Tensor, what: str, per_item: int
    ) -> torch.Tensor:
        n_tokens = int(mask.sum())
        if n_tokens != feats.shape[0] * feats.shape[1]:
            raise ValueError(
                f"expected {feats.shape[0]} {what}(s) x {per_item} placeholder tokens = "
                f"{feats.shape[0] * per_item} in input_ids, found {n_tokens}: each {what} must be "
                f"expanded to exactly {per_item} tokens by the processor (and not cut by truncation)"
            )
        return embeds.masked_scatter(
            mask[..., None].to(embeds.device), feats.to(embeds.dtype).reshape(-1, feats.shape[-1])
        )

    def _merge(self, input_ids, inputs_embeds, ecg_values, lead_mask, pixel_values,
               ecg_measurements=None) -> torch.Tensor:  # fmt: skip
        cfg = self.config
        zeros = []
        if self.ecg_encoder is not None:
            feats, zero = self._ecg_features(
                input_ids, ecg_values, lead_mask, ecg_measurements, inputs_embeds.device
            )
            if feats is not None:
                inputs_embeds = self._scatter(
                    inputs_embeds, input_ids == cfg.ecg_token_id, feats, "ECG", cfg.num_ecg_tokens
                )
            zeros.append(zero)
        if self.vision_tower is not None:
            size = cfg.vision_config.image_size
            feats, zero = self._modality_features(
                input_ids, pixel_values, cfg.image_token_id, "image", "pixel_values",
                lambda: self.get_image_features(pixel_values),
                lambda: self.get_image_features(torch.zeros(1, 3, size, size, device=inputs_embeds.device)),
            )  # fmt: skip
            if feats is not None:
                inputs_embeds = self._scatter(
                    inputs_embeds,
                    input_ids == cfg.image_token_id,
                    feats,
                    "image",
                    cfg.num_image_tokens,
                )
            zeros.append(zero)
        for zero in zeros:
            if zero is not None:
                inputs_embeds = inputs_embeds + zero.to(inputs_embeds.dtype)
        return inputs_embeds

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        ecg_values: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        ecg_measurements: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        supervised_logits_only: bool = False,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """input_ids [B, L] with expanded placeholders; ecg_values [N_ecg, 12, n] mV over the whole
        batch in order of appearance; lead_mask [N_ecg, 12]; pixel_values [N_img, 3, H, W];
        ecg_measurements [N_ecg, measurement_dim] when the encoder has measurement tokens;
        labels [B, L] with -100 where not supervised. Returns the language model's output
        (loss, logits [B, L, vocab], past_key_values).

        supervised_logits_only (training, with labels): the LM head runs only at the positions
        that predict a supervised token, and `logits` is [B, K, vocab] for those K positions
        (the union over the batch). The loss is the same; with a 262k vocabulary (Gemma 3) the
        full [B, L, vocab] logits are most of a step's time and memory."""
        if supervised_logits_only and labels is not None:
            return self._supervised_forward(
                input_ids, attention_mask, ecg_values, lead_mask, pixel_values, labels, inputs_embeds,
                position_ids, kwargs.pop("num_items_in_batch", None), ecg_measurements=ecg_measurements,
                **kwargs,
            )  # fmt: skip
        if self.config.native_vision:
            return self._native_forward(input_ids, attention_mask, ecg_values, lead_mask, pixel_values, labels,
                                        position_ids, past_key_values, use_cache, logits_to_keep,
                                        ecg_measurements=ecg_measurements, **kwargs)  # fmt: skip
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give input_ids or inputs_embeds")
            inputs_embeds = self.get_input_embeddings()(input_ids)
            inputs_embeds = self._merge(
                input_ids, inputs_embeds, ecg_values, lead_mask, pixel_values, ecg_measurements
            )
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            labels=labels,
            logits_to_keep=_last_positions(logits_to_keep, inputs_embeds),
            **_cache_kwargs(self.language_model, past_key_values, kwargs),
        )

    def _supervised_forward(self, input_ids, attention_mask, ecg_values, lead_mask, pixel_values, labels,
                            inputs_embeds, position_ids, num_items_in_batch, **kwargs) -> CausalLMOutputWithPast:  # fmt: skip
        # written out because the backbones' own loss needs [B, L, vocab] logits: we keep the
        # positions p whose next label is supervised (`logits_to_keep` as a 1-D index tensor, the
        # form every transformers 5 causal LM accepts) and apply the same shifted cross-entropy
        # (sum / num_items_in_batch, else the mean over supervised tokens) as ForCausalLMLoss
        keep = (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)
        if keep.numel() == 0:
            keep = torch.zeros(1, dtype=torch.long, device=labels.device)
        out = self.forward(
            input_ids, attention_mask, ecg_values, lead_mask, pixel_values, labels=None,
            inputs_embeds=inputs_embeds, position_ids=position_ids, use_cache=False, logits_to_keep=keep,
            **kwargs,
        )  # fmt: skip
        logits = out.logits.float()
        target = labels[:, keep + 1].to(logits.device)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        if num_items_in_batch is None:
            num_items_in_batch = (target != -100).sum().clamp(min=1)
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        out.loss = loss / num_items_in_batch
        return out

    @contextmanager
    def _inject_ecg(self, feats: torch.Tensor | None, zero: torch.Tensor | None):
        """While active, the backbone's embedding layer writes `feats` at the ECG placeholders."""
        if feats is None and zero is None:
            yield
            return
        cfg = self.config

        def hook(module, args, output):
            ids = args[0]
            if feats is not None:
                output = self._scatter(
                    output, ids == cfg.ecg_token_id, feats, "ECG", cfg.num_ecg_tokens
                )
            if zero is not None:
                output = output + zero.to(output.dtype)
            return output

        handle = self.get_input_embeddings().register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def _native_forward(self, input_ids, attention_mask, ecg_values, lead_mask, pixel_values, labels, position_ids,
                        past_key_values, use_cache, logits_to_keep, ecg_measurements=None, **kwargs):  # fmt: skip
        feats = zero = None
        if input_ids is not None and self.ecg_encoder is not None:
            feats, zero = self._ecg_features(
                input_ids, ecg_values, lead_mask, ecg_measurements, input_ids.device
            )
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values
        with self._inject_ecg(feats, zero):
            return self.language_model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=use_cache, labels=labels, logits_to_keep=logits_to_keep,
                **_cache_kwargs(self.language_model, past_key_values, kwargs),
            )  # fmt: skip

    def generate(self, *args, **kwargs):
        # the ECG/page placeholders are never generated (placeholder_token_ids), unless the caller
        # passes suppress_tokens itself
        kwargs.setdefault("suppress_tokens", placeholder_token_ids(self) or None)
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, *args, ecg_values=None, lead_mask=None, pixel_values=None,
                                      ecg_measurements=None, is_first_iteration: bool | None = False, **kwargs):  # fmt: skip
        inputs = super().prepare_inputs_for_generation(
            input_ids, *args, is_first_iteration=is_first_iteration, **kwargs
        )
        if is_first_iteration or not kwargs.get("use_cache", True):
            # the ECG/image features enter the KV cache at prefill; later steps only see new tokens
            inputs.update(
                ecg_values=ecg_values,
                lead_mask=lead_mask,
                pixel_values=pixel_values,
                ecg_measurements=ecg_measurements,
            )
        return inputs
