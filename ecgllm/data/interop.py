"""Interop with the formats the field ships: LLaVA-style JSON (as ECGInstruct) and ECG-QA JSON.

    export_llava("data/instruct", "export/llava", split="train")   # JSON + images/ folder
    import_llava("ecginstruct.json", "data/ecginstruct")            # -> records + samples
    export_ecgqa("data/instruct", "export/ecgqa.json", split="test")
    import_ecgqa(["ecgqa/ptbxl/template/test"], "data/ecgqa", ptbxl_root="ptb-xl")

Imported data is written in our own layout (OUT/records + OUT/samples), so everything downstream
(training, evaluation) reads it like a built dataset.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk
from PIL import Image

from ..atomic import write_text
from .schema import SampleError, record_features, validate_sample, write_datasets
from .tasks import join_answer, text_turn, user_turn

log = logging.getLogger(__name__)

SPLIT_NAMES = {
    "train": "train",
    "valid": "validation",
    "validation": "validation",
    "val": "validation",
    "test": "test",
}


def _text(msg: dict) -> str:
    return "".join(c.get("text") or "" for c in msg["content"] if c["type"] == "text")


# --- LLaVA / ECGInstruct ------------------------------------------------------------------------


def export_llava(root: str | Path, out: str | Path, split: str = "train") -> dict:
    """Samples with an image -> OUT/llava_{split}.json rows {"id", "image", "conversations"} and
    OUT/images/<record_id>.png (ECGInstruct's row format: "<image>\\n" opens the first human
    turn). Samples without the image modality are counted as skipped (LLaVA has no ECG input)."""
    root, out = Path(root), Path(out)
    samples = load_from_disk(str(root / "samples"))[split]
    records = load_from_disk(str(root / "records"))
    if "image" not in records.column_names:
        raise ValueError(f"{root} was built without images: nothing to export to LLaVA format")
    index = {r: i for i, r in enumerate(records["record_id"])}
    images = records.select_columns(["image"])
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, skipped, written = [], 0, set()
    for s in samples:
        if "image" not in s["modalities"]:
            skipped += 1
            continue
        paths = []
        for rid in s["record_ids"]:
            rel = f"images/{rid.replace('/', '__')}.png"
            if rid not in written:
                img = images[index[rid]]["image"]
                img.save(out / rel)
                written.add(rid)
            paths.append(rel)
        conv = []
        for k, m in enumerate(s["messages"]):
            text = _text(m)
            if k == 0:
                text = "<image>\n" * sum(c["type"] == "image" for c in m["content"]) + text
            conv.append({"from": "human" if m["role"] == "user" else "gpt", "value": text})
        rows.append(
            {"id": s["id"], "image": paths[0] if len(paths) == 1 else paths, "conversations": conv}
        )
    target = out / f"llava_{split}.json"
    write_text(target, json.dumps(rows, indent=1))
    return {
        "rows": len(rows),
        "images": len(written),
        "skipped_no_image": skipped,
        "out": str(target),
    }


def _records(rows: list[dict], with_signal: bool, with_image: bool) -> Dataset:
    feats = record_features(with_signal=with_signal, with_image=with_image)
    return Dataset.from_dict({c: [r.get(c) for r in rows] for c in feats}, features=feats)


class _BadImage(Exception):
    """An imported row's image file exists but is not an image."""


def import_llava(
    json_path: str | Path, out: str | Path, split: str = "train", source: str = "llava"
) -> dict:
    """LLaVA/ECGInstruct JSON -> our layout. Each distinct image becomes an image-only record;
    "<image>" tokens become {"type": "image"} items. Rows whose image is missing or whose
    conversation is malformed are skipped and counted by reason."""
    json_path, out = Path(json_path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        rows = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{json_path}: not a LLaVA JSON file: {e}") from e
    if not isinstance(rows, list):
        raise ValueError(f"{json_path}: expected a JSON list of conversations")
    records: dict[str, dict] = {}
    samples: list[dict] = []
    skipped: Counter = Counter()
    split = SPLIT_NAMES.get(split, split)
    for n, row in enumerate(rows):
        try:
            imgs = row.get("image")
            imgs = [imgs] if isinstance(imgs, str) else list(imgs or [])
            rids = []
            for rel in imgs:
                if not isinstance(rel, str) or not Path(rel).name:
                    raise SampleError(f"image {rel!r} is not a file path")
                p = json_path.parent / rel
                if not p.is_file():
                    raise FileNotFoundError(rel)
                rid = str(Path(rel).with_suffix("")).replace(os.sep, "/")
                if rid not in records:
                    buf = io.BytesIO()
                    try:
                        Image.open(p).save(buf, "PNG")
                    except (OSError, ValueError) as e:  # not an image PIL can read
                        raise _BadImage(str(e)) from e
                    records[rid] = {"record_id": rid, "source": source, "patient_id": rid, "split": split,
                                    "fs": 0.0, "lead_mask": [False] * 12, "labels": "{}", "report": "",
                                    "features": "{}", "meta": "{}", "layout": "",
                                    "image": {"bytes": buf.getvalue(), "path": None}}  # fmt: skip
                rids.append(rid)
            msgs = []
            for k, turn in enumerate(row["conversations"]):
                role = {"human": "user", "gpt": "assistant"}[turn["from"]]
                text = turn["value"]
                if k == 0:
                    n_img = text.count("<image>")
                    if n_img != len(rids):
                        raise SampleError(f"{n_img} <image> tokens for {len(rids)} images")
                    msgs.append(
                        user_turn(
                            len(rids),
                            ("image",),
                            text.replace("<image>\n", "").replace("<image>", "").strip(),
                        )
                    )
                else:
                    msgs.append(text_turn(role, text))
            last = _text(msgs[-1]) if msgs else ""
            s = {"id": str(row.get("id", n)), "source": source, "record_id": rids[0] if rids else "", "record_ids": rids,
                 "patient_id": rids[0] if rids else "", "split": split, "task": "imported", "template_id": 0,
                 "question_type": "", "attribute_type": "", "messages": msgs, "options": [], "answer": [last],
                 "labels": [], "features": "{}", "value": None, "unit": "", "tolerance": None, "evidence": "{}",
                 "modalities": ["image"] if rids else []}  # fmt: skip
            validate_sample(s)
        except FileNotFoundError:
            skipped["missing_image"] += 1
            continue
        except _BadImage:
            skipped["unreadable_image"] += 1
            continue
        except (KeyError, TypeError, AttributeError, SampleError):
            skipped["malformed"] += 1
            continue
        samples.append(s)
    write_datasets(
        out, _records(list(records.values()), with_signal=False, with_image=True), samples
    )
    return {
        "samples": len(samples),
        "records": len(records),
        "skipped": dict(skipped),
        "out": str(out),
    }


# --- ECG-QA ------------------------------------------------------------------------------------


def export_ecgqa(root: str | Path, out_json: str | Path, split: str = "test") -> dict:
    """Our ecgqa-task samples -> a list in the official ECG-QA JSON format (ecg_id as integers)."""
    samples = load_from_disk(str(Path(root) / "samples"))[split]
    rows = []
    for n, s in enumerate(samples):
        if s["task"] != "ecgqa":
            continue
        q = _text(s["messages"][0])
        rows.append({
            "template_id": s["template_id"],
            "question_id": int(hashlib.sha1(q.encode()).hexdigest()[:7], 16),
            "sample_id": n,
            "question_type": s["question_type"],
            "attribute_type": s["attribute_type"],
            "question": q,
            "answer": list(s["answer"]),
            "ecg_id": [int(r) if r.isdigit() else r for r in s["record_ids"]],
            "attribute": None,
        })  # fmt: skip
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(rows, indent=4))
    return {"rows": len(rows), "out": str(out_json)}


def read_template_options(path: str | Path) -> dict[int, list[str]]:
    """answers_for_each_template.csv -> {template_id: [options]} (options may contain commas)."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out[int(row["template_id"])] = list(ast.literal_eval(row["classes"]))
    return out


def _shards(paths: list[str | Path]) -> list[tuple[Path, str | None]]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.json"))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such ECG-QA shard or folder")
    out = []
    for f in files:
        split = next(
            (SPLIT_NAMES[part] for part in reversed(f.parts[:-1]) if part in SPLIT_NAMES), None
        )
        out.append((f, split))
    return out


def _ecgqa_row_problem(q: Any) -> str | None:
    """Why an ECG-QA question cannot be imported (None: it can)."""
    if not isinstance(q, dict):
        return "not_an_object"
    for key in ("template_id", "question_type", "question", "answer", "ecg_id"):
        if key not in q:
            return f"missing_{key}"
    if not isinstance(q["question"], str) or not isinstance(q["question_type"], str):
        return "question_not_text"
    if not isinstance(q["answer"], list) or not all(isinstance(a, str) for a in q["answer"]):
        return "answer_not_a_list_of_text"
    ids = q["ecg_id"]
    if not isinstance(ids, list) or not ids or not all(isinstance(e, int) and not isinstance(e, bool) and 0 < e < 100_000 for e in ids):  # fmt: skip
        return "bad_ecg_id"
    if not isinstance(q["template_id"], int) or isinstance(q["template_id"], bool):
        return "bad_template_id"
    if not isinstance(q.get("attribute_type") or "", str):
        return "bad_attribute_type"
    return None


def import_ecgqa(
    paths: list[str | Path],
    out: str | Path,
    ptbxl_root: str | Path | None = None,
    template_options: str | Path | None = None,
    modalities: tuple[str, ...] = ("signal", "image"),
    workers: int = 1,
) -> dict:
    """Official ECG-QA shards, read unmodified -> our layout. The split comes from the shard's
    folder (train/valid/test). With `ptbxl_root`, the referenced PTB-XL records are read, measured
    and rendered into OUT/records (so samples carry signals/images); without it the samples are
    text-only (ECGs to be attached later). Options come from answers_for_each_template.csv
    (given, or found beside the shards)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards = _shards(paths)
    if template_options is None:
        for f, _ in shards:
            for parent in f.parents:
                cand = parent / "answers_for_each_template.csv"
                if cand.exists():
                    template_options = cand
                    break
            if template_options:
                break
    options = read_template_options(template_options) if template_options else {}
    rows: list[tuple[dict, str]] = []
    skipped: Counter = Counter()
    for f, split in shards:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{f}: not JSON: {e}") from e
        if not isinstance(data, list):
            raise ValueError(
                f"{f}: expected a JSON list of ECG-QA questions, got {type(data).__name__}"
            )
        for n, q in enumerate(data):
            why = _ecgqa_row_problem(q)
            if why:  # a malformed question: skipped and counted, the rest of the shard goes on
                skipped[why] += 1
                log.warning("%s: question %d skipped: %s", f, n, why)
                continue
            rows.append((q, split or "test"))
    ids = sorted({f"{int(e):05d}" for q, _ in rows for e in q["ecg_id"]})
    mods = tuple(modalities) if ptbxl_root else ()
    have: set[str] = set()
    if ptbxl_root:
        from .build import BuildConfig, build_records

        cfg = BuildConfig(source="ptbxl", root=str(ptbxl_root), out=str(out), modalities=mods, workers=workers,
                          record_ids=tuple(ids))  # fmt: skip
        dirs, rejects, _ = build_records(cfg, progress=True)
        from datasets import concatenate_datasets

        records = concatenate_datasets([load_from_disk(str(d)) for d in dirs])
        have = set(records["record_id"])
    samples = []
    for n, (q, split) in enumerate(rows):
        rids = [f"{int(e):05d}" for e in q["ecg_id"]]
        if ptbxl_root and not all(r in have for r in rids):
            skipped["ecg_not_found"] += 1
            continue
        answer = list(q["answer"])
        s = {"id": f"ecgqa-{q.get('sample_id', n)}", "source": "ecgqa", "record_id": rids[0], "record_ids": rids,
             "patient_id": "", "split": split, "task": "ecgqa", "template_id": int(q["template_id"]),
             "question_type": q["question_type"], "attribute_type": q.get("attribute_type") or "",
             "messages": [user_turn(len(rids), mods, q["question"]), text_turn("assistant", join_answer(answer))],
             "options": options.get(int(q["template_id"]), []), "answer": answer, "labels": [], "features": "{}",
             "value": None, "unit": "", "tolerance": None,
             "evidence": json.dumps({"attribute": q.get("attribute"), "question_id": q.get("question_id")}),
             "modalities": list(mods)}  # fmt: skip
        try:
            validate_sample(s)
        except SampleError:
            skipped["invalid"] += 1
            continue
        samples.append(s)
    if ptbxl_root:
        write_datasets(out, records, samples)
        shutil.rmtree(out / "_work", ignore_errors=True)
    else:
        write_datasets(out, _records([], with_signal=False, with_image=False), samples)
    return {"samples": len(samples), "shards": len(shards), "ecgs": len(ids), "with_ecgs": bool(ptbxl_root),
            "skipped": dict(skipped), "out": str(out)}  # fmt: skip
