"""The ECG signal layer: records, WFDB I/O, preprocessing, quality, measurements, simulator."""

from .databases import MIMICIVECG, PTBXL, ECGDatabase, SCPStatements, WFDBFolder, open_database
from .measure import find_r_peaks, measure
from .preprocess import (
    bandpass,
    derive_limb_leads,
    highpass,
    lowpass,
    notch,
    quality_flags,
    standardize,
)
from .record import STANDARD_12, ECGReadError, ECGRecord, canonical_lead, read_record

__all__ = [
    "STANDARD_12", "ECGDatabase", "ECGReadError", "ECGRecord", "MIMICIVECG", "PTBXL",
    "SCPStatements", "WFDBFolder", "bandpass", "canonical_lead", "derive_limb_leads",
    "find_r_peaks", "highpass", "lowpass", "measure", "notch", "open_database",
    "quality_flags", "read_record", "standardize",
]  # fmt: skip
