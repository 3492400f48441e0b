"""Scoring answered rows: one scorer per benchmark kind (SCORERS), the chance level of each
headline metric, and its 95% bootstrap interval (resampling samples; metrics.scores.bootstrap_ci)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..benchmarks import Benchmark
from ..data.tasks.common import join_answer, question_text
from ..metrics.calibration import brier
from ..metrics.grounding import ground_scores
from ..metrics.parsing import match_options, parse_choice
from ..metrics.scores import (
    bootstrap_ci,
    class_recall,
    mcq_accuracy,
    measurement_errors,
    multilabel,
    qa_exact_match,
    report_scores,
)
from .answer import option_labels


def _group(r: dict, bench: Benchmark) -> str:
    return " / ".join(str(r.get(g) or "-") for g in bench.groups) if bench.groups else ""


def score_exact_match(bench: Benchmark, recs: list[dict]) -> dict:
    res = qa_exact_match([r["prediction"] for r in recs], [r["answer"] for r in recs],
                         [r["options"] for r in recs], groups=[_group(r, bench) for r in recs])  # fmt: skip
    if bench.groups:  # also one breakdown per field (question type alone, attribute type alone)
        for g in bench.groups:
            by: dict[str, list[bool]] = {}
            for r, ok in zip(recs, res["per_sample"], strict=True):
                by.setdefault(str(r.get(g) or "-"), []).append(ok)
            res[f"by_{g}"] = {k: {"exact_match": float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())}  # fmt: skip
    return res


def _picks(recs: list[dict], key: str) -> list[str]:
    """Each row's option with the highest score under `key` (loglik, loglik_letter, loglik_norm)."""
    return [r["options"][int(np.argmax(r[key]))] for r in recs]


def score_mcq(bench: Benchmark, recs: list[dict]) -> dict:
    res: dict[str, Any] = {"n": len(recs)}
    gold = [r["answer"][0] for r in recs]
    per = None
    if all("prediction" in r for r in recs):
        g = mcq_accuracy([r["prediction"] for r in recs], gold, [r["options"] for r in recs])
        res.update(accuracy_generate=g["accuracy"], unparsed_rate=g["unparsed_rate"],
                   accuracy_generate_text=g["accuracy_text"],
                   letter_text_conflict_rate=g["letter_text_conflict_rate"])  # fmt: skip
        per = g["per_sample"]
    if all("loglik" in r for r in recs):
        picks = _picks(recs, "loglik")
        # the whole answer span (the headline), the letter alone and the length-normalised span
        # (evaluation.answer explains the three)
        for key, name in (("loglik", "accuracy_loglik"), ("loglik_letter", "accuracy_letter"),
                          ("loglik_norm", "accuracy_norm")):  # fmt: skip
            if all(key in r for r in recs):
                ok = [p == g for p, g in zip(_picks(recs, key), gold, strict=True)]
                res[name] = float(np.mean(ok)) if ok else float("nan")
                per = ok if bench.metric == name else per
    else:
        picks = [parse_choice(r.get("prediction"), r["options"]) or "(unparsed)" for r in recs]
    res["per_sample"] = per or []
    if bench.confusion and recs:
        names = sorted(set(gold) | set(picks))
        idx = {n: i for i, n in enumerate(names)}
        m = np.zeros((len(names), len(names)), dtype=int)
        for g, p in zip(gold, picks, strict=True):
            m[idx[g], idx[p]] += 1
        res["confusion"] = {"labels": names, "matrix": m.tolist(), "rows": "gold", "columns": "predicted",
                            "from": "loglik" if "loglik" in bench.methods else "generate"}  # fmt: skip
    by: dict[str, list[bool]] = {}
    for r, ok in zip(recs, res["per_sample"], strict=True):
        by.setdefault(_group(r, bench) or "all", []).append(ok)
    res["by_group"] = {
        k: {bench.metric: float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())
    }
    return res


def score_rhythm(bench: Benchmark, recs: list[dict]) -> dict:
    """The rhythm question as a classification: the answer by option log-likelihood (or the
    parsed generation when there is no loglik), per-class recall, balanced accuracy, AF
    sensitivity/specificity and the confusion matrix; `score_mcq`'s figures beside them."""
    res = score_mcq(bench, recs)
    gold = [r["answer"][0] for r in recs]
    if all("loglik" in r for r in recs):
        picks = _picks(recs, "loglik")
    else:
        picks = [parse_choice(r.get("prediction"), r["options"]) for r in recs]
    res.update(class_recall(gold, picks, positive="atrial fibrillation"))
    if recs and all(r.get("loglik_norm") for r in recs):
        # the same classification by the length-normalised option score beside the headline's:
        # the summed score leans to the shortest option ("sinus rhythm") when the model is unsure
        c = class_recall(gold, _picks(recs, "loglik_norm"), positive="atrial fibrillation")
        res["norm_scored"] = {k: c[k] for k in ("balanced_accuracy", "accuracy", "recall",
                                            "sensitivity", "specificity")}  # fmt: skip
    if bench.metric == "balanced_accuracy":  # score_mcq's groups hold its per-sample hits, not this
        by: dict[str, tuple[list, list]] = {}
        for r, g, p in zip(recs, gold, picks, strict=True):
            gs, ps = by.setdefault(_group(r, bench) or "all", ([], []))
            gs.append(g)
            ps.append(p)
        res["by_group"] = {
            k: {m: class_recall(gs, ps)[m] for m in ("balanced_accuracy", "accuracy")}
            | {"n": len(gs)}
            for k, (gs, ps) in sorted(by.items())
        }
    return res


LIST_BASIS = "p(label next | the model's greedy list before it) per label"
YES_BASIS = "P(yes) to the verify question per label"


def _label_sets(recs: list[dict]) -> dict[str, tuple[list[str], list[dict], np.ndarray]]:
    """Per label set (the rows' attribute_type): its labels, its rows and their 0/1 answers."""
    sets: dict[str, list[dict]] = {}
    for r in recs:
        sets.setdefault(r.get("attribute_type") or "-", []).append(r)
    out = {}
    for name, rs in sorted(sets.items()):
        labels = option_labels(rs[0]["options"])
        out[name] = (
            labels,
            rs,
            np.array([[lab in r["answer"] for lab in labels] for r in rs], dtype=int),
        )
    return out


def _scores(rs: list[dict], key: str, labels: list[str]) -> np.ndarray:
    return np.array([[r[key][lab] for lab in labels] for r in rs])


def _by_label_set(recs: list[dict], key: str) -> tuple[dict, dict]:
    """Per label set: multilabel metrics of the rows' `key` scores, and the per-label entries
    named "<set>: <label>"."""
    by, per_label = {}, {}
    for name, (labels, rs, y) in _label_sets(recs).items():
        m = multilabel(y, _scores(rs, key, labels), labels)
        by[name] = {k: m[k] for k in ("macro_auc", "micro_auc", "macro_f1", "micro_f1", "hamming_loss")} | {"n": len(rs)}  # fmt: skip
        per_label.update({f"{name}: {k}": v for k, v in m["per_label"].items()})
    return by, per_label


def _macro(per_label: dict, key: str) -> float:
    v = [e[key] for e in per_label.values() if key in e]
    return float(np.mean(v)) if v else float("nan")


def score_detect(bench: Benchmark, recs: list[dict]) -> dict:
    """Detection AUC from per-label scores: `label_scores_list` (macro_auc_list: p(label next in
    the model's own list)) and `label_scores` (macro_auc: P(yes) to the verify question), each with
    its groups and labels under list_scored / yes_scored; the headline's (the YAML's metric) are
    also the top-level by_group, per_label, macro_f1, hamming_loss and auc_basis."""
    res: dict[str, Any] = {"n": len(recs)}
    for key, metric, block, basis in (("label_scores_list", "macro_auc_list", "list_scored", LIST_BASIS),
                                      ("label_scores", "macro_auc", "yes_scored", YES_BASIS)):  # fmt: skip
        if not (recs and all(key in r for r in recs)):
            continue
        by, per_label = _by_label_set(recs, key)
        res[metric] = _macro(per_label, "auc")
        res[block] = {"macro_auc": res[metric], "macro_f1": _macro(per_label, "f1"),
                      "hamming_loss": float(np.mean([v["hamming_loss"] for v in by.values()])),
                      "by_group": by, "per_label": per_label, "auc_basis": basis}  # fmt: skip
    head = res.get("list_scored" if bench.metric == "macro_auc_list" else "yes_scored")
    if head:
        res.update(
            {k: head[k] for k in ("macro_f1", "hamming_loss", "by_group", "per_label", "auc_basis")}
        )
    # --calibrate: P(yes) rescaled per label on the validation split (evaluation.runner)
    if recs and all("label_scores_calibrated" in r for r in recs):
        cal_by, cal_pl = _by_label_set(recs, "label_scores_calibrated")
        raw_b, cal_b = [], []
        for labels, rs, y in _label_sets(recs).values():
            raw_b.append((brier(_scores(rs, "label_scores", labels), y), y.size))
            cal_b.append((brier(_scores(rs, "label_scores_calibrated", labels), y), y.size))
        wmean = lambda v: float(sum(a * n for a, n in v) / max(1, sum(n for _, n in v)))  # noqa: E731
        res["calibrated"] = {"macro_f1": _macro(cal_pl, "f1"),
                             "by_group": {k: {"macro_f1": v["macro_f1"], "micro_auc": v["micro_auc"]} for k, v in cal_by.items()},
                             "brier_raw": wmean(raw_b), "brier": wmean(cal_b),
                             "note": "P(yes) with per-label Platt scaling fitted on the validation split; macro AUC is the raw scores'"}  # fmt: skip
    if all("prediction" in r for r in recs):
        em = qa_exact_match([r["prediction"] for r in recs], [r["answer"] for r in recs],
                            [r["options"] for r in recs])  # fmt: skip
        res.update(exact_match_generate=em["exact_match"], unparsed_rate=em["unparsed_rate"])
        # ECGBench compatibility: "AUC" on the 0/1 labels parsed from the generated list
        hard = []
        for r in recs:
            labels = option_labels(r["options"])
            got = set(match_options(r["prediction"], r["options"]) or [])
            hard.append(([lab in r["answer"] for lab in labels], [lab in got for lab in labels]))
        ys = np.array([v for h in hard for v in h[0]], dtype=int)
        ps = np.array([v for h in hard for v in h[1]], dtype=float)
        if 0 < ys.sum() < len(ys):
            from ..metrics.scores import binary_auc

            res["ecgbench_hard_label_auc"] = binary_auc(ys, ps)
            res["ecgbench_note"] = "AUC on 0/1 predictions pooled over labels (ECGBench compatibility), not a ranking AUC"  # fmt: skip
        res.setdefault("per_sample", em["per_sample"])
    return res


def score_measure(bench: Benchmark, recs: list[dict]) -> dict:
    res = measurement_errors([r["prediction"] for r in recs], [r["value"] for r in recs],
                             [r["tolerance"] for r in recs])  # fmt: skip
    by: dict[str, list[bool]] = {}
    for r, ok in zip(recs, res["per_sample"], strict=True):
        by.setdefault(_group(r, bench), []).append(ok)
    res["by_group"] = {k: {"within_tolerance": float(np.mean(v)), "n": len(v)} for k, v in sorted(by.items())}  # fmt: skip
    return res


def score_report(bench: Benchmark, recs: list[dict]) -> dict:
    res = report_scores([r["prediction"] for r in recs], [r["answer"][0] for r in recs])
    from ..text.extract import extract_scp_codes

    per = []
    for r in recs:  # per-sample clinical F1, for intervals and the gallery
        a, b = extract_scp_codes(r["prediction"] or ""), extract_scp_codes(r["answer"][0])
        per.append(1.0 if not a and not b else 2 * len(a & b) / (len(a) + len(b)))
    res["per_sample"] = per
    return res


def score_ground(bench: Benchmark, recs: list[dict]) -> dict:
    return ground_scores([r["prediction"] for r in recs], [r["answer"] for r in recs],
                         [json.loads(r["evidence"] or "{}") for r in recs],
                         [json.loads(r["features"] or "{}") for r in recs])  # fmt: skip


SCORERS: dict[str, Callable[[Benchmark, list[dict]], dict]] = {
    "exact_match": score_exact_match,
    "mcq": score_mcq,
    "rhythm": score_rhythm,
    "detect": score_detect,
    "measure": score_measure,
    "report": score_report,
    "ground": score_ground,
}


def _bootstrap(
    bench: Benchmark, recs: list[dict], n: int = 200, seed: int = 0, metric: str | None = None
) -> tuple[float, float]:
    """95% interval of the headline metric (or `metric`), resampling the answered samples
    (bootstrap_ci)."""
    if len(recs) < 2:
        return float("nan"), float("nan")
    return bootstrap_ci(
        recs,
        lambda sub: SCORERS[bench.scorer](bench, sub).get(metric or bench.metric, float("nan")),
        n=n,
        seed=seed,
    )


def chance_level(bench: Benchmark, recs: list[dict], train: list[dict] | None) -> tuple[float, str]:
    """(chance value of the headline metric, how it was computed)."""
    if bench.chance == "auc":
        return 0.5, "AUC of an uninformative score"
    if bench.chance == "uniform_option":
        v = [1 / len(r["options"]) if len(r["answer"]) == 1 and r["options"] else 0.0 for r in recs]
        return float(np.mean(v)) if v else float("nan"), "a uniformly random option"
    if not train:
        return float("nan"), "no training samples to take a majority from"
    if bench.scorer == "measure":
        med: dict[str, float] = {}
        for k in {r["attribute_type"] for r in train}:
            med[k] = float(np.median([r["value"] for r in train if r["attribute_type"] == k]))
        const = [{**r, "prediction": f"{med.get(r['attribute_type'], 0):.0f}"} for r in recs]
        how = "always the training median of each quantity"
    else:
        top = Counter(r["messages"][-1]["content"][0]["text"] for r in train).most_common(1)[0][0]
        const = [{**r, "prediction": top} for r in recs]
        how = "always the most frequent training answer"
    return float(SCORERS[bench.scorer](bench, const)[bench.metric]), how


def question_prior(bench: Benchmark, recs: list[dict], train: list[dict]) -> float:
    """The headline metric of answering each question with the training split's most frequent
    answer to the same question text, or, for a text never asked in training (a choose question
    names its own options), the most frequent training answer of its question and attribute type
    among those its options allow: what the question alone answers. The blank ECG is not that
    bound: a model may read a flat line as a finding (Gemma's blank ECG named a deviated heart axis
    where "normal" is the answer 8 times in 10), so ECG-QA reports both."""
    by_text: dict[str, Counter] = {}
    by_kind: dict[tuple, Counter] = {}
    for r in train:
        a = tuple(r["answer"])
        by_text.setdefault(question_text(r), Counter())[a] += 1
        by_kind.setdefault((r.get("question_type"), r.get("attribute_type")), Counter())[a] += 1
    const = []
    for r in recs:
        seen = by_text.get(r.get("question", ""))
        if not seen:
            opts = set(r["options"])
            kind = by_kind.get((r.get("question_type"), r.get("attribute_type")), Counter())
            seen = Counter({a: n for a, n in kind.items() if set(a) <= opts})
        const.append(
            {**r, "prediction": join_answer(list(seen.most_common(1)[0][0])) if seen else ""}
        )
    return float(SCORERS[bench.scorer](bench, const)[bench.metric])


def score(bench: Benchmark, recs: list[dict], train: list[dict] | None = None) -> dict[str, Any]:
    res = SCORERS[bench.scorer](bench, recs)
    res.pop("per_sample", None)
    res.update(main_metric=bench.metric, higher_is_better=bench.higher_is_better,
               value=res.get(bench.metric, float("nan")), ci95=_bootstrap(bench, recs))  # fmt: skip
    # detection's other per-label score: its interval too
    for alt in ("macro_auc", "macro_auc_list"):
        if bench.scorer == "detect" and alt in res and alt != bench.metric:
            res[f"{alt}_ci95"] = _bootstrap(bench, recs, metric=alt)
    res["chance"], res["chance_basis"] = chance_level(bench, recs, train)
    if bench.prior and train:
        res["prior"] = question_prior(bench, recs, train)
    return res
