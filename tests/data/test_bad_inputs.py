"""Bad inputs never crash: the fuzz corpus (tests/data/bad/, found by bench/fuzz.py) as regression
cases, and a short fuzz run of every surface (bench/fuzz.py runs 10,000 inputs each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgllm.fuzz import SURFACES, classify, run_surface

BAD = Path(__file__).parent / "bad"


def test_header_without_signal_lines_is_a_read_error_naming_the_file(tmp_path):
    from ecgllm.signal import ECGReadError, read_record
    from ecgllm.signal.databases import open_database

    shutil.copy(BAD / "wfdb_no_signal_lines.hea", tmp_path / "x.hea")
    with pytest.raises(ECGReadError, match=r"x\.hea.*declares 12 signals but 0 signal lines"):
        read_record(tmp_path / "x")
    db = open_database("wfdb", tmp_path)  # a batch job skips and counts it
    assert list(db.records()) == [] and db.rejects.counts["bad_header"] == 1


def test_ecgqa_shards_that_are_not_lists_or_miss_fields(tmp_path):
    from ecgllm.data.interop import import_ecgqa

    shutil.copy(BAD / "ecgqa_null.json", tmp_path / "00000.json")
    with pytest.raises(ValueError, match=r"00000\.json: expected a JSON list"):
        import_ecgqa([tmp_path / "00000.json"], tmp_path / "out")
    r = import_ecgqa([BAD / "ecgqa_missing_question_type.json"], tmp_path / "out2")
    assert r["samples"] == 0 and r["skipped"] == {"missing_question_type": 1, "bad_ecg_id": 1}


def test_llava_rows_with_bad_images_are_skipped_and_counted(tmp_path):
    from ecgllm.data.interop import import_llava

    for f in ("llava_image_not_a_path.json", "page.png"):
        shutil.copy(BAD / f, tmp_path / f)
    r = import_llava(tmp_path / "llava_image_not_a_path.json", tmp_path / "out")
    assert r["samples"] == 0 and r["skipped"] == {"malformed": 1, "unreadable_image": 1}


def test_mimic_ids_that_are_not_whole_numbers_or_repeat(tmp_path):
    """Found by bench/fuzz.py: a study_id of -1.6e-234 in machine_measurements.csv (int() of the
    text after our numeric check), and record_list rows with such ids or a repeated study_id."""
    from ecgllm.fuzz import write_mimic
    from ecgllm.signal.databases import open_database

    write_mimic(tmp_path)
    shutil.copy(BAD / "mimic_record_list_bad_ids.csv", tmp_path / "record_list.csv")
    shutil.copy(
        BAD / "mimic_machine_measurements_bad_ids.csv", tmp_path / "machine_measurements.csv"
    )
    db = open_database("mimic", tmp_path)
    assert [r.record_id for r in db.records()] == ["40689238", "45090959"]
    assert db.rejects.counts == {"duplicate_id": 1, "bad_row": 2}


@pytest.mark.parametrize(
    "name, error",
    [("benchmark_control_char.yaml", "not valid YAML"), ("benchmark_methods_not_a_list.yaml", "methods must be list")],
)  # fmt: skip
def test_bad_benchmark_yaml_names_the_file(name, error):
    from ecgllm.benchmarks import load_benchmark

    with pytest.raises(ValueError, match=f"{name}.*{error}"):
        load_benchmark(BAD / name)


def test_bad_config_values_are_config_errors():
    from ecgllm.train.config import ConfigError, load_config

    with pytest.raises(
        ConfigError, match="train.per_device_train_batch_size must be int, got None"
    ):
        load_config(BAD / "config_empty_batch_size.yaml")
    with pytest.raises(
        ConfigError, match="train.per_device_train_batch_size must be int, got None"
    ):
        load_config(None, ["train.per_device_train_batch_size="])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, ["model.backbone=\x0f"])
    with pytest.raises(ConfigError, match="lora.r must be int, got \\[1\\]"):
        load_config(None, ["lora.r=[1]"])
    with pytest.raises(ConfigError, match="output.report_to must be list\\[str\\], got \\[None\\]"):
        load_config(None, ["output.report_to=[null]"])


def test_processor_images_of_any_kind():
    from PIL import Image

    from ecgllm.model import build_model

    _, proc = build_model()
    for bad, msg in [(None, "expected a PIL image or an array, got NoneType"), ({"a": 1}, "got dict"),
                     (Image.new("RGB", (0, 8)), "empty page"), (np.full((8, 8), np.nan), "NaN"),
                     (np.zeros((2, 3, 4, 5)), "must be \\[H, W\\]")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"image 0: .*{msg}"):
            proc.process_images([bad])
    # arrays (grey, RGB, channels-first, 0-1 floats) and 16-bit grey pages are pages
    ok = [np.zeros((8, 8), np.uint8), np.ones((8, 8, 3)), np.zeros((3, 8, 8), np.float32),
          Image.new("I;16", (8, 8)), Image.new("CMYK", (8, 8))]  # fmt: skip
    assert proc.process_images(ok).shape[0] == len(ok)


def test_classify_tells_our_errors_from_crashes():
    from ecgllm.benchmarks import load_benchmark

    def ours():
        load_benchmark("/nowhere/file.yaml")  # raises FileNotFoundError naming the file

    for f, names, want in [(ours, ("file.yaml",), None), (ours, ("other",), "without the file name"),
                           (lambda: int("x"), (), "from"), (lambda: {}["k"], (), "KeyError")]:  # fmt: skip
        try:
            f()
        except Exception as e:  # noqa: BLE001
            got = classify(e, names)
        assert (got is None) if want is None else (want in got)


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_surface_survives_a_short_fuzz_run(surface, tmp_path):
    r = run_surface(surface, n=40, workdir=tmp_path, seed=1)
    assert r["inputs"] >= 20 and r["crashes"] == 0, r["examples"][:3]


@pytest.mark.parametrize("gain", ["1.2.3", "4.0273086876821685e-144"])
def test_header_gains_that_are_not_numbers_or_absurd(tmp_path, gain):
    """Found by bench/fuzz.py: a gain field "1.2.3" (a float() ValueError from our header scan)
    and a gain of 4e-144 (values beyond float32: an overflow warning, inf samples)."""
    import warnings

    import wfdb

    from ecgllm.signal import ECGReadError, read_record

    sig = np.random.default_rng(0).standard_normal((500, 2)) * 0.2
    wfdb.wrsamp("r", fs=500, units=["mV"] * 2, sig_name=["I", "II"], p_signal=sig, fmt=["212"] * 2,
                write_dir=str(tmp_path))  # fmt: skip
    hea = tmp_path / "r.hea"
    lines = hea.read_text().splitlines()
    f = lines[1].split(" ")
    f[2] = gain + "/mV"
    lines[1] = " ".join(f)
    hea.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            rec = read_record(tmp_path / "r")
        except ECGReadError as e:
            assert "r.hea" in str(e)
        else:
            assert rec.signal.dtype == np.float32


def test_ptbxl_rows_with_bad_or_repeated_ecg_ids_are_skipped_and_counted(sim_db, tmp_path):
    """Found by bench/fuzz.py: an ecg_id "0x10" or "1.5" stopped the PTB-XL reader (int() in the
    record id); a repeated ecg_id made two records with one id."""
    import pandas as pd

    from ecgllm.signal.databases import open_database

    root = tmp_path / "ptbxl"
    shutil.copytree(sim_db, root)
    df = pd.read_csv(root / "ptbxl_database.csv", dtype=str)
    n = len(df)
    df.loc[0, "ecg_id"], df.loc[1, "ecg_id"], df.loc[2, "ecg_id"] = (
        "0x10",
        "1.5",
        df.loc[3, "ecg_id"],
    )
    df.to_csv(root / "ptbxl_database.csv", index=False)
    db = open_database("ptbxl", root)
    assert len(db) == n - 3
    assert db.rejects.counts["bad_row"] == 2 and db.rejects.counts["duplicate_id"] == 1
