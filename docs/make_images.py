"""Regenerate the example pages in docs/images (used by the README).

.venv/bin/python docs/make_images.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from ecgllm.render import render_ecg
from ecgllm.render.plot import plot_ecg
from ecgllm.signal import PTBXL, measure
from ecgllm.signal.synthetic_db import build_database

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        build_database(d, n=12, seed=0, progress=False)
        db = PTBXL(d)
        recs = list(db.records())
        rec = recs[1]
        clean, _ = render_ecg(rec)
        small = clean.convert("RGB").resize((1100, 850), Image.Resampling.LANCZOS)
        small.quantize(64).save(OUT / "page_clean.png", optimize=True)
        photo, _ = render_ecg(rec, augment="photo", seed=4)
        photo.resize(
            (1100, round(1100 * photo.height / photo.width)), Image.Resampling.LANCZOS
        ).save(OUT / "page_photo.jpg", quality=82)
        six, _ = render_ecg(recs[0], layout="6x2", style="green", augment="scan", seed=2)
        six.resize((1100, 850), Image.Resampling.LANCZOS).save(
            OUT / "page_6x2_scan.jpg", quality=82
        )
        fig = plot_ecg(rec, measurements=measure(rec))
        fig.savefig(OUT / "plot_measured.png", dpi=70)
        print(
            f"wrote {sorted(p.name for p in OUT.iterdir())}; record {rec.record_id}: {rec.report}"
        )


if __name__ == "__main__":
    main()
