"""Shared fixtures: paths to the real records, a small simulated PTB-XL database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT / "tests" / "fixtures" / "real"  # copies of ../shared/data/real (see its README)


@pytest.fixture(scope="session")
def real() -> Path:
    return REAL


@pytest.fixture(scope="session")
def sim_db(tmp_path_factory) -> Path:
    """60 simulated records in the PTB-XL layout (built once per test session)."""
    from ecgllm.signal.synthetic_db import build_database

    out = tmp_path_factory.mktemp("sim")
    build_database(out, n=60, seed=3, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def instruct(sim_db, tmp_path_factory):
    """The 60-record simulated database as an instruction dataset (signal + image)."""
    from ecgllm.data import BuildConfig, build_dataset

    out = tmp_path_factory.mktemp("instruct")
    build_dataset(BuildConfig(source="synthetic", root=str(sim_db), out=str(out)), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny random-init model (seed 0) saved with its processor."""
    import torch

    from ecgllm.model import build_model

    torch.manual_seed(0)
    model, proc = build_model()
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return d
