"""Evaluation metrics against hand-worked values and against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from shl.evaluation.metrics import (
    codiesp_map,
    evaluate_groups,
    evaluate_scores,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
    precision_recall_f1,
    rank_labels,
    roc_auc,
)

# Three documents, four labels; worked by hand below.
TARGETS = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
PROBABILITIES = np.array([
    [0.9, 0.2, 0.4, 0.1],
    [0.3, 0.8, 0.6, 0.05],
    [0.7, 0.1, 0.2, 0.5],
])


def test_precision_recall_f1_by_hand():
    predictions = PROBABILITIES >= 0.5
    # Per label TP/FP/FN: l0 2/0/0, l1 1/0/1, l2 0/1/1, l3 0/1/0 -> TP 3, FP 2, FN 2.
    metrics = precision_recall_f1(TARGETS, predictions)
    assert metrics["micro_precision"] == pytest.approx(3 / 5)
    assert metrics["micro_recall"] == pytest.approx(3 / 5)
    assert metrics["micro_f1"] == pytest.approx(3 / 5)
    assert metrics["macro_precision"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert metrics["macro_recall"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)


def test_ranking_metrics_by_hand():
    assert rank_labels(PROBABILITIES).tolist() == [[0, 2, 1, 3], [1, 2, 0, 3], [0, 3, 2, 1]]
    # Top 1: hit, hit, hit. Top 2: 2/2, 1/2, 1/2.
    assert precision_at_k(PROBABILITIES, TARGETS, 1) == pytest.approx(1.0)
    assert precision_at_k(PROBABILITIES, TARGETS, 2) == pytest.approx((1 + 0.5 + 0.5) / 3)
    # AP: doc 0 ranks gold at 1 and 2 -> 1; doc 1 at 1 -> 1; doc 2 at 1 and 4 -> (1 + 2/4) / 2.
    assert mean_average_precision(PROBABILITIES, TARGETS) == pytest.approx((1 + 1 + 0.75) / 3)


def test_tied_scores_rank_and_auc():
    probabilities = np.array([[0.5, 0.5, 0.5]])
    assert rank_labels(probabilities).tolist() == [[0, 1, 2]]
    # Label 2 is gold and ranks third: AP 1/3.
    assert mean_average_precision(probabilities, np.array([[0, 0, 1]])) == pytest.approx(1 / 3)
    # One positive tied with two negatives: AUC 1/2.
    assert roc_auc(probabilities, np.array([[0, 0, 1]]))["micro_auc"] == pytest.approx(0.5)


def test_auc_by_hand_and_undefined_labels():
    # Label 3 has no positive, so macro AUC averages labels 0..2.
    result = roc_auc(PROBABILITIES, TARGETS)
    # Label 0: positives 0.9, 0.7 over negative 0.3 -> 1. Label 1: positives 0.8, 0.1,
    # negative 0.2 -> 1/2. Label 2: positive 0.4, negatives 0.6, 0.2 -> 1/2.
    assert result["macro_auc"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert result["auc_labels"] == 3
    assert np.isnan(roc_auc(np.array([[0.1], [0.2]]), np.array([[0], [0]]))["macro_auc"])


def test_codiesp_map_by_hand():
    ranked = [["A", "B", "C"], ["X", "A", "A", "B"], [], ["Q"]]
    gold = [{"A", "C"}, {"A", "B", "Z"}, {"A"}, set()]
    # doc 0: hits at 1 and 3 -> (1 + 2/3) / 2. doc 1: "A" at 2, the repeat is skipped,
    # "B" at 3 -> (1/2 + 2/3) / 3, "Z" is never retrieved. doc 2: nothing retrieved -> 0.
    # doc 3 has no gold code and is left out.
    expected = ((1 + 2 / 3) / 2 + (1 / 2 + 2 / 3) / 3 + 0) / 3
    assert codiesp_map(ranked, gold) == pytest.approx(expected)
    assert codiesp_map([], []) == 0.0
    with pytest.raises(ValueError, match="2 ranked lists but 1 gold"):
        codiesp_map([[], []], [{"A"}])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    targets = (rng.random((40, 12)) < 0.25).astype(int)
    targets[:, 0] = 1 if seed == 0 else targets[:, 0]  # a label without negatives on one seed
    probabilities = rng.random((40, 12))
    predictions = probabilities >= 0.4
    ours = precision_recall_f1(targets, predictions)
    for average in ("micro", "macro"):
        assert ours[f"{average}_precision"] == pytest.approx(skm.precision_score(targets, predictions, average=average, zero_division=0))
        assert ours[f"{average}_recall"] == pytest.approx(skm.recall_score(targets, predictions, average=average, zero_division=0))
        assert ours[f"{average}_f1"] == pytest.approx(skm.f1_score(targets, predictions, average=average, zero_division=0))
    auc = roc_auc(probabilities, targets)
    assert auc["micro_auc"] == pytest.approx(skm.roc_auc_score(targets.ravel(), probabilities.ravel()))
    defined = [j for j in range(12) if 0 < targets[:, j].sum() < 40]
    assert auc["macro_auc"] == pytest.approx(np.mean([skm.roc_auc_score(targets[:, j], probabilities[:, j]) for j in defined]))
    with_gold = [i for i in range(40) if targets[i].any()]
    assert mean_average_precision(probabilities, targets) == pytest.approx(
        np.mean([skm.average_precision_score(targets[i], probabilities[i]) for i in with_gold])
    )
    # scikit-learn's label ranking AP is the same quantity when no score is tied.
    assert mean_average_precision(probabilities[with_gold], targets[with_gold]) == pytest.approx(
        skm.label_ranking_average_precision_score(targets[with_gold], probabilities[with_gold])
    )
    for k in (1, 3, 5):
        top = np.argsort(-probabilities, axis=1)[:, :k]
        expected = np.mean([targets[i, top[i]].sum() / k for i in range(40)])
        assert precision_at_k(probabilities, targets, k) == pytest.approx(expected)


def test_auc_with_ties_agrees_with_scikit_learn():
    rng = np.random.default_rng(5)
    probabilities = rng.integers(0, 4, size=(30, 5)) / 4.0
    targets = (rng.random((30, 5)) < 0.4).astype(int)
    auc = roc_auc(probabilities, targets)
    assert auc["micro_auc"] == pytest.approx(skm.roc_auc_score(targets.ravel(), probabilities.ravel()))
    assert auc["macro_auc"] == pytest.approx(skm.roc_auc_score(targets, probabilities, average="macro"))


def test_precision_recall_curve_matches_scikit_learn():
    rng = np.random.default_rng(3)
    probabilities = np.round(rng.random((25, 6)), 2)
    targets = (rng.random((25, 6)) < 0.3).astype(int)
    precision, recall = precision_recall_curve(probabilities, targets, max_points=10_000)
    sk_precision, sk_recall, _ = skm.precision_recall_curve(targets.ravel(), probabilities.ravel())
    # scikit-learn lists thresholds ascending and appends the point (1, 0).
    np.testing.assert_allclose(precision, sk_precision[:-1][::-1])
    np.testing.assert_allclose(recall, sk_recall[:-1][::-1])
    thinned_precision, thinned_recall = precision_recall_curve(probabilities, targets, max_points=7)
    assert thinned_precision.size <= 9
    assert thinned_recall[-1] == pytest.approx(1.0)
    assert precision_recall_curve(probabilities, np.zeros_like(targets))[0].size == 0


def test_evaluate_scores_uses_per_label_thresholds():
    metrics = evaluate_scores(PROBABILITIES, TARGETS, np.array([0.95, 0.5, 0.3, 0.6]), k_values=(1, 2))
    # Predictions: l0 none, l1 doc 1, l2 docs 0 and 1, l3 none -> TP 2 (l1 d1, l2 d0), FP 1, FN 3.
    assert metrics["micro_precision"] == pytest.approx(2 / 3)
    assert metrics["micro_recall"] == pytest.approx(2 / 5)
    assert metrics["precision_at_2"] == pytest.approx(2 / 3)
    assert metrics["documents"] == 3
    assert metrics["labels"] == 4
    assert metrics["positives"] == 5
    with pytest.raises(ValueError, match="3 thresholds for 4 labels"):
        evaluate_scores(PROBABILITIES, TARGETS, np.array([0.5, 0.5, 0.5]))


def test_evaluate_groups_rows():
    rows = evaluate_groups(PROBABILITIES, TARGETS, 0.5, {"segment": [0, 0, 1, 1]}, k_values=(1,))
    value = {(r["scope"], r["group"], r["metric"]): r["value"] for r in rows}
    assert value[("overall", -1, "micro_f1")] == pytest.approx(3 / 5)
    assert value[("overall", -1, "precision_at_1")] == pytest.approx(1.0)
    # Segment 0 (labels 0, 1): TP 3, FP 0, FN 1. Segment 1 (labels 2, 3): TP 0, FP 2, FN 1.
    assert value[("segment", 0, "micro_f1")] == pytest.approx(6 / 7)
    assert value[("segment", 1, "micro_f1")] == 0.0
    assert value[("segment", 1, "positives")] == 1
    assert ("segment", 0, "precision_at_1") not in value
    with pytest.raises(ValueError, match="grouping 'band' has 2 entries"):
        evaluate_groups(PROBABILITIES, TARGETS, 0.5, {"band": [0, 1]})
