"""Signal augmentation (ecgllm.data.augment) and its use in the training collator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgllm.data.augment import SignalAugment
from ecgllm.data.collator import EcgCollator
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.model import build_model


def test_each_part_does_what_it_says():
    x = torch.zeros(4, 12, 5000)
    x[:, :, 2500] = 1.0  # one spike per lead
    mask = torch.ones(4, 12, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    off = SignalAugment.off()
    y, m = off(x, mask, g)
    assert torch.equal(y, x) and torch.equal(m, mask)
    y, _ = SignalAugment(gain=(2.0, 2.0), lead_gain=(1, 1), offset_mv=0, wander_mv=0, noise_mv=0, shift=False,
                         lead_dropout=0)(x, mask, g)  # fmt: skip
    assert torch.equal(y, 2 * x)
    y, _ = SignalAugment(gain=(1, 1), lead_gain=(1, 1), offset_mv=0, wander_mv=0, noise_mv=0, shift=True,
                         lead_dropout=0)(x, mask, g)  # fmt: skip
    spikes = (y == 1.0).nonzero()[:, 2]
    assert len(spikes) == 48 and len(set(spikes.tolist())) <= 4  # moved together, in time only
    y, m = SignalAugment(gain=(1, 1), lead_gain=(1, 1), offset_mv=0, wander_mv=0, noise_mv=0, shift=False,
                         lead_dropout=1.0)(x, mask, g)  # fmt: skip
    dropped = ~m
    assert dropped.any(1).all() and (dropped.sum(1) <= 3).all()
    assert (y[dropped] == 0).all()  # a dropped lead is zeroed and masked out, like a missing one
    y, _ = SignalAugment(offset_mv=0.2, wander_mv=0, noise_mv=0, shift=False, lead_dropout=0, gain=(1, 1),
                         lead_gain=(1, 1))(torch.zeros(2, 12, 100), torch.ones(2, 12, dtype=torch.bool), g)  # fmt: skip
    assert (y.abs() <= 0.2).all() and y.std() > 0


def test_config_values():
    assert SignalAugment.from_dict(False) is None and SignalAugment.from_dict(None) is None
    assert SignalAugment.from_dict(True) == SignalAugment()
    assert SignalAugment.from_dict({"gain": [0.9, 1.1]}).gain == (0.9, 1.1)
    with pytest.raises(ValueError, match=r"unknown augmentation setting\(s\) \['gian'\]"):
        SignalAugment.from_dict({"gian": [0.9, 1.1]})


def test_collator_augments_the_signal_not_the_measurements(instruct):
    proc = build_model()[1]
    ds = EcgInstructionDataset(instruct, "train")
    rows = [ds[i] for i in range(4)]
    plain = EcgCollator(proc, max_length=512)(rows)
    aug = EcgCollator(proc, max_length=512, augment=SignalAugment(), seed=3)
    a, b = aug(rows), aug(rows)
    assert torch.equal(a["ecg_values"], b["ecg_values"])  # seeded by the batch: resume-exact
    assert not torch.equal(a["ecg_values"], plain["ecg_values"])
    assert torch.equal(a["ecg_measurements"], plain["ecg_measurements"])  # the record's own values
    other = EcgCollator(proc, max_length=512, augment=SignalAugment(), seed=4)(rows)
    assert not torch.equal(other["ecg_values"], a["ecg_values"])
    assert np.isfinite(a["ecg_values"].numpy()).all()


def test_measurement_noise_and_dropout(instruct):
    """Opt-in: noise on the measured values only, dropout marks values unmeasured (value and flag
    zero); in the collator seeded like the signal's, so resumed runs see the same batches."""
    meas = torch.cat([torch.full((64, 10), 0.5), torch.ones(64, 10)], dim=1)
    meas[:, 3], meas[:, 13] = 0.0, 0.0  # one measurement missing in every record
    g = torch.Generator().manual_seed(0)
    assert torch.equal(SignalAugment().measurements(meas, g), meas)  # off by default
    noisy = SignalAugment(measurement_noise=0.2).measurements(meas, g)
    assert torch.equal(noisy[:, 10:], meas[:, 10:]) and torch.equal(noisy[:, 3], meas[:, 3])
    assert 0.15 < float((noisy[:, :10] - meas[:, :10]).std()) < 0.25
    dropped = SignalAugment(measurement_dropout=0.5).measurements(meas, g)
    gone = dropped[:, 10:] == 0
    assert 0.4 < float(gone.float().mean()) < 0.65 and (dropped[:, :10][gone] == 0).all()

    proc = build_model()[1]
    rows = [EcgInstructionDataset(instruct, "train")[i] for i in range(4)]
    plain = EcgCollator(proc, max_length=512)(rows)
    aug = SignalAugment(measurement_noise=0.2, measurement_dropout=0.1)
    a = EcgCollator(proc, max_length=512, augment=aug, seed=3)(rows)
    b = EcgCollator(proc, max_length=512, augment=aug, seed=3)(rows)
    assert torch.equal(a["ecg_measurements"], b["ecg_measurements"])
    assert not torch.equal(a["ecg_measurements"], plain["ecg_measurements"])


def test_measurement_swap(instruct):
    """Rhythm rows (task or attribute) keep their own rhythm measurements and take every other
    measurement from another ECG of the batch; other rows and the default are untouched; seeded."""
    from ecgllm.signal.features import MEASUREMENT_DIM, RHYTHM_INDEX

    n = MEASUREMENT_DIM // 2
    rhythm = [*RHYTHM_INDEX, *(n + i for i in RHYTHM_INDEX)]
    other = [c for c in range(MEASUREMENT_DIM) if c not in rhythm]
    meas = torch.arange(4 * MEASUREMENT_DIM, dtype=torch.float32).reshape(4, -1)
    tasks = [("rhythm", ""), ("mcq", "rhythm"), ("report", "report"), ("mcq", "finding")]
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    assert torch.equal(SignalAugment().swap(meas, tasks, gens), meas)  # off by default
    out = SignalAugment(measurement_swap=1.0).swap(meas, tasks, gens)
    assert torch.equal(out[:, rhythm], meas[:, rhythm]) and torch.equal(out[2:], meas[2:])
    for i in (0, 1):  # the whole non-rhythm part comes from one other ECG of the batch
        donors = [j for j in range(4) if torch.equal(out[i, other], meas[j, other])]
        assert len(donors) == 1 and donors[0] != i
    one = SignalAugment(measurement_swap=1.0).swap(meas[:1], tasks[:1], gens[:1])
    assert torch.equal(one, meas[:1])  # nothing to swap with

    proc = build_model()[1]
    ds = EcgInstructionDataset(instruct, "train")
    rows = [ds[i] for i in range(len(ds))]
    rhythm_rows = [r for r in rows if "rhythm" in (r["task"], r["attribute_type"])][:2]
    assert len(rhythm_rows) == 2
    seen = {r["record_id"] for r in rhythm_rows}  # donors of other records: the swap shows
    rows = (
        rhythm_rows + [r for r in rows if r["task"] == "report" and r["record_id"] not in seen][:2]
    )
    aug = SignalAugment.from_dict({"measurement_swap": 1.0, "swap_tasks": ["rhythm"]})
    plain = EcgCollator(proc, max_length=512)(rows)["ecg_measurements"]
    a = EcgCollator(proc, max_length=512, augment=aug, seed=3)(rows)["ecg_measurements"]
    b = EcgCollator(proc, max_length=512, augment=aug, seed=3)(rows)["ecg_measurements"]
    assert torch.equal(a, b) and torch.equal(a[2:], plain[2:])
    assert torch.equal(a[:2][:, rhythm], plain[:2][:, rhythm])
    assert not torch.equal(a[:2][:, other], plain[:2][:, other])
    kept = SignalAugment(measurement_swap=1.0, swap_keep=(8,)).swap(meas, tasks, gens)
    assert torch.equal(kept[:2, [8, n + 8]], meas[:2, [8, n + 8]])
    assert not torch.equal(kept[:2, RHYTHM_INDEX[0]], meas[:2, RHYTHM_INDEX[0]])
    with pytest.raises(ValueError, match=rf"swap_keep \[{n}\] outside the {n}"):
        SignalAugment(measurement_swap=1.0, swap_keep=(n,))
    with pytest.raises(ValueError, match="measurement_swap must be a probability"):
        SignalAugment.from_dict({"measurement_swap": 2})


def test_swap_signal_takes_the_donors_waveform(instruct):
    """With swap_signal a swapped rhythm row takes the donor's (augmented) signal, lead mask and
    page with its non-rhythm measurements, so only the kept rhythm measurements tell its rhythm; the
    measurement swap is the same draw as without it; other rows untouched; needs the swap."""
    proc = build_model()[1]
    ds = EcgInstructionDataset(instruct, "train")
    rows = [ds[i] for i in range(len(ds))]
    by_record = {r["record_id"]: r for r in rows if "rhythm" in (r["task"], r["attribute_type"])}
    rhythm_rows = list(by_record.values())[:2]  # of two records
    seen = {r["record_id"] for r in rhythm_rows}
    rows = (
        rhythm_rows + [r for r in rows if r["task"] == "report" and r["record_id"] not in seen][:2]
    )
    swap = {"measurement_swap": 1.0, "gain": [1.0, 1.0], "lead_gain": [1.0, 1.0], "offset_mv": 0.0,
            "wander_mv": 0.0, "noise_mv": 0.0, "shift": False, "lead_dropout": 0.0}  # fmt: skip
    meas_only = EcgCollator(proc, max_length=512, augment=SignalAugment.from_dict(swap), seed=5)(
        rows
    )
    aug = SignalAugment.from_dict({**swap, "swap_signal": True})
    a = EcgCollator(proc, max_length=512, augment=aug, seed=5)(rows)
    b = EcgCollator(proc, max_length=512, augment=aug, seed=5)(rows)
    assert torch.equal(a["ecg_values"], b["ecg_values"])
    assert torch.equal(a["ecg_measurements"], meas_only["ecg_measurements"])  # the same donors
    plain = meas_only["ecg_values"]  # no signal augmentation: each row's own signal
    assert torch.equal(a["ecg_values"][2:], plain[2:])
    for i in (0, 1):  # a donor from the batch, the same one the measurements came from
        donors = [j for j in range(4) if torch.equal(a["ecg_values"][i], plain[j])]
        assert donors and i not in donors
        assert torch.equal(a["lead_mask"][i], meas_only["lead_mask"][donors[0]])
        pages = meas_only["pixel_values"]  # and its page (every row: one page per ECG)
        assert torch.equal(a["pixel_values"][i], pages[donors[0]]) and not torch.equal(
            pages[i], pages[donors[0]]
        )
    assert torch.equal(a["pixel_values"][2:], meas_only["pixel_values"][2:])
    with pytest.raises(
        ValueError, match="swap_signal swaps the signal .* set measurement_swap > 0"
    ):
        SignalAugment.from_dict({"swap_signal": True})
