"""Our format-16 writer produces what wfdb.wrsamp produces, and reads back exactly."""

from __future__ import annotations

import numpy as np
import wfdb

from ecgllm.signal import read_record
from ecgllm.signal.wfdb_write import PTBXL_LEAD_NAMES, write_record16


def test_bytes_match_wfdb_wrsamp(tmp_path):
    x = np.random.default_rng(1).normal(0, 0.5, (12, 5000)).astype(np.float32)
    ours = write_record16(tmp_path / "ours" / "00001_hr", x, 500.0)
    digital = np.clip(np.round(x.T.astype(np.float64) * 1000), -32767, 32767).astype(np.int16)
    (tmp_path / "ref").mkdir()
    wfdb.wrsamp("00001_hr", fs=500, units=["mV"] * 12, sig_name=list(PTBXL_LEAD_NAMES), d_signal=digital,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path / "ref"))  # fmt: skip
    ref = tmp_path / "ref" / "00001_hr"
    assert ours.with_suffix(".dat").read_bytes() == ref.with_suffix(".dat").read_bytes()
    assert ours.with_suffix(".hea").read_text() == ref.with_suffix(".hea").read_text()
    back = read_record(ours)
    np.testing.assert_allclose(back.signal, np.round(x * 1000) / 1000, atol=1e-6)
    assert not list((tmp_path / "ours").glob(".*tmp*"))  # no temporary files left behind
