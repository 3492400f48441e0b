"""Page geometry of a printed ECG: paper sizes, lead arrangements and the pixel scale.

Everything is planned in millimetres on standard ECG paper (25 mm/s, 10 mm/mV, 1 mm minor and
5 mm major grid) and converted to pixels with the page's dpi, so the scale is exact by
construction: px_per_mm = dpi / 25.4.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..signal.record import STANDARD_12

PAPERS_MM = {"letter": (279.4, 215.9), "a4": (297.0, 210.0)}  # landscape width, height

# Each layout: rows of (lead, column) cells; a column shows the next `col_seconds` of the record.
ROWS_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]
ROWS_6X2 = [["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]]
LAYOUTS = ("3x4+II", "3x4+3", "3x4", "6x2", "12x1")

MARGIN_MM = {"left": 6.0, "right": 6.0, "top": 18.0, "bottom": 6.0}
CAL_MM = 10.0  # room at the start of each row for the 1 mV x 0.2 s calibration pulse
MAX_ROW_MM = 50.0


@dataclass
class LeadBox:
    """Where one lead is drawn. box: (x0, y0, x1, y1) pixels; t0/t1: seconds of the record shown;
    baseline_y: pixel row of 0 mV; quad: the box's 4 corners (clockwise from top-left) after any
    geometric augmentation (equal to the box corners on a clean page)."""

    lead: str
    box: tuple[int, int, int, int]
    t0: float
    t1: float
    baseline_y: float
    quad: list[tuple[float, float]] = field(default_factory=list)
    rhythm_strip: bool = False
    present: bool = True


@dataclass
class PageLayout:
    """A rendered page's geometry; `to_json()` is what the data builders store beside the image."""

    layout: str
    paper: str
    dpi: float
    width: int
    height: int
    speed_mm_s: float
    gain_mm_mv: float
    px_per_mm: float
    px_per_s: float
    px_per_mv: float
    leads: list[LeadBox]
    calibration: list[tuple[int, int, int, int]] = field(default_factory=list)
    homography: list[list[float]] | None = None  # clean page -> augmented page, if warped

    def lead_box(self, lead: str, rhythm: bool = False) -> LeadBox:
        for b in self.leads:
            if b.lead == lead and b.rhythm_strip == rhythm:
                return b
        raise KeyError(f"lead {lead!r} (rhythm strip={rhythm}) is not on this {self.layout} page")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass
class Cell:
    lead: str
    row: int
    t0: float
    t1: float
    x_mm: float  # left edge of the trace, from the grid origin
    rhythm: bool = False


def plan_cells(layout: str, leads: list[str] | None, seconds: float) -> tuple[list[Cell], int]:
    """Cells (lead, row, time span, x offset in mm) and the number of rows of a layout.

    `leads` given: one full-length row per lead (any subset: a single lead, 3 leads, ...).
    """
    cells: list[Cell] = []
    speed = 25.0
    if leads:
        for r, lead in enumerate(leads):
            cells.append(Cell(lead, r, 0.0, seconds, CAL_MM, rhythm=False))
        return cells, len(leads)
    if layout in ("3x4+II", "3x4+3", "3x4"):
        col_s = seconds / 4
        for r, row in enumerate(ROWS_3X4):
            for c, lead in enumerate(row):
                cells.append(Cell(lead, r, c * col_s, (c + 1) * col_s, CAL_MM + c * col_s * speed))
        strips = {"3x4+II": ["II"], "3x4+3": ["II", "V1", "V5"], "3x4": []}[layout]
        for k, lead in enumerate(strips):
            cells.append(Cell(lead, 3 + k, 0.0, seconds, CAL_MM, rhythm=True))
        return cells, 3 + len(strips)
    if layout == "6x2":
        col_s = seconds / 2
        for r, row in enumerate(ROWS_6X2):
            for c, lead in enumerate(row):
                cells.append(Cell(lead, r, c * col_s, (c + 1) * col_s, CAL_MM + c * col_s * speed))
        return cells, 6
    if layout == "12x1":
        for r, lead in enumerate(STANDARD_12):
            cells.append(Cell(lead, r, 0.0, seconds, CAL_MM))
        return cells, 12
    raise ValueError(f"layout must be one of {LAYOUTS} (or pass leads=[...]), not {layout!r}")
