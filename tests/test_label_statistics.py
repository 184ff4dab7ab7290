"""Tests for the label statistics: a hand-worked example and a brute-force cross-check."""

import itertools

import numpy as np
import pandas as pd
import pytest

from shl.labels.statistics import (
    COOCCURRENCE_COLUMNS,
    COUNT_COLUMNS,
    compute_cooccurrence,
    compute_label_counts,
    compute_label_statistics,
    gini_coefficient,
    summarise_imbalance,
    top_share,
)

# Four documents.  Counts: A 3 (docs 0, 1, 2), B 2 (0, 2), C 2 (1, 2), D 1 (3).
# Pairs: A-B in docs 0 and 2, A-C in docs 1 and 2, B-C in doc 2.  D co-occurs with nothing.
DOCUMENTS = [["A", "B"], ["C", "A"], ["A", "B", "C"], ["D"]]


def test_counts_hand_worked():
    table = compute_label_counts(DOCUMENTS)
    assert list(table.columns) == COUNT_COLUMNS
    assert table["code"].tolist() == ["A", "B", "C", "D"]
    assert table["count"].tolist() == [3, 2, 2, 1]
    # prevalence = count / 4 documents
    assert table["prevalence"].tolist() == [0.75, 0.5, 0.5, 0.25]
    # B and C tie on 2 and are ranked by code.
    assert table["rank"].tolist() == [1, 2, 3, 4]
    # rho 4: 3 / 1 = 3 keeps all four codes in band 0.
    assert table["band"].tolist() == [0, 0, 0, 0]
    assert table["count"].dtype == np.int64
    assert table["rank"].dtype == np.int64


def test_counts_band_with_smaller_rho():
    # rho 2: 3 / 2 = 1.5 stays in band 0, 3 / 1 = 3 > 2 puts D in band 1.
    table = compute_label_counts(DOCUMENTS, rho=2)
    assert table["band"].tolist() == [0, 0, 0, 1]


def test_counts_repeated_code_counts_once():
    # "A" twice in one document is one document, and None is an empty document.
    table = compute_label_counts([["A", "A"], None, ["B"]])
    assert table["code"].tolist() == ["A", "B"]
    assert table["count"].tolist() == [1, 1]
    assert table["prevalence"].tolist() == pytest.approx([1 / 3, 1 / 3])


def test_cooccurrence_hand_worked():
    table = compute_cooccurrence(DOCUMENTS)
    assert list(table.columns) == COOCCURRENCE_COLUMNS
    assert list(zip(table["code_a"], table["code_b"])) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert table["n_ab"].tolist() == [2, 2, 1]
    assert table["n_a"].tolist() == [3, 3, 2]
    assert table["n_b"].tolist() == [2, 2, 2]
    # A-B: 2 / (3 + 2 - 2) = 2/3.  A-C the same.  B-C: 1 / (2 + 2 - 1) = 1/3.
    assert table["jaccard"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    # P(B|A) = 2/3, P(C|A) = 2/3, P(C|B) = 1/2.
    assert table["p_b_given_a"].tolist() == pytest.approx([2 / 3, 2 / 3, 0.5])
    # P(A|B) = 1, P(A|C) = 1, P(B|C) = 1/2.
    assert table["p_a_given_b"].tolist() == pytest.approx([1.0, 1.0, 0.5])
    # lift A-B: 2 * 4 / (3 * 2) = 4/3.  A-C the same.  B-C: 1 * 4 / (2 * 2) = 1.
    assert table["lift"].tolist() == pytest.approx([4 / 3, 4 / 3, 1.0])


def test_cooccurrence_empty_when_no_pairs():
    table = compute_cooccurrence([["A"], ["B"]])
    assert list(table.columns) == COOCCURRENCE_COLUMNS
    assert len(table) == 0


def test_imbalance_hand_worked():
    summary = summarise_imbalance(DOCUMENTS)
    assert summary["n_documents"] == 4
    assert summary["n_labels"] == 4
    assert summary["n_label_occurrences"] == 8
    # (2 + 2 + 3 + 1) / 4
    assert summary["mean_labels_per_document"] == 2.0
    # 3 / 1
    assert summary["imbalance_ratio"] == 3.0
    # Sorted 1, 2, 2, 3, n 4, sum 8.  Weights 2i - n - 1 = -3, -1, 1, 3, so
    # (-3*1 - 1*2 + 1*2 + 3*3) / (4 * 8) = 6 / 32.
    assert summary["gini"] == pytest.approx(0.1875)
    # ceil(0.04) = ceil(0.4) = 1 code, so both shares are A's 3 / 8.
    assert summary["top_1pct_share"] == pytest.approx(0.375)
    assert summary["top_10pct_share"] == pytest.approx(0.375)
    assert summary["rare_threshold"] == 10
    assert summary["n_rare_labels"] == 4


def test_imbalance_rare_threshold():
    # Counts 3, 2, 2, 1: below 2 is only D, below 3 are B, C and D.
    assert summarise_imbalance(DOCUMENTS, rare_threshold=2)["n_rare_labels"] == 1
    assert summarise_imbalance(DOCUMENTS, rare_threshold=3)["n_rare_labels"] == 3


def test_label_statistics_matches_separate_calls():
    statistics = compute_label_statistics(DOCUMENTS, rho=2)
    pd.testing.assert_frame_equal(statistics.counts, compute_label_counts(DOCUMENTS, rho=2))
    pd.testing.assert_frame_equal(statistics.cooccurrence, compute_cooccurrence(DOCUMENTS))
    assert statistics.imbalance == summarise_imbalance(DOCUMENTS)
    assert statistics.label_counts().to_dict() == {"A": 3, "B": 2, "C": 2, "D": 1}


# --------------------------------------------------------------------------- Gini and top share


def test_gini_equal_counts_is_zero():
    assert gini_coefficient([5, 5, 5, 5]) == 0.0
    assert gini_coefficient([7]) == 0.0


def test_gini_one_holder():
    # Sorted 0, 0, 0, 4: only the last weight 2*4 - 4 - 1 = 3 counts, 3 * 4 / (4 * 4) = 0.75,
    # which is the maximum (n - 1) / n for four labels.
    assert gini_coefficient([0, 4, 0, 0]) == pytest.approx(0.75)


def test_gini_matches_mean_difference_formula():
    # Gini = sum_i sum_j |x_i - x_j| / (2 n^2 mean), the textbook definition.
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 100, size=50)
    differences = np.abs(counts[:, None] - counts[None, :]).sum()
    expected = differences / (2 * len(counts) ** 2 * counts.mean())
    assert gini_coefficient(counts) == pytest.approx(expected)


def test_top_share_group_size_rounds_up():
    # 11 codes with counts 11, 10, ..., 1 (sum 66).  Top 10%: ceil(1.1) = 2 codes,
    # (11 + 10) / 66.  Top 1%: ceil(0.11) = 1 code, 11 / 66.
    counts = list(range(1, 12))
    assert top_share(counts, 10) == pytest.approx(21 / 66)
    assert top_share(counts, 1) == pytest.approx(11 / 66)


def test_top_share_exact_multiple_not_rounded_up():
    # 300 codes: 1% is exactly 3 codes, 10% exactly 30.
    counts = [1] * 300
    assert top_share(counts, 1) == pytest.approx(3 / 300)
    assert top_share(counts, 10) == pytest.approx(30 / 300)


@pytest.mark.parametrize("percent", [0, -1, 101])
def test_top_share_rejects_bad_percent(percent):
    with pytest.raises(ValueError, match=f"got {percent}"):
        top_share([1, 2], percent)


# --------------------------------------------------------------------------- validation


def test_statistics_reject_string_label_set():
    with pytest.raises(TypeError, match="document 1 has label set 'AB'"):
        compute_label_counts([["A"], "AB"])


def test_statistics_reject_non_string_code():
    with pytest.raises(TypeError, match="document 0 contains code 3"):
        compute_cooccurrence([[3, "A"]])


def test_statistics_reject_no_documents():
    with pytest.raises(ValueError, match="at least one document"):
        compute_label_counts([])


def test_imbalance_rejects_no_labels():
    with pytest.raises(ValueError, match="no labels"):
        summarise_imbalance([[], None])


def test_counts_reject_bad_rho():
    with pytest.raises(ValueError, match="got 1"):
        compute_label_counts(DOCUMENTS, rho=1)


# --------------------------------------------------------------------------- random cross-checks


def _random_documents(seed):
    rng = np.random.default_rng(seed)
    codes = [f"K{index:02d}" for index in range(30)]
    weights = 1.0 / np.arange(1, 31) ** 1.2
    weights /= weights.sum()
    documents = []
    for _ in range(int(rng.integers(20, 80))):
        size = int(rng.integers(0, 7))
        documents.append(list(rng.choice(codes, size=size, replace=True, p=weights)))
    # Input order of the series must not matter beyond the documents themselves.
    return pd.Series(documents)


@pytest.mark.parametrize("seed", range(10))
def test_cooccurrence_matches_brute_force(seed):
    documents = _random_documents(seed)
    label_sets = [set(labels) for labels in documents]
    n_documents = len(label_sets)
    codes = sorted(set().union(*label_sets))
    count = {code: sum(code in labels for labels in label_sets) for code in codes}

    expected_rows = []
    for code_a, code_b in itertools.combinations(codes, 2):
        n_ab = sum(code_a in labels and code_b in labels for labels in label_sets)
        if n_ab == 0:
            continue
        n_a, n_b = count[code_a], count[code_b]
        expected_rows.append(
            {
                "code_a": code_a,
                "code_b": code_b,
                "n_ab": n_ab,
                "n_a": n_a,
                "n_b": n_b,
                "jaccard": n_ab / (n_a + n_b - n_ab),
                "p_b_given_a": n_ab / n_a,
                "p_a_given_b": n_ab / n_b,
                "lift": n_ab * n_documents / (n_a * n_b),
            }
        )
    expected = pd.DataFrame(expected_rows, columns=COOCCURRENCE_COLUMNS)
    for column in ["n_ab", "n_a", "n_b"]:
        expected[column] = expected[column].astype(np.int64)

    actual = compute_cooccurrence(documents)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=True)


@pytest.mark.parametrize("seed", range(10))
def test_counts_match_brute_force(seed):
    documents = _random_documents(seed)
    label_sets = [set(labels) for labels in documents]
    codes = sorted(set().union(*label_sets))
    count = {code: sum(code in labels for labels in label_sets) for code in codes}
    expected_order = sorted(codes, key=lambda code: (-count[code], code))

    table = compute_label_counts(documents)
    assert table["code"].tolist() == expected_order
    assert table["count"].tolist() == [count[code] for code in expected_order]
    assert table["rank"].tolist() == list(range(1, len(codes) + 1))
    assert table["prevalence"].tolist() == pytest.approx(
        [count[code] / len(label_sets) for code in expected_order]
    )

    summary = summarise_imbalance(documents)
    values = np.array(list(count.values()))
    assert summary["mean_labels_per_document"] == pytest.approx(values.sum() / len(label_sets))
    assert summary["imbalance_ratio"] == values.max() / values.min()
    assert summary["n_rare_labels"] == int((values < 10).sum())
