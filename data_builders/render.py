"""Render every record of an ECG database as ECG paper pages (+ a JSON layout per page).

    python data_builders/render.py --root data/sim --out data/pages --workers 2
    python data_builders/render.py --source wfdb --root my_wfdb/ --out pages --layout 6x2 --augment photo

Clean pages are stored as palette PNG, augmented ones as JPEG (see ecgllm/render/store.py for
why); each with <id>.json holding the lead boxes, time spans and pixel scale. Re-running skips
pages already written; unreadable records are skipped, counted and listed in OUT/rejects.csv.
"""

from __future__ import annotations

import argparse

from ecgllm.cli import add_fields, field_values
from ecgllm.render.augment import PRESETS
from ecgllm.render.layout import LAYOUTS, PAPERS_MM
from ecgllm.render.raster import STYLES
from ecgllm.render.store import RenderJob, render_database
from ecgllm.signal.databases import SOURCES

CHOICES = {
    "source": SOURCES,
    "layout": LAYOUTS,
    "paper": PAPERS_MM,
    "style": STYLES,
    "augment": PRESETS,
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_fields(ap, RenderJob, skip=("options",), choices=CHOICES)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N records only")
    ap.add_argument(
        "--sampling-rate", type=int, default=500, choices=[100, 500], help="PTB-XL records to read"
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    options = {"sampling_rate": args.sampling_rate} if args.source in ("ptbxl", "synthetic") else {}
    try:
        job = RenderJob(**field_values(args, RenderJob, skip=("options",)), options=options)
        s = render_database(job, workers=args.workers, limit=args.limit, progress=not args.quiet)
    except (ValueError, OSError) as e:  # settings clash, unreadable database folder or table
        ap.exit(2, f"error: {e}\n")
    rate = s["written"] / max(s["seconds"], 1e-9)
    print(f"rendered {s['written']} pages ({rate:.1f}/s), {s['skipped_existing']} already there, "
          f"{s['rejected']} rejected {s['rejects'] or ''} -> {s['out']} in {s['seconds']:.1f} s")  # fmt: skip
    return s


if __name__ == "__main__":
    main()
