"""Label statistics of a train split: counts, co-occurrence and imbalance.

All functions take the label set of each document, one iterable of code
strings per document. They return plain pandas objects with fixed columns and
a deterministic row order, so a Spark implementation can be compared with them
row by row. A code listed twice in one document counts once, and a
document given as ``None`` or an empty iterable has no labels but still counts
towards the number of documents N.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy import sparse

from shl.labels.segmentation import DEFAULT_RHO, _validate_rho, assign_frequency_bands

logger = logging.getLogger(__name__)

COUNT_COLUMNS = ["code", "count", "prevalence", "rank", "band"]
COOCCURRENCE_COLUMNS = [
    "code_a",
    "code_b",
    "n_ab",
    "n_a",
    "n_b",
    "jaccard",
    "p_b_given_a",
    "p_a_given_b",
    "lift",
]
DEFAULT_RARE_THRESHOLD = 10


@dataclass(frozen=True)
class LabelStatistics:
    """Label counts, pair co-occurrence and imbalance summary of one split.

    Attributes
    ----------
    counts : pandas.DataFrame
        Output of ``compute_label_counts``.
    cooccurrence : pandas.DataFrame
        Output of ``compute_cooccurrence``.
    imbalance : dict
        Output of ``summarise_imbalance``.
    """

    counts: pd.DataFrame
    cooccurrence: pd.DataFrame
    imbalance: dict

    def label_counts(self) -> pd.Series:
        """Return the count per code as a Series indexed by code, sorted by code."""
        return self.counts.set_index("code")["count"].sort_index()


def _collect_label_sets(label_sets: Iterable) -> list[frozenset]:
    """Validate the label sets and return one frozenset of codes per document."""
    if isinstance(label_sets, (str, bytes)):
        raise TypeError("label_sets must be one iterable of codes per document, not a string")
    documents = []
    for position, labels in enumerate(label_sets):
        if labels is None:
            documents.append(frozenset())
            continue
        if isinstance(labels, (str, bytes)):
            raise TypeError(
                f"document {position} has label set {labels!r}, a string. "
                "Give an iterable of codes such as ['I10', 'E11.9']"
            )
        codes = frozenset(labels)
        for code in codes:
            if not isinstance(code, str):
                raise TypeError(
                    f"document {position} contains code {code!r} of type "
                    f"{type(code).__name__}, but codes must be strings"
                )
        documents.append(codes)
    if not documents:
        raise ValueError("label_sets is empty, but at least one document is needed")
    return documents


def _incidence_matrix(documents: list[frozenset]) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Return the sorted codes and the binary document-by-code matrix."""
    codes = np.array(sorted(set().union(*documents)), dtype=object)
    code_index = {code: position for position, code in enumerate(codes)}
    indptr = np.zeros(len(documents) + 1, dtype=np.int64)
    indices = []
    for row, labels in enumerate(documents):
        indices.extend(sorted(code_index[code] for code in labels))
        indptr[row + 1] = len(indices)
    data = np.ones(len(indices), dtype=np.int64)
    matrix = sparse.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), indptr), shape=(len(documents), len(codes))
    )
    return codes, matrix


def _count_table(codes: np.ndarray, counts: np.ndarray, n_documents: int, rho: float) -> pd.DataFrame:
    rho = _validate_rho(rho)
    if len(codes) == 0:
        empty = {
            "code": np.array([], dtype=object),
            "count": np.array([], dtype=np.int64),
            "prevalence": np.array([], dtype=np.float64),
            "rank": np.array([], dtype=np.int64),
            "band": np.array([], dtype=np.int64),
        }
        return pd.DataFrame(empty, columns=COUNT_COLUMNS)
    bands = assign_frequency_bands((list(codes), counts), rho).to_numpy()
    order = np.lexsort((np.arange(len(codes)), -counts))
    return pd.DataFrame(
        {
            "code": codes[order],
            "count": counts[order].astype(np.int64),
            "prevalence": counts[order] / float(n_documents),
            "rank": np.arange(1, len(codes) + 1, dtype=np.int64),
            "band": bands[order],
        },
        columns=COUNT_COLUMNS,
    )


def compute_label_counts(label_sets: Iterable, rho: float = DEFAULT_RHO) -> pd.DataFrame:
    """Count the documents per code and rank the codes by frequency.

    Parameters
    ----------
    label_sets : iterable of iterables of str
        Label set per document of the split, for example a list of lists or a
        pandas Series of arrays. ``None`` is an empty label set.
    rho : float, default 4
        Band ratio for the ``band`` column, see
        ``shl.labels.segmentation.assign_frequency_bands``.

    Returns
    -------
    pandas.DataFrame
        One row per code that occurs at least once, with columns

        - ``code`` (str)
        - ``count`` (int64): number of documents that contain the code
        - ``prevalence`` (float64): count / number of documents
        - ``rank`` (int64): 1 = most frequent, ties by code ascending
        - ``band`` (int64): frequency band, 0 = most frequent

        sorted by ``rank``.

    Raises
    ------
    TypeError
        If a label set is a string or a code is not a string.
    ValueError
        If there are no documents or ``rho`` <= 1.
    """
    documents = _collect_label_sets(label_sets)
    codes, matrix = _incidence_matrix(documents)
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    return _count_table(codes, counts, len(documents), rho)


def _cooccurrence_table(codes: np.ndarray, matrix: sparse.csr_matrix) -> pd.DataFrame:
    n_documents = matrix.shape[0]
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    pair_matrix = sparse.triu(matrix.T @ matrix, k=1).tocoo()
    order = np.lexsort((pair_matrix.col, pair_matrix.row))
    first = pair_matrix.row[order].astype(np.int64)
    second = pair_matrix.col[order].astype(np.int64)
    n_ab = pair_matrix.data[order].astype(np.int64)
    keep = n_ab > 0
    first, second, n_ab = first[keep], second[keep], n_ab[keep]

    n_a = counts[first]
    n_b = counts[second]
    n_ab_float = n_ab.astype(np.float64)
    return pd.DataFrame(
        {
            "code_a": codes[first],
            "code_b": codes[second],
            "n_ab": n_ab,
            "n_a": n_a,
            "n_b": n_b,
            "jaccard": n_ab_float / (n_a + n_b - n_ab),
            "p_b_given_a": n_ab_float / n_a,
            "p_a_given_b": n_ab_float / n_b,
            "lift": n_ab_float * n_documents / (n_a.astype(np.float64) * n_b),
        },
        columns=COOCCURRENCE_COLUMNS,
    )


def compute_cooccurrence(label_sets: Iterable) -> pd.DataFrame:
    """Count the documents per co-occurring code pair and derive pair measures.

    Only pairs that co-occur in at least one document are listed (a sparse
    table). With N documents and document counts n_a, n_b, n_ab:

    - ``jaccard`` = n_ab / (n_a + n_b - n_ab)
    - ``p_b_given_a`` = P(b|a) = n_ab / n_a
    - ``p_a_given_b`` = P(a|b) = n_ab / n_b
    - ``lift`` = n_ab * N / (n_a * n_b)

    Parameters
    ----------
    label_sets : iterable of iterables of str
        Label set per document, see ``compute_label_counts``.

    Returns
    -------
    pandas.DataFrame
        Columns ``COOCCURRENCE_COLUMNS``: ``code_a`` < ``code_b`` (str),
        ``n_ab``, ``n_a``, ``n_b`` (int64) and the four measures (float64),
        sorted by (code_a, code_b).

    Raises
    ------
    TypeError
        If a label set is a string or a code is not a string.
    ValueError
        If there are no documents.
    """
    documents = _collect_label_sets(label_sets)
    codes, matrix = _incidence_matrix(documents)
    return _cooccurrence_table(codes, matrix)


def gini_coefficient(counts: Iterable) -> float:
    """Compute the Gini coefficient of label counts.

    With the counts sorted ascending as x_1 <= ... <= x_n, the coefficient is
    sum_i (2i - n - 1) x_i / (n * sum_i x_i). It is 0 for equal counts and
    approaches 1 when one label has all occurrences. All-zero counts give 0.

    Raises
    ------
    ValueError
        If ``counts`` is empty or contains a negative or non-finite value.
    """
    values = np.sort(np.asarray(list(counts), dtype=np.float64))
    if len(values) == 0:
        raise ValueError("cannot compute the Gini coefficient of an empty set of counts")
    if not np.isfinite(values).all() or values[0] < 0:
        raise ValueError("counts for the Gini coefficient must be finite and >= 0")
    total = values.sum()
    if total == 0:
        return 0.0
    n = len(values)
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float(np.dot(weights, values) / (n * total))


def top_share(counts: Iterable, percent: float) -> float:
    """Compute the share of all label occurrences held by the top ``percent`` % of codes.

    The top group has ceil(percent / 100 * n) codes, at least 1, for n codes,
    taken by count descending.

    Raises
    ------
    ValueError
        If ``counts`` is empty or sums to 0, or ``percent`` is not in (0, 100].
    """
    values = np.sort(np.asarray(list(counts), dtype=np.float64))[::-1]
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent!r}")
    total = values.sum()
    if len(values) == 0 or total <= 0:
        raise ValueError("top_share needs at least one positive count")
    # Fraction(str(...)) keeps a decimal percent such as 0.1 exact in the ceiling.
    n_top = max(1, math.ceil(Fraction(len(values)) * Fraction(str(percent)) / 100))
    return float(values[:n_top].sum() / total)


def _imbalance_summary(
    n_documents: int, counts: np.ndarray, rare_threshold: float
) -> dict:
    if len(counts) == 0:
        raise ValueError("the documents contain no labels, so there is no imbalance to summarise")
    return {
        "n_documents": int(n_documents),
        "n_labels": int(len(counts)),
        "n_label_occurrences": int(counts.sum()),
        "mean_labels_per_document": float(counts.sum() / n_documents),
        "imbalance_ratio": float(counts.max() / counts.min()),
        "gini": gini_coefficient(counts),
        "top_1pct_share": top_share(counts, 1),
        "top_10pct_share": top_share(counts, 10),
        "rare_threshold": rare_threshold,
        "n_rare_labels": int((counts < rare_threshold).sum()),
    }


def summarise_imbalance(
    label_sets: Iterable, rare_threshold: float = DEFAULT_RARE_THRESHOLD
) -> dict:
    """Summarise how unevenly the labels are distributed over the documents.

    Parameters
    ----------
    label_sets : iterable of iterables of str
        Label set per document, see ``compute_label_counts``.
    rare_threshold : float, default 10
        Codes with a count below this value are counted as rare.

    Returns
    -------
    dict
        With the keys

        - ``n_documents``
        - ``n_labels``: distinct codes seen
        - ``n_label_occurrences``: sum of counts
        - ``mean_labels_per_document``
        - ``imbalance_ratio``: max count / min count
        - ``gini``: see ``gini_coefficient``
        - ``top_1pct_share``, ``top_10pct_share``: see ``top_share``
        - ``rare_threshold``
        - ``n_rare_labels``: codes with count < ``rare_threshold``

    Raises
    ------
    TypeError
        If a label set is a string or a code is not a string.
    ValueError
        If there are no documents or no labels.
    """
    documents = _collect_label_sets(label_sets)
    _, matrix = _incidence_matrix(documents)
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    return _imbalance_summary(len(documents), counts, rare_threshold)


def compute_label_statistics(
    label_sets: Iterable,
    rho: float = DEFAULT_RHO,
    rare_threshold: float = DEFAULT_RARE_THRESHOLD,
) -> LabelStatistics:
    """Compute counts, co-occurrence and imbalance summary in one pass over the documents.

    Equivalent to calling ``compute_label_counts``, ``compute_cooccurrence``
    and ``summarise_imbalance`` with the same arguments, and raises as they do.
    """
    documents = _collect_label_sets(label_sets)
    codes, matrix = _incidence_matrix(documents)
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    statistics = LabelStatistics(
        counts=_count_table(codes, counts, len(documents), rho),
        cooccurrence=_cooccurrence_table(codes, matrix),
        imbalance=_imbalance_summary(len(documents), counts, rare_threshold),
    )
    logger.info(
        "label statistics: %d documents, %d codes, %d co-occurring pairs",
        len(documents),
        len(codes),
        len(statistics.cooccurrence),
    )
    return statistics
