"""Rendering speed: our rasterizer against a straightforward matplotlib page, same run, one core.

    python bench/render.py --n 30

Both draw the same 3x4 + lead II letter page at 200 dpi (2200 x 1700 px: 1 mm grid, 5 mm major
lines, calibration pulses, lead labels) from the same simulated records. Printed: pages/s and
the ratio for (1) pixels only (no encoding), (2) encoded files in the stored format (ours:
palette PNG; matplotlib: its PNG), (3) the "photo" preset stored as JPEG. Targets: (1) >= 20x,
(2) >= 30 pages/s, (3) >= 10 pages/s.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np

from ecgllm.render.layout import ROWS_3X4
from ecgllm.render.raster import render_ecg
from ecgllm.render.spec import PageSpec
from ecgllm.render.store import encode_page, render_page
from ecgllm.signal import STANDARD_12, ECGRecord
from ecgllm.signal.simulate import sample_condition, simulate


def matplotlib_page(rec: ECGRecord, encode: bool, ticks: bool = False) -> object:
    """The straightforward matplotlib way: a letter figure in mm coordinates, one plot call per
    lead; the grid as line collections, or (ticks=True) as major/minor ticks + ax.grid, the way
    ecg-image-kit draws it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig = plt.figure(figsize=(11, 8.5), dpi=200)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 279.4)
    ax.set_ylim(215.9, 0)
    x0, y0, x1, y1 = 6, 18, 273, 206
    if ticks:
        ax.set_xticks(np.arange(x0, x1 + 1e-9, 5))
        ax.set_xticks(np.arange(x0, x1 + 1e-9, 1), minor=True)
        ax.set_yticks(np.arange(y0, y1 + 1e-9, 5))
        ax.set_yticks(np.arange(y0, y1 + 1e-9, 1), minor=True)
        ax.grid(which="major", color=(0.91, 0.44, 0.44), linewidth=0.7)
        ax.grid(which="minor", color=(0.97, 0.77, 0.77), linewidth=0.3)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    else:
        ax.axis("off")
        for step, colour, lw in ((1, (0.97, 0.77, 0.77), 0.3), (5, (0.91, 0.44, 0.44), 0.7)):
            xs = np.arange(x0, x1 + 1e-9, step)
            ys = np.arange(y0, y1 + 1e-9, step)
            segs = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
            ax.add_collection(LineCollection(segs, colors=[colour], linewidths=lw))
    fs = rec.fs
    t = np.arange(rec.n_samples) / fs
    for r, row in enumerate([*ROWS_3X4, ["II"]]):
        base = y0 + r * 47 + 0.55 * 47
        ax.plot(
            x0 + np.array([0.5, 2.5, 2.5, 7.5, 7.5, 9.5]),
            base - np.array([0, 0, 10, 10, 0, 0]),
            "k",
            lw=0.8,
        )
        for c, lead in enumerate(row):
            t0, t1 = (0.0, 10.0) if len(row) == 1 else (c * 2.5, (c + 1) * 2.5)
            sl = slice(int(t0 * fs), int(t1 * fs) + 1)
            ax.plot(
                x0 + 10 + t[sl] * 25,
                base - rec.signal[STANDARD_12.index(lead), sl] * 10,
                "k",
                lw=0.8,
            )
            ax.text(x0 + 11 + t0 * 25, base - 0.55 * 47 + 4, lead, fontsize=9)
    ax.text(x0, 8, f"ID {rec.record_id}   25 mm/s   10 mm/mV   {fs:g} Hz", fontsize=9)
    if encode:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=200)
        out = buf.getvalue()
    else:
        fig.canvas.draw()
        out = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return out


def rate(fn, recs) -> float:
    fn(recs[0])  # warm caches (fonts, grid)
    t = time.perf_counter()
    for r in recs:
        fn(r)
    return len(recs) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    recs = []
    for i in range(args.n):
        s = simulate(sample_condition(rng), rng)
        recs.append(ECGRecord(s.signal, s.fs, list(STANDARD_12), f"{i:05d}"))
    n_mpl = max(3, args.n // 5)
    mpl_px = rate(lambda r: matplotlib_page(r, False), recs[:n_mpl])
    mpl_png = rate(lambda r: matplotlib_page(r, True), recs[:n_mpl])
    tick_px = rate(lambda r: matplotlib_page(r, False, ticks=True), recs[:n_mpl])
    tick_png = rate(lambda r: matplotlib_page(r, True, ticks=True), recs[:n_mpl])
    ours_px = rate(lambda r: render_ecg(r), recs)
    ours_file = rate(lambda r: encode_page(render_ecg(r)[0]), recs)
    photo = rate(lambda r: encode_page(render_page(r, PageSpec(augment="photo"), 0)[0]), recs)
    scan = rate(lambda r: encode_page(render_page(r, PageSpec(augment="scan"), 0)[0]), recs)
    size = len(encode_page(render_ecg(recs[0])[0])[0]) // 1024
    print(
        f"{'pages/s, one core':30s} {'ours':>7s} {'mpl ticks':>10s} {'ratio':>7s} {'mpl tuned':>10s} {'ratio':>7s}"
    )
    print(
        f"{'pixels only':30s} {ours_px:7.1f} {tick_px:10.2f} {ours_px / tick_px:6.1f}x {mpl_px:10.2f} {ours_px / mpl_px:6.1f}x"
        "   target >= 20x"
    )
    print(
        f"{'encoded file':30s} {ours_file:7.1f} {tick_png:10.2f} {ours_file / tick_png:6.1f}x {mpl_png:10.2f} "
        f"{ours_file / mpl_png:6.1f}x   target >= 30/s (ours: palette PNG, {size} KB)"
    )
    print(
        f"{'photo preset, stored JPEG':30s} {photo:7.1f} {'':10s} {photo / tick_png:6.1f}x {'':10s} {photo / mpl_png:6.1f}x"
        "   target >= 10/s"
    )
    print(f"{'scan preset, stored JPEG':30s} {scan:7.1f}")
    print(
        "mpl ticks: grid from major/minor ticks + ax.grid (ecg-image-kit's way); "
        "mpl tuned: grid as two LineCollections"
    )


if __name__ == "__main__":
    main()
