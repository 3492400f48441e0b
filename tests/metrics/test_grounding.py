"""The grounded-interpretation scorer against hand-computed cases."""

from __future__ import annotations

import pytest

from ecgllm.metrics.grounding import cited_leads, cited_measurements, ground_scores

EV = {"findings": [{"finding": "SR", "leads": [], "measurements": {"hr_bpm": 72.3, "rr_sd_ms": 15.0}},
                   {"finding": "IMI", "leads": ["II", "III", "aVF"], "measurements": {}}]}  # fmt: skip
TRUTH = {"hr_bpm": 72.3, "qrs_ms": 95.0, "pr_ms": 150.0, "qtc_ms": 420.0}


def test_citations_parsed():
    t = "Sinus rhythm: P waves before every QRS, rate 72 bpm. QRS 120 ms, PR 150 ms, QTc 460 ms, QT 380 ms, axis -45 degrees."
    c = cited_measurements(t)
    assert c == {
        "hr_bpm": 72,
        "qrs_ms": 120,
        "pr_ms": 150,
        "qtc_ms": 460,
        "qt_ms": 380,
        "axis_deg": -45,
    }
    assert cited_leads("Q waves in II, III, aVF and V1-V3; not in aVR") == {
        "II",
        "III",
        "aVF",
        "V1",
        "V2",
        "V3",
        "aVR",
    }
    assert cited_leads("it is in line with") == set()  # lower-case "i" is not lead I


def test_ground_scores_hand_computed():
    perfect = "Sinus rhythm: P waves before every QRS, rate 72 bpm. Inferior myocardial infarction: Q waves in II, III, aVF."
    partial = "Sinus rhythm, rate 95 bpm, QRS 96 ms. Q waves in II."
    r = ground_scores([perfect, partial], [["SR", "IMI"], ["SR", "IMI"]], [EV, EV], [TRUTH, TRUTH])
    # findings: {SR, IMI} = gold -> 1.0 (the evidence's Q waves, after the colon, are no finding);
    # {SR, QWAVE} ("Q waves in II." read whole: no colon) vs {SR, IMI} -> 2*1/(2+2) = 0.5
    assert r["finding_f1"] == pytest.approx((1 + 0.5) / 2)
    assert r["finding_micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # cited: 72 (ok), 95 (hr off by 22.7: wrong), 96 (qrs within 15 of 95: ok) -> 2/3
    assert r["measurement_precision"] == pytest.approx(2 / 3) and r["measurements_cited"] == 3
    # evidence values: hr + rr_sd in each sample -> hits: sample 1 hr only -> 1/4
    assert r["measurement_recall"] == pytest.approx(1 / 4)
    # leads: {II,III,aVF} -> 1.0; {II} vs {II,III,aVF} -> 0.5
    assert r["lead_f1"] == pytest.approx(0.75) and r["lead_scored"] == 2


def test_ground_negation_and_empty():
    r = ground_scores(["No evidence of myocardial infarction. Sinus rhythm.", ""], [["SR"], ["SR"]],
                      [{"findings": []}, {"findings": []}], [{}, {}])  # fmt: skip
    assert r["finding_f1"] == pytest.approx(
        0.5
    )  # the negated MI is not claimed; empty answer scores 0
