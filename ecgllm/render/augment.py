"""Scan and photo augmentations of rendered ECG pages, each moving the lead boxes with the image.

    image, page = augment_page(image, page, "photo", seed=3)
    image, page = augment_page(image, page, {"rotate": 2.0, "blur": 0.8, "jpeg": 70}, seed=3)

A spec maps an augmentation to a value or a (low, high) range drawn with the seed. Geometric
ones (rotate, perspective, crop/pad) compose into one homography applied in a single warp; the
homography is stored on the layout and every lead box's quad is mapped through it. Only Pillow
numpy and OpenCV are used (imgaug, which the reference generator uses, breaks on numpy 2);
OpenCV earns its place: on one core its warp is 4x and its Gaussian blur ~15x faster than
Pillow's on a 2200 x 1700 page, which is the difference between ~3 and >10 photo pages/s.

| key         | value                                       | effect                               |
|-------------|---------------------------------------------|--------------------------------------|
| rotate      | degrees                                     | rotation about the page centre       |
| perspective | fraction of the page each corner may move   | camera tilt                          |
| crop        | fraction (< 0 pads with the fill colour)    | zoom in or out                       |
| fill        | "white", "table"                            | colour outside the page after warps  |
| shadow      | strength 0..1                               | smooth uneven lighting               |
| crease      | number of folds                             | darker fold lines across the page    |
| temperature | -1..1 (warm > 0)                            | colour cast                          |
| brightness  | factor                                      |                                      |
| contrast    | factor                                      |                                      |
| greyscale   | probability                                 | greyscale copy                       |
| blur        | Gaussian radius in px                       | focus / scanner blur                 |
| noise       | std of Gaussian noise in grey levels        | sensor noise                         |
| salt_pepper | fraction of pixels                          | dust / dropouts                      |
| lowres      | downscale factor (> 1)                      | low-resolution capture: the image is |
|             |                                             | smaller by this factor (folded into  |
|             |                                             | the warp; boxes scale with it)       |
| jpeg        | quality 1..95                               | compression artefacts                |
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from PIL import Image

from .layout import PageLayout

PRESETS: dict[str, dict] = {
    "clean": {},
    "scan": {
        "rotate": (-1.5, 1.5), "crop": (-0.02, 0.02), "fill": "white", "brightness": (0.95, 1.06),
        "contrast": (0.9, 1.05), "greyscale": 0.3, "blur": (0.0, 0.8), "noise": (1.0, 5.0),
        "salt_pepper": (0.0, 0.0005), "jpeg": (70, 95),
    },
    "photo": {
        "rotate": (-4.0, 4.0), "perspective": (0.0, 0.05), "crop": (-0.04, 0.03), "fill": "table",
        "shadow": (0.15, 0.5), "crease": (0, 2), "temperature": (-0.3, 0.3),
        "brightness": (0.8, 1.1), "contrast": (0.75, 1.0), "blur": (0.3, 1.2),
        "noise": (3.0, 10.0), "lowres": (1.0, 1.6), "jpeg": (50, 85),
    },
}  # fmt: skip
KEYS = {"rotate", "perspective", "crop", "fill", "shadow", "crease", "temperature", "brightness",
        "contrast", "greyscale", "blur", "noise", "salt_pepper", "lowres", "jpeg"}  # fmt: skip


def _draw(rng: np.random.Generator, v):
    if isinstance(v, tuple | list):
        lo, hi = v
        if isinstance(lo, int) and isinstance(hi, int):
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))
    return v


def resolve(spec: str | dict, seed: int) -> dict:
    """A preset name or spec -> concrete parameters (ranges drawn deterministically from seed)."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"augment preset must be one of {sorted(PRESETS)}, not {spec!r}")
        spec = PRESETS[spec]
    unknown = set(spec) - KEYS
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    rng = np.random.default_rng(seed)
    return {k: _draw(rng, spec[k]) for k in sorted(spec)}


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H @ src for 4 point pairs (direct linear transform)."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.asarray(a, float), np.asarray(b, float))
    return np.append(h, 1.0).reshape(3, 3)


def apply_h(h: np.ndarray, pts) -> np.ndarray:
    p = np.c_[np.asarray(pts, float), np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def geometry(p: dict, w: int, h: int, rng: np.random.Generator) -> np.ndarray | None:
    """The homography of rotate + perspective + crop, or None when there is none."""
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    out = corners.copy()
    if p.get("perspective"):
        out = out + rng.uniform(-1, 1, (4, 2)) * p["perspective"] * np.array([w, h])
    if p.get("rotate"):
        t = np.deg2rad(p["rotate"])
        c = np.array([w / 2, h / 2])
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        out = (out - c) @ rot.T + c
    if p.get("crop"):
        c = np.array([w / 2, h / 2])
        out = (out - c) * (1 + 2 * p["crop"]) + c  # > 0 zooms in (crops), < 0 shrinks (pads)
    if np.allclose(out, corners):
        return None
    return _homography(corners, out)


def augment_page(
    image: Image.Image, page: PageLayout, spec: str | dict, seed: int = 0, defer_jpeg: bool = False
) -> tuple[Image.Image, PageLayout]:
    """Apply an augmentation spec to a rendered page; returns an RGB image and the moved layout.

    With `defer_jpeg`, the JPEG step is not applied to the pixels but its quality is left in
    `image.info["jpeg_quality"]`, for a caller that stores the page as JPEG at that quality
    (one compression instead of a compress-decompress-compress round trip).
    """
    p = resolve(spec, seed)
    rng = np.random.default_rng([seed, 1])
    arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    hmat = geometry(p, w, h, rng)
    f = float(p.get("lowres", 1.0))
    if f > 1.0:  # a lower-resolution capture: one scale folded into the warp, later steps cheaper
        scale = np.diag([1 / f, 1 / f, 1.0])
        hmat = scale if hmat is None else scale @ hmat
        w, h = max(1, int(round(w / f))), max(1, int(round(h / f)))
    if hmat is not None:
        fill = (
            (255, 255, 255)
            if p.get("fill", "white") == "white"
            else tuple(int(v) for v in rng.integers(40, 110, 3))
        )
        flags = (
            cv2.INTER_AREA
            if f > 1.0 and not p.get("rotate") and not p.get("perspective")
            else cv2.INTER_LINEAR
        )
        arr = cv2.warpPerspective(arr, hmat, (w, h), flags=flags,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=fill)  # fmt: skip
        page = _move_boxes(page, hmat, w, h)
    if p.get("shadow"):
        arr = cv2.multiply(arr, _shadow(w, h, p["shadow"], rng), scale=1 / 255)
    if p.get("crease"):
        arr = cv2.multiply(arr, _creases(w, h, int(p["crease"]), rng), scale=1 / 255)
    arr = _colour(arr, p)
    if rng.random() < float(p.get("greyscale", 0.0)):
        arr = cv2.cvtColor(cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if p.get("blur"):
        arr = cv2.GaussianBlur(arr, (0, 0), float(p["blur"]))
    if p.get("noise") or p.get("salt_pepper"):
        arr = _noise(arr, float(p.get("noise", 0.0)), float(p.get("salt_pepper", 0.0)), rng)
    quality = int(p["jpeg"]) if p.get("jpeg") else None
    if quality and not defer_jpeg:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        arr = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    out = Image.fromarray(arr)
    if quality and defer_jpeg:
        out.info["jpeg_quality"] = quality
    return out, page


def _move_boxes(page: PageLayout, hmat: np.ndarray, width: int, height: int) -> PageLayout:
    boxes = []
    for b in page.leads:
        quad = apply_h(hmat, b.quad)
        x0, y0 = np.floor(quad.min(axis=0))
        x1, y1 = np.ceil(quad.max(axis=0))
        boxes.append(replace(b, quad=[(float(x), float(y)) for x, y in quad],
                             box=(int(x0), int(y0), int(x1), int(y1)),
                             baseline_y=float(apply_h(hmat, [((b.box[0] + b.box[2]) / 2, b.baseline_y)])[0, 1])))  # fmt: skip
    cal = []
    for c in page.calibration:
        q = apply_h(hmat, [(c[0], c[1]), (c[2], c[1]), (c[2], c[3]), (c[0], c[3])])
        cal.append(tuple(int(v) for v in (*np.floor(q.min(axis=0)), *np.ceil(q.max(axis=0)))))
    prev = np.asarray(page.homography) if page.homography is not None else np.eye(3)
    return replace(page, leads=boxes, calibration=cal, homography=(hmat @ prev).tolist(),
                   width=width, height=height)  # fmt: skip


def _shadow(w: int, h: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth lighting field (uint8 RGB, 255 = no change): a random linear gradient plus a soft
    blob, made small and resized."""
    sw, sh = 32, 24
    yy, xx = np.mgrid[0:sh, 0:sw] / np.array([sh, sw])[:, None, None]
    ang = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5
    cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 0.6)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
    field = ((1 - strength * np.clip(0.6 * grad + 0.4 * blob, 0, 1)) * 255).astype(np.uint8)
    return cv2.cvtColor(
        cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2RGB
    )


def _creases(w: int, h: int, n: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.full((h, w), 255, dtype=np.uint8)
    for _ in range(n):
        if rng.random() < 0.5:
            x = rng.uniform(0.2, 0.8) * w
            p0, p1 = (x + rng.normal(0, 0.01 * w), 0), (x + rng.normal(0, 0.01 * w), h)
        else:
            y = rng.uniform(0.2, 0.8) * h
            p0, p1 = (0, y + rng.normal(0, 0.01 * h)), (w, y + rng.normal(0, 0.01 * h))
        cv2.line(mask, tuple(int(v) for v in p0), tuple(int(v) for v in p1), int(rng.uniform(150, 200)),
                 max(2, w // 700), lineType=cv2.LINE_AA)  # fmt: skip
    return cv2.cvtColor(cv2.blur(mask, (5, 5)), cv2.COLOR_GRAY2RGB)


def _colour(arr: np.ndarray, p: dict) -> np.ndarray:
    """Temperature, brightness and contrast as one per-channel lookup table."""
    t, b, c = (
        float(p.get("temperature", 0.0)),
        float(p.get("brightness", 1.0)),
        float(p.get("contrast", 1.0)),
    )
    if t == 0 and b == 1 and c == 1:
        return arr
    x = np.arange(256, dtype=np.float64)
    lut = np.stack(
        [((x - 128) * c + 128) * b * g for g in (1 + 0.15 * t, 1.0, 1 - 0.15 * t)], axis=-1
    )
    return cv2.LUT(arr, np.clip(np.round(lut), 0, 255).astype(np.uint8)[:, None, :])


def _noise(arr: np.ndarray, sigma: float, sp: float, rng: np.random.Generator) -> np.ndarray:
    """Luminance noise (drawn at half resolution: fine grain, a quarter of the random numbers)
    and salt-and-pepper dropouts, added with saturating uint8 arithmetic."""
    h, w = arr.shape[:2]
    n = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32) * sigma
    if sp > 0:
        k = int(sp * n.size)
        ys, xs = rng.integers(0, n.shape[0], k), rng.integers(0, n.shape[1], k)
        n[ys, xs] = np.where(rng.random(k) < 0.5, -255, 255)

    def full(x: np.ndarray) -> np.ndarray:
        x = cv2.resize(np.clip(x, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        return cv2.merge([x, x, x])

    pos, neg = full(n), full(-n)
    return cv2.subtract(cv2.add(arr, pos), neg)
