"""Signal augmentation for training: what changes between two recordings of the same heart.

    aug = SignalAugment()                               # the defaults below; SignalAugment.off() = none
    x, mask = aug(x, mask, generator)                   # x [B, 12, n] mV tensor, mask [B, 12] bool

Each record gets, independently: an overall gain and a per-lead gain (electrode contact, body
size), a DC offset and a baseline wander per lead (breathing, electrode drift), white noise
(muscle, amplifier), a circular time shift (where the 10 s window starts: rhythm and morphology
do not depend on it), and with probability `lead_dropout` 1-3 leads removed (zeroed and masked
out, as in a record that lacks them). The encoder pretraining (stage 0) and the SFT collator use
it on training batches only; evaluation never augments. Measurements for the encoder's
measurement tokens are taken on the signal before augmentation (the clinical values of the
record do not change; only its recording does).

`signal_dropout` hides a sample's whole signal now and then, so that a model whose encoder has
measurement tokens learns to read them: without it the embedded default's LLM answered rhythm
questions from the waveform tokens only (with the signal zeroed and the measurements kept, its
real-record rhythm balanced accuracy was 0.24, the same as with both), and the waveform tokens
are what misreads real records.

`measurement_swap` makes the rhythm answer depend on the rhythm measurements only: on the
simulator, intervals, axis and voltages follow the rhythm (QT shortens with rate, each rhythm has
its own morphology draws), and a network trained on all measurements reads rhythm from them too;
real records' morphology lies elsewhere (issue 15: a classifier trained on simulated measurements
read LUDB rhythm at balanced accuracy 0.87 from the 7 rhythm values, 0.62 from all 76).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class SignalAugment:
    gain: tuple[float, float] = (0.8, 1.25)  # whole-record amplitude factor
    lead_gain: tuple[float, float] = (0.9, 1.1)  # per-lead factor
    offset_mv: float = 0.2  # per-lead DC offset, uniform in +-offset_mv
    wander_mv: float = 0.3  # per-lead 0.1-0.5 Hz sinusoid, amplitude up to this
    noise_mv: float = 0.03  # white noise SD, up to this
    shift: bool = True  # circular time shift
    lead_dropout: float = 0.1  # probability of dropping 1-3 leads
    # probability of hiding the whole signal (zeros, leads kept): only the measurement tokens,
    # taken before augmentation, then tell the model about the record (see the module docstring)
    signal_dropout: float = 0.0
    fs: float = 500.0
    # the measurement vector (ecgllm.signal.features: scaled values, then measured flags), for
    # encoders with measurement tokens: Gaussian noise of this SD on each measured value (in its
    # scaled units: 0.2 = 4 bpm of rate, 6 ms of QRS), and this share of the measurements marked
    # unmeasured; so the LLM's reading of them is smooth and no single measurement decides alone
    measurement_noise: float = 0.0
    measurement_dropout: float = 0.0
    # for the rows whose task or attribute_type is in `swap_tasks`, this share of their ECGs take
    # every measurement but the rhythm ones (features.RHYTHM_INDEX: rate, RR irregularity, P
    # waves) from another ECG of the batch, so the answer to a rhythm question cannot lean on
    # intervals, axis or voltages (see the module docstring); the SFT collator applies it
    measurement_swap: float = 0.0
    swap_tasks: tuple[str, ...] = ("rhythm",)
    # the measurement values a swapped ECG keeps (indices into features.FEATURE_NAMES); None:
    # features.RHYTHM_INDEX (recipes/sft.py passes the encoder's rhythm_features)
    swap_keep: tuple[int, ...] | None = None
    # a swapped ECG also takes the donor's signal and lead mask, so that the rhythm answer can
    # come from the kept (rhythm) measurements alone: the encoder's rhythm tokens and its verdict
    # token (EcgEncoderConfig.rhythm_tokens / verdict_outputs) read those; the waveform tokens no
    # longer tell the rhythm (needs measurement_swap > 0)
    swap_signal: bool = False

    def __post_init__(self):
        from ..signal.features import FEATURE_NAMES

        if not 0.0 <= self.measurement_swap <= 1.0:
            raise ValueError(
                f"measurement_swap must be a probability (0-1), not {self.measurement_swap}"
            )
        if self.swap_signal and not self.measurement_swap:
            raise ValueError(
                "swap_signal swaps the signal of the ECGs measurement_swap picks: set measurement_swap > 0"
            )
        n = len(FEATURE_NAMES)
        if self.swap_keep is not None and any(not 0 <= i < n for i in self.swap_keep):
            raise ValueError(f"swap_keep {list(self.swap_keep)} outside the {n} measurement values")

    @classmethod
    def off(cls) -> SignalAugment:
        return cls((1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0, False, 0.0, 0.0)

    @classmethod
    def from_dict(cls, d: dict | bool | None) -> SignalAugment | None:
        """A config value: true (the defaults), false/None (none), or a dict of fields."""
        if d is None or d is False:
            return None
        if d is True:
            return cls()
        bad = sorted(set(d) - set(asdict(cls())))
        if bad:
            raise ValueError(
                f"unknown augmentation setting(s) {bad}; allowed: {sorted(asdict(cls()))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Generator | None = None):
        """x [B, L, n] (mV), mask [B, L] bool -> augmented copies (x, mask)."""
        b, n_leads, n = x.shape

        def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=g) * (hi - lo) + lo

        x = x * u(*self.gain, b, 1, 1) * u(*self.lead_gain, b, n_leads, 1)
        if self.offset_mv:
            x = x + u(-self.offset_mv, self.offset_mv, b, n_leads, 1)
        if self.wander_mv:
            t = torch.arange(n, dtype=x.dtype) / self.fs
            f = u(0.1, 0.5, b, 1, 1)
            phase = u(0.0, 2 * math.pi, b, n_leads, 1)
            x = x + u(0.0, self.wander_mv, b, n_leads, 1) * torch.sin(2 * math.pi * f * t + phase)
        if self.noise_mv:
            x = x + u(0.0, self.noise_mv, b, 1, 1) * torch.randn(x.shape, generator=g)
        if self.shift:
            k = torch.randint(0, n, (b,), generator=g)
            idx = (torch.arange(n)[None, :] - k[:, None]) % n
            x = torch.gather(x, 2, idx[:, None, :].expand(b, n_leads, n))
        mask = mask.clone()
        if self.lead_dropout:
            for i in range(b):
                if float(torch.rand(1, generator=g)) < self.lead_dropout:
                    k = int(torch.randint(1, 4, (1,), generator=g))
                    drop = torch.randperm(n_leads, generator=g)[:k]
                    if int(mask[i].sum()) > k:  # never drop every lead
                        mask[i, drop] = False
        if self.signal_dropout:
            quiet = torch.rand(b, generator=g) < self.signal_dropout
            x = x * (~quiet)[:, None, None].to(x.dtype)
        return x * mask[:, :, None].to(x.dtype), mask

    def measurements(self, meas: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """meas [B, 2 * n] (values, then 0/1 measured flags) -> a noisy copy (see the fields)."""
        if not (self.measurement_noise or self.measurement_dropout):
            return meas
        half = meas.shape[1] // 2
        values, flags = meas[:, :half], meas[:, half:]
        if self.measurement_noise:
            noise = torch.randn(values.shape, generator=g).to(values.dtype)
            values = values + self.measurement_noise * noise * flags
        if self.measurement_dropout:
            keep = (torch.rand(values.shape, generator=g) >= self.measurement_dropout).to(
                values.dtype
            )
            values, flags = values * keep, flags * keep
        return torch.cat([values, flags], dim=1)

    def donors(self, tasks: list[tuple], gens: list[torch.Generator | None]) -> list[int | None]:
        """Each ECG's row (task, attribute_type) and generator -> per ECG, the index of the other
        ECG of the batch it takes its non-rhythm measurements (and with swap_signal, its signal)
        from, or None: with probability `measurement_swap` for the ECGs of `swap_tasks` rows."""
        b = len(tasks)
        out: list[int | None] = [None] * b
        if not self.measurement_swap or b < 2:
            return out
        for i, (task, g) in enumerate(zip(tasks, gens, strict=True)):
            if not set(task) & set(self.swap_tasks):
                continue
            if float(torch.rand(1, generator=g)) >= self.measurement_swap:
                continue
            j = int(torch.randint(0, b - 1, (1,), generator=g))
            out[i] = j + (j >= i)  # any other ECG of the batch
        return out

    def swap(
        self,
        meas: torch.Tensor,
        tasks: list[tuple],
        gens: list[torch.Generator | None],
        donors: list[int | None] | None = None,
    ) -> torch.Tensor:
        """meas [B, 2 * n] (one row per ECG of the batch), each ECG's row (task, attribute_type)
        and generator -> a copy in which, with probability `measurement_swap`, an ECG of a
        `swap_tasks` row has the non-rhythm values and flags of another ECG of the batch
        (`donors`: those drawn already by donors(), else drawn here)."""
        if donors is None:
            donors = self.donors(tasks, gens)
        if all(j is None for j in donors):
            return meas
        from ..model.ecg_encoder import measurement_columns
        from ..signal.features import RHYTHM_INDEX

        kept = RHYTHM_INDEX if self.swap_keep is None else self.swap_keep
        keep = torch.zeros(meas.shape[1], dtype=torch.bool)
        keep[measurement_columns(list(kept), meas.shape[1] // 2)] = True
        out = meas.clone()
        for i, j in enumerate(donors):
            if j is not None:
                out[i, ~keep] = meas[j, ~keep]
        return out
