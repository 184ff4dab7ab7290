"""Label-noise scores: how well a code's title matches its document, against other documents.

For a (document, label) pair the similarity is the highest cosine between the code
title's vector and the document's chunk vectors. It is compared with the train
documents that carry the same label through a robust z-score::

    z = (similarity - median) / (1.4826 * MAD)

where median and MAD (median absolute deviation) are over those train documents, and
1.4826 makes the MAD a consistent estimate of the standard deviation of normal data.
A label whose similarity falls far below the usual one for its code has no evidence in
the text and is flagged as noisy.

The z-score is 0, and the label not flagged, when the code has fewer than
``MIN_REFERENCE_DOCUMENTS`` train documents with a similarity, or a MAD of 0. A label
without a title has no similarity and no z-score and is not flagged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

MAD_SCALE = 1.4826
MIN_REFERENCE_DOCUMENTS = 5
TRAIN = "train"

SIMILARITY_SCHEMA = "doc_id string, label string, split string, similarity double"
SCORE_SCHEMA = (
    "doc_id string, label string, split string, similarity double, reference_count int, "
    "reference_median double, reference_mad double, z_score double, noisy boolean, weight float"
)


# ---------------------------------------------------------------- pure functions


def median_and_mad(values: np.ndarray) -> tuple[float, float]:
    """Return the median of ``values`` and their median absolute deviation from it (unscaled)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("median and MAD need at least one value")
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median)))


def robust_z_scores(
    values: np.ndarray, reference: np.ndarray, min_reference: int = MIN_REFERENCE_DOCUMENTS
) -> tuple[np.ndarray, int, float | None, float | None]:
    """Score values by their robust z-score against a reference subset.

    Parameters
    ----------
    values : ndarray, shape (n,)
        Similarities; NaN where there is none.
    reference : ndarray of bool, shape (n,)
        The values that form the reference (train documents). NaN values never count.
    min_reference : int
        Fewer reference values than this give z = 0 for every value.

    Returns
    -------
    tuple of (ndarray, int, float or None, float or None)
        The z-scores, shape (n,), NaN where the value is NaN. Then the reference count,
        and the reference median and MAD, which are None when the reference is empty.
    """
    values = np.asarray(values, dtype=np.float64)
    usable = np.asarray(reference, dtype=bool) & ~np.isnan(values)
    count = int(usable.sum())
    scores = np.where(np.isnan(values), np.nan, 0.0)
    if count == 0:
        return scores, 0, None, None
    median, mad = median_and_mad(values[usable])
    if count >= min_reference and mad > 0.0:
        scores = (values - median) / (MAD_SCALE * mad)
    return scores, count, median, mad


def best_chunk_similarity(chunk_vectors: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """Return, per label, the highest cosine to any chunk.

    Parameters
    ----------
    chunk_vectors : ndarray, shape (chunks, dim)
        Unit-norm chunk vectors of one document, at least one chunk.
    label_vectors : ndarray, shape (labels, dim)
        Unit-norm title vectors.

    Returns
    -------
    ndarray, shape (labels,)
    """
    if chunk_vectors.shape[0] == 0:
        raise ValueError("a document needs at least one chunk vector")
    return (chunk_vectors @ label_vectors.T).max(axis=0)


def score_label(frame: pd.DataFrame, z_threshold: float, noisy_weight: float) -> pd.DataFrame:
    """Add the z-score, noisy flag and weight to the similarities of one label.

    Parameters
    ----------
    frame : DataFrame
        Columns doc_id, label, split and similarity (NaN or None when the label has
        no title), every row of one label.
    """
    similarity = frame["similarity"].astype(float).to_numpy()
    scores, count, median, mad = robust_z_scores(similarity, frame["split"].to_numpy() == TRAIN)
    noisy = ~np.isnan(scores) & (scores < z_threshold)
    return pd.DataFrame(
        {
            "doc_id": frame["doc_id"].to_numpy(),
            "label": frame["label"].to_numpy(),
            "split": frame["split"].to_numpy(),
            "similarity": similarity,
            "reference_count": np.full(len(frame), count, dtype=np.int32),
            "reference_median": np.full(len(frame), np.nan if median is None else median),
            "reference_mad": np.full(len(frame), np.nan if mad is None else mad),
            "z_score": scores,
            "noisy": noisy,
            "weight": np.where(noisy, noisy_weight, 1.0).astype(np.float32),
        }
    )


# ---------------------------------------------------------------- Spark plumbing


def _similarity_batches(
    batches: Iterator[pd.DataFrame], label_names: list[str], label_matrix: np.ndarray
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: rows (doc_id, split, labels, chunk_vectors) to one row per label."""
    row_of = {label: index for index, label in enumerate(label_names)}
    for batch in batches:
        rows = []
        columns = zip(batch["doc_id"], batch["split"], batch["labels"], batch["chunk_vectors"])
        for doc_id, split, labels, chunks in columns:
            labels = [label for label in labels if label is not None]
            known = [label for label in labels if label in row_of]
            similarity = {}
            if known:
                # shape (chunks, dim)
                chunk_matrix = np.stack([np.asarray(chunk, dtype=np.float32) for chunk in chunks])
                title_matrix = label_matrix[[row_of[label] for label in known]]
                scores = best_chunk_similarity(chunk_matrix, title_matrix)
                similarity = dict(zip(known, scores.tolist()))
            rows.extend((doc_id, label, split, similarity.get(label)) for label in labels)
        yield pd.DataFrame(rows, columns=["doc_id", "label", "split", "similarity"])


def label_similarities(
    documents: DataFrame, embeddings: DataFrame, code_vectors: dict[str, np.ndarray]
) -> DataFrame:
    """Compute the similarity of every (document, label) pair.

    Parameters
    ----------
    documents : DataFrame
        Columns doc_id, split and labels.
    embeddings : DataFrame
        Columns doc_id and chunk_vectors.
    code_vectors : dict
        Title vector of each label that has a title. It is shipped with the task
        closure, so it should hold only the labels that the documents use.
    """
    names = sorted(code_vectors)
    matrix = np.zeros((0, 0), dtype=np.float32)  # shape (titles, dim)
    if names:
        matrix = np.stack([np.asarray(code_vectors[name], dtype=np.float32) for name in names])
    rows = documents.select("doc_id", "split", "labels").join(
        embeddings.select("doc_id", "chunk_vectors"), on="doc_id", how="inner"
    )
    return rows.mapInPandas(
        lambda batches: _similarity_batches(batches, names, matrix), schema=SIMILARITY_SCHEMA
    )


def score_labels(similarities: DataFrame, z_threshold: float, noisy_weight: float) -> DataFrame:
    """Score every (document, label) similarity against the train documents of its label."""
    return similarities.groupBy("label").applyInPandas(
        lambda frame: score_label(frame, z_threshold, noisy_weight), schema=SCORE_SCHEMA
    )
