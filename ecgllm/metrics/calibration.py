"""Per-label Platt scaling of detection scores (P(yes) to each label's verify question), fitted on
the validation split and applied to the test split.

    params = fit_platt(val_scores, val_labels)       # (a, b) or a constant when one class only
    calibrated = apply_platt(test_scores, params)

Why: a model's P(yes) is not a probability of the finding (a backbone may say "yes" to 0.9 of
every verify question), so F1 at the 0.5 threshold and scores pooled over labels (micro AUC) are
read off an arbitrary scale. Per-label calibration is monotone, so each label's own AUC (and the
macro AUC, the headline) is unchanged; F1 at 0.5, micro AUC and the Brier score change.
sklearn's LogisticRegression on the score's logit is Platt's method (a 1-feature logistic fit).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit_platt(scores, labels) -> dict:
    """{"a": slope, "b": intercept} of a logistic fit of labels on logit(scores); when the
    validation labels hold one class only, {"constant": its smoothed rate} ((k + 0.5) / (n + 1))."""
    y = np.asarray(labels, dtype=int)
    s = _logit(scores)
    if len(y) == 0:
        return {"constant": 0.5, "n": 0}
    if y.min() == y.max():
        return {"constant": float((y.sum() + 0.5) / (len(y) + 1)), "n": int(len(y))}
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e4).fit(s[:, None], y)  # nearly unregularised, as Platt's fit
    return {"a": float(m.coef_[0, 0]), "b": float(m.intercept_[0]), "n": int(len(y))}


def apply_platt(scores, params: dict) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if "constant" in params:
        return np.full_like(s, params["constant"])
    return 1 / (1 + np.exp(-(params["a"] * _logit(s) + params["b"])))


def brier(scores, labels) -> float:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    return float(np.mean((s - y) ** 2)) if s.size else float("nan")
