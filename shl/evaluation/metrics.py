"""Evaluation metrics of multi-label coding, as pure NumPy functions.

Arrays have shape (documents, labels): ``targets`` is 0/1, ``probabilities`` are the
model's scores and ``predictions`` are 0/1 decisions. Conventions follow scikit-learn
with ``zero_division=0`` where it has the same metric:

- micro averages pool the counts of all entries. Macro averages take the mean of the
  per-label values over every label, and a label with nothing to count scores 0;
- rankings sort a document's labels by descending probability, ties broken by label
  column, so results do not depend on the sort algorithm;
- AUC is the Mann-Whitney statistic with tied scores counted one half. Macro AUC
  averages the labels that have both a positive and a negative entry, since AUC is
  undefined for the others.

:func:`codiesp_map` scores ranked code lists per document against all gold codes of the
document, the way the CodiEsp shared task's ``trec_eval``-based script does, so codes
outside the model's label space count as missed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from shl.training.metrics import confusion_counts


def _ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _check_scores(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).astype(bool)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must have shape (documents, labels), got shape {probabilities.shape}")
    if probabilities.shape != targets.shape:
        raise ValueError(f"probabilities shape {probabilities.shape} does not match targets shape {targets.shape}")
    return probabilities, targets


def precision_recall_f1(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Return micro and macro precision, recall and F1 of 0/1 predictions.

    Returns
    -------
    dict
        ``micro_precision``, ``micro_recall``, ``micro_f1``, ``macro_precision``,
        ``macro_recall`` and ``macro_f1``; all 0 when there is no label.
    """
    tp, fp, fn = confusion_counts(targets, predictions)
    if tp.size == 0:
        return {f"{average}_{name}": 0.0 for average in ("micro", "macro") for name in ("precision", "recall", "f1")}
    tp_sum, fp_sum, fn_sum = tp.sum(), fp.sum(), fn.sum()
    return {
        "micro_precision": float(_ratio(tp_sum, tp_sum + fp_sum)),
        "micro_recall": float(_ratio(tp_sum, tp_sum + fn_sum)),
        "micro_f1": float(_ratio(2 * tp_sum, 2 * tp_sum + fp_sum + fn_sum)),
        "macro_precision": float(_ratio(tp, tp + fp).mean()),
        "macro_recall": float(_ratio(tp, tp + fn).mean()),
        "macro_f1": float(_ratio(2 * tp, 2 * tp + fp + fn).mean()),
    }


def rank_labels(probabilities: np.ndarray) -> np.ndarray:
    """Return each document's label columns by descending probability, ties by column.

    Returns
    -------
    numpy.ndarray
        int64 array of shape (documents, labels); row i lists the columns of document i
        from the most to the least probable.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return np.argsort(-probabilities, axis=1, kind="stable")


def precision_at_k(probabilities: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Return the mean over documents of the share of gold labels among the top k.

    Every document counts, one without gold labels scoring 0. With fewer than k labels,
    the divisor is still k, as in the coding literature.
    """
    probabilities, targets = _check_scores(probabilities, targets)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if probabilities.shape[0] == 0:
        return 0.0
    top = rank_labels(probabilities)[:, :k]
    hits = np.take_along_axis(targets, top, axis=1).sum(axis=1)
    return float(np.mean(hits / k))


def _average_precision_of_ranking(relevant_in_order: np.ndarray, relevant_total: int) -> float:
    """AP of one ranked list: mean over the relevant items of the precision at their rank."""
    if relevant_total == 0:
        return 0.0
    ranks = np.flatnonzero(relevant_in_order) + 1
    precision_at_hits = np.arange(1, ranks.size + 1) / ranks
    return float(precision_at_hits.sum() / relevant_total)


def mean_average_precision(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Return the mean over documents with a gold label of the average precision of
    the document's label ranking.

    Average precision of a document is the mean, over its gold labels, of the precision
    of the ranking cut at that label. Documents without a gold label are left out; 0
    when no document has one.
    """
    probabilities, targets = _check_scores(probabilities, targets)
    order = rank_labels(probabilities)
    scores = [
        _average_precision_of_ranking(targets[row, order[row]], int(targets[row].sum()))
        for row in range(targets.shape[0])
        if targets[row].any()
    ]
    return float(np.mean(scores)) if scores else 0.0


def codiesp_map(ranked_codes: Sequence[Sequence[str]], gold_codes: Sequence[Collection[str]]) -> float:
    """Return CodiEsp mean average precision of ranked code lists.

    Parameters
    ----------
    ranked_codes : sequence of sequence of str
        Per document, the predicted codes from the most to the least probable. A code
        repeated later in a list counts at its first rank only.
    gold_codes : sequence of collection of str
        Per document, every gold code of the document, including codes the model cannot
        predict; such codes lower the document's average precision.

    Returns
    -------
    float
        The mean over documents with at least one gold code of
        (sum of the precision at the rank of each retrieved gold code) / (gold codes).
        Documents without gold codes are not in the shared task's gold standard and
        are left out; 0 when there is none.
    """
    if len(ranked_codes) != len(gold_codes):
        raise ValueError(f"{len(ranked_codes)} ranked lists but {len(gold_codes)} gold code sets")
    scores = []
    for ranking, gold in zip(ranked_codes, gold_codes):
        gold = set(gold)
        if not gold:
            continue
        seen: set[str] = set()
        relevant = []
        for code in ranking:
            if code in seen:
                continue
            seen.add(code)
            relevant.append(code in gold)
        scores.append(_average_precision_of_ranking(np.asarray(relevant, dtype=bool), len(gold)))
    return float(np.mean(scores)) if scores else 0.0


def _auc_of(scores: np.ndarray, truth: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN without both classes."""
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Average rank of each run of equal scores (1-based).
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = ranks[truth].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def roc_auc(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Return micro and macro ROC AUC and how many labels macro AUC averaged.

    Returns
    -------
    dict
        ``micro_auc`` over all entries, ``macro_auc`` over the labels with both classes
        present, and ``auc_labels``, the number of such labels. An undefined AUC is NaN.
    """
    probabilities, targets = _check_scores(probabilities, targets)
    micro = _auc_of(probabilities.ravel(), targets.ravel())
    per_label = np.array([_auc_of(probabilities[:, j], targets[:, j]) for j in range(targets.shape[1])])
    defined = per_label[~np.isnan(per_label)]
    return {
        "micro_auc": micro,
        "macro_auc": float(defined.mean()) if defined.size else float("nan"),
        "auc_labels": float(defined.size),
    }


def precision_recall_curve(
    probabilities: np.ndarray, targets: np.ndarray, max_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Return the micro precision-recall curve, one point per distinct score.

    A point is the precision and recall of predicting every entry with a score at least
    that high. Points run from the highest threshold to the lowest and are thinned to
    about ``max_points``, spread evenly over recall, the first and last always kept,
    which is enough to plot.

    Returns
    -------
    tuple of numpy.ndarray
        (precision, recall), each of shape (points,); empty without a positive target.
    """
    probabilities, targets = _check_scores(probabilities, targets)
    scores = probabilities.ravel()
    truth = targets.ravel()
    positives = int(truth.sum())
    if positives == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = np.cumsum(truth[order])
    # Index of the last entry of each run of equal scores.
    last = np.concatenate((np.flatnonzero(np.diff(sorted_scores)), [scores.size - 1]))
    tp = hits[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / positives
    if precision.size > max_points:
        # Recall never decreases along the points, so searching evenly spaced recall
        # levels keeps the curve's shape where the points are sparse and where dense.
        levels = np.linspace(recall[0], recall[-1], max_points - 1)
        keep = np.unique(np.concatenate(([0], np.searchsorted(recall, levels, side="left"), [recall.size - 1])))
        precision, recall = precision[keep], recall[keep]
    return precision, recall


def evaluate_scores(
    probabilities: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray | float,
    k_values: Iterable[int] = (),
) -> dict[str, float]:
    """Return every metric of one set of labels.

    Parameters
    ----------
    probabilities, targets : numpy.ndarray
        Shape (documents, labels).
    thresholds : numpy.ndarray or float
        The decision threshold of every label, shape (labels,), or one for all.
    k_values : iterable of int
        The k of each ``precision_at_<k>``.

    Returns
    -------
    dict
        :func:`precision_recall_f1` of the thresholded probabilities, ``precision_at_<k>``,
        ``map``, :func:`roc_auc`, and the counts ``documents``, ``labels`` and
        ``positives`` (gold entries).
    """
    probabilities, targets = _check_scores(probabilities, targets)
    cut = np.asarray(thresholds, dtype=np.float64)
    if cut.ndim == 1:
        if cut.shape[0] != probabilities.shape[1]:
            raise ValueError(f"{cut.shape[0]} thresholds for {probabilities.shape[1]} labels")
        cut = cut[None, :]
    metrics = precision_recall_f1(targets, probabilities >= cut)
    for k in k_values:
        metrics[f"precision_at_{k}"] = precision_at_k(probabilities, targets, k)
    metrics["map"] = mean_average_precision(probabilities, targets)
    metrics.update(roc_auc(probabilities, targets))
    metrics["documents"] = float(targets.shape[0])
    metrics["labels"] = float(targets.shape[1])
    metrics["positives"] = float(targets.sum())
    return metrics


def evaluate_groups(
    probabilities: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray | float,
    groupings: Mapping[str, Sequence[int] | np.ndarray],
    k_values: Iterable[int] = (),
) -> list[dict[str, object]]:
    """Return metric rows overall and for each group of labels of each grouping.

    Parameters
    ----------
    groupings : mapping of str to sequence of int
        A grouping name (such as ``segment`` or ``band``) to the group id of every label,
        shape (labels,).

    Returns
    -------
    list of dict
        One row per (scope, group, metric): ``scope`` is ``overall`` or a grouping name,
        ``group`` the group id (-1 for overall), ``metric`` and ``value``. P@k is
        computed overall only: the top k of a document's labels are not defined within
        a group.
    """
    probabilities, targets = _check_scores(probabilities, targets)
    k_values = tuple(k_values)
    cut = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (probabilities.shape[1],))
    rows: list[dict[str, object]] = []

    def add(scope: str, group: int, metrics: Mapping[str, float]) -> None:
        rows.extend({"scope": scope, "group": group, "metric": name, "value": float(value)} for name, value in metrics.items())

    add("overall", -1, evaluate_scores(probabilities, targets, cut, k_values))
    for scope, ids in groupings.items():
        ids = np.asarray(ids)
        if ids.shape != (probabilities.shape[1],):
            raise ValueError(f"grouping {scope!r} has {ids.size} entries but there are {probabilities.shape[1]} labels")
        for group in np.unique(ids):
            members = ids == group
            add(scope, int(group), evaluate_scores(probabilities[:, members], targets[:, members], cut[members]))
    return rows
