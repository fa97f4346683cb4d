"""How well a factuality score agrees with human labels: the statistics of ``python -m conseq.metaeval``.

Every scorer is oriented so that a higher score means "more consistent"; label 1 = consistent.

- **ROC-AUC** (scikit-learn) of the score for label 1, on a dataset's test cut, with a stratified percentile
  bootstrap interval (positives and negatives resampled apart, so every resample has both classes, as pROC's
  default).
- **Balanced accuracy**, SummaC's protocol (``summac/utils_scorer.py``, ``choose_best_threshold``): candidate
  thresholds are the percentiles 0, 0.2, …, 99.8 of the tuning scores; a row is predicted consistent iff its score
  is *above* the threshold; the threshold with the best balanced accuracy wins (ties: the highest). It is tuned on a
  dataset's val cut and applied to its test cut; a dataset without a val cut (or with one class there) is tuned on
  its test rows themselves, and the figure is marked ``optimistic``.
- **Pearson / Spearman** (scipy) of the score against a continuous human score, on the test rows that have one.
- **Null scores** (a scorer with nothing to judge: no QA pair kept, no entity in the summary) are counted per
  dataset and cut. ``nulls="count"`` leaves them out of the statistics (they are reported beside them);
  ``nulls="lowest"`` ranks them below every scored row, charging the scorer for abstaining.

A dataset's rows are its test cut; rows without a cut count as test rows; a dataset with val rows only is
evaluated (optimistically) on those. The pooled row takes every dataset's test rows together for n, the share
consistent, ROC-AUC and correlations, and averages the balanced accuracies of the datasets that have one (both
classes among their scored test rows), as SummaC and LLM-AggreFact report their overall figure; it is optimistic if
any of those is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

NULLS = ("count", "lowest")
# SummaC's threshold grid: percentiles of the tuning scores.
PERCENTILES = np.arange(0, 100, 0.2)


def check_protocol(prefix: str, *, nulls: str, resamples: int, confidence: float) -> None:
    """Fail before any scoring on a protocol knob that the statistics would reject at the end."""
    if nulls not in NULLS:
        raise ValueError(f"{prefix}nulls={nulls!r}: choose one of {', '.join(NULLS)}")
    if resamples < 0:
        raise ValueError(f"{prefix}bootstrap={resamples}: give a number of resamples >= 0 (0: no interval)")
    if not 0 < confidence < 1:
        raise ValueError(f"{prefix}confidence={confidence}: give a level between 0 and 1, e.g. 0.95")


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def choose_threshold(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """SummaC's ``choose_best_threshold``: (threshold, its balanced accuracy) over the percentile grid of ``scores``,
    predicting consistent iff score > threshold; ties go to the later (higher) threshold."""
    from sklearn.metrics import balanced_accuracy_score

    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    best, best_threshold = 0.0, 0.0
    for threshold in np.percentile(s, PERCENTILES):
        value = balanced_accuracy_score(y, s > threshold)
        if value >= best:
            best, best_threshold = value, float(threshold)
    return best_threshold, float(best)


def balanced_accuracy(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(np.asarray(labels, dtype=int), np.asarray(scores, dtype=float) > threshold))


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)))


def bootstrap_auc(
    labels: Sequence[int], scores: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Stratified percentile bootstrap interval of the ROC-AUC; None when ``resamples`` is 0."""
    if resamples <= 0:
        return None
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    labels_b = np.r_[np.ones(len(pos), dtype=int), np.zeros(len(neg), dtype=int)]
    aucs = [roc_auc(labels_b, np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(resamples)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


def correlations(scores: Sequence[float], human: Sequence[float]) -> dict[str, Any]:
    """Pearson and Spearman of ``scores`` against human scores (None with fewer than 3 pairs or a constant side)."""
    from scipy.stats import pearsonr, spearmanr

    out: dict[str, Any] = {"n_human": len(scores), "pearson": None, "spearman": None}
    if len(scores) >= 3 and len(set(scores)) > 1 and len(set(human)) > 1:
        out["pearson"] = float(pearsonr(scores, human).statistic)
        out["spearman"] = float(spearmanr(scores, human).statistic)
    return out


def _with_nulls(values: list[float | None], nulls: str) -> list[float | None]:
    if nulls not in NULLS:
        raise ValueError(f"nulls={nulls!r}: choose one of {', '.join(NULLS)}")
    if nulls == "count":
        return values
    scored = [v for v in values if not is_null(v)]
    floor = (min(scored) - 1.0) if scored else 0.0
    return [floor if is_null(v) else v for v in values]


def dataset_stats(
    rows: Sequence[dict],
    values: Sequence[float | None],
    *,
    nulls: str = "count",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tune: bool = True,
) -> dict[str, Any]:
    """The statistics of one dataset's rows (``label``, ``cut``, ``human_score``) and one scorer's values
    (``tune=False``: no balanced accuracy)."""
    if len(rows) != len(values):
        raise ValueError(f"{len(rows)} rows but {len(values)} values")
    null_flags = [is_null(v) for v in values]
    used = _with_nulls(list(values), nulls)
    val = [i for i, r in enumerate(rows) if r["cut"] == "val"]
    test = [i for i, r in enumerate(rows) if r["cut"] != "val"] or val
    out: dict[str, Any] = {
        "n": len(test),
        "n_val": len(val) if test is not val else 0,
        "null": sum(null_flags[i] for i in test),
        "null_val": sum(null_flags[i] for i in val) if test is not val else 0,
        "consistent": sum(rows[i]["label"] for i in test) / len(test) if test else None,
        "auc": None,
        "auc_ci": None,
        "balanced_accuracy": None,
        "balanced_accuracy_val": None,
        "threshold": None,
        "tuned_on": None,
        "optimistic": None,
    }
    scored = [i for i in test if not is_null(used[i])]
    labels, scores = [rows[i]["label"] for i in scored], [float(used[i]) for i in scored]
    out["n_scored"] = len(scored)
    both = len(set(labels)) == 2
    if both:
        out["auc"] = roc_auc(labels, scores)
        out["auc_ci"] = bootstrap_auc(labels, scores, resamples=resamples, confidence=confidence, seed=seed)
    if both and tune:
        tune_on = [i for i in val if not is_null(used[i])] if test is not val else []
        if len({rows[i]["label"] for i in tune_on}) == 2:
            threshold, out["balanced_accuracy_val"] = choose_threshold(
                [rows[i]["label"] for i in tune_on], [float(used[i]) for i in tune_on]
            )
            out["tuned_on"], out["optimistic"] = "val", False
        else:  # no val cut (or one class there): tuned on the test rows themselves
            threshold, _ = choose_threshold(labels, scores)
            out["tuned_on"], out["optimistic"] = "test", True
        out["threshold"] = threshold
        out["balanced_accuracy"] = balanced_accuracy(labels, scores, threshold)
    human = [i for i in scored if rows[i].get("human_score") is not None]
    out.update(correlations([float(used[i]) for i in human], [float(rows[i]["human_score"]) for i in human]))
    return out


def meta_evaluate(
    rows: Sequence[dict],
    values: Sequence[float | None],
    *,
    nulls: str = "count",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"datasets": {name: dataset_stats}, "pooled": …}`` for one scorer's values over benchmark rows."""
    if len(rows) != len(values):
        raise ValueError(f"{len(rows)} rows but {len(values)} values")
    knobs = {"nulls": nulls, "resamples": resamples, "confidence": confidence, "seed": seed}
    by_dataset: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_dataset.setdefault(row["dataset"], []).append(i)
    datasets = {
        name: dataset_stats([rows[i] for i in idx], [values[i] for i in idx], **knobs)
        for name, idx in by_dataset.items()
    }
    # pooled: every dataset's evaluation rows (its test cut, or its val rows where it has no test cut)
    pooled_idx = []
    for idx in by_dataset.values():
        test = [i for i in idx if rows[i]["cut"] != "val"]
        pooled_idx += test or idx
    pooled_rows = [{**rows[i], "cut": "test"} for i in pooled_idx]
    pooled = dataset_stats(pooled_rows, [values[i] for i in pooled_idx], **knobs, tune=False)
    pooled.update(
        n_val=sum(d["n_val"] for d in datasets.values()), null_val=sum(d["null_val"] for d in datasets.values())
    )
    with_accuracy = [d for d in datasets.values() if d["balanced_accuracy"] is not None]
    pooled["balanced_accuracy_datasets"] = len(with_accuracy)
    if with_accuracy:
        pooled["balanced_accuracy"] = sum(d["balanced_accuracy"] for d in with_accuracy) / len(with_accuracy)
        pooled["optimistic"] = any(d["optimistic"] for d in with_accuracy)
        pooled["tuned_on"] = "mean over datasets"
    return {"datasets": datasets, "pooled": pooled}
