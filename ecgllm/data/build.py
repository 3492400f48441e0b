"""Build instruction datasets from an ECG database: records (signal, image, metadata) and
samples (chat messages per task), with splits that follow the source and never share a patient.

    cfg = BuildConfig(source="synthetic", root="data/sim", out="data/instruct", workers=2)
    summary = build_dataset(cfg)

Two passes. (1) Records, in chunks of `chunk_size` processed by `workers` processes: read,
standardize (500 Hz, 10 s, 12 leads), measure, render; each chunk is saved to
OUT/_work/records-NNNNN and renamed into place when complete, so an interrupted build resumes at
the first missing chunk. (2) Samples, from the records' metadata only: every task generator with
a generator seeded by (seed, record index), every sample validated, then OUT/samples (a
DatasetDict train/validation/test) and OUT/records are written via temporary names. Same seed,
same rows. Bad records are skipped, counted by reason and listed in OUT/rejects.csv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from dataclasses import replace as with_fields
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm

from ..atomic import Stamp, remove_stale, replace, write_text
from ..render.spec import PageSpec
from ..render.store import encode_page, render_page
from ..signal.databases import ECGDatabase, Entry, Rejects, open_database
from ..signal.measure import measure
from ..signal.preprocess import standardize
from ..signal.record import ECGReadError
from ..text.vocab import axis_name, extra_systoles, infarction_stages, parse_leads
from . import tasks as T
from .schema import SampleError, record_features, save_dataset, validate_sample, write_datasets

SUMMARY_KEYS = ("hr_bpm", "rr_ms", "rr_sd_ms", "pr_ms", "p_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg",
                "sokolow_lyon_mv", "cornell_mv")  # fmt: skip


@dataclass
class BuildConfig:
    source: str  # the reader (ecgllm.signal.databases.SOURCES)
    root: str  # the database folder
    out: str  # the output folder
    tasks: tuple[str, ...] = T.TASKS  # families (+ check: rhythm, findings; optional: verify)
    modalities: tuple[str, ...] = ("signal", "image")  # what each record carries: signal, image
    workers: int = 1  # processes reading, measuring and rendering records
    limit: int | None = None  # first N records only
    seed: int = 0  # same seed, same rows
    fs: float = 500.0  # sampling rate every record is brought to (Hz)
    seconds: float = 10.0  # length every record is brought to (s)
    page: PageSpec = field(default_factory=PageSpec)  # how the record's page image is drawn
    # interval values: auto = simulator truth / MIMIC machine / our measurement
    features: str = "auto"
    chunk_size: int = 64  # records per saved chunk (the unit an interrupted build resumes from)
    comparisons_per_record: float = 0.5  # ECG-QA comparison questions (two records) per record
    sampling_rate: int = 500  # PTB-XL files to read (records100 or records500)
    strict: bool = False  # fail on the first bad record or sample instead of skipping it
    options: dict[str, Any] = field(default_factory=dict)  # the reader's options
    record_ids: tuple[str, ...] | None = None  # only these records (e.g. those ECG-QA refers to)
    single_split: str | None = None  # every record in this split (an external test set)
    # report targets: normalised English from the labels, or the source's own text
    report_text: str = "normalised"

    def __post_init__(self) -> None:
        if isinstance(self.page, dict):  # as YAML or JSON give it
            self.page = PageSpec(**self.page)
        bad = set(self.tasks) - set(T.FAMILIES)
        if bad:
            raise ValueError(f"unknown task(s) {sorted(bad)}; choose from {list(T.FAMILIES)}")
        if self.report_text not in T.REPORT_TEXTS:
            raise ValueError(
                f"report_text must be one of {T.REPORT_TEXTS}, not {self.report_text!r}"
            )
        if self.single_split is not None and self.single_split not in (
            "train",
            "validation",
            "test",
        ):
            raise ValueError(
                f"single_split must be train, validation or test, not {self.single_split!r}"
            )
        badm = set(self.modalities) - {"signal", "image"}
        if badm or not self.modalities:
            raise ValueError(
                f"modalities must be a non-empty subset of signal,image; got {list(self.modalities)}"
            )
        if self.features not in ("auto", "measured", "truth", "machine"):
            raise ValueError(
                f"features must be auto, measured, truth or machine, not {self.features!r}"
            )
        if self.workers < 1 or self.chunk_size < 1:
            raise ValueError(
                f"workers and chunk_size must be >= 1, not {self.workers}, {self.chunk_size}"
            )

    def fingerprint(self) -> str:
        d = asdict(self)
        for k in ("workers", "out", "strict"):
            d.pop(k)
        d.update(d.pop("page"))  # flat, as builds before PageSpec stamped it
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- pass 1: records -----------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _db(cfg: BuildConfig) -> ECGDatabase:
    opts = dict(cfg.options)
    if cfg.source in ("ptbxl", "synthetic"):
        opts.setdefault("sampling_rate", cfg.sampling_rate)
    db = open_database(cfg.source, cfg.root, **opts)
    if cfg.record_ids is not None:
        keep = set(cfg.record_ids)
        db.entries = [e for e in db.entries if e.record_id in keep]
    return db


def _truth(cfg: BuildConfig) -> dict[str, dict]:
    path = Path(cfg.root) / "simulation_truth.jsonl"
    if cfg.features in ("auto", "truth") and path.exists():
        out = {}
        for line in path.read_text().splitlines():
            t = json.loads(line)
            out[f"{int(t['ecg_id']):05d}"] = t
        return out
    if cfg.features == "truth":
        raise ValueError(f"--features truth needs {path} (a simulated database)")
    return {}


def _init_worker(cfg: BuildConfig) -> None:
    from datasets.utils import logging as ds_logging

    ds_logging.disable_progress_bar()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    _W["cfg"], _W["db"], _W["truth"] = cfg, _db(cfg), _truth(cfg)


def _features(rec, cfg: BuildConfig, truth: dict) -> dict:
    m = measure(rec)
    summary = {k: m.get(k) for k in SUMMARY_KEYS}
    source = "measured"
    t = truth.get(rec.record_id)
    machine = rec.meta.get("machine")
    if t is not None and cfg.features in ("auto", "truth"):
        for k in (
            "hr_bpm",
            "rr_ms",
            "rr_sd_ms",
            "pr_ms",
            "p_ms",
            "qrs_ms",
            "qt_ms",
            "qtc_ms",
            "axis_deg",
        ):
            summary[k] = t.get(k)
        source = "truth"
    elif machine and cfg.features in ("auto", "machine"):
        for k in ("hr_bpm", "rr_ms", "pr_ms", "p_ms", "qrs_ms", "qt_ms"):
            if machine.get(k) is not None:
                summary[k] = machine[k]
        if machine.get("qrs_axis") is not None:
            summary["axis_deg"] = machine["qrs_axis"]
        if summary.get("qt_ms") and summary.get("rr_ms"):
            summary["qtc_ms"] = round(summary["qt_ms"] / np.sqrt(summary["rr_ms"] / 1000), 1)
        source = "machine"
    return {"summary": summary, "leads": m.get("leads", {}), "source": source}


def _meta(rec) -> dict:
    meta = rec.meta
    has_mi = any(c in rec.labels for c in ("IMI", "ASMI", "AMI", "ALMI", "ILMI", "IPMI", "IPLMI", "LMI", "PMI",
                                           "INJAS", "INJAL", "INJIN", "INJLA", "INJIL"))  # fmt: skip
    out = {"age": meta.get("age"), "sex": meta.get("sex"), "quality": meta.get("quality", {})}
    if rec.source in ("ptbxl", "synthetic"):
        out["has_noise_fields"] = True
        out["noise"] = {k: parse_leads(meta.get(k)) for k in ("baseline_drift", "static_noise", "burst_noise",
                                                               "electrodes_problems")}  # fmt: skip
        out["stages"] = infarction_stages(
            meta.get("infarction_stadium1"), meta.get("infarction_stadium2"), has_mi
        )
        out["extras"] = extra_systoles(meta.get("extra_beats"), rec.labels)
    out["axis_code"] = meta.get("heart_axis")
    return out


def _process_chunk(args: tuple[int, list[int]]) -> tuple[int, int, list[tuple[str, str, str]]]:
    k, indices = args
    cfg: BuildConfig = _W["cfg"]
    db: ECGDatabase = _W["db"]
    final = Path(cfg.out) / "_work" / f"records-{k:05d}"
    if final.exists():
        return k, -1, []
    rows: dict[str, list] = defaultdict(list)
    rejects: list[tuple[str, str, str]] = []
    for i in indices:
        entry: Entry = db.entries[i]
        try:
            rec = standardize(db.read(entry), fs=cfg.fs, seconds=cfg.seconds)
            feats = _features(rec, cfg, _W["truth"])
            meta = _meta(rec)
            meta["axis"] = axis_name(meta.pop("axis_code", None), feats["summary"].get("axis_deg"))
            if "image" in cfg.modalities:
                image, page = render_page(rec, cfg.page, seed=cfg.seed * 1_000_003 + i)
                data, _ = encode_page(image)
                rows["image"].append({"bytes": data, "path": None})
                rows["layout"].append(page.to_json())
            else:
                rows["layout"].append("")
        except (ECGReadError, ValueError) as e:
            if cfg.strict:
                raise
            reason = e.reason if isinstance(e, ECGReadError) else "bad_record"
            rejects.append((entry.record_id, reason, str(e)))
            continue
        if "signal" in cfg.modalities:
            rows["signal"].append(rec.signal.astype(np.float16))
        rows["record_id"].append(rec.record_id)
        rows["source"].append(db.source)
        rows["patient_id"].append(
            str(rec.patient_id) if rec.patient_id is not None else rec.record_id
        )
        rows["split"].append(cfg.single_split or entry.split)
        rows["fs"].append(float(rec.fs))
        rows["lead_mask"].append([bool(x) for x in rec.lead_mask])
        rows["labels"].append(json.dumps(rec.labels, sort_keys=True))
        rows["report"].append(rec.report or "")
        rows["features"].append(json.dumps(feats, sort_keys=True, default=float))
        rows["meta"].append(json.dumps(meta, sort_keys=True, default=str))
    feats_schema = record_features(
        int(round(cfg.fs * cfg.seconds)), "signal" in cfg.modalities, "image" in cfg.modalities
    )
    ds = Dataset.from_dict({c: rows.get(c, []) for c in feats_schema}, features=feats_schema)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    save_dataset(ds, tmp)
    (tmp / "rejects.json").write_text(json.dumps(rejects))
    replace(tmp, final)
    return k, len(ds), rejects


def build_records(cfg: BuildConfig, progress: bool = True) -> tuple[list[Path], Rejects, int]:
    out = Path(cfg.out)
    work = out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    stamp = Stamp(work / "config.json")
    fp = cfg.fingerprint()
    if stamp.path.exists() and not stamp.matches(fp, key="fingerprint"):
        raise ValueError(f"{work} holds a build with other settings; use a new --out or delete it")
    stamp.write({"fingerprint": fp, "config": asdict(cfg)}, indent=1)
    remove_stale(work, "records-*.tmp*", ".*.tmp*")  # what a killed run left half-written
    remove_stale(out, ".records.tmp*", ".samples.tmp*", ".*.json.tmp*")
    db = _db(cfg)
    rejects = Rejects(str(out / "rejects.csv"))
    if (out / "rejects.csv").exists():
        (out / "rejects.csv").unlink()
    for reason, n in db.rejects.counts.items():  # bad table rows, counted by the reader
        rejects.counts[reason] += n
    # source labels with no SCP statement (Challenge SNOMED codes, LUDB statements): kept in each
    # record's meta, counted here for the build report
    write_text(work / "unmapped.json", json.dumps(dict(getattr(db, "unmapped", {}))))
    n = len(db.entries) if cfg.limit is None else min(cfg.limit, len(db.entries))
    chunks = [
        (k, list(range(s, min(s + cfg.chunk_size, n))))
        for k, s in enumerate(range(0, n, cfg.chunk_size))
    ]
    todo = [c for c in chunks if not (work / f"records-{c[0]:05d}").exists()]
    bar = tqdm(
        total=n,
        initial=n - sum(len(c[1]) for c in todo),
        desc="records",
        unit="rec",
        disable=not progress,
    )
    if cfg.workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(cfg.workers, initializer=_init_worker, initargs=(cfg,)) as pool:
            for (_, idx), _res in zip(todo, pool.map(_process_chunk, todo), strict=True):
                bar.update(len(idx))
    else:
        _init_worker(cfg)
        for c in todo:
            _process_chunk(c)
            bar.update(len(c[1]))
    bar.close()
    dirs = [work / f"records-{k:05d}" for k, _ in chunks]
    for d in dirs:  # every chunk's rejects, also those of a run that was interrupted and resumed
        for rid, reason, detail in json.loads((d / "rejects.json").read_text()):
            rejects.add(rid, ECGReadError(rid, reason, detail))
    return dirs, rejects, n


# --- pass 2: samples -----------------------------------------------------------------------------


def record_infos(records: Dataset) -> list[T.RecordInfo]:
    cols = records.select_columns(
        ["record_id", "source", "patient_id", "split", "labels", "report", "features", "meta"]
    )
    return [
        T.RecordInfo(
            r["record_id"],
            r["source"],
            r["patient_id"],
            r["split"],
            json.loads(r["labels"]),
            r["report"] or None,
            json.loads(r["features"]),
            json.loads(r["meta"]),
        )  # fmt: skip
        for r in cols
    ]


def check_splits(infos: list[T.RecordInfo]) -> None:
    """No patient in two splits (raises ValueError naming the patients)."""
    seen: dict[str, str] = {}
    clash = set()
    for r in infos:
        if seen.setdefault(r.patient_id, r.split) != r.split:
            clash.add(r.patient_id)
    if clash:
        raise ValueError(
            f"patients in more than one split: {sorted(clash)[:10]} ({len(clash)} in all)"
        )


def comparison_pairs(infos: list[T.RecordInfo], rng: np.random.Generator, per_record: float):
    """(first, second, kind): consecutive ECGs of one patient, and unrelated pairs within a split."""
    by_patient: dict[str, list[int]] = defaultdict(list)
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(infos):
        by_patient[r.patient_id].append(i)
        by_split[r.split].append(i)
    pairs = []
    for idx in by_patient.values():
        for a, b in zip(idx, idx[1:], strict=False):
            pairs.append((a, b, "consecutive"))
    for i, r in enumerate(infos):
        pool = by_split[r.split]
        if len(pool) > 1 and rng.random() < per_record:
            j = int(pool[int(rng.integers(len(pool)))])
            if infos[j].patient_id != r.patient_id:
                pairs.append((i, j, "irrelevant"))
    return pairs


def generate_samples(
    infos: list[T.RecordInfo], cfg: BuildConfig
) -> tuple[list[dict], Counter, int]:
    """Every family's samples of the records (families in registry order, conversations and then
    the `last` families after them, pairs after all), the invalid ones counted by reason, and how
    many verify questions were dropped to even out their answers (tasks.ecgqa.balance_verify)."""
    counts = Counter(c for r in infos for c in r.labels)
    ctx = T.TaskContext(
        tuple(m for m in ("signal", "image") if m in cfg.modalities),
        cfg.report_text,
        label_counts=tuple(sorted(counts.items())),
    )
    families = [f for name, f in T.FAMILIES.items() if name in cfg.tasks]  # registry order
    out: list[dict] = []
    invalid: Counter = Counter()

    def keep(samples: list[dict]) -> list[dict]:
        good = []
        for s in samples:
            try:
                validate_sample(s)
                missing = T.FAMILIES[s["task"]].missing(s)
                if missing:
                    raise SampleError(f"{s['id']}: {s['task']} sample without {missing}")
            except SampleError as e:
                if cfg.strict:
                    raise
                invalid[str(e).split(": ", 1)[-1][:60]] += 1
                continue
            good.append(s)
        return good

    for i, rec in enumerate(infos):
        rng = np.random.default_rng([cfg.seed, i])
        per = keep([s for f in families if not (f.conversation or f.last)
                    for s in f.generate(rec, rng, ctx)])  # fmt: skip
        for f in families:
            if f.conversation:
                per += keep(f.generate(rec, rng, with_fields(ctx, pool=tuple(per))))
        per += keep([s for f in families if f.last for s in f.generate(rec, rng, ctx)])
        out += per
    for f in families:
        if f.pairs is not None:
            rng = np.random.default_rng([cfg.seed, len(infos), 7])
            for a, b, kind in comparison_pairs(infos, rng, cfg.comparisons_per_record):
                out += keep(
                    f.pairs(infos[a], infos[b], kind, np.random.default_rng([cfg.seed, a, b]), ctx)
                )
    ids = Counter(s["id"] for s in out)
    dup = [k for k, v in ids.items() if v > 1]
    if dup:  # same pair drawn twice: keep the first
        seen: set[str] = set()
        out = [s for s in out if not (s["id"] in seen or seen.add(s["id"]))]
    out, evened = T.balance_verify(out, cfg.seed)
    return out, invalid, evened


def build_dataset(cfg: BuildConfig, progress: bool = True) -> dict:
    """Run both passes; returns the build report (also written to OUT/build_report.json)."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # one bar of ours, not one per saved chunk
    try:
        return _build(cfg, progress)
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def _build(cfg: BuildConfig, progress: bool) -> dict:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    report_path = out / "build_report.json"
    if report_path.exists():
        prev = json.loads(report_path.read_text())
        if prev.get("fingerprint") == cfg.fingerprint() and (out / "samples").exists():
            prev["resumed"] = "complete"
            return prev
    dirs, rejects, n_listed = build_records(cfg, progress)
    unmapped = json.loads((out / "_work" / "unmapped.json").read_text())
    records = concatenate_datasets([load_from_disk(str(d)) for d in dirs]) if dirs else None
    if records is None or len(records) == 0:
        raise ValueError(f"no readable records in {cfg.root} ({dict(rejects.counts)})")
    t1 = time.perf_counter()
    infos = record_infos(records)
    check_splits(infos)
    samples, invalid, evened = generate_samples(infos, cfg)
    write_datasets(out, records, samples)
    report = {
        "fingerprint": cfg.fingerprint(),
        "source": cfg.source,
        "root": str(cfg.root),
        "records_listed": n_listed,
        "records": len(records),
        "records_by_split": dict(Counter(r.split for r in infos)),
        "patients_by_split": {
            s: len({r.patient_id for r in infos if r.split == s})
            for s in ("train", "validation", "test")
        },
        "samples": len(samples),
        "samples_by_split": {
            s: sum(x["split"] == s for x in samples) for s in ("train", "validation", "test")
        },
        "samples_by_task": dict(Counter(s["task"] for s in samples)),
        "samples_by_question_type": dict(
            Counter(s["question_type"] for s in samples if s["question_type"])
        ),
        "labels": dict(Counter(c for r in infos for c in r.labels).most_common()),
        "rejects": dict(rejects.counts),
        "unmapped_labels": dict(sorted(unmapped.items(), key=lambda kv: -kv[1])),
        "invalid_samples": dict(invalid),
        # ECG-QA verify questions dropped so that each question has as many yes as no answers
        "verify_answers_evened": evened,
        "seconds": {
            "records": round(t1 - t0, 2),
            "samples": round(time.perf_counter() - t1, 2),
            "total": round(time.perf_counter() - t0, 2),
        },  # fmt: skip
        "config": asdict(cfg),
    }
    write_text(report_path, json.dumps(report, indent=1, default=str))  # marks the build complete
    shutil.rmtree(out / "_work", ignore_errors=True)
    return report
