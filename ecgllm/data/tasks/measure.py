"""Measurement questions: heart rate, intervals and axis, scored within a tolerance."""

from __future__ import annotations

from .common import RecordInfo, TaskFamily, per_record, sample

MEASURES = {
    "hr_bpm": ("heart rate", "bpm", 2.0, 0),
    "pr_ms": ("PR interval", "ms", 20.0, 0),
    "qrs_ms": ("QRS duration", "ms", 12.0, 0),
    "qt_ms": ("QT interval", "ms", 25.0, 0),
    "qtc_ms": ("corrected QT interval (Bazett)", "ms", 30.0, 0),
    "axis_deg": ("frontal QRS axis", "degrees", 15.0, 0),
}
MEASURE_PROMPTS = (
    "What is the {name} of this ECG?",
    "Measure the {name}.",
    "Estimate the {name} from this ECG.",
)


def measure_task(rec: RecordInfo, rng, modalities, n: int = 2) -> list[dict]:
    summary = rec.features.get("summary", {})
    keys = [k for k in MEASURES if summary.get(k) is not None]
    out = []
    for k in list(rng.permutation(keys))[:n] if keys else []:
        name, unit, tol, _ = MEASURES[k]
        v = float(summary[k])
        shown = f"{round(v):d}"
        t = int(rng.integers(len(MEASURE_PROMPTS)))
        q = MEASURE_PROMPTS[t].format(name=name)
        out.append(sample([rec], "measure", q, f"{shown} {unit}", modalities, answer=[shown], template_id=t,
                          attribute_type=k, value=v, unit=unit, tolerance=tol, suffix=f"-{k}"))  # fmt: skip
    return out


FAMILY = TaskFamily("measure", per_record(measure_task), "number", ("value", "unit", "tolerance", "attribute_type"),
                    ("measure",))  # fmt: skip
