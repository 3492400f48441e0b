"""Perturbations for robustness sweeps: added noise, baseline wander, dropped leads.

    sig, mask = perturb(signal, lead_mask, fs=500, kind="noise", level=0.1, seed=0)

- noise:  white Gaussian noise of `level` mV standard deviation on every present lead;
- wander: a baseline wander of `level` mV amplitude, a sum of two sinusoids at 0.15-0.5 Hz
          with lead-specific phases (respiration-like);
- leads:  keep only `level` leads (12, 6, 3 or 1; the subsets below: limb leads, the three
          leads of a common wearable layout, lead II alone); the others are zeroed and masked
          out, exactly like a record that lacks them.
Deterministic by seed.
"""

from __future__ import annotations

import numpy as np

from .record import STANDARD_12

LEAD_SUBSETS = {
    12: list(STANDARD_12),
    6: ["I", "II", "III", "aVR", "aVL", "aVF"],
    3: ["I", "II", "V2"],
    2: ["I", "II"],
    1: ["II"],
}
KINDS = ("noise", "wander", "leads")


def perturb(signal: np.ndarray, lead_mask: np.ndarray, fs: float, kind: str, level: float,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """signal [12, n] mV in STANDARD_12 order, lead_mask [12] -> perturbed copies."""
    sig = np.array(signal, dtype=np.float32, copy=True)
    mask = np.array(lead_mask, dtype=bool, copy=True)
    if sig.ndim != 2 or sig.shape[0] != len(STANDARD_12):
        raise ValueError(f"perturb expects [12, n] in STANDARD_12 order, got {sig.shape}")
    rng = np.random.default_rng(seed)
    if kind == "noise":
        sig += (rng.standard_normal(sig.shape) * level).astype(np.float32)
    elif kind == "wander":
        t = np.arange(sig.shape[1]) / fs
        for j in range(sig.shape[0]):
            f1, f2 = rng.uniform(0.15, 0.5, 2)
            p1, p2 = rng.uniform(0, 2 * np.pi, 2)
            sig[j] += (level * (0.7 * np.sin(2 * np.pi * f1 * t + p1)
                                + 0.3 * np.sin(2 * np.pi * f2 * t + p2))).astype(np.float32)  # fmt: skip
    elif kind == "leads":
        keep = LEAD_SUBSETS.get(int(level))
        if keep is None:
            raise ValueError(f"leads level must be one of {sorted(LEAD_SUBSETS)}, not {level}")
        keep_mask = np.array([ld in keep for ld in STANDARD_12])
        mask &= keep_mask
    else:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {KINDS}")
    sig[~mask] = 0.0
    return sig, mask


def parse_sweep(spec: str) -> list[tuple[str, float]]:
    """ "noise=0.05,0.1;wander=0.5;leads=6,1" -> [(noise, .05), (noise, .1), (wander, .5), ...]."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        kind, _, levels = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS or not levels.strip():
            raise ValueError(f"bad sweep part {part!r}: expected KIND=L1,L2 with KIND in {KINDS}")
        try:
            out += [(kind, float(v)) for v in levels.split(",") if v.strip()]
        except ValueError as e:
            raise ValueError(f"bad sweep levels in {part!r}: {e}") from None
    return out
