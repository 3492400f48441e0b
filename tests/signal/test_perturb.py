"""Perturbations for robustness sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from ecgllm.signal.perturb import LEAD_SUBSETS, parse_sweep, perturb
from ecgllm.signal.record import STANDARD_12


def test_perturbations():
    sig = np.zeros((12, 5000), np.float32)
    mask = np.ones(12, bool)
    n, m = perturb(sig, mask, 500, "noise", 0.1, seed=1)
    assert abs(n.std() - 0.1) < 0.005 and m.all() and sig.std() == 0  # input untouched
    assert np.array_equal(n, perturb(sig, mask, 500, "noise", 0.1, seed=1)[0])  # deterministic
    w, _ = perturb(sig, mask, 500, "wander", 1.0, seed=0)
    assert 0.5 < np.abs(w).max() <= 1.0 + 1e-6
    spectrum = np.abs(np.fft.rfft(w[0]))
    assert np.argmax(spectrum) / 10.0 < 0.6  # energy below 0.6 Hz (10 s record: bin = 0.1 Hz)
    one, m1 = perturb(sig + 1, mask, 500, "leads", 1)
    assert m1.sum() == 1 and m1[STANDARD_12.index("II")] and one[~m1].max() == 0
    assert [len(v) for v in LEAD_SUBSETS.values()] == [12, 6, 3, 2, 1]
    with pytest.raises(ValueError, match="leads level"):
        perturb(sig, mask, 500, "leads", 5)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(sig, mask, 500, "gain", 2)


def test_parse_sweep():
    assert parse_sweep("noise=0.05,0.1; leads=6,1") == [
        ("noise", 0.05),
        ("noise", 0.1),
        ("leads", 6.0),
        ("leads", 1.0),
    ]
    for bad in ("blur=1", "noise=", "noise=a"):
        with pytest.raises(ValueError, match="bad sweep"):
            parse_sweep(bad)
