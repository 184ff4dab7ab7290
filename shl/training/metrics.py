"""F1 scores of multi-label predictions and decision thresholds tuned on validation.

Pure NumPy. Targets and probabilities are arrays of shape (documents, labels); a
prediction is positive when its probability is at least the threshold. F1 follows
scikit-learn's ``f1_score`` with ``zero_division=0``: micro-F1 pools the counts of all
entries, macro-F1 averages the per-label F1 over all labels, and a label with neither a
true nor a predicted positive has F1 0.

Thresholds have the layout that ``save_model`` stores and scoring reads:
``{"global": t, "per_segment": {"0": t0, "1": t1, ...}}``. A label uses its segment's
threshold when there is one, else the global one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Candidate thresholds of the tuning: 0.01, 0.02, ..., 0.99.
DEFAULT_CANDIDATES = np.round(np.arange(1, 100) / 100.0, 2)
DEFAULT_THRESHOLD = 0.5


def _check_pair(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    if first.ndim != 2:
        raise ValueError(f"{names[0]} must have shape (documents, labels), got shape {first.shape}")
    if first.shape != second.shape:
        raise ValueError(
            f"{names[0]} shape {first.shape} does not match {names[1]} shape {second.shape}"
        )


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Return 2 TP / (2 TP + FP + FN) element-wise, 0 where the denominator is 0."""
    tp, fp, fn = (np.asarray(value, dtype=np.float64) for value in (tp, fp, fn))
    denominator = 2.0 * tp + fp + fn
    return np.divide(2.0 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def confusion_counts(targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the true positive, false positive and false negative count of every label.

    Parameters
    ----------
    targets, predictions : numpy.ndarray
        0/1 (or boolean) arrays of shape (documents, labels).

    Returns
    -------
    tuple of numpy.ndarray
        TP, FP and FN, each int64 of shape (labels,).
    """
    targets = np.asarray(targets).astype(bool)
    predictions = np.asarray(predictions).astype(bool)
    _check_pair(targets, predictions, ("targets", "predictions"))
    tp = np.sum(targets & predictions, axis=0, dtype=np.int64)
    fp = np.sum(~targets & predictions, axis=0, dtype=np.int64)
    fn = np.sum(targets & ~predictions, axis=0, dtype=np.int64)
    return tp, fp, fn


def micro_macro_f1(targets: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """Return (micro-F1, macro-F1) of 0/1 predictions over all labels."""
    tp, fp, fn = confusion_counts(targets, predictions)
    if tp.size == 0:
        return 0.0, 0.0
    micro = float(_f1(tp.sum(), fp.sum(), fn.sum()))
    macro = float(_f1(tp, fp, fn).mean())
    return micro, macro


def label_thresholds(thresholds: Mapping[str, Any], segments: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return the threshold of every label, shape (labels,), from a thresholds mapping.

    A label takes the ``per_segment`` threshold of its segment when there is one, else
    ``global`` (0.5 when missing).
    """
    global_threshold = float(thresholds.get("global", DEFAULT_THRESHOLD))
    per_segment = {int(key): float(value) for key, value in (thresholds.get("per_segment") or {}).items()}
    return np.array(
        [per_segment.get(int(segment), global_threshold) for segment in np.asarray(segments)],
        dtype=np.float64,
    )


def evaluate_predictions(
    targets: np.ndarray, predictions: np.ndarray, segments: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Compute micro- and macro-F1 overall and per segment.

    Parameters
    ----------
    targets, predictions : numpy.ndarray
        0/1 arrays of shape (documents, labels).
    segments : sequence of int
        Segment id of every label, shape (labels,).

    Returns
    -------
    dict
        ``micro_f1`` and ``macro_f1`` over all labels, and ``segment_<k>_micro_f1`` and
        ``segment_<k>_macro_f1`` over the labels of each segment k that has labels.
    """
    segments = np.asarray(segments)
    tp, fp, fn = confusion_counts(targets, predictions)
    if segments.shape != tp.shape:
        raise ValueError(f"segments has {segments.size} entries but there are {tp.size} labels")
    metrics = {
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())) if tp.size else 0.0,
        "macro_f1": float(_f1(tp, fp, fn).mean()) if tp.size else 0.0,
    }
    for segment in np.unique(segments):
        members = segments == segment
        metrics[f"segment_{int(segment)}_micro_f1"] = float(
            _f1(tp[members].sum(), fp[members].sum(), fn[members].sum())
        )
        metrics[f"segment_{int(segment)}_macro_f1"] = float(_f1(tp[members], fp[members], fn[members]).mean())
    return metrics


def evaluate_probabilities(
    probabilities: np.ndarray,
    targets: np.ndarray,
    segments: Sequence[int] | np.ndarray,
    thresholds: Mapping[str, Any] | float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Apply thresholds to probabilities and return :func:`evaluate_predictions`.

    ``thresholds`` is one number for every label or a mapping as :func:`label_thresholds` reads.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    _check_pair(probabilities, np.asarray(targets), ("probabilities", "targets"))
    if isinstance(thresholds, Mapping):
        cut = label_thresholds(thresholds, segments)[None, :]
    else:
        cut = float(thresholds)
    return evaluate_predictions(targets, probabilities >= cut, segments)


def micro_f1_by_threshold(
    probabilities: np.ndarray, targets: np.ndarray, candidates: np.ndarray = DEFAULT_CANDIDATES
) -> np.ndarray:
    """Return the micro-F1 of every candidate threshold, pooling all given entries.

    The entries are sorted once, so the cost is O(n log n) for n entries, whatever the
    number of candidates.

    Parameters
    ----------
    probabilities, targets : numpy.ndarray
        Arrays of any one shape; targets are 0/1.
    candidates : numpy.ndarray
        Thresholds to score, shape (candidates,).

    Returns
    -------
    numpy.ndarray
        Micro-F1 per candidate, shape (candidates,).
    """
    scores = np.asarray(probabilities, dtype=np.float64).ravel()
    truth = np.asarray(targets).astype(bool).ravel()
    if scores.shape != truth.shape:
        raise ValueError(
            f"probabilities have {scores.size} entries but targets have {truth.size}"
        )
    candidates = np.asarray(candidates, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Positives among the entries with a score below each candidate.
    positives_below = np.concatenate(([0], np.cumsum(truth[order], dtype=np.int64)))
    below = np.searchsorted(sorted_scores, candidates, side="left")
    total_positives = int(positives_below[-1])
    predicted = scores.size - below
    tp = total_positives - positives_below[below]
    fp = predicted - tp
    fn = total_positives - tp
    return _f1(tp, fp, fn)


def tune_threshold(
    probabilities: np.ndarray, targets: np.ndarray, candidates: np.ndarray = DEFAULT_CANDIDATES
) -> tuple[float, float]:
    """Return the candidate threshold with the highest micro-F1, and that F1.

    Ties go to the candidate closest to 0.5, then to the lower one. With no positive
    target and no entry, every candidate scores 0 and 0.5 (or the closest candidate)
    is returned.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    if candidates.ndim != 1 or candidates.size == 0:
        raise ValueError(f"candidates must be a non-empty 1-D array, got shape {candidates.shape}")
    scores = micro_f1_by_threshold(probabilities, targets, candidates)
    best = scores.max()
    tied = np.flatnonzero(np.isclose(scores, best, rtol=0.0, atol=1e-12))
    distance = np.abs(candidates[tied] - DEFAULT_THRESHOLD)
    chosen = tied[np.lexsort((candidates[tied], distance))[0]]
    return float(candidates[chosen]), float(scores[chosen])


def tune_thresholds(
    probabilities: np.ndarray,
    targets: np.ndarray,
    segments: Sequence[int] | np.ndarray,
    candidates: np.ndarray = DEFAULT_CANDIDATES,
) -> dict[str, Any]:
    """Tune one threshold per segment and one global threshold to maximise micro-F1.

    The global threshold maximises micro-F1 over all labels. Each segment's threshold
    maximises micro-F1 over that segment's labels. A segment without a positive target
    in ``targets`` gives no evidence, so it gets no entry and its labels use the global
    threshold.

    Returns
    -------
    dict
        ``{"global": t, "per_segment": {"<k>": t_k, ...}}``, keys as strings so the
        mapping survives JSON.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    _check_pair(probabilities, targets, ("probabilities", "targets"))
    segments = np.asarray(segments)
    if segments.shape != (probabilities.shape[1],):
        raise ValueError(
            f"segments has {segments.size} entries but there are {probabilities.shape[1]} labels"
        )
    global_threshold, _ = tune_threshold(probabilities, targets, candidates)
    per_segment: dict[str, float] = {}
    for segment in np.unique(segments):
        members = segments == segment
        if not targets[:, members].any():
            continue
        threshold, _ = tune_threshold(probabilities[:, members], targets[:, members], candidates)
        per_segment[str(int(segment))] = threshold
    return {"global": global_threshold, "per_segment": per_segment}
