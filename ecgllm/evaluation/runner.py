"""Running benchmarks: answers streamed to samples.jsonl (resumable), scored into results.json;
the blank-ECG ablation, perturbation sweeps and report.html around them (`evaluate`), and the
loading of a trained model and of real records for it (`load`, `build_real`).

    results = run_benchmarks(model, processor, data_dir="runs/default/instruct", out="runs/eval",
                             benchmarks=["ecgqa", "detect", "mcq", "measure", "report", "ground"])

Every answer is appended to samples.jsonl as soon as its batch is done; a rerun skips what is
there (a half-written last line is redone), so a crash loses at most one batch. Only answers of
the same weights, data and settings are reused (samples.stamp.json); anything else starts afresh.
results.json records every metric with a 95% bootstrap interval (resampling samples), the chance
level, counts, decoding settings, seed, model and data fingerprints, package versions and the git
commit. `perturbation=("noise", 0.1)` runs the same on perturbed signals (pages are redrawn from
the perturbed signal), for robustness sweeps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import Stamp, crash_point, write_text
from ..benchmarks import METHOD_FIELDS, METHODS, available, load_benchmark
from ..data.collator import EcgCollator
from ..data.dataset import EcgInstructionDataset
from .answer import answer_rows
from .scoring import score

log = logging.getLogger(__name__)


def _fingerprint(path: str | Path) -> str:
    h = hashlib.sha256()
    p = Path(path)
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file() and f.suffix in (".json", ".safetensors", ".arrow"):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """A digest of the model's weights as loaded (base + adapter): what made the predictions.
    Hashes every tensor's bytes (~1 s for a 270M model); meta tensors by name and shape only."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.device.type != "meta":
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except Exception:
        return None


def _perturbed(row: dict, perturbation: tuple[str, float], build: dict, seed: int) -> dict:
    from ..render import render_ecg
    from ..render.spec import PageSpec
    from ..render.store import render_page
    from ..signal.perturb import perturb
    from ..signal.record import STANDARD_12, ECGRecord

    kind, level = perturbation
    row = dict(row)
    fs = float(build.get("fs", 500.0))
    sigs, masks, images = [], [], []
    for k in range(len(row["record_ids"])):
        sig, mask = perturb(row["signal"][k], row["lead_mask"][k], fs, kind, level, seed=seed + k)
        sigs.append(sig)
        masks.append(mask)
        if row.get("images"):
            rec = ECGRecord(
                signal=sig,
                fs=fs,
                leads=list(STANDARD_12),
                record_id=row["record_ids"][k],
                lead_mask=mask,
            )
            leads = [ld for ld, m in zip(STANDARD_12, mask, strict=True) if m]
            spec = PageSpec.from_mapping(build)  # the pages as the build drew them
            if len(leads) == 12:
                img, _ = render_page(rec, spec, seed)
            else:  # the leads left, a row each
                img, _ = render_ecg(
                    rec,
                    layout="12x1",
                    paper=spec.paper,
                    dpi=spec.dpi,
                    style=spec.style,
                    leads=leads,
                )
            images.append(img.convert("RGB"))
    row["signal"], row["lead_mask"] = np.stack(sigs), np.stack(masks)
    if row.get("images"):
        row["images"] = images
    return row


def _drop_cut_line(path: Path) -> None:
    """A run killed while writing leaves a last line without its newline: cut it off, so the
    answers appended next start on a line of their own (the cut answer is asked again)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _read_done(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: it will be redone
                continue
            done[f"{r['benchmark']}:{r['id']}"] = r
    return done


@dataclass(frozen=True)
class EvalSettings:
    """The settings of one benchmark run (run_benchmarks' keywords; eval/run.py's options)."""

    split: str = "test"  # the dataset split scored
    limit: int | None = None  # first N samples per benchmark
    # benchmarks scored on their whole split whatever `limit` says (a margin that needs every
    # question, as ECG-QA's 0.08 over the blank ECG, beside quick looks at the others)
    unlimited: tuple[str, ...] = ()
    # answer methods left out of every benchmark that has them (not a headline's own method): a
    # quicker run, e.g. yes_prob beside detection's list (P(yes) scores 2 candidates a label)
    skip_methods: tuple[str, ...] = ()
    batch_size: int = 8  # samples answered per forward pass
    max_new_tokens: int | None = None  # override each benchmark's own
    blank_ecg: bool = False  # zero the ECG signals (ablation)
    blank_image: bool = False  # blank the ECG pages (ablation)
    # with blank_ecg and a model given expert features: the measurements' text is still taken
    # from the true signal (the text-only ablation: what the printed measurements alone answer)
    keep_expert_text: bool = False
    seed: int = 0  # seeds the model's sampling and the perturbations
    # put the reports of the k most similar training ECGs in each prompt (0: off); use the k and
    # the index the model was trained with (data.retrieve, data.retrieval_index)
    retrieve: int = 0
    # an index of data_builders/retrieval_index.py (with --retrieve)
    retrieval_index: str | None = None
    # detection: fit per-label Platt scaling of P(yes) on the validation split (same limit) and
    # report F1, micro AUC and Brier score of the calibrated scores too (macro AUC is unchanged)
    calibrate: bool = False


_D = EvalSettings()


def run_benchmarks(model, processor, data_dir: str | Path, out: str | Path, benchmarks: Sequence[str],
                   split: str = _D.split, limit: int | None = _D.limit, batch_size: int = _D.batch_size,
                   max_new_tokens: int | None = _D.max_new_tokens, blank_ecg: bool = _D.blank_ecg,
                   blank_image: bool = _D.blank_image, perturbation: tuple[str, float] | None = None,
                   seed: int = _D.seed, progress: bool = True, model_path: str | None = None,
                   retrieve: int = _D.retrieve, retrieval_index: str | None = _D.retrieval_index,
                   calibrate: bool = _D.calibrate, keep_expert_text: bool = _D.keep_expert_text,
                   unlimited: Sequence[str] = _D.unlimited,
                   skip_methods: Sequence[str] = _D.skip_methods) -> dict:  # fmt: skip
    benches = []
    unknown = []
    for b in benchmarks:
        try:
            benches.append(load_benchmark(b))
        except ValueError:
            unknown.append(b)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; choose from {available()}")
    bad = [m for m in skip_methods if m not in METHODS]
    if bad:
        raise ValueError(f"skip_methods: unknown method(s) {bad}; choose from {list(METHODS)}")
    benches = [b.without(skip_methods) for b in benches]
    known = sorted({*available(), *(b.name for b in benches)})
    stray = [b for b in unlimited if b not in known]
    if stray:
        raise ValueError(f"unlimited: unknown benchmark(s) {stray}; choose from {known}")
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = EcgInstructionDataset(data_dir, split)
    train = None
    if any(b.uses_train for b in benches):
        try:
            train = EcgInstructionDataset(data_dir, "train").samples
        except KeyError:
            train = None
    from ..retrieval import retriever_for

    retriever = retriever_for(retrieve, retrieval_index)
    collator = EcgCollator(processor, blank_ecg=blank_ecg, blank_image=blank_image,
                           retriever=retriever, keep_expert_text=keep_expert_text)  # fmt: skip
    path = out / "samples.jsonl"
    # finished answers are reused on a re-run only if the same model, data and settings made them
    weights = model_fingerprint(model)
    stamp = {"model": weights, "data": _fingerprint(Path(data_dir) / "samples"), "split": split,
             "max_new_tokens": max_new_tokens, "blank_ecg": blank_ecg, "blank_image": blank_image,
             "perturbation": list(perturbation) if perturbation else None, "seed": seed}  # fmt: skip
    if keep_expert_text:  # (absent when off, as retrieval's)
        stamp["keep_expert_text"] = True
    if retriever is not None:  # (absent when off: stamps of runs before retrieval still match)
        stamp["retrieval"] = {"k": retrieve, "index": retriever.index.fingerprint()}
    stamp_file = Stamp(out / "samples.stamp.json")
    if path.exists() and not stamp_file.matches(stamp):
        log.warning("%s was written by another model, data or settings: answering afresh", path)
        path.unlink()
    stamp_file.write(stamp)
    _drop_cut_line(path)
    done = _read_done(path)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    from tqdm.auto import tqdm

    with open(path, "a") as f:
        for bench in benches:
            lim = None if bench.name in unlimited else limit
            idx = bench.select(ds.samples)[:lim]
            ids = ds.samples.select(idx)["id"] if idx else []
            # an answer is reused when it holds every method's field (a method added since: redone)
            want = [METHOD_FIELDS[m] for m in bench.methods]
            todo = [i for i, sid in zip(idx, ids, strict=True)
                    if not all(k in done.get(f"{bench.name}:{sid}", {}) for k in want)]  # fmt: skip
            bar = tqdm(total=len(idx), initial=len(idx) - len(todo), desc=bench.name, unit="q",
                       disable=not progress)  # fmt: skip
            for s in range(0, len(todo), batch_size):
                rows = [ds[i] for i in todo[s : s + batch_size]]
                if perturbation is not None:
                    rows = [
                        _perturbed(r, perturbation, ds.report.get("config", {}), seed) for r in rows
                    ]
                for rec in answer_rows(
                    model, processor, collator, bench, rows, batch_size, max_new_tokens
                ):
                    f.write(json.dumps(rec) + "\n")
                    done[f"{bench.name}:{rec['id']}"] = rec
                f.flush()
                crash_point(f"{bench.name} batch")
                bar.update(len(rows))
            bar.close()
            recs = [done[f"{bench.name}:{sid}"] for sid in ids]
            if calibrate and "yes_prob" in bench.methods and recs and split != "validation":
                val = _validation_answers(model, processor, collator, bench, data_dir, lim, batch_size,
                                          done, f, progress)  # fmt: skip
                recs = _calibrated(recs, val)
            tr = None
            if bench.uses_train and train is not None:
                tidx = bench.select(train)
                tr = train.select(tidx).to_list() if tidx else None
            results[bench.name] = (
                score(bench, recs, tr) if recs else {"n": 0, "main_metric": bench.metric}
            )
    model.train(was_training)
    import accelerate
    import transformers

    report = {
        "results": results,
        "benchmarks": {b.name: {"description": b.description, "methods": list(b.methods), "groups": list(b.groups), "file": Path(b.source).name}
                       for b in benches},
        "config": {"split": split, "limit": limit, "unlimited": list(unlimited),
                   "skip_methods": list(skip_methods), "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                   "decoding": "greedy", "blank_ecg": blank_ecg, "blank_image": blank_image,
                   "keep_expert_text": keep_expert_text,
                   "perturbation": list(perturbation) if perturbation else None, "seed": seed,
                   "retrieve": retrieve, "retrieval_index": retrieval_index, "calibrate": calibrate},
        "model": {"path": model_path, "fingerprint": weights},
        "data": {"path": str(data_dir), "fingerprint": stamp["data"]},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__},
        "git_commit": _git_commit(),
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    write_text(out / "results.json", json.dumps(report, indent=1, default=float))
    return report


def _validation_answers(model, processor, collator, bench, data_dir, limit, batch_size, done, f,
                        progress) -> list[dict]:  # fmt: skip
    """P(yes) per label for the benchmark's validation-split samples (kept in samples.jsonl under
    "<bench>@validation:<id>", so a re-run reuses them)."""
    import dataclasses

    from tqdm.auto import tqdm

    try:
        ds = EcgInstructionDataset(data_dir, "validation")
    except KeyError:
        raise ValueError(
            f"calibrate: {data_dir} has no validation split to fit the calibration on"
        ) from None
    only = dataclasses.replace(bench, methods=("yes_prob",))
    idx = bench.select(ds.samples)[:limit]
    ids = ds.samples.select(idx)["id"] if idx else []
    key = f"{bench.name}@validation"
    todo = [i for i, sid in zip(idx, ids, strict=True) if f"{key}:{sid}" not in done]
    for s in tqdm(
        range(0, len(todo), batch_size), desc=f"{bench.name} (validation)", disable=not progress
    ):
        for rec in answer_rows(model, processor, collator, only, [ds[i] for i in todo[s : s + batch_size]],
                               batch_size):  # fmt: skip
            rec["benchmark"] = key
            f.write(json.dumps(rec) + "\n")
            done[f"{key}:{rec['id']}"] = rec
        f.flush()
    return [done[f"{key}:{sid}"] for sid in ids]


def _calibrated(recs: list[dict], val: list[dict]) -> list[dict]:
    """Test records with `label_scores_calibrated`: per (label set, label) Platt scaling fitted on
    the validation records (ecgllm.metrics.calibration)."""
    from ..metrics.calibration import apply_platt, fit_platt

    fits: dict[tuple[str, str], dict] = {}
    pairs: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
    for r in val:
        for lab, p in (r.get("label_scores") or {}).items():
            s, y = pairs.setdefault((r.get("attribute_type") or "-", lab), ([], []))
            s.append(p)
            y.append(int(lab in r["answer"]))
    for k, (s, y) in pairs.items():
        fits[k] = fit_platt(s, y)
    out = []
    for r in recs:
        cal = {lab: float(apply_platt([p], fits.get((r.get("attribute_type") or "-", lab), {"constant": 0.5}))[0])
               for lab, p in (r.get("label_scores") or {}).items()}  # fmt: skip
        out.append({**r, "label_scores_calibrated": cal})
    return out


def run_sweep(model, processor, data_dir: str | Path, out: str | Path, benchmarks: Sequence[str],
              settings: Sequence[tuple[str, float]], reference: str | Path | None = None, **kw) -> dict:  # fmt: skip
    """The benchmarks under each perturbation setting (each resumable in OUT/KIND-LEVEL), plus the
    unperturbed reference (taken from `reference`/results.json when that run exists);
    sweep.json maps setting -> headline metric per benchmark."""
    out = Path(out)
    table: dict[str, dict[str, float]] = {}
    ref = Path(reference) / "results.json" if reference else None
    runs = list(settings)
    if ref is not None and ref.exists():
        table["none=0"] = {b: v.get("value", float("nan")) for b, v in json.loads(ref.read_text())["results"].items()
                           if b in benchmarks}  # fmt: skip
    else:
        runs.insert(0, ("none", 0.0))
    for kind, level in runs:
        sub = out / f"{kind}-{level:g}"
        r = run_benchmarks(model, processor, data_dir, sub, benchmarks,
                           perturbation=None if kind == "none" else (kind, level), **kw)  # fmt: skip
        table[f"{kind}={level:g}"] = {
            b: v.get("value", float("nan")) for b, v in r["results"].items()
        }
    units = {"noise": "mV SD", "wander": "mV", "leads": "leads kept"}
    sweep = {"settings": table, "units": units}
    write_text(out / "sweep.json", json.dumps(sweep, indent=1, default=float))
    return sweep


def load(model_dir: str, adapter: str | None, processor_dir: str | None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .. import model as _model  # noqa: F401 - registers the Auto classes
    from ..model.chat_templates import stop_at_turn_end

    if not Path(model_dir).exists():
        raise FileNotFoundError(f"--model {model_dir} does not exist")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    for cand in [
        processor_dir,
        model_dir,
        str(Path(model_dir).parent),
        adapter and str(Path(adapter).parent),
    ]:
        if cand and (Path(cand) / "processor_config.json").exists():
            processor = AutoProcessor.from_pretrained(cand)
            # models saved before generation stopped at the end of a turn (GGUF Gemma)
            stop_at_turn_end(model, processor.tokenizer)
            return model, processor
    raise FileNotFoundError(f"no processor_config.json next to {model_dir} (give --processor)")


def build_real(root: str, source: str, out: Path) -> Path:
    """Records of `root` as an external test set (every record in "test"), with the check tasks
    (the six-rhythm question and the findings' verify questions). Built once, then reused."""
    from ..data import BuildConfig, build_dataset
    from ..data.tasks import CHECK_TASKS

    r = build_dataset(BuildConfig(source=source, root=root, out=str(out), tasks=CHECK_TASKS,
                                  single_split="test"), progress=False)  # fmt: skip
    if r.get("resumed") != "complete":
        print(f"real records: {r['records']} of {r['records_listed']} from {root} ({source}), "
              f"{sum(r['rejects'].values())} rejected {r['rejects'] or ''}; "
              f"{r['samples_by_task']}; unmapped labels: {r.get('unmapped_labels') or 'none'}")  # fmt: skip
    return out


def benchmarks_for(data: str | Path) -> list[str]:
    """The shipped benchmarks that score the task families the built data has (each family names
    its benchmarks; all of them when the data has no build report)."""
    import json

    from ..data.tasks import FAMILIES

    report = Path(data) / "build_report.json"
    tasks = (
        set(json.loads(report.read_text()).get("samples_by_task", {})) if report.exists() else None
    )
    wanted = {
        b
        for t in (FAMILIES if tasks is None else tasks)
        if t in FAMILIES
        for b in FAMILIES[t].benchmarks
    }
    names = [b for b in available() if b in wanted]
    if not names:
        raise ValueError(f"no shipped benchmark scores the tasks of {data} ({sorted(tasks or [])})")
    return names


def evaluate(model, proc, data: str, out: str | Path, benchmarks: list[str], ablation: bool = False,
             sweep: str | None = None, report: bool = True, **kw) -> dict:  # fmt: skip
    """The whole evaluation (main run, optional blank-ECG ablation and sweep, report). With
    `ablation` and a model given expert features, also the text-only ablation into OUT/text_only:
    the ECG blanked, its measurements' text kept (what the printed measurements alone answer)."""
    from ..report import write_report
    from ..signal.perturb import parse_sweep

    out = Path(out)
    settings = parse_sweep(sweep) if sweep else []  # bad specs fail before any work
    r = run_benchmarks(model, proc, data, out, benchmarks, **kw)
    blank = None
    if ablation:
        kw_b = {**kw, "blank_ecg": True, "blank_image": True, "keep_expert_text": False}
        blank = run_benchmarks(model, proc, data, out / "blank_ecg", benchmarks, **kw_b)
        if getattr(proc, "ecg_expert_features", "none") != "none":
            kw_t = {**kw_b, "keep_expert_text": True}
            r["text_only"] = run_benchmarks(
                model, proc, data, out / "text_only", benchmarks, **kw_t
            )
    if settings:
        kw_s = {
            k: v for k, v in kw.items() if k not in ("blank_ecg", "blank_image", "keep_expert_text")
        }
        run_sweep(
            model,
            proc,
            data,
            out / "sweep",
            benchmarks,
            settings,
            reference=None if kw.get("blank_ecg") or kw.get("blank_image") else out,
            **kw_s,
        )
    if report:
        r["report"] = str(write_report(out, blank=out / "blank_ecg" if ablation else None,
                                       sweep=out / "sweep" if settings else None, data=data))  # fmt: skip
    r["blank"] = blank
    return r
