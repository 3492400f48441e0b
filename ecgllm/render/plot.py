"""A matplotlib ECG plot for people (reports, notebooks): the same paper look, with R peaks and
interval marks from `ecgllm.signal.measure`.

    fig = plot_ecg(rec, measurements=measure(rec))
    fig.savefig("ecg.png", dpi=100)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..signal.preprocess import standardize
from ..signal.record import STANDARD_12, ECGRecord
from .layout import ROWS_3X4
from .raster import get_style


def plot_ecg(
    record: ECGRecord,
    measurements: dict[str, Any] | None = None,
    style: str = "red",
    seconds: float = 10.0,
    title: str | None = None,
):
    """3x4 + lead II page as a matplotlib Figure (25 mm/s, 10 mm/mV grid in data units).

    With `measurements`, R peaks are marked on the rhythm strip and the QRS onset/offset, P onset
    and T end of each beat are shaded; the intervals are printed in the title.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    st = get_style(style)
    if record.leads != list(STANDARD_12) or abs(record.seconds - seconds) > 1e-6:
        record = standardize(record, fs=record.fs, seconds=seconds)
    fs = record.fs
    col_s = seconds / 4
    row_mv = 3.0
    fig_w_mm, fig_h_mm = seconds * 25 + 10, 4 * row_mv * 10 + 10
    fig = plt.figure(figsize=(fig_w_mm / 25.4, fig_h_mm / 25.4))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.93))
    ax.set_xlim(-0.4, seconds)
    ax.set_ylim(-4 * row_mv, 0.5)
    colour = tuple(c / 255 for c in st.trace)
    if st.minor is not None:
        for x in np.arange(-0.4, seconds + 1e-9, 0.04):
            major = abs((x + 0.4) / 0.2 - round((x + 0.4) / 0.2)) < 1e-6
            ax.axvline(
                x,
                color=tuple(c / 255 for c in (st.major if major else st.minor)),
                lw=0.6 if major else 0.3,
                zorder=0,
            )
        for y in np.arange(-4 * row_mv, 0.5 + 1e-9, 0.1):
            major = abs(y / 0.5 - round(y / 0.5)) < 1e-6
            ax.axhline(
                y,
                color=tuple(c / 255 for c in (st.major if major else st.minor)),
                lw=0.6 if major else 0.3,
                zorder=0,
            )
    ax.set_facecolor(tuple(c / 255 for c in st.background))
    t = np.arange(record.n_samples) / fs
    for r, row in enumerate([*ROWS_3X4, ["II"]]):
        base = -(r + 0.55) * row_mv
        ax.plot(
            [-0.35, -0.3, -0.3, -0.1, -0.1, -0.05],
            base + np.array([0, 0, 1, 1, 0, 0]),
            color=colour,
            lw=0.8,
        )
        for c, lead in enumerate(row):
            t0, t1 = (0.0, seconds) if len(row) == 1 else (c * col_s, (c + 1) * col_s)
            sl = slice(int(t0 * fs), int(t1 * fs) + 1)
            x = record.signal[STANDARD_12.index(lead), sl]
            ax.plot(t[sl], base + x, color=colour, lw=0.7)
            ax.text(t0 + 0.04, base + 0.45 * row_mv, lead, fontsize=8)
    heading = title or f"ECG {record.record_id}  25 mm/s  10 mm/mV  {fs:g} Hz"
    if measurements:
        base = -(3 + 0.55) * row_mv
        for beat in measurements.get("beats", []):
            if beat.get("r") is not None:
                ax.plot(
                    beat["r"] / fs,
                    base + record.signal[1, min(beat["r"], record.n_samples - 1)] + 0.15,
                    "v",
                    color="tab:blue",
                    ms=4,
                )
            # shaded spans: QRS, PR segment + P wave, ST-T (start, end, colour, opacity)
            for start, end, colour_, alpha in (("qrs_on", "qrs_off", "tab:blue", 0.15),
                                               ("p_on", "qrs_on", "tab:green", 0.12),
                                               ("qrs_off", "t_end", "tab:orange", 0.1)):  # fmt: skip
                if beat.get(start) is not None and beat.get(end) is not None:
                    ax.axvspan(
                        beat[start] / fs,
                        beat[end] / fs,
                        ymin=0,
                        ymax=0.25,
                        color=colour_,
                        alpha=alpha,
                    )
        parts = [f"{k.split('_')[0].upper()} {measurements[k]:.0f} {u}" for k, u in
                 (("hr_bpm", "bpm"), ("pr_ms", "ms"), ("qrs_ms", "ms"), ("qt_ms", "ms"), ("qtc_ms", "ms"), ("axis_deg", "deg"))
                 if measurements.get(k) is not None]  # fmt: skip
        heading += "   " + "  ".join(parts).replace("QTC", "QTc").replace("AXIS", "axis")
    fig.suptitle(heading, x=0.01, ha="left", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
