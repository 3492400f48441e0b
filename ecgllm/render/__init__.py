"""ECG paper images: layout, rasterizer, augmentations, matplotlib plots."""

from .layout import LAYOUTS, LeadBox, PageLayout
from .raster import STYLES, Style, render_ecg

__all__ = ["LAYOUTS", "STYLES", "LeadBox", "PageLayout", "Style", "render_ecg"]
