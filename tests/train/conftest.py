from __future__ import annotations

import pytest

from ecgllm.data import BuildConfig, build_dataset


@pytest.fixture(scope="session")
def instruct(sim_db, tmp_path_factory):
    """The 60-record simulated database as an instruction dataset (signal + image)."""
    out = tmp_path_factory.mktemp("instruct")
    build_dataset(BuildConfig(source="synthetic", root=str(sim_db), out=str(out)), progress=False)
    return out
