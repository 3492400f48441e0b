"""LLaVA/ECGInstruct and ECG-QA import/export."""

from __future__ import annotations

import json
import shutil

import pytest
from datasets import load_from_disk

from ecgllm.data import BuildConfig, build_dataset, validate_sample
from ecgllm.data.dataset import EcgInstructionDataset
from ecgllm.data.interop import (
    export_ecgqa,
    export_llava,
    import_ecgqa,
    import_llava,
    read_template_options,
)


@pytest.fixture(scope="module")
def small(sim_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    build_dataset(
        BuildConfig(source="synthetic", root=str(sim_db), out=str(out), limit=24), progress=False
    )
    return out


def test_import_real_ecgqa_sample_unmodified(real, tmp_path):
    src = real / "ecgqa/ptbxl/sample_questions.json"
    original = json.loads(src.read_text())
    r = import_ecgqa(
        [src], tmp_path / "q", template_options=real / "ecgqa/ptbxl/answers_for_each_template.csv"
    )
    assert r["samples"] == 160 and r["skipped"] == {}
    samples = load_from_disk(str(tmp_path / "q" / "samples"))["test"]
    opts = read_template_options(real / "ecgqa/ptbxl/answers_for_each_template.csv")
    assert (
        len(opts) == 70
        and "bigeminal pattern (unknown origin, supraventricular, or ventricular)" in opts[7]
    )
    for q, s in zip(original, samples, strict=True):
        assert s["template_id"] == q["template_id"] and s["answer"] == q["answer"]
        assert s["question_type"] == q["question_type"] and s["record_ids"] == [
            f"{e:05d}" for e in q["ecg_id"]
        ]
        assert s["messages"][0]["content"][-1]["text"] == q["question"]
        assert set(s["answer"]) <= set(s["options"])
        validate_sample(s)


def test_ecgqa_export_then_import_with_ptbxl_records(small, sim_db, real, tmp_path):
    ex = export_ecgqa(small, tmp_path / "ecgqa" / "test" / "00000.json", split="test")
    rows = json.loads((tmp_path / "ecgqa/test/00000.json").read_text())
    assert ex["rows"] == len(rows) > 0
    assert set(rows[0]) == {"template_id", "question_id", "sample_id", "question_type", "attribute_type",
                            "question", "answer", "ecg_id", "attribute"}  # fmt: skip
    assert all(isinstance(e, int) for r in rows for e in r["ecg_id"])
    shutil.copy(real / "ecgqa/ptbxl/answers_for_each_template.csv", tmp_path / "ecgqa")
    r = import_ecgqa(
        [tmp_path / "ecgqa" / "test"], tmp_path / "imp", ptbxl_root=sim_db, modalities=("signal",)
    )
    assert r["samples"] == len(rows) and r["with_ecgs"]
    ds = EcgInstructionDataset(tmp_path / "imp", "test")
    row = ds[0]
    assert row["signal"].shape[1:] == (12, 5000)
    assert [s["answer"] for s in ds.samples] == [x["answer"] for x in rows]


def test_llava_round_trip(small, tmp_path):
    r = export_llava(small, tmp_path / "llava", split="train")
    rows = json.loads((tmp_path / "llava" / "llava_train.json").read_text())
    assert r["rows"] == len(rows) > 0 and r["skipped_no_image"] == 0
    one = next(x for x in rows if isinstance(x["image"], str))
    assert one["conversations"][0]["from"] == "human" and one["conversations"][0][
        "value"
    ].startswith("<image>\n")
    assert one["conversations"][1]["from"] == "gpt"
    two = next(x for x in rows if isinstance(x["image"], list))
    assert two["conversations"][0]["value"].startswith("<image>\n<image>\n")
    assert (tmp_path / "llava" / one["image"]).exists()
    back = import_llava(tmp_path / "llava" / "llava_train.json", tmp_path / "back", split="train")
    assert back["samples"] == len(rows) and back["skipped"] == {}
    ds = EcgInstructionDataset(tmp_path / "back", "train")
    got = ds[0]
    assert got["images"][0].size == (2200, 1700) and "signal" not in got
    assert got["messages"][1]["content"][0]["text"] == rows[0]["conversations"][1]["value"]


def test_llava_bad_rows_are_counted(tmp_path):
    (tmp_path / "img.png").write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    rows = [
        {"id": "a", "image": "ok.png", "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]},
        {"id": "b", "image": "missing.png", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]},
        {"id": "c", "image": "ok.png", "conversations": [{"from": "human", "value": "Q without image token"}, {"from": "gpt", "value": "A"}]},
        {"id": "d", "image": "ok.png", "conversations": [{"from": "robot", "value": "<image>\nQ"}]},
    ]  # fmt: skip
    (tmp_path / "x.json").write_text(json.dumps(rows))
    r = import_llava(tmp_path / "x.json", tmp_path / "o")
    assert r["samples"] == 1 and r["skipped"] == {"missing_image": 1, "malformed": 2}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a LLaVA JSON"):
        import_llava(tmp_path / "bad.json", tmp_path / "o2")
    with pytest.raises(FileNotFoundError, match="no such ECG-QA shard"):
        import_ecgqa([tmp_path / "nope"], tmp_path / "o3")
