"""Storing rendered pages, and rendering a whole database with workers, resume and rejects.

Stored format, chosen deliberately (numbers from bench/render.py, 2200 x 1700 letter page):
- clean pages: 8-bit palette PNG (zlib level 3): lossless, exact grid colours, ~100-150 KB and
  ~13 ms to encode (an RGB PNG costs ~70-100 ms and ~5x the bytes; JPEG smears the 1-px grid);
- augmented pages ("scan", "photo"): JPEG at the quality the augmentation drew (90 if none), in
  one compression, the way a camera or scanner stores them.
Every page has a JSON sidecar (PageLayout: lead boxes, time spans, pixel scale); the image is
written first and the sidecar last, each via a temporary name, so a sidecar marks a complete
page and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from ..atomic import Stamp, remove_stale, write_bytes, write_text
from ..signal.databases import ECGDatabase, Entry, Rejects, open_database
from ..signal.record import ECGReadError
from .augment import augment_page
from .layout import PageLayout
from .raster import render_ecg
from .spec import PageSpec


def encode_page(image: Image.Image) -> tuple[bytes, str]:
    """(bytes, extension) in the stored format: palette PNG for clean pages, JPEG otherwise."""
    buf = io.BytesIO()
    if image.mode == "P":
        image.save(buf, "PNG", compress_level=3)
        return buf.getvalue(), ".png"
    image.save(buf, "JPEG", quality=int(image.info.get("jpeg_quality", 90)))
    return buf.getvalue(), ".jpg"


def save_page(image: Image.Image, page: PageLayout, base: str | os.PathLike) -> Path:
    """Write `base`.png/.jpg then `base`.json (the sidecar last). Returns the image path."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    data, ext = encode_page(image)
    img_path = base.with_name(base.name + ext)
    write_bytes(img_path, data)
    write_text(base.with_name(base.name + ".json"), page.to_json())
    return img_path


def render_page(record, spec: PageSpec, seed: int) -> tuple[Image.Image, PageLayout]:
    """render_ecg + augmentation with the JPEG step deferred to storage."""
    image, page = render_ecg(
        record, layout=spec.layout, paper=spec.paper, dpi=spec.dpi, style=spec.style
    )
    if spec.augment not in (None, "clean"):
        image, page = augment_page(image, page, spec.augment, seed, defer_jpeg=True)
    return image, page


@dataclass
class RenderJob:
    root: str  # the database folder
    out: str  # the output folder for pages
    source: str = "ptbxl"  # the reader (ecgllm.signal.databases.SOURCES)
    page: PageSpec = field(default_factory=PageSpec)
    seed: int = 0  # augmentation seed (each page: seed * 1000003 + its index)
    options: dict[str, Any] = field(default_factory=dict)  # the reader's options

    def __post_init__(self) -> None:
        if isinstance(self.page, dict):  # as YAML or JSON give it
            self.page = PageSpec(**self.page)

    def settings(self) -> dict[str, Any]:
        """What the pages depend on (the render.stamp): every field but `out`, the page's
        settings flat (as stamps written before PageSpec have them)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("out", "page")}
        return {**d, **asdict(self.page)}


_WORKER: dict[str, Any] = {}


def _init(job: RenderJob) -> None:
    try:
        import cv2

        cv2.setNumThreads(1)  # one process per core: no thread oversubscription
    except ImportError:  # pragma: no cover
        pass
    _WORKER["db"] = open_database(job.source, job.root, **job.options)
    _WORKER["job"] = job


def _page_base(out: str, entry: Entry) -> Path:
    return Path(out) / entry.record_id.replace(os.sep, "__")


def _sidecar(out: str, entry: Entry) -> Path:
    base = _page_base(out, entry)
    return base.with_name(base.name + ".json")


def _render_one(i: int) -> tuple[str, str | None, str | None]:
    db: ECGDatabase = _WORKER["db"]
    job: RenderJob = _WORKER["job"]
    entry = db.entries[i]
    try:
        rec = db.read(entry)
        image, page = render_page(rec, job.page, seed=job.seed * 1_000_003 + i)
    except (ECGReadError, ValueError) as e:
        reason = e.reason if isinstance(e, ECGReadError) else "render_error"
        return entry.record_id, reason, str(e)
    save_page(image, page, _page_base(job.out, entry))
    return entry.record_id, None, None


def render_database(
    job: RenderJob, workers: int = 1, limit: int | None = None, progress: bool = True
) -> dict:
    """Render every record of a database to `job.out`; skips pages already there (resume),
    counts and logs bad records to `out/rejects.csv`. Returns a summary."""
    t0 = time.perf_counter()
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    # the pages already there are reused only if the same settings drew them
    settings = job.settings()
    stamp = Stamp(out / "render.stamp")  # JSON, not named .json: every .json here is a sidecar
    if stamp.path.exists() and not stamp.matches(settings):
        raise ValueError(
            f"{out} holds pages rendered with other settings ({stamp.path}); use a new --out or delete it"
        )
    db = open_database(job.source, job.root, **job.options)
    stamp.write(settings, indent=1)
    remove_stale(out, ".*.tmp*")  # a page a killed run left half-written
    (out / "rejects.csv").unlink(missing_ok=True)  # rejected records are tried (and logged) again
    rejects = Rejects(str(out / "rejects.csv"))
    for reason, n in db.rejects.counts.items():  # unreadable table rows, counted by the reader
        rejects.counts[reason] += n
    todo = [i for i, e in enumerate(db.entries[:limit]) if not _sidecar(job.out, e).exists()]
    done_before = len(db.entries[:limit]) - len(todo)
    bar = tqdm(total=len(todo), desc="render", unit="page", disable=not progress)
    written = 0

    def handle(res: tuple[str, str | None, str | None]) -> None:
        nonlocal written
        rid, reason, detail = res
        if reason is None:
            written += 1
        else:
            rejects.add(rid, ECGReadError(rid, reason, detail or ""))
        bar.update()

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(job,)) as pool:
            for res in pool.map(_render_one, todo, chunksize=8):
                handle(res)
    else:
        _init(job)
        for i in todo:
            handle(_render_one(i))
    bar.close()
    seconds = time.perf_counter() - t0
    return {"written": written, "skipped_existing": done_before, "rejected": rejects.total,
            "rejects": dict(rejects.counts), "seconds": round(seconds, 2), "out": str(out)}  # fmt: skip
