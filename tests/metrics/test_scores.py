"""Scorers against hand-computed cases (including the published scorers' traps) and against
scikit-learn / sacrebleu on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ecgllm.metrics.parsing import match_options, parse_choice, parse_number
from ecgllm.metrics.scores import (
    bootstrap_ci,
    clinical_f1,
    mcq_accuracy,
    measurement_errors,
    multilabel,
    qa_exact_match,
    report_scores,
    rhythm_accuracy,
)
from ecgllm.text.extract import extract_scp_codes

BIG = "bigeminal pattern (unknown origin, supraventricular, or ventricular)"


def test_options_on_word_boundaries_longest_first_commas_intact():
    assert match_options("normal", ["no", "yes"]) is None  # "no" is not inside "normal"
    assert match_options("No.", ["no", "yes"]) == ["no"]
    opts = ["complete right bundle branch block", "incomplete right bundle branch block", "none"]
    assert match_options("incomplete right bundle branch block", opts) == [
        "incomplete right bundle branch block"
    ]
    assert match_options(f"{BIG}; atrial fibrillation", [BIG, "atrial fibrillation", "none"]) == [
        BIG,
        "atrial fibrillation",
    ]
    assert match_options("", ["no"]) is None and match_options(None, ["no"]) is None
    assert match_options("none", ["none", "p duration"]) == ["none"]


def test_exact_match_counts_unparsed_as_wrong_and_reports_it():
    r = qa_exact_match(["yes", "normal", "qrs duration; pr interval", "pr interval"],
                       [["yes"], ["no"], ["pr interval", "qrs duration"], ["pr interval", "qt interval"]],
                       [["no", "yes"], ["no", "yes"], ["pr interval", "qrs duration", "qt interval"]] * 1 + [["pr interval", "qt interval"]],
                       groups=["single-verify", "single-verify", "single-query", "single-query"])  # fmt: skip
    assert r["exact_match"] == 0.5 and r["unparsed_rate"] == 0.25
    assert r["by_group"] == {
        "single-query": {"exact_match": 0.5, "n": 2},
        "single-verify": {"exact_match": 0.5, "n": 2},
    }


def test_mcq_letters_and_text_never_random():
    opts = ["atrial fibrillation", "sinus rhythm", "atrial flutter", "sinus tachycardia"]
    assert (
        parse_choice("B", opts) == "sinus rhythm"
        and parse_choice("(C) atrial flutter", opts) == "atrial flutter"
    )
    assert parse_choice("The answer is D.", opts) == "sinus tachycardia"
    assert parse_choice("sinus rhythm", opts) == "sinus rhythm"
    assert parse_choice("A normal tracing", opts) is None  # an article, not the letter A
    assert parse_choice("I cannot tell", opts) is None
    r = mcq_accuracy(
        ["B", "nonsense", "A. atrial fibrillation"],
        ["sinus rhythm", "atrial flutter", "atrial fibrillation"],
        [opts] * 3,
    )
    assert r["accuracy"] == pytest.approx(2 / 3) and r["unparsed_rate"] == pytest.approx(1 / 3)
    # the right option under the wrong letter: wrong by letter, right by the option named
    assert parse_choice("D. sinus rhythm", opts) == "sinus tachycardia"
    assert parse_choice("D. sinus rhythm", opts, prefer="text") == "sinus rhythm"
    assert (
        parse_choice("D", opts, prefer="text") == "sinus tachycardia"
    )  # no option named: the letter
    r = mcq_accuracy(["D. sinus rhythm", "B. sinus rhythm", "C"], ["sinus rhythm"] * 3, [opts] * 3)
    assert r["accuracy"] == pytest.approx(1 / 3) and r["accuracy_text"] == pytest.approx(2 / 3)
    assert r["letter_text_conflict_rate"] == pytest.approx(1 / 3)


def test_multilabel_matches_sklearn_and_hand_values():
    from sklearn.metrics import f1_score, hamming_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 5))
    s = np.clip(y * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
    r = multilabel(y, s, list("ABCDE"))
    assert r["macro_auc"] == pytest.approx(roc_auc_score(y, s, average="macro"))
    assert r["micro_auc"] == pytest.approx(roc_auc_score(y, s, average="micro"))
    p = (s >= 0.5).astype(int)
    assert r["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert r["micro_f1"] == pytest.approx(f1_score(y, p, average="micro"))
    assert r["hamming_loss"] == pytest.approx(hamming_loss(y, p))
    # hand case: a label present in every sample has no AUC and is reported, not silently averaged
    y2 = np.array([[1, 0], [1, 1], [1, 0]])
    s2 = np.array([[0.9, 0.2], [0.8, 0.7], [0.4, 0.6]])
    r2 = multilabel(y2, s2, ["always", "b"])
    assert r2["labels_without_both_classes"] == ["always"] and r2["per_label"]["b"]["auc"] == 1.0
    hard = multilabel(y2, s2, ["always", "b"], hard_labels=True)
    assert hard["auc_basis"].startswith("hard") and hard["per_label"]["b"]["auc"] == 0.75


def test_bleu_and_rouge_agree_with_their_libraries():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = [
        "sinus rhythm. left anterior fascicular block.",
        "atrial fibrillation with rapid response",
        "",
    ]
    refs = [
        "sinus rhythm. left anterior fascicular block.",
        "atrial fibrillation.",
        "sinus bradycardia.",
    ]
    r = report_scores(preds, refs)
    assert r["bleu4"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    sc = rouge_scorer.RougeScorer(["rougeL"])
    assert r["rougeL"] == pytest.approx(
        100 * np.mean([sc.score(b, a)["rougeL"].fmeasure for a, b in zip(preds, refs, strict=True)])
    )
    assert r["empty_rate"] == pytest.approx(1 / 3) and r["n"] == 3  # the empty prediction counts
    # rhythm named: right (SR), right (AFIB), missing (empty report) -> 2 of 3
    assert r["rhythm_accuracy"] == pytest.approx(2 / 3) and r["rhythm_n"] == 3
    # a wrong or an extra rhythm is wrong; references without a rhythm do not count
    r = rhythm_accuracy(["sinus tachycardia.", "sinus rhythm. atrial fibrillation.", "normal ecg."],
                        ["sinus bradycardia.", "atrial fibrillation.", "left axis deviation."])  # fmt: skip
    assert r == {"rhythm_accuracy": 0.0, "rhythm_n": 2}


@pytest.mark.parametrize("text,codes", [
    ("sinus rhythm. left anterior fascicular block. normal ecg.", {"SR", "LAFB", "NORM"}),
    ("sinus rhythm. left anterior fascicular block. otherwise normal ecg.", {"SR", "LAFB"}),  # PTB-XL codes it so
    ("abnormal ecg", set()),  # NORM is not inside "abnormal"
    ("incomplete right bundle branch block", {"IRBBB"}),
    # PTB-XL German, record 1 (coded NORM, LVOLT, SR): limb-lead low voltage is not LVOLT (PTB-XL codes
    # it LVOLT in 2 of 29 real rows), and a device report of a sinus rhythm with only benign statements
    # is a normal ECG (NORM in 16 of 22: ecgllm/text/phrases.py)
    ("sinusrhythmus periphere niederspannung", {"SR", "NORM"}),
    ("vorhofflimmern. linksschenkelblock.", {"AFIB", "CLBBB"}),
    ("sinus rhythm, no evidence of myocardial infarction in inferior leads.", {"SR"}),
    ("atrial fibrillation without st depression", {"AFIB"}),
    ("kein vorhofflimmern. sinusbradykardie", {"SBRAD"}),
    ("inferior myocardial infarction. first degree av block", {"IMI", "1AVB"}),
    ("anteroseptal myocardial infarction; prolonged qt", {"ASMI", "LNGQT"}),
])  # fmt: skip
def test_scp_extraction(text, codes):
    assert extract_scp_codes(text) == codes


def test_clinical_f1_hand_case():
    r = clinical_f1(["sinus rhythm. left anterior fascicular block.", "atrial fibrillation."],
                    ["sinus rhythm. inferior myocardial infarction.", "atrial fibrillation."])  # fmt: skip
    # tp: SR, AFIB; fp: LAFB; fn: IMI -> micro F1 = 4 / (4 + 1 + 1)
    assert r["micro_f1"] == pytest.approx(4 / 6)


def test_measurements_and_bootstrap():
    r = measurement_errors(
        ["72 bpm", "about 150 ms", "unknown"], [70.0, 120.0, 90.0], [2.0, 12.0, 20.0]
    )
    assert r["within_tolerance"] == pytest.approx(1 / 3) and r["mean_abs_error"] == pytest.approx(
        16.0
    )
    assert r["unparsed_rate"] == pytest.approx(1 / 3) and parse_number("QRS 1,200 ms") == 1200.0
    lo, hi = bootstrap_ci([1, 0] * 50)
    assert lo < 0.5 < hi and hi - lo < 0.25


def test_class_recall_hand_case():
    from ecgllm.metrics.scores import class_recall

    gold = ["SR", "SR", "SR", "SR", "AFIB", "AFIB", "SBRAD"]
    pick = ["SR", "SR", "SBRAD", None, "AFIB", "SR", "SBRAD"]
    r = class_recall(gold, pick, positive="AFIB")
    assert r["accuracy"] == 4 / 7
    assert r["recall"] == {"AFIB": {"recall": 0.5, "n": 2}, "SBRAD": {"recall": 1.0, "n": 1},
                           "SR": {"recall": 0.5, "n": 4}}  # fmt: skip
    assert r["balanced_accuracy"] == (0.5 + 1.0 + 0.5) / 3
    assert r["sensitivity"] == 0.5 and r["specificity"] == 1.0  # no non-AF record called AF
    always_sr = class_recall(gold, ["SR"] * 7, positive="AFIB")
    assert always_sr["balanced_accuracy"] == 1 / 3 and always_sr["sensitivity"] == 0.0
    assert class_recall(["SR"], ["SR"], positive="AFIB")["sensitivity"] is None


def test_binary_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    from ecgllm.metrics.scores import binary_auc

    rng = np.random.default_rng(0)
    for n in (5, 40, 150):
        y = (rng.random(n) < 0.3).astype(int)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)  # ties
        assert abs(binary_auc(y, s) - roc_auc_score(y, s)) < 1e-12
