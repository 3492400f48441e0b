"""The on-disk schema: a `records` table (one row per ECG: signal, image, metadata) and a
`samples` DatasetDict (one row per instruction sample, referencing its ECG(s) by record_id).

Why two tables: a record feeds ~10-20 samples; storing its float16 [12, 5000] signal (120 KB)
and page image (~120 KB) once instead of in every sample keeps full PTB-XL at ~5 GB instead
of ~50 GB. `ecgllm.data.EcgInstructionDataset` joins them back into DESIGN.md's row
(signal + image + messages) on access.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Array2D, Dataset, DatasetDict, Features, Image, List, Value

N_LEADS, N_SAMPLES = 12, 5000

CONTENT = {"type": Value("string"), "text": Value("string")}
MESSAGE = {"role": Value("string"), "content": List(CONTENT)}

SAMPLE_FEATURES = Features(
    {
        "id": Value("string"),
        "source": Value("string"),
        "record_id": Value("string"),
        "record_ids": List(Value("string")),
        "patient_id": Value("string"),
        "split": Value("string"),
        "task": Value("string"),
        "template_id": Value("int32"),
        "question_type": Value("string"),
        "attribute_type": Value("string"),
        "messages": List(MESSAGE),
        "options": List(Value("string")),
        "answer": List(Value("string")),
        "labels": List(Value("string")),
        "features": Value("string"),  # JSON: the record's measured/true intervals
        "value": Value("float64"),  # measurement tasks: the true value
        "unit": Value("string"),
        "tolerance": Value("float64"),
        "evidence": Value("string"),  # JSON: grounded findings, measurements, leads
        "modalities": List(Value("string")),
    }
)


def record_features(
    n_samples: int = N_SAMPLES, with_signal: bool = True, with_image: bool = True
) -> Features:
    cols = {
        "record_id": Value("string"),
        "source": Value("string"),
        "patient_id": Value("string"),
        "split": Value("string"),
        "fs": Value("float32"),
        "lead_mask": List(Value("bool")),
        "labels": Value("string"),  # JSON: SCP code -> likelihood
        "report": Value("string"),
        "features": Value("string"),  # JSON: {"summary": {...}, "leads": {...}, "source": ...}
        "meta": Value("string"),  # JSON: age, sex, noise, stages, extras, axis, ...
        "layout": Value("string"),  # JSON PageLayout of the image ("" without image)
    }
    if with_signal:
        cols["signal"] = Array2D((N_LEADS, n_samples), "float16")
    if with_image:
        cols["image"] = Image()
    return Features(cols)


def samples_dataset(rows: list[dict]) -> Dataset:
    """A samples Dataset with the schema's features (also when there are no rows)."""
    if not rows:
        return Dataset.from_dict({k: [] for k in SAMPLE_FEATURES}, features=SAMPLE_FEATURES)
    return Dataset.from_list(rows, features=SAMPLE_FEATURES)


def save_dataset(ds: Dataset | DatasetDict, path) -> None:
    """save_to_disk that also round-trips empty datasets (datasets writes 0 shards for an empty
    one and then cannot load it back)."""
    if isinstance(ds, DatasetDict):
        Path(path).mkdir(parents=True, exist_ok=True)
        for name, split in ds.items():
            save_dataset(split, Path(path) / name)
        (Path(path) / "dataset_dict.json").write_text(json.dumps({"splits": list(ds)}))
    else:
        ds.save_to_disk(str(path), num_shards=1 if len(ds) == 0 else None)


def write_datasets(out: Path, records: Dataset, samples: list[dict]) -> None:
    """OUT/records and OUT/samples (train/validation/test), each written under a temporary name and
    then swapped in (records first: a samples folder always has its records)."""
    import os
    import shutil

    from ..atomic import replace

    by_split = {s: [x for x in samples if x["split"] == s] for s in ("train", "validation", "test")}
    dd = DatasetDict({s: samples_dataset(v) for s, v in by_split.items()})
    # an older build's samples go first: killed half-way, the folder has records and no samples
    # (not readable), never new records with old samples
    (Path(out) / "build_report.json").unlink(missing_ok=True)
    if (Path(out) / "samples").exists():
        shutil.rmtree(Path(out) / "samples")
    for name, obj in (("records", records), ("samples", dd)):
        tmp = Path(out) / f".{name}.tmp{os.getpid()}"
        save_dataset(obj, tmp)
        if (Path(out) / name).exists():
            shutil.rmtree(Path(out) / name)
        replace(tmp, Path(out) / name)


class SampleError(ValueError):
    """A generated or imported sample that breaks the schema's rules."""


def validate_sample(s: dict) -> None:
    """Raise SampleError unless: the first user turn holds exactly one ecg/image item per attached
    ECG and modality (and no other turn holds any), roles alternate user/assistant, no assistant
    turn is empty, and every answer is one of the options (when there are options)."""
    where = s.get("id", "?")
    msgs = s.get("messages") or []
    if len(msgs) < 2:
        raise SampleError(f"{where}: needs a user and an assistant turn, has {len(msgs)}")
    n = len(s.get("record_ids") or [])
    mods = s.get("modalities") or []
    expect = {"ecg": n if "signal" in mods else 0, "image": n if "image" in mods else 0}
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role not in ("user", "assistant", "system"):
            raise SampleError(f"{where}: message {i} has role {role!r}")
        want_role = "user" if (i % 2 == 0) else "assistant"
        if role != want_role:
            raise SampleError(f"{where}: message {i} should be {want_role}, is {role}")
        counts = {"ecg": 0, "image": 0}
        texts = []
        for item in m.get("content") or []:
            t = item.get("type")
            if t in counts:
                counts[t] += 1
            elif t == "text":
                texts.append(item.get("text") or "")
            else:
                raise SampleError(f"{where}: message {i} has a content item of type {t!r}")
        want = expect if i == 0 else {"ecg": 0, "image": 0}
        if counts != want:
            raise SampleError(f"{where}: message {i} has {counts['ecg']} ecg and {counts['image']} image "
                              f"placeholders, expected {want['ecg']} and {want['image']} for {n} ECG(s) "
                              f"with modalities {mods}")  # fmt: skip
        if role == "assistant" and not "".join(texts).strip():
            raise SampleError(f"{where}: assistant message {i} is empty")
        if role == "user" and not "".join(texts).strip():
            raise SampleError(f"{where}: user message {i} has no text")
    if not s.get("answer"):
        raise SampleError(f"{where}: empty answer")
    opts = s.get("options") or []
    if opts:
        missing = [a for a in s["answer"] if a not in opts]
        if missing:
            raise SampleError(f"{where}: answer {missing} not among the options")
