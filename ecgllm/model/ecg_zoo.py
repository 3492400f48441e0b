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

`ecgfounder`: ECGFounder's Net1D (EcgFounderEncoder below; 500 Hz, 10 s, 20 tokens of 1024),
`merl_resnet` and `merl_vit`: MERL's ResNet1d and ViT (MerlResNetEncoder, MerlVitEncoder; 500 Hz,
10 s, zoo_tokens tokens), `ecg_fm`: ECG-FM's wav2vec 2.0 encoder (EcgFmEncoder; 500 Hz, 5 s
segments, zoo_tokens tokens of 768; its fairseq checkpoints pickle an omegaconf config, which
load_encoder_weights reads without running: ecgllm/model/pickled.py), `heartlang`: HeartLang's
ST-ECGFormer over heartbeat words (HeartLangEncoder; 100 Hz, 10 s, XQRS beats, 13 tokens):

    cfg = EcgEncoderConfig(encoder_type="ecgfounder", hidden_size=1024)   # the released 12-lead model
    load_encoder_weights(build_ecg_encoder(cfg), "12_lead_ECGFounder.pth")

This file ships with exported models (no ecgllm import).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ZOO = ("st_mem", "ecgfounder", "merl_resnet", "merl_vit", "ecg_fm", "heartlang")


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
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, qkv_bias: bool = True):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, inner * 3, bias=qkv_bias)
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


def _add_vit_blocks(module: nn.Module, c, width: int) -> None:
    """block0 .. block<n-1> (pre-norm, lucidrains' vit_1d names), dropout and the final norm, as
    ST-MEM's and MERL's ViTs have them."""
    head_dim = c.zoo_head_dim or width // c.num_attention_heads
    module.depth = c.num_hidden_layers
    for i in range(c.num_hidden_layers):
        module.add_module(
            f"block{i}",
            _Block(width, c.intermediate_size, c.num_attention_heads, head_dim, c.dropout),
        )
    module.dropout = nn.Dropout(c.dropout)
    module.norm = nn.LayerNorm(width)


def _run_vit_blocks(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for i in range(module.depth):
        block = getattr(module, f"block{i}")
        if module.gradient_checkpointing and module.training:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


class _Block(nn.Module):
    def __init__(self, dim: int, hidden: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.attn = _PreNorm(dim, _Attention(dim, heads, dim_head, dropout))
        self.ff = _PreNorm(dim, _FeedForward(dim, hidden, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ff(x)


class ZooEncoder(nn.Module):
    """What every zoo encoder shares: reading a state dict out of its authors' file, and the
    toolkit's output standardisation (feature_mean / feature_std buffers)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        if config.measurement_tokens or config.rhythm_tokens or config.verdict_outputs:
            raise ValueError(
                f"{config.encoder_type} takes the signal only: no measurement, rhythm or verdict tokens"
            )
        self.gradient_checkpointing = False
        self.register_buffer("feature_mean", torch.zeros(config.hidden_size))
        self.register_buffer("feature_std", torch.ones(config.hidden_size))

    def _state_in(self, raw, keys: tuple[str, ...], what: str) -> dict:
        """The state dict of tensors in `raw` (under the first of `keys` present, else `raw`
        itself); a ValueError naming `what` when there is none."""
        state = raw
        if isinstance(raw, dict):
            for key in keys:
                if isinstance(raw.get(key), dict):
                    state = raw[key]
                    break
        if (
            not isinstance(state, dict)
            or not state
            or not all(isinstance(v, torch.Tensor) for v in state.values())
        ):
            under = " or ".join(repr(k) for k in keys)
            raise ValueError(
                f"not an {what} checkpoint: expected a state dict of tensors (or one under {under})"
            )
        return state

    def _check_input(self, ecg_values: torch.Tensor) -> tuple[int, int, int]:
        """[B, n_leads, n_samples] as the config says, else a ValueError; returns the shape."""
        c = self.config
        b, n_leads, n = ecg_values.shape
        if n_leads != c.n_leads or n != c.n_samples:
            raise ValueError(
                f"ecg_values has shape [{b}, {n_leads}, {n}], the encoder expects [B, {c.n_leads}, {c.n_samples}]"
            )
        return b, n_leads, n

    def _window(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None, centre: bool,
                whole: bool = False):  # fmt: skip
        """(x, mask): the signal resampled to zoo_fs when the rates differ, then zoo_seq_len
        samples of it (the centre ones, or the first; all of it with `whole`, at least
        zoo_seq_len), and the lead mask as bool (all present when None)."""
        c = self.config
        x = ecg_values.float()
        if abs(c.sampling_rate - c.zoo_fs) > 1e-9:
            from scipy import signal as sps

            n = int(round(x.shape[-1] * c.zoo_fs / c.sampling_rate))
            x = torch.from_numpy(
                sps.resample(x.detach().cpu().numpy(), n, axis=-1).astype(np.float32)
            ).to(ecg_values.device)
        if x.shape[-1] < c.zoo_seq_len:
            raise ValueError(f"{c.encoder_type} needs {c.zoo_seq_len / c.zoo_fs:g} s at {c.zoo_fs:g} Hz; "
                             f"got {x.shape[-1] / c.zoo_fs:g} s")  # fmt: skip
        if not whole:
            start = (x.shape[-1] - c.zoo_seq_len) // 2 if centre else 0
            x = x[..., start : start + c.zoo_seq_len]
        m = (
            torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            if lead_mask is None
            else lead_mask.to(x.device).bool()
        )
        return x, m

    def _with_own_stats(self, state: dict) -> dict:
        """`state` plus this encoder's output statistics where the authors' file has none."""
        own = self.state_dict()
        return {**{k: own[k] for k in ("feature_mean", "feature_std")}, **state}

    def fit_output_stats(self, batches, min_std: float = 1e-3) -> dict:
        """As EcgEncoder.fit_output_stats: per-dimension mean and SD of the output tokens."""
        from .ecg_encoder import fit_output_stats

        return fit_output_stats(self, batches, min_std)


class StMemEncoder(ZooEncoder):
    """ST-MEM's encoder (see the module doc) with the toolkit's input and output."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        if c.zoo_seq_len % c.patch_size:
            raise ValueError(
                f"st_mem: zoo_seq_len {c.zoo_seq_len} must be a multiple of patch_size {c.patch_size}"
            )
        width, n = c.hidden_size, c.zoo_seq_len // c.patch_size
        self.width = width
        self.to_patch_embedding = nn.Sequential(_Patches(c.patch_size), nn.LayerNorm(c.patch_size),
                                                nn.Linear(c.patch_size, width), nn.LayerNorm(width))  # fmt: skip
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 2, width) * 0.02)
        self.sep_embedding = nn.Parameter(torch.randn(width) * 0.02)
        self.lead_embeddings = nn.ParameterList(
            nn.Parameter(torch.randn(width) * 0.02) for _ in range(c.n_leads)
        )
        _add_vit_blocks(self, c, width)

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
        b, n_leads, _ = self._check_input(ecg_values)
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
        x = _run_vit_blocks(self, x)
        x = x.reshape(b, n_leads, t + 2, -1)[:, :, 1:-1]  # SEP tokens removed
        m = torch.ones(b, n_leads, device=x.device) if lead_mask is None else lead_mask.to(x.dtype)
        tokens = (x * m[:, :, None, None]).sum(1) / m.sum(1).clamp(min=1.0)[:, None, None]
        h = self.norm(tokens)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from an ST-MEM file: {"model": state} or a bare state; the
        pretraining layout (keys under "encoder.", a decoder beside it) or the downstream one;
        a classification head is dropped; the output statistics kept as they are here."""
        state = self._state_in(raw, ("model",), "ST-MEM")
        if any(k.startswith("encoder.") for k in state):
            state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        return self._with_own_stats({k: v for k, v in state.items() if not k.startswith("head.")})


# --- ECGFounder (Net1D) -------------------------------------------------------------------------
# Written here (not imported from the authors' net1d.py, which is not packaged and imports
# matplotlib): the same module tree, so their state dict loads by name.


class _ConvSame(nn.Module):
    """Conv1d with TensorFlow-style SAME padding (their MyConv1dPadSame: output length
    ceil(n / stride), the extra pad sample on the right)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        p = max(0, ((n + self.stride - 1) // self.stride - 1) * self.stride + self.kernel - n)
        return self.conv(nn.functional.pad(x, (p // 2, p - p // 2)))


class _MaxPoolSame(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.max_pool = nn.MaxPool1d(kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel - 1
        return self.max_pool(nn.functional.pad(x, (p // 2, p - p // 2)))


class _Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class _Net1DBlock(nn.Module):
    """Pre-activation bottleneck: (swish) -> 1x1 -> swish -> grouped k (stride when it
    downsamples) -> swish -> 1x1, squeeze-and-excitation (reduction 2), plus the shortcut
    (max-pooled when downsampling, zero-padded on both sides when the channels grow). The
    released model runs without batch norm and dropout (use_bn=use_do=False); the norms stay as
    modules, unused, because their buffers are in the released state dict."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, downsample: bool,
                 first: bool):  # fmt: skip
        super().__init__()
        self.cin, self.cout, self.first, self.downsample = cin, cout, first, downsample
        stride = stride if downsample else 1
        self.bn1, self.activation1 = nn.BatchNorm1d(cin), _Swish()
        self.conv1 = _ConvSame(cin, cout, 1, 1)
        self.bn2, self.activation2 = nn.BatchNorm1d(cout), _Swish()
        self.conv2 = _ConvSame(cout, cout, kernel, stride, groups)
        self.bn3, self.activation3 = nn.BatchNorm1d(cout), _Swish()
        self.conv3 = _ConvSame(cout, cout, 1, 1)
        self.se_fc1, self.se_fc2 = nn.Linear(cout, cout // 2), nn.Linear(cout // 2, cout)
        self.se_activation = _Swish()
        if downsample:
            self.max_pool = _MaxPoolSame(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first else self.activation1(x)
        out = self.conv1(out)
        out = self.conv2(self.activation2(out))
        out = self.conv3(self.activation3(out))
        se = torch.sigmoid(self.se_fc2(self.se_activation(self.se_fc1(out.mean(-1)))))
        out = out * se[:, :, None]
        identity = self.max_pool(x) if self.downsample else x
        if self.cout != self.cin:
            a = (self.cout - self.cin) // 2
            identity = nn.functional.pad(identity, (0, 0, a, self.cout - self.cin - a))
        return out + identity


class _Net1DStage(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, i_stage: int,
                 m_blocks: int):  # fmt: skip
        super().__init__()
        self.block_list = nn.ModuleList(
            _Net1DBlock(
                cin if j == 0 else cout,
                cout,
                kernel,
                stride,
                groups,
                downsample=j == 0,
                first=i_stage == 0 and j == 0,
            )  # fmt: skip
            for j in range(m_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class EcgFounderEncoder(ZooEncoder):
    """ECGFounder's encoder (Li et al. 2025, "An electrocardiogram foundation model built on over
    10 million recordings", github.com/PKUDigitalHealth/ECGFounder): Shenda Hong's Net1D, a
    1-D RegNet-style network of 7 stages (channels 64-160-160-400-400-1024-1024, 2-2-2-3-3-4-4
    bottleneck blocks, kernel 16, groups of 16 channels, squeeze-and-excitation, Swish), each stage
    halving the length. The parameter names are the authors' (first_conv.conv, first_bn,
    stage_list.<i>.block_list.<j>.conv1/2/3.conv, se_fc1/2, bn1/2/3; dense = their 150-label head,
    dropped), so the released file loads unchanged: a torch file with the state dict under
    "state_dict" (their training code's layout; "model" or a bare state dict also read, and a
    "module." prefix from DataParallel stripped). Input as their dataset code prepares it: 500 Hz,
    10 s (5000 samples), the standard lead order I, II, III, aVR, aVL, aVF, V1-V6, z-scored over
    all leads and samples together, no filtering; missing leads are zeroed after that. Output: the
    last stage's feature map as tokens ([B, 20, 1024] for 5000 samples; the authors average it
    over time for their head), then the toolkit's output standardisation. Weights: the authors'
    release on the Hugging Face Hub (PKUDigitalHealth/ECGFounder, 12_lead_ECGFounder.pth), to be
    downloaded by the user under its licence (see their model card); nothing is downloaded here."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        self.first_conv = _ConvSame(c.n_leads, c.zoo_base_filters, c.zoo_kernel, 2)
        self.first_bn = nn.BatchNorm1d(c.zoo_base_filters)
        self.first_activation = _Swish()
        stages, cin = [], c.zoo_base_filters
        for i, (cout, m) in enumerate(zip(c.zoo_filters, c.zoo_blocks, strict=True)):
            stages.append(_Net1DStage(cin, cout, c.zoo_kernel, 2, cout // c.zoo_groups_width, i, m))
            cin = cout
        self.stage_list = nn.ModuleList(stages)

    def prepare(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None) -> torch.Tensor:
        """The authors' input from the toolkit's [B, 12, n] mV: resampled to zoo_fs when the
        rates differ, the centre zoo_seq_len samples, z-scored over the present leads together."""
        x, m = self._window(ecg_values, lead_mask, centre=True)
        w = m[:, :, None].to(x.dtype).expand_as(x)
        count = w.sum(dim=(1, 2)).clamp(min=1.0)
        loc = (x * w).sum(dim=(1, 2)) / count
        scale = (((x - loc[:, None, None]) ** 2) * w).sum(dim=(1, 2)) / count
        z = (x - loc[:, None, None]) / (scale.sqrt()[:, None, None] + 1e-8)  # their epsilon
        return z * w

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        self._check_input(ecg_values)
        x = self.prepare(ecg_values, lead_mask).to(self.first_conv.conv.weight.dtype)
        x = self.first_activation(self.first_conv(x))
        for stage in self.stage_list:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        h = x.transpose(1, 2)  # [B, time, channels]
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from an ECGFounder file (see the class doc); their head
        (dense.*) dropped, the output statistics kept as they are here."""
        state = self._state_in(raw, ("state_dict", "model"), "ECGFounder")
        if all(k.startswith("module.") for k in state):
            state = {k[len("module.") :]: v for k, v in state.items()}
        return self._with_own_stats({k: v for k, v in state.items() if not k.startswith("dense.")})


# --- MERL (ResNet1d) ----------------------------------------------------------------------------


class _MerlBasic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.shortcut = _merl_shortcut(cin, cout * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x))


class _MerlBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.conv3 = nn.Conv1d(cout, cout * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(cout * 4)
        self.shortcut = _merl_shortcut(cin, cout * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(out)))))
        return torch.relu(out + self.shortcut(x))


def _merl_shortcut(cin: int, cout: int, stride: int) -> nn.Sequential:
    if stride == 1 and cin == cout:
        return nn.Sequential()
    return nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))


# the toolkit's lead order (I, II, III, aVR, aVL, aVF, V1-V6) -> MERL's (MIMIC-IV-ECG's: aVF
# before aVL), as their fine-tuning code swaps them
MERL_LEAD_ORDER = (0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11)


class _MerlInput(ZooEncoder):
    """What MERL's two encoders share: their input preparation and their checkpoint files."""

    def prepare(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None) -> torch.Tensor:
        x, m = self._window(ecg_values, lead_mask, centre=False)
        big = torch.finfo(x.dtype).max
        lo = torch.where(m[:, :, None], x, big).amin(dim=(1, 2))
        hi = torch.where(m[:, :, None], x, -big).amax(dim=(1, 2))
        lo, hi = torch.minimum(lo, hi), torch.maximum(lo, hi)  # (no lead present: 0 and 0)
        lo = torch.where(m.any(1), lo, torch.zeros_like(lo))
        hi = torch.where(m.any(1), hi, torch.zeros_like(hi))
        scaled = (x - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]
        flat = (0.0 - lo) / (hi - lo + 1e-8)  # 0 mV, scaled
        z = torch.where(m[:, :, None], scaled, flat[:, None, None].expand_as(x))
        return z[:, list(MERL_LEAD_ORDER)]

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from a MERL file: the bare encoder state dict, or a whole-model
        one (encoder keys under "ecg_encoder.", "module." from DDP stripped); a classification
        head (the ResNet's `linear`, the ViT's `head` after reset_head) dropped."""
        state = self._state_in(raw, ("model_state_dict", "state_dict", "model"), "MERL")
        if all(k.startswith("module.") for k in state):
            state = {k[len("module.") :]: v for k, v in state.items()}
        if any(k.startswith("ecg_encoder.") for k in state):
            state = {
                k[len("ecg_encoder.") :]: v
                for k, v in state.items()
                if k.startswith("ecg_encoder.")
            }
        heads = ("linear.", "head.")
        return self._with_own_stats({k: v for k, v in state.items() if not k.startswith(heads)})


class MerlResNetEncoder(_MerlInput):
    """MERL's ECG encoder (Liu et al., ICML 2024, "Zero-Shot ECG Classification with Multimodal
    Learning and Test-time Clinical Knowledge Enhancement", github.com/cheliu-computation/
    MERL-ICML2024, utils/resnet1d.py): a 1-D ResNet (a 7-wide stride-2 stem of 64 channels without
    max-pooling, then 4 stages of basic or bottleneck blocks, 64-128-256-512 channels, strides
    1-2-2-2, batch norm, ReLU). Parameter names are the authors' (conv1, bn1, layer<i>.<j>.conv1/
    bn1/conv2/bn2[/conv3/bn3], shortcut.0/1; their `linear` head is dropped), so the file their
    pretraining writes (`..._encoder.pth`: the bare encoder state dict) loads unchanged, and so
    does their whole-model checkpoint (encoder under `ecg_encoder.`). Input as their code
    prepares it: 500 Hz, the first 10 s (5000 samples), min-max scaled to 0-1 over all leads
    together, lead order I, II, III, aVR, aVF, aVL, V1-V6 (MIMIC-IV-ECG's; swapped here); a
    missing lead becomes a flat line at the scaled 0 mV (what their zero padding gives). Output:
    the last stage's feature map (313 steps for 5000 samples) averaged to `zoo_tokens` tokens.
    Batch norm keeps its running statistics (pretrained) in training too: LLM batches are small.
    Weights: the authors' release (see their README for the link and licence)."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        block = _MerlBottleneck if c.zoo_block == "bottleneck" else _MerlBasic
        self.conv1 = nn.Conv1d(c.n_leads, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        cin = 64
        for i, (width, n, stride) in enumerate(
            zip((64, 128, 256, 512), c.zoo_blocks, (1, 2, 2, 2), strict=True)
        ):
            layers = []
            for j in range(n):
                layers.append(block(cin, width, stride if j == 0 else 1))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():  # frozen batch-norm statistics (see the class doc)
            if isinstance(m, nn.BatchNorm1d):
                m.eval()
        return self

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        self._check_input(ecg_values)
        x = self.prepare(ecg_values, lead_mask).to(self.conv1.weight.dtype)
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            stage = getattr(self, f"layer{i}")
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        h = nn.functional.adaptive_avg_pool1d(x, self.config.zoo_tokens).transpose(1, 2)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)


class MerlVitEncoder(_MerlInput):
    """MERL's ViT encoder (utils/vit1d.py of the MERL repository, after lucidrains' vit_1d): the
    12 x 5000 input cut into patches of `patch_size` samples (50: 100 patches) by a convolution
    without bias (to_patch_embedding), a learned position embedding (pos_embedding), pre-norm
    transformer blocks (block<i>.attn.norm / .attn.fn.to_qkv (with bias) / .attn.fn.to_out.0 /
    .ff.norm / .ff.fn.net.0 and .3: the same tree as ST-MEM's), a final norm. Their sizes:
    vit_tiny 192 wide / 3 heads / mlp 768, vit_small 384 / 6 / 1536, vit_middle 512 / 8 / 2048,
    vit_base 768 / 12 / 3072, all 12 blocks with 64-wide heads. Input and files as
    MerlResNetEncoder. Output: each patch's token through the final norm (the authors average
    the tokens first, then norm), averaged to `zoo_tokens` tokens."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        width, n = c.hidden_size, c.zoo_seq_len // c.patch_size
        self.to_patch_embedding = nn.Conv1d(
            c.n_leads, width, c.patch_size, stride=c.patch_size, bias=False
        )
        self.pos_embedding = nn.Parameter(torch.randn(1, n, width))
        _add_vit_blocks(self, c, width)

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        self._check_input(ecg_values)
        x = self.prepare(ecg_values, lead_mask).to(self.pos_embedding.dtype)
        x = self.dropout(self.to_patch_embedding(x).transpose(1, 2) + self.pos_embedding)
        x = _run_vit_blocks(self, x)
        h = self.norm(x).transpose(1, 2)
        h = nn.functional.adaptive_avg_pool1d(h, self.config.zoo_tokens).transpose(1, 2)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)


# --- ECG-FM (wav2vec 2.0 on ECGs, fairseq-signals) ---------------------------------------------
# Written here (fairseq-signals is not on PyPI and pins an old stack): the same module tree as its
# ECGTransformerModel / Wav2Vec2Model, so their state dicts load by name.


class _Fp32GroupNorm(nn.GroupNorm):
    """fairseq's Fp32GroupNorm: group norm computed in float32 whatever the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return nn.functional.group_norm(x.float(), self.num_groups, w, b, self.eps).type_as(x)


class _FeatureExtractor(nn.Module):
    """ConvFeatureExtraction, mode "default": per layer a convolution without bias, (dropout 0),
    a per-channel group norm after the first only, GELU (keys conv_layers.<i>.0 and 0.2)."""

    def __init__(self, cin: int, layers: list[list[int]]):
        super().__init__()
        self.conv_layers = nn.ModuleList()
        for i, (dim, k, stride) in enumerate(layers):
            parts = [nn.Conv1d(cin, dim, k, stride=stride, bias=False), nn.Dropout(0.0)]
            if i == 0:
                parts.append(_Fp32GroupNorm(dim, dim, affine=True))
            self.conv_layers.append(nn.Sequential(*parts, nn.GELU()))
            cin = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.conv_layers:
            x = conv(x)
        return x


class _SamePad(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class _ConvPositions(nn.Module):
    """ConvPositionalEncoding: a grouped convolution over time (weight-normed over its kernel
    axis), same padding, GELU; added to the features by the caller."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(conv, _SamePad(kernel), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        return self.pos_conv(x.transpose(1, 2)).transpose(1, 2)


class _FairseqSelfAttention(nn.Module):
    """fairseq's MultiheadAttention as self-attention: q/k/v/out projections with bias, queries
    scaled by head_dim ** -0.5 (what scaled_dot_product_attention does)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            proj(x).reshape(b, t, self.heads, -1).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        a = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.p if self.training else 0.0
        )
        return self.out_proj(a.transpose(1, 2).reshape(b, t, d))


class _FairseqEncoderLayer(nn.Module):
    """TransformerEncoderLayer with layer_norm_first = False (ECG-FM's, BERT-style post-norm):
    x = LN(x + attn(x)); x = LN(x + fc2(gelu(fc1(x))))."""

    def __init__(self, dim: int, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.self_attn = _FairseqSelfAttention(dim, heads, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x)))
        h = nn.functional.gelu(self.fc1(x).float()).type_as(x)
        return self.final_layer_norm(x + self.dropout(self.fc2(h)))


class _FairseqEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(
            _FairseqEncoderLayer(
                c.hidden_size, c.intermediate_size, c.num_attention_heads, c.dropout
            )
            for _ in range(c.num_hidden_layers)
        )
        self.layer_norm = nn.LayerNorm(c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.layer_norm(x))  # post-norm: the one norm comes first
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


# the keys of ECG-FM's pretraining heads (wav2vec 2.0 quantiser, projections, mask embedding),
# dropped when its pretrained file is loaded (fairseq-signals' remove_pretraining_modules)
_ECG_FM_PRETRAINING = ("mask_emb", "quantizer.", "input_quantizer.", "project_q.", "project_inp.",
                       "final_proj.", "target_glu.")  # fmt: skip


def _ecg_fm_key(key: str) -> str:
    """An older fairseq(-signals) name of an ECG-FM weight -> this module's: the position
    convolution inside the transformer (fairseq's wav2vec 2.0: encoder.pos_conv) and weight norm's
    weight_g / weight_v (torch's parametrisation calls them original0 / original1)."""
    if key.startswith("encoder.pos_conv."):
        key = "conv_pos." + key[len("encoder.") :]
    if key.startswith("conv_pos.") and key.endswith((".weight_g", ".weight_v")):
        key = (
            key[: -len("weight_g")]
            + "parametrizations.weight.original"
            + ("0" if key.endswith("g") else "1")
        )
    return key


class EcgFmEncoder(ZooEncoder):
    """ECG-FM's encoder (McKeen et al., 2024, github.com/bowang-lab/ECG-FM; the model code is
    fairseq-signals' (github.com/Jwoo5/fairseq-signals) wav2vec2_cmsc = ECGTransformerModel):
    a 4-layer convolutional feature extractor (256 channels, kernel 2, stride 2: one feature per
    16 samples, a per-channel group norm after the first), a layer norm, a projection to the
    transformer's width (post_extract_proj), a convolutional position embedding (kernel 128, 16
    groups, weight-normed) added to it, then a post-norm transformer (encoder.layer_norm first,
    then encoder.layers.<i>.self_attn.{q,k,v,out}_proj / self_attn_layer_norm / fc1 / fc2 /
    final_layer_norm). The released models are BERT-base sized: 768 wide, 12 layers, 12 heads,
    FFN 3072 (90.9 M parameters). Input as ECG-FM prepares it (its inference notebook with
    ecg-transform): standard lead order, 500 Hz, each lead standardised over the whole record
    (a constant lead becomes zero), then cut into 5 s segments (2500 samples) that the encoder
    reads one at a time. Here: a missing lead is zero (what a constant lead gets); a 10 s record
    gives two segments whose 2 x 156 feature steps, in time order, are averaged to `zoo_tokens`
    tokens (ECG-FM's own classifier averages them all into one).

    Files: the fairseq checkpoints they release (mimic_iv_ecg_physionet_pretrained.pt, the
    wav2vec2_cmsc pretraining model: keys at top level, with the quantiser and projections that
    are dropped here; physionet_finetuned.pt and the like, ECGTransformerClassificationModel:
    the encoder under "encoder.", its `proj` head dropped) under "model", beside a pickled
    omegaconf config that load_encoder_weights reads without running (ecgllm.model.pickled).
    Weight norm's old key names (weight_g / weight_v) are renamed to torch's parametrisation's.
    Weights: huggingface.co/wanglab/ecg-fm (MIT at the time of writing), downloaded by the user."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        self.feature_extractor = _FeatureExtractor(c.n_leads, c.zoo_conv_layers)
        embed = c.zoo_conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(embed)
        self.post_extract_proj = nn.Linear(embed, c.hidden_size) if embed != c.hidden_size else None
        self.conv_pos = _ConvPositions(c.hidden_size, c.zoo_conv_pos, c.zoo_conv_pos_groups)
        self.encoder = _FairseqEncoder(c)

    def prepare(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None) -> torch.Tensor:
        """[B, segments, leads, zoo_seq_len]: resampled, standardised per lead, cut in segments."""
        c = self.config
        x, m = self._window(ecg_values, lead_mask, centre=False, whole=True)
        n_seg = x.shape[-1] // c.zoo_seq_len
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, unbiased=False, keepdim=True)
        z = torch.where(std > 0, (x - mean) / std.clamp(min=1e-12), torch.zeros_like(x))
        z = z * m[:, :, None]
        z = z[..., : n_seg * c.zoo_seq_len].reshape(x.shape[0], x.shape[1], n_seg, c.zoo_seq_len)
        return z.transpose(1, 2)

    def segment_features(self, segments: torch.Tensor) -> torch.Tensor:
        """ECG-FM's output for [N, leads, samples] segments: [N, steps, hidden_size]."""
        f = self.feature_extractor(segments).transpose(1, 2)
        f = self.layer_norm(f)
        if self.post_extract_proj is not None:
            f = self.post_extract_proj(f)
        return self.encoder(f + self.conv_pos(f))

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        b = self._check_input(ecg_values)[0]
        z = self.prepare(ecg_values, lead_mask).to(self.layer_norm.weight.dtype)
        n_seg = z.shape[1]
        self.encoder.gradient_checkpointing = self.gradient_checkpointing
        h = self.segment_features(z.reshape(b * n_seg, *z.shape[2:]))
        h = h.reshape(b, n_seg * h.shape[1], -1).transpose(1, 2)
        h = nn.functional.adaptive_avg_pool1d(h, self.config.zoo_tokens).transpose(1, 2)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from an ECG-FM (fairseq-signals) file: the state dict under
        "model" (or a bare one); a fine-tuned model's encoder taken from under "encoder." (its
        head dropped); the pretraining modules dropped; old names mapped (_ecg_fm_key)."""
        state = self._state_in(raw, ("model",), "ECG-FM")
        if any(k.startswith("encoder.feature_extractor.") for k in state):
            state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        state = {k: v for k, v in state.items() if not k.startswith(_ECG_FM_PRETRAINING)}
        state = {_ecg_fm_key(k): v for k, v in state.items()}
        return self._with_own_stats(state)


# --- HeartLang (ST-ECGFormer over heartbeat words) ---------------------------------------------


def beat_words(x: np.ndarray, qrs: np.ndarray, word_len: int) -> np.ndarray:
    """HeartLang's words of one lead (its QRSTokenizer.extract_qrs_segments): per QRS index, the
    samples from the midpoint to the previous beat to the midpoint to the next (the first and
    last beats reach word_len / 2 outward), re-centred on the QRS when longer than `word_len`,
    placed in a zero word so that the QRS sits at word_len / 2. [len(qrs), word_len]."""
    half, n = word_len // 2, len(x)
    out = np.zeros((len(qrs), word_len), dtype=np.float32)
    for i, c in enumerate(qrs):
        if i == 0:
            start = c - half
            end = (c + qrs[1]) // 2 if len(qrs) > 1 else max(start, 0) + word_len
        elif i == len(qrs) - 1:
            start, end = (c + qrs[i - 1]) // 2, c + half
        else:
            start, end = (c + qrs[i - 1]) // 2, (c + qrs[i + 1]) // 2
        start, end = max(start, 0), min(end, n)
        if end - start > word_len:  # a long RR interval: the word centred on the QRS
            start = max(c - half, 0)
            end = min(start + word_len, n)
        at = max(half - (c - start), 0)
        end = min(end, start + word_len - at)
        out[i, at : at + end - start] = x[start:end]
    return out


def heartbeat_words(signal: np.ndarray, fs: float, word_len: int, leads: list[int] | None = None):
    """HeartLang's "ECG sentence" of one record (its QRSTokenizer): lead by lead, one word per
    beat that wfdb's XQRS detector finds in that lead (beat_words). Returns (words [N, word_len],
    lead numbers [N] (1 = lead I), seconds [N] (1 = the first second)) for the `leads` given
    (default all)."""
    from wfdb import processing

    words, chans, times = [], [], []
    for lead in range(signal.shape[0]) if leads is None else leads:
        try:
            qrs = np.asarray(processing.xqrs_detect(sig=signal[lead], fs=fs, verbose=False), int)
        except ValueError:  # wfdb on a lead too short to filter (< ~0.3 s) or empty: no beats
            # (a flat or NaN lead returns no beats by itself)
            qrs = np.zeros(0, dtype=int)
        words.append(beat_words(signal[lead], qrs, word_len))
        chans.append(np.full(len(qrs), lead + 1, np.int64))
        times.append(
            (qrs * 100 // int(round(fs))) // 100 + 1
        )  # their 1-s blocks (100 samples at 100 Hz)
    if not words:
        return np.zeros((0, word_len), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(words), np.concatenate(chans), np.concatenate(times).astype(np.int64)


class _HeartLangAttention(_Attention):
    """Their Attention: its own pre-norm (`norm`), a bias-free qkv, the output projection."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__(dim, heads, dim_head, dropout, qkv_bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.norm(x))


class _HeartLangFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _HeartLangLayer(nn.ModuleList):
    """[attention, feed-forward], residual each (their Transformer's layers.<i>.0 and .1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self[0](x) + x
        return self[1](x) + x


class _HeartLangTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        head_dim = c.zoo_head_dim or c.hidden_size // c.num_attention_heads
        self.layers = nn.ModuleList(
            _HeartLangLayer(
                [
                    _HeartLangAttention(c.hidden_size, c.num_attention_heads, head_dim, c.dropout),
                    _HeartLangFeedForward(c.hidden_size, c.intermediate_size, c.dropout),
                ]
            )
            for _ in range(c.num_hidden_layers)
        )


class _Embedded(nn.Module):
    """An nn.Embedding under `.embed` (their SpatialEmbedding / TemporalEmbedding)."""

    def __init__(self, n: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(n, dim)


class _TokenEmbedding(nn.Module):
    """Their TokenEmbedding: a 3-wide circular convolution along the sentence whose input
    channels are a word's samples (tokenConv, no bias)."""

    def __init__(self, word_len: int, dim: int):
        super().__init__()
        self.tokenConv = nn.Conv1d(word_len, dim, 3, padding=1, padding_mode="circular", bias=False)

    def forward(self, words: torch.Tensor) -> torch.Tensor:  # [B, words, word_len]
        return self.tokenConv(words.transpose(1, 2)).transpose(1, 2)


class HeartLangEncoder(ZooEncoder):
    """HeartLang's encoder (Jin et al., ICLR 2025, "Reading Your Heart: Learning ECG Words and
    Sentences via Pre-training ECG Language Model", github.com/PKUDigitalHealth/HeartLang;
    modeling_pretrain.py's ST_ECGFormer, read from a copy of the authors' code as their own
    repository's model files were not readable here). Input: the record at 100 Hz, its first 10
    s, turned into a "sentence" of heartbeat words (heartbeat_words: one 96-sample word per beat
    and lead, XQRS detection per lead, lead by lead), padded with zero words (lead 0, second 0)
    or cut to 256 words. Each word is embedded by a circular convolution along the sentence
    (token_embed.tokenConv), plus a lead embedding (spa_embed, 16 rows: 0 = padding, 1-12 = I-V6)
    and a second-of-recording embedding (tem_embed), a CLS token first, a learned position per
    place (pos_embed, 257), then pre-norm transformer layers (transformer.layers.<i>.0 =
    attention with its own norm and a bias-free to_qkv, .1 = feed-forward net.0/1/4) and
    norm_layer. The pretraining head (lm_head, over the VQ-HBR codebook) and the fine-tuning one
    (mlp_head, the encoder under backbone.) are dropped on load. HeartLang-base: 768 wide, 12
    layers, 8 heads of 64, FFN 1024. Like the authors' model, padding words are attended to (no
    mask). Signal scale: their PTB-XL pipeline standardises with one mean and SD fitted on its
    training set; here each record is standardised over its present leads and samples together
    (the same kind of scaling, without their statistics). A missing lead gives no words.
    Output: the CLS token, then per lead the mean of its words' tokens (zero when the lead has no
    beats), 1 + n_leads tokens. Files: the BEiT-style {"model": state, "args": Namespace, ...}
    their training writes (the Namespace read without running it). Weights: huggingface.co/
    PKUDigitalHealth/HeartLang (check its licence), downloaded by the user."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        d = c.hidden_size
        self.token_embed = _TokenEmbedding(c.zoo_word_len, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))  # (masked pretraining: unused here)
        self.cls_token = nn.Parameter(torch.randn(d))
        self.pos_embed = nn.Parameter(torch.randn(1, c.zoo_words + 1, d))
        self.spa_embed = _Embedded(16, d)
        self.tem_embed = _Embedded(16, d)
        self.dropout = nn.Dropout(c.dropout)
        self.transformer = _HeartLangTransformer(c)
        self.norm_layer = nn.LayerNorm(d)

    def prepare(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None):
        """(words [B, zoo_words, zoo_word_len], leads [B, zoo_words], seconds [B, zoo_words])."""
        c = self.config
        x, m = self._window(ecg_values, lead_mask, centre=False)
        x, m = x.detach().cpu().numpy(), m.cpu().numpy()
        words = np.zeros((len(x), c.zoo_words, c.zoo_word_len), np.float32)
        chans = np.zeros((len(x), c.zoo_words), np.int64)
        times = np.zeros((len(x), c.zoo_words), np.int64)
        for i in range(len(x)):
            present = np.flatnonzero(m[i])
            if not len(present):
                continue
            sd = x[i, present].std()
            z = (x[i] - x[i, present].mean()) / (sd if sd > 0 else 1.0)
            w, ch, t = heartbeat_words(z, c.zoo_fs, c.zoo_word_len, list(present))
            k = min(len(w), c.zoo_words)
            words[i, :k], chans[i, :k], times[i, :k] = w[:k], ch[:k], t[:k]
        dev = ecg_values.device
        return (torch.from_numpy(words).to(dev), torch.from_numpy(chans).to(dev),
                torch.from_numpy(times).to(dev))  # fmt: skip

    def forward(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor | None = None,
                ecg_measurements: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        b = self._check_input(ecg_values)[0]
        words, chans, times = self.prepare(ecg_values, lead_mask)
        x = self.token_embed(words.to(self.pos_embed.dtype))
        x = x + self.spa_embed.embed(chans) + self.tem_embed.embed(times)
        x = torch.cat([self.cls_token.expand(b, 1, -1), x], dim=1) + self.pos_embed
        x = self.dropout(x)
        for layer in self.transformer.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        x = self.norm_layer(x)
        onehot = (
            chans[:, :, None] == torch.arange(1, self.config.n_leads + 1, device=x.device)
        ).to(x.dtype)
        per_lead = onehot.transpose(1, 2) @ x[:, 1:] / onehot.sum(1)[:, :, None].clamp(min=1.0)
        h = torch.cat([x[:, :1], per_lead], dim=1)
        return (h - self.feature_mean.to(h.dtype)) / self.feature_std.to(h.dtype)

    def checkpoint_state(self, raw: dict) -> dict:
        """The encoder's weights from a HeartLang file: the state under "model" (or bare); a
        fine-tuned classifier's from under "backbone."; lm_head / mlp_head dropped."""
        state = self._state_in(raw, ("model", "state_dict"), "HeartLang")
        if any(k.startswith("backbone.") for k in state):
            state = {
                k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")
            }
        return self._with_own_stats(
            {k: v for k, v in state.items() if not k.startswith(("lm_head.", "mlp_head."))}
        )


def zoo_num_tokens(config) -> int:
    if config.encoder_type in ("merl_resnet", "merl_vit", "ecg_fm"):
        return config.zoo_tokens
    if config.encoder_type == "heartlang":
        return 1 + config.n_leads
    if config.encoder_type == "st_mem":
        return config.zoo_seq_len // config.patch_size
    if config.encoder_type == "ecgfounder":
        n = (config.zoo_seq_len + 1) // 2  # the first convolution's stride
        for _ in config.zoo_filters:  # each stage halves (SAME padding: ceil)
            n = (n + 1) // 2
        return n
    raise ValueError(f"unknown encoder_type {config.encoder_type!r}")


def build_ecg_encoder(config) -> nn.Module:
    """The ECG encoder a config names: the built-in one, or a zoo encoder."""
    if config.encoder_type == "builtin":
        from .ecg_encoder import EcgEncoder

        return EcgEncoder(config)
    kinds = {"st_mem": StMemEncoder, "ecgfounder": EcgFounderEncoder, "merl_resnet": MerlResNetEncoder,
             "merl_vit": MerlVitEncoder, "ecg_fm": EcgFmEncoder, "heartlang": HeartLangEncoder}  # fmt: skip
    if config.encoder_type in kinds:
        return kinds[config.encoder_type](config)
    raise ValueError(f"encoder_type must be builtin or one of {ZOO}, not {config.encoder_type!r}")
