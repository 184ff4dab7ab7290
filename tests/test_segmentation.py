"""Tests for the label segmentation: hand-worked cases and properties on random inputs."""

import itertools

import numpy as np
import pandas as pd
import pytest

from shl.labels.segmentation import (
    assign_frequency_bands,
    compute_association,
    segment_labels,
    segment_labels_from_pairs,
    select_conflict_edges,
)

# --------------------------------------------------------------------------- banding


def test_banding_ratio_equal_to_rho_stays():
    # Sorted: a 100, b 25, c 24, d 6, e 5.
    # b: 100 / 25 = 4, not > 4, so band 0.  c: 100 / 24 = 4.17 > 4, opens band 1.
    # d: 24 / 6 = 4, stays in band 1.  e: 24 / 5 = 4.8 > 4, opens band 2.
    bands = assign_frequency_bands({"a": 100, "b": 25, "c": 24, "d": 6, "e": 5}, rho=4)
    assert bands.to_dict() == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}


def test_banding_uses_band_first_count():
    # The ratio is taken against the band's first count, not the previous label:
    # 10, 6, 3: 10 / 6 = 1.67 <= 2 stays, 10 / 3 = 3.33 > 2 opens band 1.
    bands = assign_frequency_bands({"x": 10, "y": 6, "z": 3}, rho=2)
    assert bands.to_dict() == {"x": 0, "y": 0, "z": 1}


def test_banding_zero_counts_share_last_band():
    # 5 is band 0.  5 / 0 is infinite, so the first zero opens band 1, and
    # further zeros stay there even though rho = 100 would never split 5 and 1.
    bands = assign_frequency_bands({"a": 5, "b": 1, "c": 0, "d": 0}, rho=100)
    assert bands.to_dict() == {"a": 0, "b": 0, "c": 1, "d": 1}


def test_banding_all_zero_counts_one_band():
    bands = assign_frequency_bands({"a": 0, "b": 0}, rho=4)
    assert bands.to_dict() == {"a": 0, "b": 0}


def test_banding_input_forms_agree():
    mapping = {"b": 3, "a": 30, "c": 1}
    from_mapping = assign_frequency_bands(mapping, rho=4)
    from_series = assign_frequency_bands(pd.Series(mapping), rho=4)
    from_arrays = assign_frequency_bands((["c", "a", "b"], np.array([1, 30, 3])), rho=4)
    # 30 / 3 = 10 > 4 opens band 1 at b, and 3 / 1 = 3 keeps c in band 1.
    expected = {"a": 0, "b": 1, "c": 1}
    assert from_mapping.to_dict() == expected
    assert from_series.to_dict() == expected
    assert from_arrays.to_dict() == expected
    assert list(from_mapping.index) == ["a", "b", "c"]


# --------------------------------------------------------------------------- colouring


def test_conflicting_labels_get_different_colours():
    # One band (50 / 30 = 1.67).  Order a, b, c.  a takes colour 0, b is joined
    # to a so takes colour 1, c has no edge so takes colour 0.
    result = segment_labels({"a": 50, "b": 40, "c": 30}, [("b", "a")], min_segment_size=1)
    assert result.colour_of == {"a": 0, "b": 1, "c": 0}
    assert result.band_of == {"a": 0, "b": 0, "c": 0}
    # Segment (0, 0) = {a, c} has max 50, segment (0, 1) = {b} has max 40.
    assert result.segment_of == {"a": 0, "b": 1, "c": 0}
    assert result.n_segments == 2


def test_colouring_takes_smallest_free_colour():
    # Order a 9, b 8, c 7, d 6 in one band.  Edges a-b, a-c, b-c, c-d.
    # a 0.  b has neighbour colours {0} -> 1.  c has {0, 1} -> 2.  d has {2} -> 0.
    edges = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    result = segment_labels({"a": 9, "b": 8, "c": 7, "d": 6}, edges, min_segment_size=1)
    assert result.colour_of == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_colouring_ignores_edges_across_bands():
    # a 100 is band 0, b 10 and c 9 are band 1.  The edge a-b crosses bands, so
    # b still takes colour 0 in its band.  The edge b-c gives c colour 1.
    result = segment_labels(
        {"a": 100, "b": 10, "c": 9}, [("a", "b"), ("b", "c")], min_segment_size=1
    )
    assert result.band_of == {"a": 0, "b": 1, "c": 1}
    assert result.colour_of == {"a": 0, "b": 0, "c": 1}


def test_colouring_ties_broken_by_code():
    # Equal counts are visited by code, so "a" is coloured before "b" and keeps 0.
    result = segment_labels({"b": 5, "a": 5}, [("a", "b")], min_segment_size=1)
    assert result.colour_of == {"a": 0, "b": 1}


# --------------------------------------------------------------------------- merging

# Three bands with rho = 4:
#   band 0: a0 1000, a1 900            (900 / 1000 within ratio)
#   band 1: b0 200                     (1000 / 200 = 5 > 4)
#   band 2: c0 40, c1 35               (200 / 40 = 5 > 4, 40 / 35 = 1.14)
THREE_BANDS = {"a0": 1000, "a1": 900, "b0": 200, "c0": 40, "c1": 35}


def test_merge_prefers_lower_frequency_band():
    # With m = 2, (1, 0) = {b0} is small and both neighbours fit.  Band 2 has
    # lower counts, so b0 joins (2, 0) = {c0, c1}.
    result = segment_labels(THREE_BANDS, [], min_segment_size=2)
    assert result.n_segments == 2
    assert result.segment_of == {"a0": 0, "a1": 0, "b0": 1, "c0": 1, "c1": 1}
    merged = result.segments.iloc[1]
    assert (merged["band"], merged["colour"]) == (2, 0)
    assert merged["merged_from"] == [(1, 0)]
    assert merged["n_labels"] == 3
    assert merged["min_count"] == 35
    assert merged["max_count"] == 200
    assert merged["mean_count"] == pytest.approx((200 + 40 + 35) / 3)
    # The label keeps its own band and colour.
    assert result.band_of["b0"] == 1
    assert result.colour_of["b0"] == 0


def test_merge_falls_back_to_higher_frequency_band():
    # b0 conflicts with c1, and band 2 has the single segment {c0, c1}, so the
    # edge across bands blocks it, and b0 joins band 0 instead.
    result = segment_labels(THREE_BANDS, [("b0", "c1")], min_segment_size=2)
    assert result.segment_of == {"a0": 0, "a1": 0, "b0": 0, "c0": 1, "c1": 1}
    first = result.segments.iloc[0]
    assert (first["band"], first["colour"]) == (0, 0)
    assert first["merged_from"] == [(1, 0)]


def test_merge_left_alone_when_every_neighbour_conflicts():
    # b0 conflicts with a0 (band 0) and c0 (band 2), each band has one segment,
    # so {b0} stays a segment of its own with one label.
    result = segment_labels(THREE_BANDS, [("b0", "a0"), ("b0", "c0")], min_segment_size=2)
    assert result.n_segments == 3
    assert result.segment_of == {"a0": 0, "a1": 0, "b0": 1, "c0": 2, "c1": 2}
    assert list(result.segments["n_labels"]) == [2, 1, 2]
    assert all(merged == [] for merged in result.segments["merged_from"])


def test_merge_picks_lowest_fitting_colour():
    # Band 2 is split by the edge c0-c1 into (2, 0) = {c0} and (2, 1) = {c1}.
    # Without further edges b0 joins colour 0.  With b0-c0 it joins colour 1.
    free = segment_labels(THREE_BANDS, [("c0", "c1")], min_segment_size=2)
    assert free.segment_of["b0"] == free.segment_of["c0"]
    blocked = segment_labels(THREE_BANDS, [("c0", "c1"), ("b0", "c0")], min_segment_size=2)
    assert blocked.segment_of["b0"] == blocked.segment_of["c1"]
    assert blocked.segment_of["b0"] != blocked.segment_of["c0"]


def test_merge_does_not_cascade():
    # m = 3.  Band 0 {a} 1000, band 1 {b} 200, band 2 {c0, c1, c2} 40, 39, 38.
    # (0, 0) = {a} is small and joins (1, 0), giving {b, a} with 2 labels.
    # (1, 0) has received labels, so it is not moved on to band 2 although it
    # is still smaller than 3.
    counts = {"a": 1000, "b": 200, "c0": 40, "c1": 39, "c2": 38}
    result = segment_labels(counts, [], min_segment_size=3)
    assert result.segment_of == {"a": 0, "b": 0, "c0": 1, "c1": 1, "c2": 1}
    first = result.segments.iloc[0]
    assert (first["band"], first["colour"]) == (1, 0)
    assert first["merged_from"] == [(0, 0)]
    assert first["n_labels"] == 2


def test_merge_skips_absorbed_segments():
    # m = 2, edge c0-c1 splits band 2 into {c0} and {c1}.
    # (1, 0) = {b0} joins (2, 0) = {c0}.  (2, 0) has received labels, so stays.
    # (2, 1) = {c1} is small: band 3 does not exist and band 1 has no segment
    # left because {b0} moved, so {c1} stays alone (it never joins b0 in band 2).
    result = segment_labels(THREE_BANDS, [("c0", "c1")], min_segment_size=2)
    assert result.segment_of == {"a0": 0, "a1": 0, "b0": 1, "c0": 1, "c1": 2}
    assert list(result.segments["band"]) == [0, 2, 2]
    assert list(result.segments["colour"]) == [0, 0, 1]


def test_merge_disabled_with_min_size_one():
    result = segment_labels(THREE_BANDS, [], min_segment_size=1)
    assert result.n_segments == 3
    assert list(result.segments["n_labels"]) == [2, 1, 2]


# --------------------------------------------------------------------------- numbering


def test_numbering_by_max_count_not_band_order():
    # Band 0 (rho 4): a 1000, a2 990, x 500, y 400, y2 300.
    #   Edges a-x, a-y, x-y, a-y2, x-y2 give colours a 0, a2 0, x 1, y 2, y2 2.
    # Band 1: b 200, b2 150 (1000 / 200 = 5 > 4), colour 0.
    # m = 2: (0, 1) = {x} is small and joins (1, 0), whose max becomes 500.
    # Max counts: (0, 0) 1000, (1, 0) 500, (0, 2) 400, so (1, 0) is numbered
    # before (0, 2) although its band is larger.
    counts = {"a": 1000, "a2": 990, "x": 500, "y": 400, "y2": 300, "b": 200, "b2": 150}
    edges = [("a", "x"), ("a", "y"), ("x", "y"), ("a", "y2"), ("x", "y2")]
    result = segment_labels(counts, edges, min_segment_size=2)
    assert result.colour_of == {"a": 0, "a2": 0, "x": 1, "y": 2, "y2": 2, "b": 0, "b2": 0}
    assert result.segment_of == {"a": 0, "a2": 0, "x": 1, "b": 1, "b2": 1, "y": 2, "y2": 2}
    assert list(result.segments["max_count"]) == [1000, 500, 400]
    assert list(zip(result.segments["band"], result.segments["colour"])) == [
        (0, 0),
        (1, 0),
        (0, 2),
    ]


def test_numbering_ties_by_band_and_colour():
    # a and b both count 7 and conflict, so (0, 0) = {a} and (0, 1) = {b} tie on
    # max count and are numbered by colour.
    result = segment_labels({"a": 7, "b": 7}, [("a", "b")], min_segment_size=1)
    assert result.segment_of == {"a": 0, "b": 1}


def test_zero_count_labels_form_last_segment():
    # a 5, b 4 are band 0, the zeros c and d are band 1, and its segment has max 0.
    result = segment_labels({"a": 5, "b": 4, "c": 0, "d": 0}, [], min_segment_size=1)
    assert result.band_of == {"a": 0, "b": 0, "c": 1, "d": 1}
    assert result.segment_of == {"a": 0, "b": 0, "c": 1, "d": 1}
    assert list(result.segments["max_count"]) == [5, 0]


# --------------------------------------------------------------------------- result object


def test_result_arrays_aligned_to_sorted_codes():
    result = segment_labels({"c": 1, "a": 50, "b": 40}, [("a", "b")], min_segment_size=1)
    assert list(result.codes) == ["a", "b", "c"]
    assert list(result.counts) == [50, 40, 1]
    # 50 / 1 > 4 puts c in band 1.  Segments: (0, 0) = {a} max 50, (0, 1) = {b}
    # max 40, (1, 0) = {c} max 1.
    assert list(result.bands) == [0, 0, 1]
    assert list(result.colours) == [0, 1, 0]
    assert list(result.segment_ids) == [0, 1, 2]
    frame = result.to_frame()
    assert list(frame.columns) == ["code", "count", "band", "colour", "segment_id"]
    assert list(frame["segment_id"]) == [0, 1, 2]


def test_segment_table_columns_and_types():
    result = segment_labels({"a": 3, "b": 2}, [], min_segment_size=1)
    assert list(result.segments.columns) == [
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
    row = result.segments.iloc[0]
    assert row["n_labels"] == 2
    assert row["mean_count"] == 2.5
    # No association table was given, so the internal association is unknown.
    assert np.isnan(row["max_internal_association"])


def test_internal_association_from_pair_table():
    # One band, no conflict edges, so a, b, c share segment 0.  The pair table
    # lists a-b 0.3 and b-c 0.45, so the segment's maximum is 0.45.
    associations = pd.DataFrame(
        {"code_a": ["a", "b"], "code_b": ["b", "c"], "association": [0.3, 0.45]}
    )
    result = segment_labels(
        {"a": 10, "b": 9, "c": 8}, [], min_segment_size=1, pair_associations=associations
    )
    assert result.segments["max_internal_association"].tolist() == [0.45]

    split = segment_labels(
        {"a": 10, "b": 9, "c": 8},
        [("b", "c")],
        min_segment_size=1,
        pair_associations=associations,
    )
    # b-c is now an edge: a 0, b 0, c 1.  (0, 0) = {a, b} contains a-b 0.3 and
    # (0, 1) = {c} contains no listed pair, so 0.
    assert split.segments["max_internal_association"].tolist() == [0.3, 0.0]


# --------------------------------------------------------------------------- association


LABEL_COUNTS = {"a": 10, "b": 4, "c": 5}
PAIR_COUNTS = {("b", "a"): 2, ("b", "c"): 4}


def test_association_max_conditional():
    # a-b: 2 / min(10, 4) = 0.5.  b-c: 4 / min(4, 5) = 1.
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS)
    assert list(table.columns) == ["code_a", "code_b", "n_ab", "association"]
    assert list(zip(table["code_a"], table["code_b"])) == [("a", "b"), ("b", "c")]
    assert table["association"].tolist() == pytest.approx([0.5, 1.0])


def test_association_jaccard():
    # a-b: 2 / (10 + 4 - 2) = 1/6.  b-c: 4 / (4 + 5 - 4) = 0.8.
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS, measure="jaccard")
    assert table["association"].tolist() == pytest.approx([1 / 6, 0.8])


def test_association_lift():
    # N = 20.  a-b: 2 * 20 / (10 * 4) = 1.  b-c: 4 * 20 / (4 * 5) = 4.
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS, measure="lift", n_documents=20)
    assert table["association"].tolist() == pytest.approx([1.0, 4.0])


def test_association_zero_pair_count_is_zero():
    # A zero-count label can only have n_ab = 0, which is defined as association 0.
    table = compute_association({("a", "z"): 0}, {"a": 3, "z": 0})
    assert table["association"].tolist() == [0.0]


def test_association_accepts_dataframe():
    pairs = pd.DataFrame({"code_a": ["c", "a"], "code_b": ["b", "b"], "n_ab": [4, 2]})
    table = compute_association(pairs, LABEL_COUNTS)
    assert list(zip(table["code_a"], table["code_b"])) == [("a", "b"), ("b", "c")]
    assert table["n_ab"].tolist() == [2, 4]


def test_select_conflict_edges_strictly_greater():
    # a-b has exactly 0.5, which is not > 0.5, so only b-c is an edge.
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS)
    edges = select_conflict_edges(table, tau=0.5)
    assert list(zip(edges["code_a"], edges["code_b"])) == [("b", "c")]
    assert len(select_conflict_edges(table, tau=0.49)) == 2


def test_segment_from_pairs_end_to_end():
    # One band (10 / 4 = 2.5).  Only b-c exceeds 0.5.  Order a 10, c 5, b 4:
    # a 0, c 0, b joined to c -> 1.  Segments (0, 0) = {a, c}, (0, 1) = {b}.
    result = segment_labels_from_pairs(LABEL_COUNTS, PAIR_COUNTS, min_segment_size=1)
    assert result.segment_of == {"a": 0, "b": 1, "c": 0}
    # No listed pair lies inside {a, c} or {b}.
    assert result.segments["max_internal_association"].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_counts": {"a": -1}}, "'a' is negative"),
        ({"label_counts": {"a": float("nan")}}, "'a' is not finite"),
        ({"label_counts": (["a", "a"], [1, 2])}, "duplicate label code 'a'"),
        ({"label_counts": {}}, "empty"),
        ({"label_counts": {"a": 1}, "conflict_edges": [("a", "q")]}, "unknown code 'q'"),
        ({"label_counts": {"a": 1}, "conflict_edges": [("a", "a")]}, "itself"),
        ({"label_counts": {"a": 1}, "conflict_edges": ["abc"]}, "not a pair"),
        ({"label_counts": {"a": 1}, "rho": 1}, "rho must be a finite number > 1, got 1"),
        ({"label_counts": {"a": 1}, "rho": 0.5}, "got 0.5"),
        ({"label_counts": {"a": 1}, "min_segment_size": 0}, "min_segment_size must be >= 1, got 0"),
        ({"label_counts": {"a": 1}, "min_segment_size": 2.5}, "integer, got 2.5"),
    ],
)
def test_segment_labels_rejects_invalid_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment_labels(**kwargs)


def test_segment_labels_rejects_non_string_code():
    with pytest.raises(TypeError, match="got 5 of type int"):
        segment_labels({5: 1})


@pytest.mark.parametrize(
    ("tau", "measure", "message"),
    [
        (1.5, "max_conditional", r"\[0, 1\], got 1.5"),
        (-0.1, "jaccard", r"\[0, 1\], got -0.1"),
        (-1.0, "lift", "lift must be >= 0, got -1.0"),
        (0.5, "cosine", "unknown association measure 'cosine'"),
    ],
)
def test_select_conflict_edges_rejects_bad_tau(tau, measure, message):
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS)
    with pytest.raises(ValueError, match=message):
        select_conflict_edges(table, tau=tau, measure=measure)


def test_lift_threshold_above_one_allowed():
    table = compute_association(PAIR_COUNTS, LABEL_COUNTS, measure="lift", n_documents=20)
    edges = select_conflict_edges(table, tau=2.0, measure="lift")
    assert list(zip(edges["code_a"], edges["code_b"])) == [("b", "c")]


@pytest.mark.parametrize(
    ("pairs", "kwargs", "message"),
    [
        ({("a", "b"): 5}, {}, r"pair count 5 for \('a', 'b'\) exceeds"),
        ({("a", "b"): -1}, {}, "must be a finite number >= 0, got -1"),
        ({("a", "q"): 1}, {}, "unknown code 'q'"),
        ({("a", "b"): 1, ("b", "a"): 1}, {}, "duplicate pair"),
        ({("a", "b"): 1}, {"measure": "lift"}, "needs n_documents"),
        ({("a", "b"): 1}, {"measure": "lift", "n_documents": 3}, "smaller than the largest"),
    ],
)
def test_compute_association_rejects_invalid_input(pairs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_association(pairs, LABEL_COUNTS, **kwargs)


# --------------------------------------------------------------------------- properties


def _random_problem(seed):
    """Return Zipf-like label counts and random pair counts for one seed."""
    rng = np.random.default_rng(seed)
    n_labels = int(rng.integers(20, 120))
    codes = [f"C{index:03d}" for index in range(n_labels)]
    counts = np.minimum(rng.zipf(1.6, size=n_labels), 5000)
    counts[rng.random(n_labels) < 0.05] = 0
    label_counts = dict(zip(codes, counts.tolist()))

    # Denser pair tables make more conflicts, so some small segments cannot merge.
    pair_probability = rng.uniform(0.05, 0.5)
    pair_counts = {}
    for first, second in itertools.combinations(range(n_labels), 2):
        if rng.random() < pair_probability:
            upper = int(min(counts[first], counts[second]))
            pair_counts[(codes[first], codes[second])] = int(rng.integers(0, upper + 1))
    return label_counts, pair_counts, int(rng.integers(1, 9))


def _conflict_edges(label_counts, pair_counts, tau=0.5):
    table = compute_association(pair_counts, label_counts)
    return table, select_conflict_edges(table, tau)


SEEDS = list(range(20))


@pytest.mark.parametrize("seed", SEEDS)
def test_every_label_in_one_segment(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    result = segment_labels_from_pairs(label_counts, pair_counts, min_segment_size=min_size)

    assert set(result.segment_of) == set(label_counts)
    assert result.segments["segment_id"].tolist() == list(range(result.n_segments))
    assert result.segments["n_labels"].sum() == len(label_counts)
    sizes = np.bincount(result.segment_ids, minlength=result.n_segments)
    assert sizes.tolist() == result.segments["n_labels"].tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_no_conflict_inside_segment(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    table, edges = _conflict_edges(label_counts, pair_counts)
    result = segment_labels(label_counts, edges, min_segment_size=min_size,
                            pair_associations=table)

    for code_a, code_b in zip(edges["code_a"], edges["code_b"]):
        assert result.segment_of[code_a] != result.segment_of[code_b], (code_a, code_b)
    assert (result.segments["max_internal_association"] <= 0.5).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_result_independent_of_input_order(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    _, edges = _conflict_edges(label_counts, pair_counts)
    reference = segment_labels(label_counts, edges, min_segment_size=min_size)

    rng = np.random.default_rng(1000 + seed)
    codes = list(label_counts)
    shuffled_codes = [codes[i] for i in rng.permutation(len(codes))]
    shuffled_counts = (shuffled_codes, [label_counts[code] for code in shuffled_codes])
    edge_list = list(zip(edges["code_a"], edges["code_b"]))
    shuffled_edges = [
        (b, a) if rng.random() < 0.5 else (a, b)
        for a, b in (edge_list[i] for i in rng.permutation(len(edge_list)))
    ]
    shuffled = segment_labels(shuffled_counts, shuffled_edges, min_segment_size=min_size)

    assert shuffled.segment_of == reference.segment_of
    assert shuffled.colour_of == reference.colour_of
    pd.testing.assert_frame_equal(shuffled.segments, reference.segments)


@pytest.mark.parametrize("seed", SEEDS)
def test_segments_numbered_by_max_count(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    result = segment_labels_from_pairs(label_counts, pair_counts, min_segment_size=min_size)
    max_counts = result.segments["max_count"].to_numpy()
    assert (np.diff(max_counts) <= 0).all()
    for segment_id, max_count in enumerate(max_counts):
        members = result.counts[result.segment_ids == segment_id]
        assert members.max() == max_count


@pytest.mark.parametrize("seed", SEEDS)
def test_bands_follow_ratio_rule(seed):
    label_counts, _, _ = _random_problem(seed)
    result = segment_labels(label_counts, [], rho=4)
    order = np.lexsort((np.arange(len(result.codes)), -result.counts))
    # Recompute each band's first count and check every label against it.
    first_counts = {}
    for position in order:
        band = result.bands[position]
        first_counts.setdefault(band, result.counts[position])
        first = first_counts[band]
        count = result.counts[position]
        if count > 0:
            assert first / count <= 4
        else:
            assert first == 0
    assert (np.diff(result.bands[order]) >= 0).all()
    assert (np.diff(result.bands[order]) <= 1).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_colouring_is_greedy_and_merges_stay_adjacent(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    _, edges = _conflict_edges(label_counts, pair_counts)
    result = segment_labels(label_counts, edges, min_segment_size=min_size)

    neighbours = {code: set() for code in label_counts}
    for code_a, code_b in zip(edges["code_a"], edges["code_b"]):
        neighbours[code_a].add(code_b)
        neighbours[code_b].add(code_a)
    for code, colour in result.colour_of.items():
        band = result.band_of[code]
        same_band = {result.colour_of[n] for n in neighbours[code] if result.band_of[n] == band}
        # Greedy colouring: every smaller colour is taken by a neighbour in the band.
        assert set(range(colour)) <= same_band

    segment_band = dict(zip(result.segments["segment_id"], result.segments["band"]))
    for code, segment_id in result.segment_of.items():
        assert abs(segment_band[segment_id] - result.band_of[code]) <= 1


@pytest.mark.parametrize("seed", SEEDS)
def test_small_segments_left_alone_conflict_with_neighbours(seed):
    label_counts, pair_counts, min_size = _random_problem(seed)
    _, edges = _conflict_edges(label_counts, pair_counts)
    result = segment_labels(label_counts, edges, min_segment_size=min_size)

    edge_set = {frozenset(pair) for pair in zip(edges["code_a"], edges["code_b"])}
    members = {
        segment_id: set(result.codes[result.segment_ids == segment_id])
        for segment_id in range(result.n_segments)
    }
    for row in result.segments.itertuples():
        if row.n_labels >= min_size or row.merged_from:
            continue
        neighbours = result.segments[(result.segments["band"] - row.band).abs() == 1]
        for target in neighbours["segment_id"]:
            conflicts = any(
                frozenset((a, b)) in edge_set
                for a in members[row.segment_id]
                for b in members[target]
            )
            assert conflicts, (row.segment_id, target)
