"""Label segmentation for the Segmented Harmonic Loss.

The Segmented Harmonic Loss computes the loss per segment of labels. A segment
groups labels of comparable train frequency, and labels that co-occur strongly
sit in different segments, so the loss of a rare code is not computed together
with the loss of a frequent companion code.

The algorithm runs in four steps, all on pure numpy/pandas data:

1. Banding. Labels are sorted by train count descending, ties by code
   ascending. A label opens a new frequency band when the count of the band's
   first label divided by its own count is greater than ``rho``, so a ratio
   equal to ``rho`` stays in the band. Labels with count 0 cannot be divided
   into, so they all share one last band after the labels with positive counts.
2. Colouring. Inside each band, labels joined by a conflict edge (association
   greater than ``tau``) must not share a segment. The conflict graph of the
   band is coloured greedily in the same order: each label takes the smallest
   colour not used by an already coloured neighbour in its band. A segment is
   one (band, colour) pair.
3. Merging. A segment with fewer than ``min_segment_size`` labels moves into
   a segment of the next band (band + 1, lower counts), or else of the
   previous band (band - 1). The target must have no conflict edge to any of
   its labels, and edges across bands count here. Within one band the lowest
   fitting colour wins. See ``_merge_small_segments`` for the exact order and
   the cascade rule.
4. Numbering. The remaining segments are numbered 0..K-1 by the max train
   count of their labels, descending, ties by (band, colour) of the segment.

The result depends only on the set of labels, counts and edges, not on the
order in which they are given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ASSOCIATION_MEASURES = ("max_conditional", "jaccard", "lift")
DEFAULT_RHO = 4.0
DEFAULT_TAU = 0.5
DEFAULT_MEASURE = "max_conditional"
DEFAULT_MIN_SEGMENT_SIZE = 8

SEGMENT_COLUMNS = [
    "segment_id",
    "band",
    "colour",
    "n_labels",
    "min_count",
    "max_count",
    "mean_count",
    "max_internal_association",
    "merged_from",
]
ASSOCIATION_COLUMNS = ["code_a", "code_b", "n_ab", "association"]

LabelCounts = Union[Mapping, pd.Series, tuple]
SegmentKey = tuple[int, int]


@dataclass(frozen=True)
class SegmentationResult:
    """Segments of a label set, with per-label and per-segment views.

    The arrays are aligned to ``codes``, which is sorted ascending.

    Attributes
    ----------
    codes : numpy.ndarray
        Label codes (str), sorted ascending.
    counts : numpy.ndarray
        Train count per label.
    bands : numpy.ndarray
        Frequency band per label (0 = most frequent band). A merged label keeps
        its own band here, while ``segments.band`` is the band of its segment.
    colours : numpy.ndarray
        Colour per label from the greedy colouring of its band's conflict graph.
    segment_ids : numpy.ndarray
        Segment id per label, 0..K-1.
    segment_of, band_of, colour_of : dict
        The same per-label values keyed by code.
    segments : pandas.DataFrame
        One row per segment, ordered by ``segment_id``, with the columns in
        ``SEGMENT_COLUMNS``. ``band`` and ``colour`` identify the original
        (band, colour) segment that the others were merged into, and
        ``merged_from`` lists the (band, colour) pairs of the segments merged
        into it (empty when none). ``max_internal_association`` is the largest
        association among given pairs inside the segment, 0 when no given pair
        lies inside it, and NaN when no association table was given.
    rho : float
        Band ratio used.
    min_segment_size : int
        Minimum segment size used for merging.
    """

    codes: np.ndarray
    counts: np.ndarray
    bands: np.ndarray
    colours: np.ndarray
    segment_ids: np.ndarray
    segments: pd.DataFrame
    rho: float
    min_segment_size: int
    segment_of: dict = field(repr=False, default_factory=dict)
    band_of: dict = field(repr=False, default_factory=dict)
    colour_of: dict = field(repr=False, default_factory=dict)

    @property
    def n_segments(self) -> int:
        """Number of segments K."""
        return len(self.segments)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per label (code, count, band, colour, segment_id), sorted by code."""
        return pd.DataFrame(
            {
                "code": self.codes,
                "count": self.counts,
                "band": self.bands,
                "colour": self.colours,
                "segment_id": self.segment_ids,
            }
        )


# --------------------------------------------------------------------------- validation


def _validate_rho(rho: float) -> float:
    if not np.isfinite(rho) or rho <= 1:
        raise ValueError(f"band ratio rho must be a finite number > 1, got {rho!r}")
    return float(rho)


def _validate_min_segment_size(min_segment_size: int) -> int:
    if isinstance(min_segment_size, bool) or int(min_segment_size) != min_segment_size:
        raise ValueError(f"min_segment_size must be an integer, got {min_segment_size!r}")
    if min_segment_size < 1:
        raise ValueError(f"min_segment_size must be >= 1, got {min_segment_size!r}")
    return int(min_segment_size)


def _validate_measure(measure: str) -> None:
    if measure not in ASSOCIATION_MEASURES:
        raise ValueError(
            f"unknown association measure {measure!r}, expected one of {ASSOCIATION_MEASURES}"
        )


def _validate_tau(tau: float, measure: str) -> float:
    _validate_measure(measure)
    if not np.isfinite(tau):
        raise ValueError(f"association threshold tau must be finite, got {tau!r}")
    if measure == "lift":
        if tau < 0:
            raise ValueError(f"association threshold tau for lift must be >= 0, got {tau!r}")
    elif not 0 <= tau <= 1:
        raise ValueError(
            f"association threshold tau for {measure} must be in [0, 1], got {tau!r}"
        )
    return float(tau)


def _validate_codes(codes: list) -> None:
    for code in codes:
        if not isinstance(code, str):
            raise TypeError(
                f"label codes must be strings, got {code!r} of type {type(code).__name__}"
            )
    duplicated = pd.Index(codes).duplicated()
    if duplicated.any():
        code = codes[int(np.flatnonzero(duplicated)[0])]
        raise ValueError(f"duplicate label code {code!r} in label counts")


def _validate_counts(codes: list, counts: np.ndarray) -> np.ndarray:
    if counts.ndim != 1 or len(counts) != len(codes):
        raise ValueError(
            f"label counts must be one number per code: got {len(codes)} codes "
            f"and counts of shape {counts.shape}"
        )
    if counts.dtype.kind in "iu":
        counts = counts.astype(np.int64)
    elif counts.dtype.kind == "f":
        counts = counts.astype(np.float64)
        not_finite = ~np.isfinite(counts)
        if not_finite.any():
            position = int(np.flatnonzero(not_finite)[0])
            raise ValueError(
                f"label count for {codes[position]!r} is not finite ({counts[position]})"
            )
    else:
        raise ValueError(f"label counts must be numbers, got dtype {counts.dtype}")
    negative = counts < 0
    if negative.any():
        position = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"label count for {codes[position]!r} is negative ({counts[position]}), "
            "but counts must be >= 0"
        )
    return counts


def normalise_label_counts(label_counts: LabelCounts) -> tuple[np.ndarray, np.ndarray]:
    """Validate label counts and return them as arrays sorted by code.

    Parameters
    ----------
    label_counts : Mapping, pandas.Series or tuple
        Train count per label: a mapping code -> count, a Series indexed by
        code, or a tuple ``(codes, counts)`` of two equal-length sequences.
        Codes are strings and counts non-negative numbers.

    Returns
    -------
    codes : numpy.ndarray
        Codes (object dtype) sorted ascending.
    counts : numpy.ndarray
        Counts aligned to ``codes``, int64 for integer input, else float64.

    Raises
    ------
    TypeError
        If the container is not one of the above or a code is not a string.
    ValueError
        If there are no labels, a code is duplicated, or a count is negative,
        not finite or not a number.
    """
    if isinstance(label_counts, pd.Series):
        codes, counts = list(label_counts.index), label_counts.to_numpy()
    elif isinstance(label_counts, Mapping):
        codes, counts = list(label_counts.keys()), np.asarray(list(label_counts.values()))
    elif isinstance(label_counts, tuple) and len(label_counts) == 2:
        codes, counts = list(label_counts[0]), np.asarray(label_counts[1])
    else:
        raise TypeError(
            "label_counts must be a mapping code -> count, a pandas Series indexed by "
            f"code, or a tuple (codes, counts), got {type(label_counts).__name__}"
        )
    if not codes:
        raise ValueError("label_counts is empty, but at least one label is needed")
    _validate_codes(codes)
    counts = _validate_counts(codes, counts)

    order = sorted(range(len(codes)), key=codes.__getitem__)
    return np.array([codes[i] for i in order], dtype=object), counts[order]


# --------------------------------------------------------------------------- banding


def frequency_order(counts: np.ndarray) -> np.ndarray:
    """Return label positions sorted by count descending, ties by code ascending.

    ``counts`` must be aligned to codes sorted ascending, as returned by
    ``normalise_label_counts``, so a lower position means a smaller code.
    """
    return np.lexsort((np.arange(len(counts)), -counts))


def _opens_new_band(first_count: float, count: float, rho: float) -> bool:
    if count == 0:
        # Zero counts share one last band: first / 0 is infinite, and 0 / 0 stays.
        return first_count > 0
    return float(first_count) / float(count) > rho


def _bands_in_frequency_order(counts_descending: np.ndarray, rho: float) -> np.ndarray:
    bands = np.zeros(len(counts_descending), dtype=np.int64)
    band = 0
    first_count = counts_descending[0] if len(counts_descending) else 0
    for position, count in enumerate(counts_descending):
        if _opens_new_band(first_count, count, rho):
            band += 1
            first_count = count
        bands[position] = band
    return bands


def assign_frequency_bands(label_counts: LabelCounts, rho: float = DEFAULT_RHO) -> pd.Series:
    """Assign each label to a frequency band.

    Labels are sorted by count descending, ties by code ascending. A label
    opens a new band when the count of the current band's first label divided
    by its own count is greater than ``rho`` (a ratio equal to ``rho`` stays in
    the band). Labels with count 0 all share one last band after the labels
    with positive counts.

    Parameters
    ----------
    label_counts : Mapping, pandas.Series or tuple
        Train count per label, see ``normalise_label_counts``.
    rho : float, default 4
        Band ratio, must be > 1.

    Returns
    -------
    pandas.Series
        Band (int64, 0 = most frequent) indexed by code, sorted by code.

    Raises
    ------
    ValueError
        If ``rho`` <= 1 or the counts are invalid.
    """
    rho = _validate_rho(rho)
    codes, counts = normalise_label_counts(label_counts)
    order = frequency_order(counts)
    bands = np.empty(len(codes), dtype=np.int64)
    bands[order] = _bands_in_frequency_order(counts[order], rho)
    return pd.Series(bands, index=pd.Index(codes, name="code"), name="band")


# --------------------------------------------------------------------------- association


def _normalise_pair_counts(
    pair_counts: Any, code_index: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(pair_counts, pd.DataFrame):
        missing = {"code_a", "code_b", "n_ab"} - set(pair_counts.columns)
        if missing:
            raise ValueError(f"pair_counts is missing columns {sorted(missing)}")
        items = zip(pair_counts["code_a"], pair_counts["code_b"], pair_counts["n_ab"])
    elif isinstance(pair_counts, Mapping):
        items = ((pair[0], pair[1], n_ab) for pair, n_ab in pair_counts.items())
    else:
        raise TypeError(
            "pair_counts must be a DataFrame with columns code_a, code_b, n_ab or a "
            f"mapping (code_a, code_b) -> n_ab, got {type(pair_counts).__name__}"
        )

    pairs: dict[tuple[int, int], float] = {}
    for code_a, code_b, n_ab in items:
        first, second = _pair_positions((code_a, code_b), code_index, "pair count")
        if (first, second) in pairs:
            raise ValueError(f"duplicate pair ({code_a!r}, {code_b!r}) in pair_counts")
        if not np.isfinite(n_ab) or n_ab < 0:
            raise ValueError(
                f"pair count for ({code_a!r}, {code_b!r}) must be a finite number >= 0, "
                f"got {n_ab!r}"
            )
        pairs[(first, second)] = n_ab

    keys = sorted(pairs)
    first_positions = np.array([key[0] for key in keys], dtype=np.int64)
    second_positions = np.array([key[1] for key in keys], dtype=np.int64)
    n_ab = np.array([pairs[key] for key in keys])
    return first_positions, second_positions, n_ab


def _pair_positions(pair: Any, code_index: Mapping[str, int], kind: str) -> tuple[int, int]:
    """Return the positions of a pair's codes, smaller first, after validation."""
    try:
        code_a, code_b = pair
    except (TypeError, ValueError):
        raise ValueError(f"{kind} {pair!r} is not a pair of codes") from None
    for code in (code_a, code_b):
        if code not in code_index:
            raise ValueError(
                f"{kind} ({code_a!r}, {code_b!r}) names unknown code {code!r}. "
                "Every code must have a label count"
            )
    if code_a == code_b:
        raise ValueError(f"{kind} ({code_a!r}, {code_b!r}) joins a code to itself")
    first, second = code_index[code_a], code_index[code_b]
    return (first, second) if first < second else (second, first)


def compute_association(
    pair_counts: Any,
    label_counts: LabelCounts,
    measure: str = DEFAULT_MEASURE,
    n_documents: int | None = None,
) -> pd.DataFrame:
    """Compute the association of label pairs from co-occurrence counts.

    The measures, for pair count n_ab and label counts n_a, n_b:

    - ``"max_conditional"``: max(P(a|b), P(b|a)) = n_ab / min(n_a, n_b)
    - ``"jaccard"``: n_ab / (n_a + n_b - n_ab)
    - ``"lift"``: n_ab * N / (n_a * n_b), with N the number of documents

    A pair with n_ab = 0 has association 0 under every measure, which also
    covers labels with count 0 (their pairs must have n_ab = 0).

    Parameters
    ----------
    pair_counts : pandas.DataFrame or Mapping
        Co-occurrence count per pair: a DataFrame with columns ``code_a``,
        ``code_b``, ``n_ab`` or a mapping ``(code_a, code_b) -> n_ab``. Each
        unordered pair may appear once, in either orientation.
    label_counts : Mapping, pandas.Series or tuple
        Train count per label, see ``normalise_label_counts``.
    measure : str, default "max_conditional"
        One of ``ASSOCIATION_MEASURES``.
    n_documents : int, optional
        Number of documents N, required for ``"lift"`` and ignored otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns ``code_a``, ``code_b`` (code_a < code_b), ``n_ab``,
        ``association`` (float64), sorted by (code_a, code_b).

    Raises
    ------
    ValueError
        If the measure is unknown, a pair names an unknown code, joins a code
        to itself or appears twice, n_ab is negative or greater than
        min(n_a, n_b), or ``n_documents`` is missing or smaller than a label
        count for ``"lift"``.
    """
    _validate_measure(measure)
    codes, counts = normalise_label_counts(label_counts)
    code_index = {code: position for position, code in enumerate(codes)}
    first, second, n_ab = _normalise_pair_counts(pair_counts, code_index)
    n_a = counts[first].astype(np.float64)
    n_b = counts[second].astype(np.float64)

    too_large = n_ab > np.minimum(n_a, n_b)
    if too_large.any():
        k = int(np.flatnonzero(too_large)[0])
        raise ValueError(
            f"pair count {n_ab[k]} for ({codes[first[k]]!r}, {codes[second[k]]!r}) exceeds "
            f"the smaller label count min({n_a[k]}, {n_b[k]})"
        )

    n_ab_float = n_ab.astype(np.float64)
    if measure == "max_conditional":
        numerator, denominator = n_ab_float, np.minimum(n_a, n_b)
    elif measure == "jaccard":
        numerator, denominator = n_ab_float, n_a + n_b - n_ab_float
    else:
        _validate_n_documents(n_documents, counts)
        numerator, denominator = n_ab_float * float(n_documents), n_a * n_b
    positive = n_ab_float > 0
    association = np.zeros(len(n_ab_float), dtype=np.float64)
    association[positive] = numerator[positive] / denominator[positive]

    return pd.DataFrame(
        {
            "code_a": codes[first],
            "code_b": codes[second],
            "n_ab": n_ab,
            "association": association,
        },
        columns=ASSOCIATION_COLUMNS,
    )


def _validate_n_documents(n_documents: int | None, counts: np.ndarray) -> None:
    if n_documents is None:
        raise ValueError("the lift measure needs n_documents, the number of documents N")
    if not np.isfinite(n_documents) or n_documents <= 0:
        raise ValueError(f"n_documents must be a positive number, got {n_documents!r}")
    if len(counts) and n_documents < counts.max():
        raise ValueError(
            f"n_documents ({n_documents}) is smaller than the largest label count "
            f"({counts.max()}), but a label cannot occur in more documents than exist"
        )


def select_conflict_edges(
    associations: pd.DataFrame, tau: float = DEFAULT_TAU, measure: str = DEFAULT_MEASURE
) -> pd.DataFrame:
    """Keep the pairs whose association is strictly greater than ``tau``.

    Parameters
    ----------
    associations : pandas.DataFrame
        Output of ``compute_association`` (columns ``code_a``, ``code_b``,
        ``association``, plus any others, which are kept).
    tau : float, default 0.5
        Association threshold. It must lie in [0, 1] for ``"max_conditional"``
        and ``"jaccard"`` and be >= 0 for ``"lift"``.
    measure : str, default "max_conditional"
        Measure that produced ``associations``, used to validate ``tau``.

    Returns
    -------
    pandas.DataFrame
        The conflict edges, in the input row order, with a fresh index.

    Raises
    ------
    ValueError
        If ``tau`` is out of range for the measure, the measure is unknown, or
        the ``association`` column is missing.
    """
    tau = _validate_tau(tau, measure)
    if "association" not in associations.columns:
        raise ValueError("associations is missing the column 'association'")
    edges = associations[associations["association"] > tau]
    return edges.reset_index(drop=True)


# --------------------------------------------------------------------------- segmentation


def _normalise_edges(conflict_edges: Any, code_index: Mapping[str, int]) -> list[tuple[int, int]]:
    if conflict_edges is None:
        return []
    if isinstance(conflict_edges, pd.DataFrame):
        missing = {"code_a", "code_b"} - set(conflict_edges.columns)
        if missing:
            raise ValueError(f"conflict_edges is missing columns {sorted(missing)}")
        pairs: Iterable = zip(conflict_edges["code_a"], conflict_edges["code_b"])
    else:
        pairs = conflict_edges
    edges = {_pair_positions(pair, code_index, "conflict edge") for pair in pairs}
    return sorted(edges)


def _colour_bands(order: np.ndarray, bands: np.ndarray, adjacency: list[set[int]]) -> np.ndarray:
    """Colour each band's conflict graph greedily, visiting labels in ``order``."""
    colours = np.full(len(bands), -1, dtype=np.int64)
    for label in order:
        used = {
            colours[neighbour]
            for neighbour in adjacency[label]
            if bands[neighbour] == bands[label] and colours[neighbour] >= 0
        }
        colour = 0
        while colour in used:
            colour += 1
        colours[label] = colour
    return colours


def _find_merge_target(
    source: SegmentKey,
    members: dict[SegmentKey, list[int]],
    adjacency: list[set[int]],
) -> SegmentKey | None:
    """Return the first segment of band + 1, then band - 1, without a conflict with ``source``."""
    band = source[0]
    blocked = set().union(*(adjacency[label] for label in members[source]))
    for neighbour_band in (band + 1, band - 1):
        candidates = sorted(key for key in members if key[0] == neighbour_band)
        for target in candidates:
            if blocked.isdisjoint(members[target]):
                return target
    return None


def _merge_small_segments(
    members: dict[SegmentKey, list[int]],
    adjacency: list[set[int]],
    min_segment_size: int,
) -> tuple[dict[SegmentKey, list[int]], dict[SegmentKey, list[SegmentKey]]]:
    """Merge segments smaller than ``min_segment_size`` into a neighbouring band.

    Segments are visited once each, in (band, colour) order from the most
    frequent. A visited segment with fewer than ``min_segment_size`` labels
    moves into the first fitting segment of band + 1, else of band - 1, taking
    colours in ascending order. A target fits when no conflict edge joins its
    current labels to the labels of the small segment. The merged segment
    keeps the target's band and colour.

    Merges do not cascade. A segment that has received labels is never moved
    later, even while it is still small, and a segment that moved no longer
    exists as a target. So each label moves at most once and ends in its own
    band or an adjacent one. A small segment without a fitting target stays
    as it is.

    Returns the members per remaining segment and, per remaining segment, the
    (band, colour) keys of the segments merged into it.
    """
    members = {key: list(labels) for key, labels in members.items()}
    merged_from: dict[SegmentKey, list[SegmentKey]] = {key: [] for key in members}
    for key in sorted(members):
        if key not in members or merged_from[key]:
            continue
        if len(members[key]) >= min_segment_size:
            continue
        target = _find_merge_target(key, members, adjacency)
        if target is None:
            logger.debug(
                "segment (band %d, colour %d) stays unmerged because it conflicts with "
                "every segment of the neighbouring bands",
                *key,
            )
            continue
        logger.debug("merging segment (band %d, colour %d) into (band %d, colour %d)", *key, *target)
        members[target].extend(members.pop(key))
        merged_from.pop(key)
        merged_from[target].append(key)
    return members, merged_from


def _internal_association(
    pair_associations: pd.DataFrame | None,
    code_index: Mapping[str, int],
    segment_ids: np.ndarray,
    n_segments: int,
) -> np.ndarray:
    """Return the largest given association inside each segment (0 if none, NaN if no table)."""
    if pair_associations is None:
        return np.full(n_segments, np.nan)
    missing = {"code_a", "code_b", "association"} - set(pair_associations.columns)
    if missing:
        raise ValueError(f"pair_associations is missing columns {sorted(missing)}")
    largest = np.zeros(n_segments, dtype=np.float64)
    pairs = zip(
        pair_associations["code_a"], pair_associations["code_b"], pair_associations["association"]
    )
    for code_a, code_b, association in pairs:
        first, second = _pair_positions((code_a, code_b), code_index, "pair association")
        segment = segment_ids[first]
        if segment == segment_ids[second]:
            largest[segment] = max(largest[segment], float(association))
    return largest


def _segment_table(
    ordered_keys: list[SegmentKey],
    members: dict[SegmentKey, list[int]],
    merged_from: dict[SegmentKey, list[SegmentKey]],
    counts: np.ndarray,
    internal_association: np.ndarray,
) -> pd.DataFrame:
    rows = []
    for segment_id, key in enumerate(ordered_keys):
        segment_counts = counts[members[key]]
        rows.append(
            {
                "segment_id": segment_id,
                "band": key[0],
                "colour": key[1],
                "n_labels": len(segment_counts),
                "min_count": segment_counts.min(),
                "max_count": segment_counts.max(),
                "mean_count": float(segment_counts.mean()),
                "max_internal_association": internal_association[segment_id],
                "merged_from": sorted(merged_from[key]),
            }
        )
    table = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    integer_columns = ["segment_id", "band", "colour", "n_labels"]
    table[integer_columns] = table[integer_columns].astype(np.int64)
    return table


def segment_labels(
    label_counts: LabelCounts,
    conflict_edges: Any = None,
    *,
    rho: float = DEFAULT_RHO,
    min_segment_size: int = DEFAULT_MIN_SEGMENT_SIZE,
    pair_associations: pd.DataFrame | None = None,
) -> SegmentationResult:
    """Split the label set into segments for the Segmented Harmonic Loss.

    Runs banding, greedy colouring of each band's conflict graph, merging of
    small segments and numbering, as described in the module docstring.
    Segments are numbered by the max train count of their labels, descending,
    ties by (band, colour), so ``segments.max_count`` is non-increasing.

    Parameters
    ----------
    label_counts : Mapping, pandas.Series or tuple
        Train count per label, see ``normalise_label_counts``. Labels with
        count 0 share one last band.
    conflict_edges : iterable of pairs or pandas.DataFrame, optional
        Pairs (code_a, code_b) that must not share a segment, in either
        orientation, for example ``select_conflict_edges`` output (columns
        ``code_a``, ``code_b``). Edges inside a band drive the colouring, and
        all edges, also across bands, block merges. Duplicates are ignored.
    rho : float, default 4
        Band ratio, must be > 1.
    min_segment_size : int, default 8
        Segments with fewer labels are merged into a neighbouring band where
        possible. 1 disables merging.
    pair_associations : pandas.DataFrame, optional
        Association per pair (columns ``code_a``, ``code_b``, ``association``),
        used only for ``max_internal_association`` in the segment table.

    Returns
    -------
    SegmentationResult

    Raises
    ------
    TypeError
        If ``label_counts`` has an unsupported type or a code is not a string.
    ValueError
        If the counts are invalid (see ``normalise_label_counts``), an edge or
        association pair names an unknown code or joins a code to itself,
        ``rho`` <= 1, or ``min_segment_size`` < 1.
    """
    rho = _validate_rho(rho)
    min_segment_size = _validate_min_segment_size(min_segment_size)
    codes, counts = normalise_label_counts(label_counts)
    code_index = {code: position for position, code in enumerate(codes)}
    edges = _normalise_edges(conflict_edges, code_index)

    adjacency: list[set[int]] = [set() for _ in codes]
    for first, second in edges:
        adjacency[first].add(second)
        adjacency[second].add(first)

    order = frequency_order(counts)
    bands = np.empty(len(codes), dtype=np.int64)
    bands[order] = _bands_in_frequency_order(counts[order], rho)
    colours = _colour_bands(order, bands, adjacency)

    initial: dict[SegmentKey, list[int]] = {}
    for label in order:
        initial.setdefault((int(bands[label]), int(colours[label])), []).append(int(label))
    members, merged_from = _merge_small_segments(initial, adjacency, min_segment_size)

    ordered_keys = sorted(members, key=lambda key: (-counts[members[key]].max(), key))
    segment_ids = np.empty(len(codes), dtype=np.int64)
    for segment_id, key in enumerate(ordered_keys):
        segment_ids[members[key]] = segment_id

    internal = _internal_association(
        pair_associations, code_index, segment_ids, len(ordered_keys)
    )
    table = _segment_table(ordered_keys, members, merged_from, counts, internal)
    logger.info(
        "segmented %d labels into %d bands, %d colour segments and %d final segments "
        "(%d smaller than %d)",
        len(codes),
        int(bands.max()) + 1,
        len(initial),
        len(ordered_keys),
        int((table["n_labels"] < min_segment_size).sum()),
        min_segment_size,
    )
    return SegmentationResult(
        codes=codes,
        counts=counts,
        bands=bands,
        colours=colours,
        segment_ids=segment_ids,
        segments=table,
        rho=rho,
        min_segment_size=min_segment_size,
        segment_of={code: int(s) for code, s in zip(codes, segment_ids)},
        band_of={code: int(b) for code, b in zip(codes, bands)},
        colour_of={code: int(c) for code, c in zip(codes, colours)},
    )


def segment_labels_from_pairs(
    label_counts: LabelCounts,
    pair_counts: Any,
    *,
    rho: float = DEFAULT_RHO,
    tau: float = DEFAULT_TAU,
    measure: str = DEFAULT_MEASURE,
    min_segment_size: int = DEFAULT_MIN_SEGMENT_SIZE,
    n_documents: int | None = None,
) -> SegmentationResult:
    """Segment labels from pair co-occurrence counts.

    Computes the association of every given pair with ``compute_association``,
    keeps the pairs with association > ``tau`` as conflict edges and runs
    ``segment_labels``. The segment table's ``max_internal_association`` is
    filled from all given pairs, so it is at most ``tau``.

    Parameters
    ----------
    label_counts : Mapping, pandas.Series or tuple
        Train count per label, see ``normalise_label_counts``.
    pair_counts : pandas.DataFrame or Mapping
        Co-occurrence count per pair, see ``compute_association``.
    rho : float, default 4
        Band ratio, must be > 1.
    tau : float, default 0.5
        Association threshold, see ``select_conflict_edges``.
    measure : str, default "max_conditional"
        Association measure, one of ``ASSOCIATION_MEASURES``.
    min_segment_size : int, default 8
        Minimum segment size for merging.
    n_documents : int, optional
        Number of documents, required for ``"lift"``.

    Returns
    -------
    SegmentationResult

    Raises
    ------
    ValueError
        As ``compute_association``, ``select_conflict_edges`` and ``segment_labels``.
    """
    _validate_tau(tau, measure)
    associations = compute_association(pair_counts, label_counts, measure, n_documents)
    edges = select_conflict_edges(associations, tau, measure)
    logger.info(
        "%d of %d pairs have %s association > %s", len(edges), len(associations), measure, tau
    )
    return segment_labels(
        label_counts,
        edges,
        rho=rho,
        min_segment_size=min_segment_size,
        pair_associations=associations,
    )
