"""Report generation: the record's report, as normalised English or the source's own text."""

from __future__ import annotations

from ...text.reports import english_report
from .common import RecordInfo, TaskFamily, sample

REPORT_PROMPTS = (
    "Write the report for this ECG.",
    "Interpret this 12-lead ECG and write a short report.",
    "What does this ECG show? Answer as a clinical ECG report.",
    "Please provide the ECG report.",
)

REPORT_TEXTS = ("normalised", "source")


def report_target(rec: RecordInfo, text: str = "normalised") -> str | None:
    """The report a model learns to write. "normalised" (default): for PTB-XL (real or simulated),
    LUDB and Challenge records, normalised English from the SCP statements (PTB-XL's own text is
    often German and stays in the record); MIMIC and other sources: the record's report.
    "source": the record's own report text wherever it has one (models trained on real PTB-XL then
    learn real report language; the report benchmark reads either through the same extractor)."""
    if text not in REPORT_TEXTS:
        raise ValueError(f"report text must be one of {REPORT_TEXTS}, not {text!r}")
    if text == "source" and rec.report:
        return rec.report
    if rec.source in ("ptbxl", "synthetic", "ludb", "challenge"):
        return english_report(rec.labels) or None
    return rec.report or (english_report(rec.labels) or None)


def report_task(rec: RecordInfo, rng, modalities, text: str = "normalised") -> list[dict]:
    target = report_target(rec, text)
    if not target:
        return []
    t = int(rng.integers(len(REPORT_PROMPTS)))
    return [
        sample(
            [rec], "report", REPORT_PROMPTS[t], target, modalities, answer=[target], template_id=t
        )
    ]


FAMILY = TaskFamily("report", lambda rec, rng, ctx: report_task(rec, rng, ctx.modalities, text=ctx.report_text),
                    "text", benchmarks=("report",))  # fmt: skip
