"""Published ECG encoders, re-implemented to load their released checkpoints (the encoder zoo).

    cfg = EcgEncoderConfig(encoder_type="st_mem", hidden_size=768, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=3072, patch_size=75)
    enc = build_ecg_encoder(cfg)                       # EcgEncoder for "builtin"
    load_encoder_weights(enc, "st_mem_vit_base.pth")   # the authors' file, as released
    tokens = enc(ecg_values, lead_mask)                # [B, 30, 768] from the toolkit's 12 x 5000 mV input

`st_mem`: ST-MEM (Na et al., ICLR 2024, github.com/bakqui/ST-MEM, its ST_MEM_ViT encoder): a
ViT over per-lead patches of 75 samples at 250 Hz (9 s = 2250 samples, 30 patches per lead),
each lead's sequence between two SEP tokens, a learned embedding per lead and a shared position
embedding; pre-norm transformer blocks. The parameter names are the authors' (to_patch_embedding.1-3,
pos_embedding, sep_embedding, lead_embeddings.<i>, block<i>.attn.norm, block<i>.attn.fn.to_qkv,
block<i>.attn.fn.to_out.0, block<i>.ff.fn.net.0/3, norm), so their encoder checkpoint loads
unchanged: a torch file whose "model" entry is that state dict (the downstream format), or the
pretraining one (keys under "encoder.", the decoder's ignored). Input as the authors prepare it:
resampled to 250 Hz, the centre 9 s, 0.67 Hz high-pass and 40 Hz low-pass (5th-order Butterworth,
forward-backward), standardised over all leads and samples together. Missing leads are zeroed
after that (the model was pretrained with random lead masking only as augmentation). Output: one
token per time patch, the mean over the present leads, through the final norm (the authors pool
further, over time, for classification), then the toolkit's output standardisation
(feature_mean / feature_std, identity until fitted). Weights: the authors' release (CC BY-NC 4.0 at the
time of writing; check their repository), to be downloaded by the user; nothing is downloaded here.

This file ships with exported models (no ecgllm import).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ZOO = ("st_mem",)


class _Patches(nn.Module):
    """[B, leads, samples] -> [B, leads, patches, patch] (no parameters: index 0 of the authors'
    to_patch_embedding, which is an einops Rearrange)."""

    def __init__(self, patch: int):
        super().__init__()
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        return x.reshape(b, c, n // self.patch, self.patch)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, inner * 3, bias=True)
        self.project = not (heads == 1 and dim_head == dim)
        self.to_out = (
            nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
            if self.project
            else nn.Identity()
        )
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            z.reshape(b, t, self.heads, -1).transpose(1, 2) for z in self.to_qkv(x).chunk(3, dim=-1)
        )
        a = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.p if self.training else 0.0
        )
        return self.to_out(a.transpose(1, 2).reshape(b, t, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Block(nn.Module):
    def __init__(self, dim: int, hidden: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.attn = _PreNorm(dim, _Attention(dim, heads, dim_head, dropout))
        self.ff = _PreNorm(dim, _FeedForward(dim, hidden, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ff(x)


class StMemEncoder(nn.Module):
    """ST-MEM's encoder (see the module doc) with the toolkit's input and output."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        if c.zoo_seq_len % c.patch_size:
            raise ValueError(
                f"st_mem: zoo_seq_len {c.zoo_seq_len} must be a multiple of patch_size {c.patch_size}"
            )
        if c.measurement_tokens or c.rhythm_tokens or c.verdict_outputs:
            raise ValueError(
                "st_mem takes the signal only: no measurement, rhythm or verdict tokens"
            )
        width, n = c.hidden_size, c.zoo_seq_len // c.patch_size
        self.width, self.depth = width, c.num_hidden_layers
        self.to_patch_embedding = nn.Sequential(_Patches(c.patch_size), nn.LayerNorm(c.patch_size),
                                                nn.Linear(c.patch_size, width), nn.LayerNorm(width))  # fmt: skip
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 2, width) * 0.02)
        self.sep_embedding = nn.Parameter(torch.randn(width) * 0.02)
        self.lead_embeddings = nn.ParameterList(
            nn.Parameter(torch.randn(width) * 0.02) for _ in range(c.n_leads)
        )
        head_dim = c.zoo_head_dim or width // c.num_attention_heads
        for i in range(c.num_hidden_layers):
            self.add_module(
                f"block{i}",
                _Block(width, c.intermediate_size, c.num_attention_heads, head_dim, c.dropout),
            )
        self.dropout = nn.Dropout(c.dropout)
        self.norm = nn.LayerNorm(width)
        self.gradient_checkpointing = False
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))

    # --- the authors' preprocessing, on the toolkit's [B, 12, n] mV at sampling_rate -------------
    def prepare(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None) -> torch.Tensor:
        from scipy import signal as sps

        c = self.config
        x = ecg_values.detach().float().cpu().numpy()
        if abs(c.sampling_rate - c.zoo_fs) > 1e-9:
            x = sps.resample(x, int(round(x.shape[-1] * c.zoo_fs / c.sampling_rate)), axis=-1)
        if x.shape[-1] < c.zoo_seq_len:
            raise ValueError(f"st_mem needs {c.zoo_seq_len / c.zoo_fs:g} s at {c.zoo_fs:g} Hz; got "
                             f"{x.shape[-1] / c.zoo_fs:g} s")  # fmt: skip
        start = (x.shape[-1] - c.zoo_seq_len) // 2
        x = x[..., start : start + c.zoo_seq_len]
        for btype, cut in (("highpass", 0.67), ("lowpass", 40.0)):
            if btype == "lowpass" and cut >= c.zoo_fs / 2:
                continue
            x = sps.sosfiltfilt(
                sps.butter(5, cut, btype=btype, fs=c.zoo_fs, output="sos"), x, axis=-1
            )
        mask = (
            np.ones(x.shape[:2], bool)
            if lead_mask is None
            else lead_mask.detach().cpu().numpy().astype(bool)
        )
        out = np.zeros_like(x)
        for i in range(len(x)):  # standardised over the present leads and all samples together
            m = mask[i]
            if m.any():
                loc, scale = x[i, m].mean(), x[i, m].std()
                out[i, m] = (x[i, m] - loc) / scale if scale > 0 else 0.0
        return torch.from_numpy(out.astype(np.float32)).to(ecg_values.device)

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        c = self.config
        b, n_leads, n = ecg_values.shape
        if n_leads != c.n_leads or n != c.n_samples:
            raise ValueError(
                f"ecg_values has shape [{b}, {n_leads}, {n}], the encoder expects [B, {c.n_leads}, {c.n_samples}]"
            )
        series = self.prepare(ecg_values, lead_mask).to(self.pos_embedding.dtype)
        x = self.to_patch_embedding(series)  # [B, leads, n, width]
        t = x.shape[2]
        x = x + self.pos_embedding[:, 1 : t + 1].unsqueeze(1)
        sep = self.sep_embedding[None, None, None].expand(b, n_leads, 1, -1)
        x = torch.cat(
            [
                sep + self.pos_embedding[:, :1].unsqueeze(1),
                x,
                sep + self.pos_embedding[:, -1:].unsqueeze(1),
            ],
            dim=2,
        )
        x = x + torch.stack(list(self.lead_embeddings))[None, :, None]
        x = self.dropout(x.reshape(b, n_leads * (t + 2), -1))
        for i in range(self.depth):
            block = getattr(self, f"block{i}")
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = x.reshape(b, n_leads, t + 2, -1)[:, :, 1:-1]  # SEP tokens removed
        m = torch.ones(b, n_leads, device=x.device) if lead_mask is None else lead_mask.to(x.dtype)
        tokens = (x * m[:, :, None, None]).sum(1) / m.sum(1).clamp(min=1.0)[:, None, None]
        h = self.norm(tokens)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from an ST-MEM file: {"model": state} or a bare state; the
        pretraining layout (keys under "encoder.", a decoder beside it) or the downstream one;
        a classification head is dropped; the output statistics kept as they are here."""
        state = raw.get("model", raw) if isinstance(raw, dict) else raw
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise ValueError(
                "not an ST-MEM checkpoint: expected a state dict of tensors (or one under 'model')"
            )
        if any(k.startswith("encoder.") for k in state):
            state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        own = self.state_dict()
        for k in ("feature_mean", "feature_std"):
            state.setdefault(k, own[k])
        return state

    def fit_output_stats(self, batches, min_std: float = 1e-3) -> dict:
        """As EcgEncoder.fit_output_stats: per-dimension mean and SD of the output tokens."""
        from .ecg_encoder import fit_output_stats

        return fit_output_stats(self, batches, min_std)


def zoo_num_tokens(config) -> int:
    if config.encoder_type == "st_mem":
        return config.zoo_seq_len // config.patch_size
    raise ValueError(f"unknown encoder_type {config.encoder_type!r}")


def build_ecg_encoder(config) -> nn.Module:
    """The ECG encoder a config names: the built-in one, or a zoo encoder."""
    if config.encoder_type == "builtin":
        from .ecg_encoder import EcgEncoder

        return EcgEncoder(config)
    if config.encoder_type == "st_mem":
        return StMemEncoder(config)
    raise ValueError(f"encoder_type must be builtin or one of {ZOO}, not {config.encoder_type!r}")
