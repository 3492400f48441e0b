"""PageSpec: how an ECG page is drawn (lead layout, paper, resolution, grid style, augmentation).

The one owner of the page settings and their defaults: the dataset builder (BuildConfig.page),
the page renderer (RenderJob.page), evaluation's re-rendering of perturbed records and the
command lines (their --layout/--paper/--dpi/--style/--augment options come from these fields)
all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PageSpec:
    layout: str = "3x4+II"  # lead arrangement (ecgllm.render.layout.LAYOUTS)
    paper: str = "letter"  # paper size, landscape (letter, a4)
    dpi: float = 200.0  # pixels per inch (50-1200)
    style: str = "red"  # grid colours (ecgllm.render.raster.STYLES)
    augment: str | None = None  # scan/photo augmentation preset (ecgllm.render.augment.PRESETS)

    def __post_init__(self) -> None:
        from .augment import PRESETS
        from .layout import LAYOUTS, PAPERS_MM
        from .raster import STYLES

        for name, allowed in (("layout", LAYOUTS), ("paper", PAPERS_MM), ("style", STYLES)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"page {name} must be one of {sorted(allowed)}, not {getattr(self, name)!r}"
                )
        if self.augment is not None and self.augment not in PRESETS:
            raise ValueError(
                f"page augment must be one of {sorted(PRESETS)} or None, not {self.augment!r}"
            )
        if not 50 <= float(self.dpi) <= 1200:
            raise ValueError(f"page dpi must be between 50 and 1200, not {self.dpi}")

    @classmethod
    def from_mapping(cls, d: dict[str, Any] | None) -> PageSpec:
        """The spec from a mapping's page keys (others ignored; missing ones take the defaults):
        a build's recorded config, its `page` section or a flat one as builds before PageSpec
        wrote it."""
        d = d or {}
        d = d.get("page", d) if isinstance(d.get("page"), dict) else d
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
