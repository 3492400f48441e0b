"""The built-in ECG encoder: 12-lead signal [B, 12, n] (mV) -> tokens [B, T, hidden].

A patch embedding over time (every `patch_size` samples of all leads -> one token), learned
positions and a learned embedding of the lead mask, a pre-norm transformer encoder, optional
average pooling to fewer tokens. Missing leads (lead_mask False) are zeroed and the present
ones rescaled by 12 / n_present, so any subset of leads (down to one) gives inputs of the
usual size.

The output is standardized per dimension with statistics of the training split
(`fit_output_stats`, run by the encoder pretraining and saved with its weights as the
`feature_mean` / `feature_std` buffers; identity until fitted). Why: after the final LayerNorm,
much of every token's norm is one direction shared by all records (59% for the embedded
default's encoder), so the record-specific part that the projector must map into the LLM rides
on a large constant. A random-init LLM trained end to end adapts to that; for a frozen
pretrained LLM (Gemma 3 270M, projector only) standardizing nearly doubled what the align stage
learned from the ECG (report loss with a shuffled minus the true ECG: 0.40 -> 0.74 nats).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.utils.checkpoint
from torch import nn

from .configuration_ecgllm import EcgEncoderConfig

log = logging.getLogger(__name__)


class Block(nn.Module):
    """Pre-norm transformer block (written out rather than nn.TransformerEncoderLayer, whose
    inference fast path switches kernels between runs: saved and reloaded models must give the
    same outputs bit for bit)."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .reshape(b, t, 3, self.heads, d // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.drop.p if self.training else 0.0
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.norm2(x)))


class MeasurementEmbedding(nn.Module):
    """Measurement vectors [B, 2F] (F standardized values, then F validity flags) -> [B, out]:
    a linear map plus a one-hidden-layer MLP (thresholds on single measurements, which rhythm
    criteria are, and their combinations)."""

    def __init__(self, n_features: int, out: int, hidden: int = 256):
        super().__init__()
        self.linear = nn.Linear(2 * n_features, out)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_features, hidden), nn.GELU(), nn.Linear(hidden, out)
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.linear(v) + self.mlp(v)


def measurement_columns(values: list[int], n_values: int) -> list[int]:
    """Columns of a measurement vector [values | validity flags] holding `values` and their flags
    (a plain list, not a buffer: from_pretrained leaves non-persistent buffers uninitialised)."""
    return [*values, *(n_values + i for i in values)]


class EcgEncoder(nn.Module):
    def __init__(self, config: EcgEncoderConfig):
        super().__init__()
        self.config = config
        n_patches = config.n_samples // config.patch_size
        self.patch_embed = nn.Linear(config.n_leads * config.patch_size, config.hidden_size)
        self.lead_embed = nn.Linear(config.n_leads, config.hidden_size, bias=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches, config.hidden_size))
        self.layers = nn.ModuleList(
            Block(
                config.hidden_size,
                config.num_attention_heads,
                config.intermediate_size,
                config.dropout,
            )
            for _ in range(config.num_hidden_layers)
        )
        self.gradient_checkpointing = False
        self.norm = nn.LayerNorm(config.hidden_size)
        k, r = config.measurement_tokens, config.rhythm_tokens
        if (k or r) and config.measurement_dim <= 0:
            raise ValueError(
                "measurement or rhythm tokens need measurement_dim (the vector's length)"
            )
        h = config.hidden_size
        n_values = config.measurement_dim // 2
        # [2 * n_values] columns of the measurement vector each path reads (values, then flags)
        rhythm = sorted(set(config.rhythm_features or [])) if r else []
        if any(not 0 <= i < n_values for i in rhythm):
            raise ValueError(f"rhythm_features {rhythm} outside the {n_values} measurement values")
        other = sorted(set(range(n_values)) - set(rhythm))
        if k:
            self.measure_cols = measurement_columns(other, n_values)
            self.measure_embed = MeasurementEmbedding(len(other), k * h)
            self.measure_pos = nn.Parameter(torch.zeros(1, k, h))
            nn.init.normal_(self.measure_pos, std=0.02)
            # their own path, not mixed into the transformer: trained on the simulator, attention
            # let the waveform tokens override them, and those misread real records' rates
            self.measure_norm = nn.LayerNorm(h)
        if r:  # the rhythm measurements alone (see EcgEncoderConfig)
            self.rhythm_cols = measurement_columns(rhythm, n_values)
            self.rhythm_embed = MeasurementEmbedding(len(rhythm), r * h)
            self.rhythm_pos = nn.Parameter(torch.zeros(1, r, h))
            nn.init.normal_(self.rhythm_pos, std=0.02)
            self.rhythm_norm = nn.LayerNorm(h)
        if config.verdict_outputs:  # the encoder's own reading of the record, as one token
            if not (k or r):
                raise ValueError(
                    "verdict_outputs needs measurement or rhythm tokens (it reads them)"
                )
            self.verdict_head = nn.Linear(h, config.verdict_outputs)
            self.verdict_embed = nn.Linear(config.verdict_outputs, h)
            self.verdict_norm = nn.LayerNorm(h)
        nn.init.normal_(self.pos_embed, std=0.02)
        # per-dimension output standardization (training-split statistics; identity until fitted)
        self.register_buffer("feature_mean", torch.zeros(config.hidden_size))
        self.register_buffer("feature_std", torch.ones(config.hidden_size))

    def forward(
        self,
        ecg_values: torch.Tensor,
        lead_mask: torch.Tensor | None = None,
        ecg_measurements: torch.Tensor | None = None,
        patch_mask: torch.Tensor | None = None,
        mask_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ecg_values [B, n_leads, n_samples] in mV; lead_mask [B, n_leads] bool (None: all present);
        ecg_measurements [B, measurement_dim] (the processor's measurement vectors; needed when
        measurement_tokens > 0). Masked pretraining only: patch_mask [B, n_patches] bool replaces
        those time patches' embeddings by `mask_embedding` [hidden_size] (plus their position).
        Returns [B, num_tokens, hidden_size]."""
        cfg = self.config
        b, n_leads, n = ecg_values.shape
        if n_leads != cfg.n_leads or n != cfg.n_samples:
            raise ValueError(
                f"ecg_values has shape [{b}, {n_leads}, {n}], the encoder expects [B, {cfg.n_leads}, "
                f"{cfg.n_samples}] ({cfg.n_samples / cfg.sampling_rate:g} s at {cfg.sampling_rate:g} Hz): "
                "standardize the record with the processor first"
            )
        if lead_mask is None:
            lead_mask = torch.ones(b, n_leads, dtype=torch.bool, device=ecg_values.device)
        m = lead_mask.to(ecg_values.dtype)
        present = m.sum(dim=1, keepdim=True).clamp(min=1.0)
        x = ecg_values * m[:, :, None] * (n_leads / present)[:, :, None] * cfg.input_scale
        n_patches = n // cfg.patch_size
        x = x[:, :, : n_patches * cfg.patch_size].reshape(b, n_leads, n_patches, cfg.patch_size)
        x = x.permute(0, 2, 1, 3).reshape(b, n_patches, n_leads * cfg.patch_size)
        h = self.patch_embed(x) + self.pos_embed[:, :n_patches] + self.lead_embed(m)[:, None, :]
        if patch_mask is not None:  # SimMIM-style: the model sees where, not what
            masked = mask_embedding.to(h.dtype) + self.pos_embed[:, :n_patches]
            h = torch.where(patch_mask[:, :n_patches, None], masked, h)
        k, r = cfg.measurement_tokens, cfg.rhythm_tokens
        extra = []  # measurement tokens, then rhythm tokens
        if k or r:
            if ecg_measurements is None or tuple(ecg_measurements.shape) != (
                b,
                cfg.measurement_dim,
            ):
                got = None if ecg_measurements is None else tuple(ecg_measurements.shape)
                raise ValueError(
                    f"this ECG encoder takes measurement tokens: pass ecg_measurements [{b}, "
                    f"{cfg.measurement_dim}] (the processor computes them from the signals), got {got}"
                )
            v = ecg_measurements.to(h.dtype)
            if k:
                meas = self.measure_embed(v[:, self.measure_cols]).reshape(b, k, -1)
                extra.append(self.measure_norm(meas + self.measure_pos))
            if r:
                rhy = self.rhythm_embed(v[:, self.rhythm_cols]).reshape(b, r, -1)
                extra.append(self.rhythm_norm(rhy + self.rhythm_pos))
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                h = torch.utils.checkpoint.checkpoint(layer, h, use_reentrant=False)
            else:
                h = layer(h)
        h = self.norm(h)
        if cfg.pool > 1:
            h = (
                h[:, : (n_patches // cfg.pool) * cfg.pool]
                .reshape(b, n_patches // cfg.pool, cfg.pool, -1)
                .mean(dim=2)
            )
        if extra:  # measurement tokens after the time tokens, on a path of their own (see __init__)
            h = torch.cat([h, *extra], dim=1)
        if cfg.verdict_outputs:  # the stage-0 head's outputs on the rhythm (else measurement) ones
            verdict = self.verdict_head(h[:, -(r or k) :]).mean(dim=1).clamp(-10.0, 10.0)
            h = torch.cat([h, self.verdict_norm(self.verdict_embed(verdict))[:, None]], dim=1)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def fit_output_stats(self, batches: Iterable[tuple], min_std: float = 1e-3) -> dict:
        """Set `feature_mean` / `feature_std` to the per-dimension mean and standard deviation of
        the (unstandardized) output tokens over `batches` of (ecg_values, lead_mask[,
        ecg_measurements]): the training split's records, not augmented. Returns the token count
        and the share of the tokens' mean norm that their shared mean direction carried before
        standardizing."""
        return fit_output_stats(self, batches, min_std)


@torch.no_grad()
def fit_output_stats(encoder: nn.Module, batches: Iterable[tuple], min_std: float = 1e-3) -> dict:
    """The output standardization of any ECG encoder with `feature_mean` / `feature_std` buffers
    and a `config.hidden_size` (EcgEncoder.fit_output_stats; the zoo's encoders too)."""
    encoder.feature_mean.zero_()
    encoder.feature_std.fill_(1.0)
    was_training = encoder.training
    encoder.eval()
    d = encoder.config.hidden_size
    n, s1, s2, norms = (
        0,
        torch.zeros(d, dtype=torch.float64),
        torch.zeros(d, dtype=torch.float64),
        0.0,
    )
    for batch in batches:
        h = encoder(*batch).reshape(-1, d).double().cpu()
        n += h.shape[0]
        s1 += h.sum(0)
        s2 += (h * h).sum(0)
        norms += h.norm(dim=-1).sum().item()
    encoder.train(was_training)
    if n < 2:
        raise ValueError("fit_output_stats needs at least one record")
    mean = s1 / n
    std = ((s2 / n - mean * mean).clamp(min=0.0)).sqrt().clamp(min=min_std)
    encoder.feature_mean.copy_(mean.to(encoder.feature_mean.dtype))
    encoder.feature_std.copy_(std.to(encoder.feature_std.dtype))
    return {"tokens": n, "mean_direction_share": float(mean.norm() / (norms / n))}


def load_encoder_weights(
    encoder: nn.Module, path: str | Path, prefix: str = "", strict: bool = True
) -> list[str]:
    """Load pretrained ECG-encoder weights from a local safetensors or torch file (a torch file
    that pickles other objects, such as its training config, is read with those objects replaced
    by inert stand-ins: ecgllm.model.pickled).

    `prefix` is stripped from the file's keys (e.g. "ecg_encoder."). Returns the keys that were not
    found in the file when strict=False; raises with the missing/unexpected keys when strict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ECG encoder weights {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:  # tensors, numbers, strings and containers only: never code from a file
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            # it pickles other objects too (a training config: fairseq's omegaconf, argparse):
            # read its tensors with those objects replaced by inert stand-ins, never run
            from .pickled import read_torch_file

            try:
                state, replaced = read_torch_file(path)
            except ValueError:
                raise ValueError(f"{path}: not a weights file torch can load ({e})") from e
            log.warning(
                "%s pickles objects besides its tensors (%s): read without running them; only its "
                "tensors are used",
                path,
                ", ".join(replaced[:5]) + (" ..." if len(replaced) > 5 else ""),
            )
    if hasattr(encoder, "checkpoint_state"):  # a zoo encoder reads its authors' file layout
        state = encoder.checkpoint_state(state)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    stats = {"feature_mean", "feature_std"}
    if strict and stats & set(encoder.state_dict()) and not stats & set(state):
        # weights saved before the output standardization existed: load them as they were
        log.warning(
            "%s has no output statistics (feature_mean/feature_std): the encoder's output is not "
            "standardized; re-run recipes/pretrain_ecg_encoder.py to fit them",
            path,
        )
        own = encoder.state_dict()
        state = {**state, "feature_mean": torch.zeros_like(own["feature_mean"]),
                 "feature_std": torch.ones_like(own["feature_std"])}  # fmt: skip
    try:
        result = encoder.load_state_dict(state, strict=strict)
    except RuntimeError as e:  # torch lists every mismatched key: say what it means
        own = encoder.state_dict()
        missing = sorted(set(own) - set(state))[:4]
        extra = sorted(set(state) - set(own))[:4]
        shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)][:4]
        raise ValueError(
            f"{path}: these ECG encoder weights do not fit the configured encoder (missing {missing}, "
            f"unexpected {extra}, other shapes {shape}): they were trained with another ecg config; "
            "pretrain the encoder again with this one (recipes/pretrain_ecg_encoder.py)"
        ) from e
    log.info("loaded ECG encoder weights from %s", path)
    return list(result.missing_keys)
