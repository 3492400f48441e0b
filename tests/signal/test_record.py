"""read_record on real WFDB files and on every kind of broken file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgllm.signal import ECGReadError, canonical_lead, read_record
from ecgllm.signal.record import parse_comments, units_to_mv
from ecgllm.signal.wfdb_write import write_record16


def test_ptbxl_record_in_millivolts_with_canonical_leads(real):
    rec = read_record(real / "ptbxl/records100/00000/00001_lr.hea")
    assert rec.signal.shape == (12, 1000) and rec.signal.dtype == np.float32
    assert rec.fs == 100.0 and rec.record_id == "00001_lr"
    assert rec.leads == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    ref = wfdb.rdrecord(str(real / "ptbxl/records100/00000/00001_lr"))
    np.testing.assert_allclose(rec.signal, ref.p_signal.T, atol=1e-6)
    # gain 1000 adu/mV: the first sample of lead I is -119 adu
    assert rec.signal[0, 0] == pytest.approx(-0.119)


def test_format_212_odd_length(real):
    rec = read_record(real / "wfdb_misc/100_3chan")
    assert rec.signal.shape == (3, 999) and rec.fs == 360.0
    assert rec.leads == ["I", "II", "III"]
    assert 0.3 < np.ptp(rec.signal[1]) < 5.0  # a real lead, in mV


def test_comments_and_non_standard_names(real):
    rec = read_record(real / "wfdb_misc/test01_00s")
    assert rec.leads == ["ECG 1", "ECG 2", "ECG 3", "ECG 4"]  # unknown names kept as they are
    assert rec.meta["age"] == 25 and rec.meta["sex"] == "M"


def test_non_ecg_channels_dropped_or_kept(real):
    rec = read_record(real / "wfdb_misc/v102s")
    assert rec.leads == ["II", "V"] and rec.meta["dropped_channels"] == ["PLETH", "RESP"]
    assert rec.meta["nan_count"] > 0  # the record has gaps (WFDB's invalid-sample value)
    kept = read_record(real / "wfdb_misc/v102s", other_channels="keep")
    assert kept.leads == ["II", "V", "PLETH", "RESP"]
    assert kept.meta["units"] == ["mV", "mV", "NU", "NU"]


@pytest.mark.parametrize(
    "name,canon",
    [("AVR", "aVR"), ("avl", "aVL"), ("aVF", "aVF"), ("MLII", "II"), ("v5", "V5"), ("C1", "V1"),
     ("D3", "III"), ("lead I", "I"), ("PLETH", None), ("V", None), ("ECG 1", None)],
)  # fmt: skip
def test_canonical_lead(name, canon):
    assert canonical_lead(name) == canon


def test_units_and_comment_conventions():
    assert units_to_mv("uV") == pytest.approx(1e-3)
    assert units_to_mv("µV") == units_to_mv("μV") == pytest.approx(1e-3)
    assert units_to_mv("V") == 1000 and units_to_mv("mV") == 1 and units_to_mv("NU") is None
    meta = parse_comments(["Age: 74", "Sex: Female", "Dx: 164889003,59118001", "Rx: Unknown"])
    assert meta["age"] == 74 and meta["sex"] == "F" and meta["dx"] == ["164889003", "59118001"]
    assert meta["comments_kv"]["rx"] == "Unknown"


def test_microvolt_header_becomes_millivolts(tmp_path):
    x = (np.sin(np.linspace(0, 20, 2000)) * 1.5).astype(np.float32)[None].repeat(2, 0)
    # 1.5 mV written as microvolts with gain 1 adu/uV
    d = np.round(x.T * 1000).astype(np.int16)
    wfdb.wrsamp("uv", fs=250, units=["uV", "uV"], sig_name=["V2", "aVL"], d_signal=d,
                fmt=["16", "16"], adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))  # fmt: skip
    rec = read_record(tmp_path / "uv")
    np.testing.assert_allclose(rec.signal, x, atol=1e-3)
    assert rec.leads == ["V2", "aVL"]


def _copy(real: Path, tmp: Path, name: str = "00001_lr") -> Path:
    for ext in (".hea", ".dat"):
        shutil.copy(real / "ptbxl/records100/00000" / (name + ext), tmp / (name + ext))
    return tmp / name


def _rewrite_header(base: Path, fn) -> None:
    hea = base.with_suffix(".hea")
    hea.write_text(fn(hea.read_text()))


def _expect(reason: str, base: Path, fragment: str) -> None:
    with pytest.raises(ECGReadError) as e:
        read_record(base)
    assert e.value.reason == reason
    assert str(base.name) in str(e.value) and fragment in str(e.value)


def test_missing_header_and_missing_dat(real, tmp_path):
    _expect("missing_file", tmp_path / "nothing", "header file not found")
    base = _copy(real, tmp_path)
    base.with_suffix(".dat").unlink()
    _expect("missing_file", base, "signal file named in the header is missing")


def test_truncated_dat(real, tmp_path):
    base = _copy(real, tmp_path)
    dat = base.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])
    _expect("truncated", base, "header promises 24000")


def test_header_lies_about_length(real, tmp_path):
    base = _copy(real, tmp_path)
    _rewrite_header(base, lambda t: t.replace("00001_lr 12 100 1000", "00001_lr 12 100 5000", 1))
    _expect("truncated", base, "5000 samples")


def test_zero_length_record(real, tmp_path):
    base = _copy(real, tmp_path)
    _rewrite_header(base, lambda t: t.replace("00001_lr 12 100 1000", "00001_lr 12 100 0", 1))
    _expect("empty", base, "zero samples")


def test_header_lies_about_gain(real, tmp_path):
    base = _copy(real, tmp_path)
    _rewrite_header(base, lambda t: t.replace("1000.0(0)/mV", "1.0(0)/mV"))  # 1000x too large
    _expect("implausible_amplitude", base, "check the header's gain")


def test_zero_gain(real, tmp_path):
    base = _copy(real, tmp_path)
    _rewrite_header(base, lambda t: t.replace("1000.0(0)/mV", "0(0)/mV", 1))
    with pytest.raises(ECGReadError) as e:
        read_record(base)
    assert e.value.reason in ("bad_gain", "bad_header")


def test_garbage_header(tmp_path):
    (tmp_path / "junk.hea").write_text("this is not a header\n\x00\x01")
    _expect("bad_header", tmp_path / "junk", "cannot parse header")


def test_all_nan_and_one_nan_lead(tmp_path):
    x = np.random.default_rng(0).normal(0, 0.3, (3, 1000)).astype(np.float32)
    base = write_record16(tmp_path / "r", x, 500.0, ["I", "II", "V1"])
    d = np.fromfile(base.with_suffix(".dat"), dtype="<i2").reshape(1000, 3)
    d[:, 2] = -32768  # WFDB's invalid-sample value for format 16
    d.tofile(base.with_suffix(".dat"))
    rec = read_record(base)
    assert rec.lead_mask.tolist() == [True, True, False]
    d[:, :] = -32768
    d.tofile(base.with_suffix(".dat"))
    _expect("all_nan", base, "every ECG sample is NaN")


def test_only_non_ecg_channels(tmp_path):
    d = np.zeros((500, 2), dtype=np.int16)
    wfdb.wrsamp("resp", fs=125, units=["NU", "mmHg"], sig_name=["RESP", "ABP"], d_signal=d,
                fmt=["16", "16"], adc_gain=[100.0, 100.0], baseline=[0, 0], write_dir=str(tmp_path))  # fmt: skip
    _expect("no_ecg", tmp_path / "resp", "no ECG (voltage) channels")


def test_multifrequency_resampled_or_rejected(tmp_path):
    n = 1000
    e = [np.sin(np.arange(n * k) / (20.0 * k)) for k in (1, 2)]
    e_d = [np.round(v * 1000).astype(np.int16) for v in e]
    wfdb.wrsamp("mf", fs=250, units=["mV", "mV"], sig_name=["I", "V1"], e_d_signal=e_d,
                samps_per_frame=[1, 2], fmt=["16", "16"], adc_gain=[1000.0, 1000.0],
                baseline=[0, 0], write_dir=str(tmp_path))  # fmt: skip
    rec = read_record(tmp_path / "mf")
    assert rec.fs == 500.0 and rec.signal.shape == (2, 2000)
    np.testing.assert_allclose(rec.signal[1], e[1], atol=2e-3)  # the fast channel untouched
    np.testing.assert_allclose(rec.signal[0, 100:-100], e[1][100:-100], atol=0.02)  # upsampled
    _ = pytest.raises(ECGReadError, read_record, tmp_path / "mf", multifrequency="reject")


def test_multi_segment_record_is_joined(tmp_path):
    for k in range(2):
        x = np.round(np.sin(np.arange(500) / 10 + k) * 1000).astype(np.int16)[:, None].repeat(2, 1)
        wfdb.wrsamp(f"seg{k}", fs=250, units=["mV", "mV"], sig_name=["I", "II"], d_signal=x,
                    fmt=["16", "16"], adc_gain=[1000.0, 1000.0], baseline=[0, 0],
                    write_dir=str(tmp_path))  # fmt: skip
    (tmp_path / "multi.hea").write_text("multi/2 2 250 1000\nseg0 500\nseg1 500\n")
    rec = read_record(tmp_path / "multi")
    assert rec.signal.shape == (2, 1000) and rec.leads == ["I", "II"]
    assert rec.signal[0, 500] == pytest.approx(np.sin(1.0), abs=1e-3)
