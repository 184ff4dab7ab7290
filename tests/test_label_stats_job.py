"""The label statistics job against plain Python on the same documents, run twice."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pandas as pd
import pytest

from frames import assert_frames_equal
from shl import tables
from shl.config import ConfigError, load_config
from shl.delta import merge_table
from shl.documents.job import run_tokenize
from shl.ingest.job import run_ingest
from shl.labels.job import association_column, check_segmentation_settings, run_label_stats
from shl.labels.segmentation import (
    compute_association,
    segment_labels_from_pairs,
    select_conflict_edges,
)
from shl.labels.statistics import (
    COOCCURRENCE_COLUMNS,
    COUNT_COLUMNS,
    compute_cooccurrence,
    compute_label_counts,
    summarise_imbalance,
)

GOLD = (tables.LABEL_STATS, tables.COOCCURRENCE, tables.SEGMENTS, tables.IMBALANCE)
# Removed from every document before the third run.
DROPPED = "icd10cm:C05"
# Each first code is followed by its companion in 90% of the documents that have it.
COMPANIONS = {
    "icd10cm:C00": "icd10cm:C01",
    "icd10cm:C03": "icd10cm:C25",
    "icd10cm:C10": "icd10cm:C31",
}
SETTINGS = [
    "segmentation.band_ratio=4",
    "segmentation.association_threshold=0.5",
    "segmentation.association_measure=max_conditional",
    "segmentation.min_segment_size=3",
]


def make_label_sets(n_documents: int = 200, seed: int = 3) -> list[tuple[str, list[str]]]:
    """Return (split, labels) per document: 40 codes, Zipf-like counts, three strong pairs."""
    rng = np.random.default_rng(seed)
    codes = np.array([f"icd10cm:C{i:02d}" for i in range(40)])
    weights = 1.0 / np.arange(1, 41) ** 1.2
    documents = []
    for index in range(n_documents):
        drawn = rng.choice(codes, size=rng.poisson(3.0), p=weights / weights.sum())
        labels = {str(code) for code in drawn}
        for first, companion in COMPANIONS.items():
            if first in labels and rng.random() < 0.9:
                labels.add(companion)
        split = ("train",) * 7 + ("val", "test", "test")
        documents.append((split[index % 10], sorted(labels)))
    # A code listed twice counts once, and a code seen only in test is no label.
    documents[0] = ("train", ["icd10cm:C00", "icd10cm:C00", "icd10cm:C02"])
    documents[8] = ("test", ["icd10cm:Z99"])
    return documents


def write_documents(spark, config, documents) -> None:
    rows = [
        (
            f"test:{index}", "test", str(index // 2), str(index), "note text",
            hashlib.sha256(b"note text").hexdigest(), labels, split,
        )
        for index, (split, labels) in enumerate(documents)
    ]
    frame = spark.createDataFrame(rows, tables.DOCUMENTS.schema)
    merge_table(spark, frame, tables.DOCUMENTS, config, delete_missing=True)


def read_gold(spark, config) -> dict[str, pd.DataFrame]:
    return {
        spec.name: spark.read.format("delta").load(spec.path(config)).toPandas()
        for spec in GOLD
    }


def snapshot(spark, config):
    """Read the gold tables into memory: a lazy frame would follow later writes."""
    frames = {}
    for spec in GOLD:
        table = spark.read.format("delta").load(spec.path(config))
        frames[spec.name] = spark.createDataFrame(table.collect(), table.schema)
    return frames


@pytest.fixture(scope="module")
def job(spark, tmp_path_factory):
    """Run the job twice on the same documents, then once more without ``DROPPED``."""
    root = tmp_path_factory.mktemp("label_stats")
    config = load_config(None, [f"lakehouse.root={root / 'lakehouse'}", *SETTINGS])
    documents = make_label_sets()
    write_documents(spark, config, documents)
    first = run_label_stats(config, spark)
    first_tables = snapshot(spark, config)
    second = run_label_stats(config, spark)
    second_tables = snapshot(spark, config)
    gold = {name: frame.toPandas() for name, frame in second_tables.items()}

    dropped = [(split, [code for code in labels if code != DROPPED]) for split, labels in documents]
    write_documents(spark, config, dropped)
    third = run_label_stats(config, spark)
    return {
        "config": config, "documents": documents, "train": train_label_sets(documents),
        "first": first, "second": second, "first_tables": first_tables,
        "second_tables": second_tables, "gold": gold, "third": third,
        "dropped_train": train_label_sets(dropped), "dropped_gold": read_gold(spark, config),
    }


def train_label_sets(documents) -> list[list[str]]:
    return [labels for split, labels in documents if split == "train"]


def test_label_counts_equal_plain_python(job):
    expected = compute_label_counts(job["train"], rho=4)
    actual = job["gold"]["label_stats"].sort_values("rank", ignore_index=True)
    for column in COUNT_COLUMNS:
        assert actual[column].tolist() == expected[column].tolist(), column
    assert len(actual) == 38
    assert "icd10cm:Z99" not in set(actual["code"])
    assert actual["count"].tolist() == actual["train_count"].tolist()


def test_split_counts_equal_hand_count(job):
    actual = job["gold"]["label_stats"].set_index("code")
    for split in ("val", "test"):
        expected = {code: 0 for code in actual.index}
        for document_split, labels in job["documents"]:
            if document_split == split:
                for code in set(labels) & set(expected):
                    expected[code] += 1
        assert actual[f"{split}_count"].to_dict() == expected, split
    assert actual.loc["icd10cm:C00", "test_count"] > 0


def test_cooccurrence_equal_plain_python(job):
    expected = compute_cooccurrence(job["train"])
    actual = job["gold"]["cooccurrence"].sort_values(["code_a", "code_b"], ignore_index=True)
    assert list(actual.columns) == COOCCURRENCE_COLUMNS
    assert len(actual) == len(expected)
    for column in COOCCURRENCE_COLUMNS:
        assert actual[column].tolist() == expected[column].tolist(), column
    assert (actual["code_a"] < actual["code_b"]).all()
    assert (actual["n_ab"] > 0).all()


def test_imbalance_equal_plain_python(job):
    expected = summarise_imbalance(job["train"])
    actual = job["gold"]["imbalance"].set_index("metric")["value"].to_dict()
    assert actual == {metric: float(value) for metric, value in expected.items()}
    assert job["first"].imbalance == expected
    assert expected["n_documents"] == 140
    assert expected["n_labels"] == 38


def test_conflict_edges_are_pairs_above_tau(job):
    counts = compute_label_counts(job["train"]).set_index("code")["count"]
    pairs = compute_cooccurrence(job["train"])
    associations = compute_association(pairs, counts, "max_conditional")
    expected = select_conflict_edges(associations, 0.5, "max_conditional")
    actual = job["first"].conflict_edges
    keys = ["code_a", "code_b"]
    assert actual[keys].values.tolist() == expected[keys].values.tolist()
    assert actual["association"].tolist() == expected["association"].tolist()
    assert (actual["association"] > 0.5).all()
    # The strong pairs are edges, and the driver received fewer rows than there are pairs.
    edge_pairs = set(map(tuple, actual[["code_a", "code_b"]].values.tolist()))
    assert set(COMPANIONS.items()) <= edge_pairs
    assert job["first"].n_conflict_edges == len(expected) < job["first"].n_pairs


def test_segments_equal_plain_python(job):
    counts = compute_label_counts(job["train"]).set_index("code")["count"]
    expected = segment_labels_from_pairs(
        counts, compute_cooccurrence(job["train"]), rho=4, tau=0.5,
        measure="max_conditional", min_segment_size=3,
    )
    rows = job["gold"]["segments"].set_index("code").sort_index()
    assert rows.index.tolist() == expected.codes.tolist()
    assert rows["segment_id"].tolist() == expected.segment_ids.tolist()
    assert rows["band"].tolist() == expected.bands.tolist()
    assert rows["colour"].tolist() == expected.colours.tolist()
    assert rows["count"].tolist() == expected.counts.tolist()
    table = expected.segments.set_index("segment_id")
    per_segment = rows.groupby("segment_id").first()
    assert per_segment["segment_band"].tolist() == table["band"].tolist()
    assert per_segment["segment_colour"].tolist() == table["colour"].tolist()
    for column in ("n_labels", "min_count", "max_count", "mean_count", "max_internal_association"):
        assert per_segment[column].tolist() == table[column].tolist(), column
    assert job["first"].n_segments == expected.n_segments > 3


def test_segments_partition_labels_without_conflicts(job):
    rows = job["gold"]["segments"]
    labels = job["gold"]["label_stats"]
    assert sorted(rows["code"]) == sorted(labels["code"])
    assert rows["code"].is_unique
    sizes = rows.groupby("segment_id").size()
    assert sizes.to_dict() == rows.groupby("segment_id")["n_labels"].first().to_dict()
    segment_of = rows.set_index("code")["segment_id"].to_dict()
    edges = job["first"].conflict_edges
    assert len(edges) > 0
    for code_a, code_b in zip(edges["code_a"], edges["code_b"]):
        assert segment_of[code_a] != segment_of[code_b], (code_a, code_b)
    assert (rows["max_internal_association"] <= 0.5).all()


def test_second_run_leaves_identical_tables(job):
    for spec in GOLD:
        assert_frames_equal(job["second_tables"][spec.name], job["first_tables"][spec.name])
    for name, write in job["second"].writes.items():
        assert (write.inserted, write.updated, write.deleted) == (0, 0, 0), name
    assert job["first"].writes["label_stats"].inserted == 38


def test_long_tail_png_is_valid(job):
    path = job["first"].plot_path
    assert path == str(job["config"].lakehouse.root) + "/gold/reports/long_tail.png"
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1100, 880)
    with open(path, "rb") as handle:
        assert len(handle.read()) > 20_000


def test_dropped_label_leaves_gold_tables(job):
    gold = job["dropped_gold"]
    expected_counts = compute_label_counts(job["dropped_train"], rho=4)
    labels = gold["label_stats"].sort_values("rank", ignore_index=True)
    assert labels["code"].tolist() == expected_counts["code"].tolist()
    assert labels["count"].tolist() == expected_counts["count"].tolist()
    assert DROPPED not in set(gold["segments"]["code"])
    expected_pairs = compute_cooccurrence(job["dropped_train"])
    pairs = gold["cooccurrence"].sort_values(["code_a", "code_b"], ignore_index=True)
    assert pairs[["code_a", "code_b", "n_ab"]].values.tolist() == (
        expected_pairs[["code_a", "code_b", "n_ab"]].values.tolist()
    )
    before = job["gold"]["cooccurrence"]
    n_dropped_pairs = int(((before["code_a"] == DROPPED) | (before["code_b"] == DROPPED)).sum())
    assert n_dropped_pairs == 17
    assert job["third"].writes["cooccurrence"].deleted == n_dropped_pairs
    assert job["third"].writes["label_stats"].deleted == 1
    assert job["third"].writes["segments"].deleted == 1
    assert job["third"].writes["imbalance"].deleted == 0


def test_sample_statistics_equal_plain_python(spark, tmp_path):
    """The built-in sample through ingest and tokenize, then the job against plain Python."""
    config = load_config(
        None,
        [
            f"source.path={tmp_path / 'sample'}",
            f"lakehouse.root={tmp_path / 'lakehouse'}",
            "sample.n_admissions=300",
            "sample.n_patients=120",
            "sample.n_diagnosis_codes=80",
            "sample.n_procedure_codes=20",
            "labels.min_train_count=1",
            "tokenizer.chunk_len=32",
            "tokenizer.max_chunks=1",
            *SETTINGS,
        ],
    )
    run_ingest(config, spark)
    run_tokenize(config, spark)
    report = run_label_stats(config, spark)
    documents = spark.read.format("delta").load(tables.DOCUMENTS.path(config)).toPandas()
    train = [list(labels) for labels in documents.loc[documents["split"] == "train", "labels"]]
    gold = read_gold(spark, config)

    expected_counts = compute_label_counts(train, rho=4)
    labels = gold["label_stats"].sort_values("rank", ignore_index=True)
    for column in COUNT_COLUMNS:
        assert labels[column].tolist() == expected_counts[column].tolist(), column
    expected_pairs = compute_cooccurrence(train)
    pairs = gold["cooccurrence"].sort_values(["code_a", "code_b"], ignore_index=True)
    for column in COOCCURRENCE_COLUMNS:
        assert pairs[column].tolist() == expected_pairs[column].tolist(), column
    assert report.imbalance == summarise_imbalance(train)

    expected = segment_labels_from_pairs(
        expected_counts.set_index("code")["count"], expected_pairs, rho=4, tau=0.5,
        measure="max_conditional", min_segment_size=3,
    )
    segments = gold["segments"].set_index("code").sort_index()
    assert segments["segment_id"].tolist() == expected.segment_ids.tolist()
    assert report.segments["max_internal_association"].tolist() == (
        expected.segments["max_internal_association"].tolist()
    )
    assert report.n_documents["train"] == len(train) > 150
    assert report.n_labels > 50
    assert report.n_conflict_edges > 0


@pytest.mark.parametrize("measure", ["max_conditional", "jaccard", "lift"])
def test_association_column_equals_plain_python(spark, measure):
    train = train_label_sets(make_label_sets())
    counts = compute_label_counts(train).set_index("code")["count"]
    pairs = compute_cooccurrence(train)
    expected = compute_association(pairs, counts, measure, n_documents=len(train))
    frame = spark.createDataFrame(pairs[["code_a", "code_b", "n_ab", "n_a", "n_b"]])
    actual = (
        frame.select("code_a", "code_b", association_column(measure, len(train)).alias("value"))
        .toPandas()
        .sort_values(["code_a", "code_b"], ignore_index=True)
    )
    assert actual["value"].tolist() == expected["association"].tolist()
    assert len(actual) == 189


def test_missing_documents_table_names_it(spark, tmp_path):
    config = load_config(None, [f"lakehouse.root={tmp_path / 'lakehouse'}"])
    with pytest.raises(FileNotFoundError, match="silver.documents"):
        run_label_stats(config, spark)


@pytest.mark.parametrize(
    ("measure", "tau"), [("max_conditional", 1.5), ("jaccard", -0.1), ("lift", -1.0)]
)
def test_threshold_out_of_range_is_rejected(measure, tau):
    config = load_config(
        None,
        [
            f"segmentation.association_measure={measure}",
            f"segmentation.association_threshold={tau}",
        ],
    )
    with pytest.raises(ConfigError, match="segmentation.association_threshold"):
        check_segmentation_settings(config)
