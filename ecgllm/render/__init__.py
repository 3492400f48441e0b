"""ECG paper images: layout, rasterizer, augmentations, matplotlib plots."""

from .layout import LAYOUTS, LeadBox, PageLayout
from .raster import STYLES, Style, render_ecg
from .spec import PageSpec

__all__ = ["LAYOUTS", "STYLES", "LeadBox", "PageLayout", "PageSpec", "Style", "render_ecg"]
