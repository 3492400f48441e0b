"""The renderer: exact scale, sane layouts, deterministic augmentations, bad input, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ecgllm.render import LAYOUTS, render_ecg
from ecgllm.render.augment import apply_h, augment_page
from ecgllm.render.plot import plot_ecg
from ecgllm.render.store import encode_page
from ecgllm.signal import STANDARD_12, ECGRecord, measure
from ecgllm.signal.simulate import sample_condition, simulate
from tests.conftest import ROOT


def _flat(fs: float = 500.0) -> ECGRecord:
    return ECGRecord(np.zeros((12, int(10 * fs)), np.float32), fs, list(STANDARD_12), "flat")


def _sim(seed: int = 0) -> ECGRecord:
    rng = np.random.default_rng(seed)
    s = simulate(sample_condition(rng), rng)
    return ECGRecord(s.signal, s.fs, list(STANDARD_12), f"sim{seed}", meta={"age": 60, "sex": "F"})


def _dark(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L")) < 100


@pytest.mark.parametrize("dpi,paper", [(200, "letter"), (300, "a4"), (150, "letter")])
def test_calibration_pulse_and_grid_are_exact(dpi, paper):
    img, page = render_ecg(_flat(), dpi=dpi, paper=paper, style="none", header=False)
    ppm = dpi / 25.4
    assert page.width == round({"letter": 279.4, "a4": 297.0}[paper] * ppm)
    dark = _dark(img)
    x0, y0, x1, y1 = page.calibration[0]
    region = dark[y0 - 5 : y1 + 5, x0 - 2 : x1 + 3]
    rows = np.flatnonzero(region.any(axis=1))
    top_row = rows[0] + y0 - 5
    # the pulse's top edge and the baseline are two horizontal strokes 10 mm apart
    hist = region.sum(axis=1)
    strokes = np.flatnonzero(hist > 0.3 * hist.max())
    height = strokes.max() - strokes.min()
    line_w = max(1.0, 0.3 * ppm)
    assert abs((height - (line_w - 1)) - 10 * ppm) <= 1.0 + line_w / 2, (height, 10 * ppm)
    assert abs(top_row - (page.leads[0].baseline_y - 10 * ppm) + line_w / 2) <= 1.5
    # the pulse is 5 mm (0.2 s) wide: its two vertical edges
    cols = region[int(0.3 * region.shape[0]) : int(0.6 * region.shape[0])].any(axis=0)
    edges = np.flatnonzero(cols)
    assert abs((edges.max() - edges.min()) - 5 * ppm) <= 1.0 + line_w
    # grid: major lines every 5 mm, minor every 1 mm, within 1 px
    g, _ = render_ecg(_flat(), dpi=dpi, paper=paper, style="bw", header=False)
    row = np.asarray(g.convert("L"))[
        int(round(page.leads[0].box[1] + 7.5 * ppm))
    ]  # between lines, below labels
    for threshold, spacing, min_lines in ((170, 5 * ppm, 40), (240, ppm, 200)):
        dark_cols = np.flatnonzero(row < threshold)
        runs = np.split(dark_cols, np.flatnonzero(np.diff(dark_cols) > 1) + 1)
        centres = np.array([r.mean() for r in runs])
        assert len(centres) > min_lines
        assert np.abs(np.diff(centres) - spacing).max() <= 1.0, (threshold, np.diff(centres))


def test_amplitude_and_time_scale_of_a_trace():
    rec = _flat()
    rec.signal[1, 2500:2510] = 1.0  # 1 mV for 20 ms at t = 5 s in lead II
    img, page = render_ecg(rec, style="none", header=False)
    strip = page.lead_box("II", rhythm=True)
    dark = _dark(img)[strip.box[1] : strip.box[3], :]
    x_expect = strip.box[0] + 5.0 * page.px_per_s
    below_label = int(6 * page.px_per_mm)
    cols = np.flatnonzero(
        dark[below_label : int(strip.baseline_y - strip.box[1] - 0.5 * page.px_per_mv)].any(axis=0)
    )
    cols = cols[cols > strip.box[0]]  # not the calibration pulse
    assert abs(cols.min() - x_expect) <= 2
    top = np.flatnonzero(dark[:, int(x_expect) + 2])[0] + strip.box[1]
    assert abs((strip.baseline_y - top) - page.px_per_mv) <= 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_boxes_inside_page_and_not_overlapping(layout):
    img, page = render_ecg(_sim(1), layout=layout)
    assert img.size == (page.width, page.height) == (2200, 1700)
    leads = [b.lead for b in page.leads if not b.rhythm_strip]
    assert sorted(leads) == sorted(STANDARD_12) or layout == "12x1" and leads == list(STANDARD_12)
    for b in page.leads:
        x0, y0, x1, y1 = b.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        assert b.box[1] < b.baseline_y < b.box[3]
        assert abs((x1 - x0) - (b.t1 - b.t0) * page.px_per_s) <= 1
    for a, b in itertools.combinations(page.leads, 2):
        ox = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
        oy = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
        assert ox <= 1 or oy <= 1, (a.lead, b.lead)  # at most a shared edge
    strips = [b for b in page.leads if b.rhythm_strip]
    assert len(strips) == {"3x4+II": 1, "3x4+3": 3}.get(layout, 0)
    for s in strips:
        assert (s.t0, s.t1) == (0.0, 10.0)
    if layout.startswith("3x4"):
        assert [page.lead_box(x).t0 for x in ("I", "aVR", "V1", "V4")] == [0.0, 2.5, 5.0, 7.5]


def test_lead_subsets_and_missing_leads(real):
    img, page = render_ecg(_sim(2), leads=["II"])
    assert [b.lead for b in page.leads] == ["II"] and page.leads[0].t1 == 10.0
    _, page3 = render_ecg(_sim(2), leads=["I", "II", "V1"], paper="a4")
    assert [b.lead for b in page3.leads] == ["I", "II", "V1"]
    partial = ECGRecord(_sim(3).signal[[0, 1, 6]], 500.0, ["I", "II", "V1"], "p")
    _, pg = render_ecg(partial)
    present = {b.lead: b.present for b in pg.leads if not b.rhythm_strip}
    assert present["III"] and present["aVF"]  # derived from I and II
    assert not present["V2"] and present["V1"]
    from ecgllm.signal import read_record

    img100, _ = render_ecg(read_record(real / "ptbxl/records100/00000/00001_lr"))  # 100 Hz record
    assert img100.size == (2200, 1700)


def test_bad_input_errors():
    rec = _sim(4)
    for kwargs, msg in [({"layout": "4x3"}, "layout must be one of"), ({"paper": "legal"}, "paper must be one of"),
                        ({"style": "purple"}, "style must be one of"), ({"leads": ["V7"]}, "leads must be"),
                        ({"dpi": 10}, "dpi must be"), ({"augment": "fisheye"}, "augment preset must be"),
                        ({"augment": {"swirl": 1}}, "unknown augmentation")]:  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            render_ecg(rec, **kwargs)
    bad = rec.replace(signal=np.full_like(rec.signal, np.inf))
    with pytest.raises(ValueError, match="NaN/inf"):
        render_ecg(bad)
    with pytest.raises(ValueError, match="needs"):
        render_ecg(rec, seconds=12.0)


@pytest.mark.parametrize("preset", ["scan", "photo"])
def test_augmentations_deterministic_and_move_boxes(preset):
    rec = _sim(5)
    a, pa = render_ecg(rec, augment=preset, seed=7)
    b, pb = render_ecg(rec, augment=preset, seed=7)
    c, _ = render_ecg(rec, augment=preset, seed=8)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and pa.to_json() == pb.to_json()
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))
    clean, pc = render_ecg(rec)
    h = np.asarray(pa.homography)
    for before, after in zip(pc.leads, pa.leads, strict=True):
        np.testing.assert_allclose(apply_h(h, before.quad), after.quad, atol=1e-6)


def test_geometric_augmentation_moves_content_with_the_boxes():
    rec = _flat()
    rec.signal[1, 2500:2510] = 1.5
    clean, page = render_ecg(rec, style="none", header=False)
    spec = {"rotate": 3.0, "perspective": 0.03, "crop": 0.02}
    warped, wpage = augment_page(clean, page, spec, seed=1)
    strip, wstrip = page.lead_box("II", rhythm=True), wpage.lead_box("II", rhythm=True)
    # the spike's tip in the clean page, mapped through the homography, is dark in the warped one
    x = strip.box[0] + 5.0 * page.px_per_s + 3
    y = strip.baseline_y - 1.5 * page.px_per_mv + 2
    u, v = apply_h(np.asarray(wpage.homography), [(x, y)])[0]
    dark = _dark(warped)
    assert dark[int(round(v)) - 3 : int(round(v)) + 4, int(round(u)) - 3 : int(round(u)) + 4].any()
    assert wstrip.quad != strip.quad


def test_stored_formats():
    img, _ = render_ecg(_sim(6))
    data, ext = encode_page(img)
    assert ext == ".png" and img.mode == "P" and len(data) < 400_000
    from ecgllm.render.spec import PageSpec
    from ecgllm.render.store import render_page

    photo, _ = render_page(_sim(6), PageSpec(augment="photo"), 3)
    data, ext = encode_page(photo)
    assert ext == ".jpg" and data[:2] == b"\xff\xd8"


def test_plot_ecg_for_people(tmp_path):
    rec = _sim(7)
    fig = plot_ecg(rec, measurements=measure(rec))
    out = tmp_path / "plot.png"
    fig.savefig(out, dpi=60)
    assert out.stat().st_size > 10_000
    assert "HR" in fig._suptitle.get_text() and "QRS" in fig._suptitle.get_text()


def test_render_cli_resumes_and_counts_rejects(sim_db, tmp_path):
    import shutil

    root = tmp_path / "db"
    shutil.copytree(sim_db, root)
    (root / "records500/00000/00003_hr.dat").write_bytes(b"\x00" * 10)  # truncated record
    out = tmp_path / "pages"
    cmd = [sys.executable, str(ROOT / "data_builders/render.py"), "--root", str(root), "--out", str(out),
           "--limit", "6", "--quiet"]  # fmt: skip
    r = subprocess.run([*cmd, "--workers", "2"], capture_output=True, text=True, check=True)
    assert "rendered 5 pages" in r.stdout and "1 rejected" in r.stdout
    assert len(list(out.glob("*.png"))) == 5 and len(list(out.glob("*.json"))) == 5
    assert "truncated" in (out / "rejects.csv").read_text()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "rendered 0 pages" in r.stdout and "5 already there" in r.stdout
    assert (out / "rejects.csv").read_text().count("\n00003,") == 1  # logged once, not per run
    r = subprocess.run([*cmd, "--dpi", "100"], capture_output=True, text=True)  # other settings
    assert r.returncode == 2 and "other settings" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*cmd[:-1], "--augment", "photo", "--quiet", "--out", str(tmp_path / "p")],
                       capture_output=True, text=True, check=True)  # fmt: skip
    assert len(list((tmp_path / "p").glob("*.jpg"))) == 5
