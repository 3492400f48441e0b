"""Look at a report the way a reader does: render it in headless Chromium to a PNG.

python eval/screenshot.py runs/default/eval/report.html runs/default/eval/report.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ecgllm.report import screenshot


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("page")
    ap.add_argument("png")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=3000)
    a = ap.parse_args(argv)
    if not Path(a.page).exists():
        ap.exit(2, f"error: {a.page} not found\n")
    try:
        out = screenshot(a.page, a.png, a.width, a.height)
    except (FileNotFoundError, RuntimeError) as e:
        ap.exit(2, f"error: {e}\n")
    print(f"screenshot: {a.page} -> {out}")


if __name__ == "__main__":
    main()
