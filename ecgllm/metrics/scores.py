"""Scorers, each matching its definition and tested against hand-computed values and against
scikit-learn / sacrebleu on random inputs. Inputs are plain lists; nothing here imports a model.

- qa_exact_match: ECG-QA exact match (predicted option set == gold set), overall and by group,
  with the unparsed rate (unparsed counts as wrong, never guessed).
- multilabel: macro/micro ROC-AUC from per-label scores (labels with one class in the gold are
  skipped and counted), macro F1 and Hamming loss from thresholded scores; `hard_labels=True`
  reproduces the ECGBench way (AUC from 0/1 predictions), labelled as such in the output.
- class_recall: per-class recall, balanced accuracy, sensitivity/specificity of one class.
- mcq_accuracy, measurement_errors, report_scores (BLEU-1/4, ROUGE-L, clinical F1 over SCP
  codes), bootstrap_ci.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..text.extract import extract_scp_codes
from .parsing import match_options, parse_choice, parse_number


def qa_exact_match(preds: Sequence[str | None], golds: Sequence[Sequence[str]], options: Sequence[Sequence[str]],
                   groups: Sequence[str] | None = None) -> dict:  # fmt: skip
    """preds: generated texts; golds: gold answer lists; options: each question's option list."""
    correct, unparsed = [], 0
    by: dict[str, list[bool]] = defaultdict(list)
    for i, (p, g, o) in enumerate(zip(preds, golds, options, strict=True)):
        got = match_options(p, list(o))
        if got is None:
            unparsed += 1
        ok = got is not None and set(got) == set(g)
        correct.append(ok)
        if groups is not None:
            by[groups[i]].append(ok)
    n = len(correct)
    return {"exact_match": float(np.mean(correct)) if n else float("nan"), "n": n,
            "unparsed_rate": unparsed / n if n else float("nan"),
            "by_group": {k: {"exact_match": float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())},
            "per_sample": correct}  # fmt: skip


def mcq_accuracy(
    preds: Sequence[str | None], golds: Sequence[str], options: Sequence[Sequence[str]]
) -> dict:
    """Accuracy of generated answers parsed by their letter (parse_choice), and beside it by the
    option they name in full (`accuracy_text`) with the share of answers whose letter and named
    option disagree (`letter_text_conflict_rate`): a model that writes the right option under
    the wrong letter is visible as such, not only as wrong."""
    picked = [parse_choice(p, list(o)) for p, o in zip(preds, options, strict=True)]
    by_text = [parse_choice(p, list(o), prefer="text") for p, o in zip(preds, options, strict=True)]
    correct = [c is not None and c == g for c, g in zip(picked, golds, strict=True)]
    n = len(correct)
    mean = lambda v: float(np.mean(v)) if n else float("nan")  # noqa: E731
    return {"accuracy": mean(correct), "n": n, "unparsed_rate": mean([c is None for c in picked]),
            "accuracy_text": mean([c is not None and c == g for c, g in zip(by_text, golds, strict=True)]),
            "letter_text_conflict_rate": mean([a is not None and b is not None and a != b
                                               for a, b in zip(picked, by_text, strict=True)]),
            "per_sample": correct}  # fmt: skip


def class_recall(
    golds: Sequence[str], picks: Sequence[str | None], positive: str | None = None
) -> dict:
    """Single-label classification scored per class: accuracy, recall of every gold class (with
    its count), balanced accuracy (the mean recall over the classes present in `golds`: a model
    that always answers the majority class scores 1/k), and for `positive` (e.g. atrial
    fibrillation) sensitivity and specificity (None when the gold has no positive or no
    negative). `picks` may hold None (unparsed): wrong for every class."""
    n = len(golds)
    ok = [p == g for g, p in zip(golds, picks, strict=True)]
    recall: dict[str, dict] = {}
    for c in sorted(set(golds)):
        hits = [o for g, o in zip(golds, ok, strict=True) if g == c]
        recall[c] = {"recall": float(np.mean(hits)), "n": len(hits)}
    out = {"accuracy": float(np.mean(ok)) if n else float("nan"), "n": n,
           "balanced_accuracy": float(np.mean([v["recall"] for v in recall.values()])) if recall else float("nan"),
           "recall": recall}  # fmt: skip
    if positive is not None:
        pos = [p == positive for g, p in zip(golds, picks, strict=True) if g == positive]
        neg = [p != positive for g, p in zip(golds, picks, strict=True) if g != positive]
        out["positive"] = positive
        out["sensitivity"] = float(np.mean(pos)) if pos else None
        out["specificity"] = float(np.mean(neg)) if neg else None
        out["n_positive"], out["n_negative"] = len(pos), len(neg)
    return out


def binary_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC of scores `s` for 0/1 labels `y` (both classes present) by the rank-sum
    (Mann-Whitney) definition, ties counted half: the same value as scikit-learn's roc_auc_score
    (tested), written out because this runs per label in every bootstrap resample and sklearn's
    input checks make each call ~12x slower (2.66 vs 0.21 ms at n=150, measured here)."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=int)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(np.asarray(s, dtype=float))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def multilabel(y_true: np.ndarray, scores: np.ndarray, labels: Sequence[str], threshold: float = 0.5,
               hard_labels: bool = False) -> dict:  # fmt: skip
    """y_true [N, L] 0/1; scores [N, L] probabilities (or 0/1 with hard_labels=True)."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = (s >= threshold).astype(int)
    per_label, aucs, skipped = {}, [], []
    for j, name in enumerate(labels):
        yj = y[:, j]
        tp = int(((pred[:, j] == 1) & (yj == 1)).sum())
        fp = int(((pred[:, j] == 1) & (yj == 0)).sum())
        fn = int(((pred[:, j] == 0) & (yj == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        entry = {"f1": f1, "support": int(yj.sum())}
        if 0 < yj.sum() < len(yj):
            entry["auc"] = binary_auc(yj, pred[:, j] if hard_labels else s[:, j])
            aucs.append(entry["auc"])
        else:
            skipped.append(name)
        per_label[name] = entry
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    flat_ok = 0 < y.sum() < y.size
    micro_auc = (
        binary_auc(y.ravel(), (pred if hard_labels else s).ravel()) if flat_ok else float("nan")
    )
    return {
        "auc_basis": "hard 0/1 predictions (ECGBench compatibility)" if hard_labels else "scores",
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "micro_auc": micro_auc,
        "macro_f1": float(np.mean([v["f1"] for v in per_label.values()]))
        if per_label
        else float("nan"),
        "micro_f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0,
        "hamming_loss": float((pred != y).mean()) if y.size else float("nan"),
        "labels_without_both_classes": skipped,
        "per_label": per_label,
    }


def measurement_errors(
    preds: Sequence[str | None], values: Sequence[float], tolerances: Sequence[float]
) -> dict:
    got = [parse_number(p) for p in preds]
    errs = [abs(g - v) for g, v in zip(got, values, strict=True) if g is not None]
    within = [
        g is not None and abs(g - v) <= t for g, v, t in zip(got, values, tolerances, strict=True)
    ]
    n = len(within)
    return {"mean_abs_error": float(np.mean(errs)) if errs else float("nan"),
            "within_tolerance": float(np.mean(within)) if n else float("nan"), "n": n,
            "unparsed_rate": sum(g is None for g in got) / n if n else float("nan"), "per_sample": within}  # fmt: skip


def code_counts(
    pred_sets: Sequence[set[str]], ref_sets: Sequence[set[str]]
) -> dict[str, list[int]]:
    """Per code [true positives, false positives, false negatives] over paired code sets."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for a, b in zip(pred_sets, ref_sets, strict=True):
        for c in a & b:
            counts[c][0] += 1
        for c in a - b:
            counts[c][1] += 1
        for c in b - a:
            counts[c][2] += 1
    return dict(counts)


def f1_from_counts(counts: dict[str, list[int]]) -> dict:
    """Micro F1/precision/recall (pooled counts) and macro F1 (mean over codes) of code_counts."""
    tp = sum(v[0] for v in counts.values())
    fp = sum(v[1] for v in counts.values())
    fn = sum(v[2] for v in counts.values())
    f1s = [2 * t / (2 * t + f + n) for t, f, n in counts.values() if (2 * t + f + n)]
    return {"micro_f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0,
            "micro_precision": tp / (tp + fp) if tp + fp else 0.0, "micro_recall": tp / (tp + fn) if tp + fn else 0.0,
            "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "codes": len(counts)}  # fmt: skip


def clinical_f1(preds: Sequence[str], refs: Sequence[str]) -> dict:
    """Micro/macro F1 over the SCP codes extracted from generated vs reference reports (every
    stated statement counts, uncertain ones too: ecgllm.text.extract), and the micro F1 within
    each PTB-XL diagnostic superclass (NORM, MI, STTC, CD, HYP) and the rhythm statements."""
    from ..text.vocab import statements

    pred_sets = [extract_scp_codes(p) for p in preds]
    ref_sets = [extract_scp_codes(r) for r in refs]
    out = f1_from_counts(code_counts(pred_sets, ref_sets))
    table = statements().table
    groups: dict[str, set[str]] = {"rhythm": set(table.index[table["rhythm"] == 1])}
    for code, cls in table["diagnostic_class"].dropna().items():
        groups.setdefault(str(cls), set()).add(code)
    out["by_superclass"] = {}
    for name in ("NORM", "MI", "STTC", "CD", "HYP", "rhythm"):
        g = groups.get(name, set())
        sub = f1_from_counts(code_counts([a & g for a in pred_sets], [b & g for b in ref_sets]))
        n = sum(bool(b & g) for b in ref_sets)
        out["by_superclass"][name] = {"micro_f1": sub["micro_f1"], "n_reports": n}
    return out


def rhythm_accuracy(preds: Sequence[str], refs: Sequence[str]) -> dict:
    """Over the references that state a rhythm (PTB-XL's rhythm statements: SR, AFIB, STACH, ...),
    the share of generated reports that state exactly the same rhythm codes: the report-level
    counterpart of the rhythm multiple-choice benchmark."""
    from ..text.vocab import label_set

    rhythms = set(label_set("rhythm"))
    stated = [(p, extract_scp_codes(r) & rhythms) for p, r in zip(preds, refs, strict=True)]
    hits = [extract_scp_codes(p) & rhythms == want for p, want in stated if want]
    return {
        "rhythm_accuracy": float(np.mean(hits)) if hits else float("nan"),
        "rhythm_n": len(hits),
    }


def report_scores(preds: Sequence[str | None], refs: Sequence[str]) -> dict:
    """Corpus BLEU-1 and BLEU-4 (sacrebleu), mean ROUGE-L F (rouge-score), clinical F1, rhythm
    accuracy. Empty
    predictions are scored as empty strings (they count), and their rate is reported. METEOR
    needs WordNet data that cannot be fetched offline and is not reported."""
    import sacrebleu
    from rouge_score import rouge_scorer

    texts = [p or "" for p in preds]
    bleu4 = sacrebleu.corpus_bleu(texts, [list(refs)])
    bleu1 = sacrebleu.metrics.BLEU(max_ngram_order=1).corpus_score(texts, [list(refs)])
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(texts, refs, strict=True)]
    return {"bleu1": bleu1.score, "bleu4": bleu4.score, "rougeL": 100 * float(np.mean(rouge)) if rouge else float("nan"),
            **{f"clinical_{k}": v for k, v in clinical_f1(texts, refs).items()}, **rhythm_accuracy(texts, refs),
            "empty_rate": sum(not t.strip() for t in texts) / max(1, len(texts)), "n": len(texts)}  # fmt: skip


def bootstrap_ci(items: Sequence[Any], stat: Callable[[Any], float] = np.mean, n: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of `stat` over resamples (with replacement, same size) of
    `items`: numbers (`stat` gets an array) or any records (`stat` gets a list, e.g. a benchmark
    scorer). Resamples whose statistic is NaN (e.g. an AUC with one class) are left out."""
    if len(items) == 0:
        return float("nan"), float("nan")
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in items)
    data = np.asarray(items, dtype=float) if numeric else list(items)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n):
        idx = rng.integers(0, len(data), len(data))
        v = float(stat(data[idx] if numeric else [data[i] for i in idx]))
        if v == v:
            stats.append(v)
    if not stats:
        return float("nan"), float("nan")
    return float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))
