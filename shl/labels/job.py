"""The label statistics job: counts, co-occurrence, imbalance and segments of the
train split of ``documents``, written to the gold tables ``label_stats``,
``cooccurrence``, ``segments`` and ``imbalance``, plus a long-tail plot.

Counting runs in Spark. Two things reach the driver: one row per label (counts
per split) and the conflict edges, the pairs whose association is above the
threshold. All co-occurring pairs stay in Spark. Ranks, bands, the imbalance
summary and the segmentation are computed on the driver with the pure functions
of ``shl.labels.statistics`` and ``shl.labels.segmentation``, so the tables
equal what those functions return for the same documents.

Every table is derived in full from one version of ``documents``. Each write
is one MERGE on the table key that inserts new rows, updates changed rows and
deletes rows whose key the run no longer produces. So a re-run on the same
documents leaves the same tables, and a label that left the documents leaves
the tables too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shl import delta, tables
from shl.config import Config, ConfigError
from shl.labels.plots import plot_long_tail, report_path
from shl.labels.segmentation import SegmentationResult, segment_labels
from shl.labels.statistics import (
    DEFAULT_RARE_THRESHOLD,
    _count_table,
    _imbalance_summary,
)
from shl.spark import get_spark

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EDGE_COLUMNS = ["code_a", "code_b", "n_ab", "association"]


@dataclass
class LabelStatsReport:
    """Row counts, results, table versions and timings of one label statistics run."""

    documents_version: int
    # Documents per split value, as found in the documents table.
    n_documents: dict[str, int]
    n_labels: int
    n_pairs: int
    # The pairs collected to the driver: code_a, code_b, n_ab, association.
    conflict_edges: pd.DataFrame
    imbalance: dict
    # One row per segment, the columns of shl.labels.segmentation.SEGMENT_COLUMNS.
    segments: pd.DataFrame
    writes: dict[str, delta.WriteResult] = field(default_factory=dict)
    plot_path: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_conflict_edges(self) -> int:
        return len(self.conflict_edges)

    @property
    def n_segments(self) -> int:
        return len(self.segments)


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str):
    started = time.monotonic()
    yield
    timings[phase] = time.monotonic() - started


def run_label_stats(config: Config, spark: SparkSession | None = None) -> LabelStatsReport:
    """Compute the label statistics and segments of the train split and write the gold tables.

    Parameters
    ----------
    config : Config
        ``segmentation`` sets the band ratio, the association measure and
        threshold and the minimum segment size; ``lakehouse.root`` locates
        ``documents`` and the gold tables.
    spark : SparkSession, optional
        Default: :func:`shl.spark.get_spark` with ``config.spark``.

    Returns
    -------
    LabelStatsReport

    Raises
    ------
    FileNotFoundError
        If the ``documents`` table does not exist.
    ConfigError
        If the association threshold is out of range for the measure.
    ValueError
        If ``documents`` has no train document, no train label, or a null label.
    """
    started = time.monotonic()
    settings = config.segmentation
    check_segmentation_settings(config)
    spark = spark or get_spark(config.spark)
    logger.info(
        "Label statistics started: lakehouse %s; band_ratio %s, %s association > %s, "
        "min_segment_size %d",
        config.lakehouse.root, settings.band_ratio, settings.association_measure,
        settings.association_threshold, settings.min_segment_size,
    )
    timings: dict[str, float] = {}
    with _timed(timings, "label counts"):
        documents, version = read_documents(spark, config)
        n_documents = count_documents(documents, version)
        labels = label_table(
            collect_split_counts(documents), n_documents["train"], settings.band_ratio
        )

    label_counts = spark.createDataFrame(labels[["code", "count"]], "code string, count long")
    pairs = cooccurrence_frame(count_pairs(documents), label_counts, n_documents["train"])
    pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        report = _segment_and_write(spark, config, labels, pairs, version, n_documents, timings)
    finally:
        pairs.unpersist()

    logger.info("%s", format_imbalance(report.imbalance))
    logger.info("%s", format_segments(report.segments, settings.min_segment_size))
    report.seconds = time.monotonic() - started
    logger.info(
        "Label statistics finished in %.1f s (%s)",
        report.seconds, ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()),
    )
    return report


def _segment_and_write(
    spark: SparkSession,
    config: Config,
    labels: pd.DataFrame,
    pairs: DataFrame,
    version: int,
    n_documents: dict[str, int],
    timings: dict[str, float],
) -> LabelStatsReport:
    """Collect the conflict edges, segment the labels, and write the tables and the plot."""
    n_train = n_documents["train"]
    with _timed(timings, "co-occurrence"):
        n_pairs = pairs.count()
        edges = collect_conflict_edges(pairs, config, n_train, n_pairs)

    with _timed(timings, "segmentation"):
        result, segment_table = segment(spark, config, labels, pairs, edges, n_train)
        imbalance = _imbalance_summary(n_train, labels["count"].to_numpy(), DEFAULT_RARE_THRESHOLD)

    report = LabelStatsReport(
        documents_version=version, n_documents=n_documents, n_labels=len(labels), n_pairs=n_pairs,
        conflict_edges=edges, imbalance=imbalance, segments=segment_table, timings=timings,
    )
    with _timed(timings, "write"):
        report.writes = write_tables(spark, config, labels, pairs, result, segment_table, imbalance)
    with _timed(timings, "plot"):
        report.plot_path = write_plot(config, labels, segment_table, imbalance)
    return report


def check_segmentation_settings(config: Config) -> None:
    """Check the association threshold against the measure before any Spark work.

    Raises
    ------
    ConfigError
        If the threshold is outside [0, 1] for ``max_conditional`` or ``jaccard``,
        or negative for ``lift``.
    """
    measure = config.segmentation.association_measure
    tau = config.segmentation.association_threshold
    if measure == "lift":
        valid, expected = tau >= 0, "at least 0 for the lift measure"
    else:
        valid, expected = 0 <= tau <= 1, f"between 0 and 1 for the {measure} measure"
    if not valid or not np.isfinite(tau):
        raise ConfigError(
            f"key 'segmentation.association_threshold' must be {expected}, found {tau!r}"
        )


# --------------------------------------------------------------------------- reading


def read_documents(spark: SparkSession, config: Config) -> tuple[DataFrame, int]:
    """Read the split and the label set of every document at the table's latest version.

    Labels come back distinct and sorted, so a code listed twice counts once. All
    passes of the job read this one version, even while another job writes the table.

    Returns
    -------
    documents : DataFrame
        Columns ``split`` (string) and ``labels`` (array of string).
    version : int
        The version of ``documents`` read.
    """
    path = tables.DOCUMENTS.path(config)
    version = delta.table_version(spark, path)
    if version is None:
        # Raises FileNotFoundError, naming the table and the stage that writes it.
        delta.read_table(spark, tables.DOCUMENTS, config)
    frame = spark.read.format("delta").option("versionAsOf", version).load(path)
    documents = frame.select(
        F.col("split"),
        F.array_sort(F.array_distinct(F.col("labels"))).alias("labels"),
    )
    return documents, version


def count_documents(documents: DataFrame, version: int) -> dict[str, int]:
    """Count the documents per split and check the labels.

    Raises
    ------
    ValueError
        If a label is null, or there is no train document.
    """
    null_labels = F.size(F.filter(F.col("labels"), lambda label: label.isNull()))
    rows = (
        documents.groupBy(F.col("split"))
        .agg(F.count(F.lit(1)).alias("documents"), F.sum(null_labels).alias("null_labels"))
        .collect()
    )
    n_documents = {row["split"]: int(row["documents"]) for row in rows}
    n_null = sum(int(row["null_labels"] or 0) for row in rows)
    logger.info(
        "Read silver.documents version %d: %s documents",
        version, ", ".join(f"{split} {n}" for split, n in sorted(n_documents.items())),
    )
    if n_null:
        raise ValueError(
            f"silver.documents version {version} has {n_null} null labels in its labels "
            "arrays; rebuild the table with the tokenize stage"
        )
    unknown = sorted(split for split in n_documents if split not in SPLITS)
    if unknown:
        logger.warning(
            "silver.documents has documents with split %s, which count in no split column",
            unknown,
        )
    if not n_documents.get("train"):
        raise ValueError(
            f"silver.documents version {version} has no document with split 'train'; "
            "check the split settings and rebuild the table with the tokenize stage"
        )
    return n_documents


def collect_split_counts(documents: DataFrame) -> pd.DataFrame:
    """Count the documents per label and split in Spark and collect one row per label.

    Returns
    -------
    pandas.DataFrame
        Columns ``code``, ``train_count``, ``val_count``, ``test_count`` (int64),
        one row per label seen in any split, sorted by code.
    """
    exploded = documents.select(F.col("split"), F.explode(F.col("labels")).alias("code"))
    counted = exploded.groupBy(F.col("code")).agg(
        *(
            F.count(F.when(F.col("split") == split, True)).alias(f"{split}_count")
            for split in SPLITS
        )
    )
    columns = ["code", *(f"{split}_count" for split in SPLITS)]
    frame = pd.DataFrame([tuple(row) for row in counted.collect()], columns=columns)
    for column in columns[1:]:
        frame[column] = frame[column].astype(np.int64)
    return frame.sort_values("code", ignore_index=True)


def label_table(split_counts: pd.DataFrame, n_train: int, rho: float) -> pd.DataFrame:
    """Build the ``label_stats`` rows of the labels seen in train.

    ``count``, ``prevalence``, ``rank`` and ``band`` come from the same helper as
    :func:`shl.labels.statistics.compute_label_counts`. Labels seen only in val or
    test are left out and counted in the log.

    Raises
    ------
    ValueError
        If no train document has a label.
    """
    seen = split_counts[split_counts["train_count"] > 0]
    n_unseen = len(split_counts) - len(seen)
    if seen.empty:
        raise ValueError(
            "no train document in silver.documents has a label; check labels.code_systems "
            "and labels.min_train_count and rebuild the table with the tokenize stage"
        )
    table = _count_table(
        seen["code"].to_numpy(dtype=object), seen["train_count"].to_numpy(), n_train, rho
    )
    table = table.merge(seen, on="code", how="left", validate="one_to_one")
    logger.info(
        "%d labels in %d train documents; %d labels are seen only in val or test and left out",
        len(table), n_train, n_unseen,
    )
    return table[tables.LABEL_STATS.columns]


# --------------------------------------------------------------------------- pairs


def count_pairs(documents: DataFrame) -> DataFrame:
    """Count the train documents of every co-occurring label pair.

    Each document's sorted labels yield the pairs (labels[i], labels[j]) with
    i < j, so ``code_a`` < ``code_b``. Only pairs with at least one document exist.

    Returns
    -------
    DataFrame
        Columns ``code_a``, ``code_b`` (string) and ``n_ab`` (long).
    """
    labels = F.col("labels")
    pairs = F.flatten(
        F.transform(
            labels,
            lambda first, position: F.transform(
                # The labels after ``position``: slice is 1-based, position 0-based.
                F.slice(labels, position + 2, F.size(labels)),
                lambda second: F.struct(first.alias("code_a"), second.alias("code_b")),
            ),
        )
    )
    train = documents.filter(F.col("split") == "train")
    return (
        train.select(F.explode(pairs).alias("pair"))
        .groupBy(F.col("pair.code_a").alias("code_a"), F.col("pair.code_b").alias("code_b"))
        .agg(F.count(F.lit(1)).alias("n_ab"))
    )


def cooccurrence_frame(pairs: DataFrame, label_counts: DataFrame, n_train: int) -> DataFrame:
    """Add the label counts and the pair measures to the pair counts.

    The measures use the operations of
    :func:`shl.labels.statistics.compute_cooccurrence` in the same order, so the
    doubles are bit-identical to it.

    Returns
    -------
    DataFrame
        The columns of the ``cooccurrence`` table.
    """
    first = label_counts.select(F.col("code").alias("code_a"), F.col("count").alias("n_a"))
    second = label_counts.select(F.col("code").alias("code_b"), F.col("count").alias("n_b"))
    joined = pairs.join(F.broadcast(first), on="code_a", how="inner").join(
        F.broadcast(second), on="code_b", how="inner"
    )
    n_ab = F.col("n_ab").cast("double")
    n_a = F.col("n_a").cast("double")
    n_b = F.col("n_b").cast("double")
    union = (F.col("n_a") + F.col("n_b") - F.col("n_ab")).cast("double")
    return joined.select(
        F.col("code_a"),
        F.col("code_b"),
        F.col("n_ab"),
        F.col("n_a"),
        F.col("n_b"),
        (n_ab / union).alias("jaccard"),
        (n_ab / n_a).alias("p_b_given_a"),
        (n_ab / n_b).alias("p_a_given_b"),
        (n_ab * F.lit(float(n_train)) / (n_a * n_b)).alias("lift"),
    )


def association_column(measure: str, n_train: int) -> Column:
    """Return the association of a ``cooccurrence`` row under ``measure``.

    The same arithmetic as :func:`shl.labels.segmentation.compute_association`:
    max_conditional is n_ab / min(n_a, n_b), jaccard n_ab / (n_a + n_b - n_ab) and
    lift n_ab * N / (n_a * n_b).
    """
    n_ab = F.col("n_ab").cast("double")
    if measure == "max_conditional":
        return n_ab / F.least(F.col("n_a"), F.col("n_b")).cast("double")
    if measure == "jaccard":
        return n_ab / (F.col("n_a") + F.col("n_b") - F.col("n_ab")).cast("double")
    if measure == "lift":
        return n_ab * F.lit(float(n_train)) / (F.col("n_a") * F.col("n_b")).cast("double")
    raise ConfigError(
        f"key 'segmentation.association_measure' must be one of max_conditional, jaccard, "
        f"lift, found {measure!r}"
    )


def collect_conflict_edges(
    pairs: DataFrame, config: Config, n_train: int, n_pairs: int
) -> pd.DataFrame:
    """Collect the pairs whose association is above the threshold, and only those.

    Returns
    -------
    pandas.DataFrame
        Columns ``code_a``, ``code_b``, ``n_ab``, ``association``, sorted by
        (code_a, code_b).
    """
    measure = config.segmentation.association_measure
    tau = config.segmentation.association_threshold
    association = association_column(measure, n_train)
    edges = (
        pairs.select(
            F.col("code_a"), F.col("code_b"), F.col("n_ab"), association.alias("association")
        )
        .filter(F.col("association") > F.lit(float(tau)))
        .collect()
    )
    frame = pd.DataFrame([tuple(row) for row in edges], columns=EDGE_COLUMNS)
    frame["n_ab"] = frame["n_ab"].astype(np.int64)
    frame["association"] = frame["association"].astype(np.float64)
    frame = frame.sort_values(["code_a", "code_b"], ignore_index=True)
    logger.info(
        "Collected %d conflict edges (%s association > %s) of %d co-occurring pairs",
        len(frame), measure, tau, n_pairs,
    )
    return frame


def segment(
    spark: SparkSession,
    config: Config,
    labels: pd.DataFrame,
    pairs: DataFrame,
    edges: pd.DataFrame,
    n_train: int,
) -> tuple[SegmentationResult, pd.DataFrame]:
    """Segment the labels on the driver and add each segment's max internal association.

    Returns
    -------
    result : SegmentationResult
        Output of :func:`shl.labels.segmentation.segment_labels`.
    segment_table : pandas.DataFrame
        ``result.segments`` with ``max_internal_association`` computed in Spark
        over all co-occurring pairs.
    """
    settings = config.segmentation
    counts = pd.Series(labels["count"].to_numpy(), index=labels["code"].to_numpy())
    result = segment_labels(
        counts, edges, rho=settings.band_ratio, min_segment_size=settings.min_segment_size
    )
    internal = internal_association(spark, pairs, result, config, n_train)
    return result, result.segments.assign(max_internal_association=internal)


def internal_association(
    spark: SparkSession,
    pairs: DataFrame,
    result: SegmentationResult,
    config: Config,
    n_train: int,
) -> np.ndarray:
    """Return the largest association of a co-occurring pair inside each segment.

    Computed in Spark over all pairs; segments without such a pair get 0, as
    ``segment_labels`` reports when given every pair's association.
    """
    segment_of = spark.createDataFrame(
        pd.DataFrame({"code": result.codes, "segment_id": result.segment_ids.astype(np.int64)}),
        "code string, segment_id long",
    )
    first = segment_of.select(F.col("code").alias("code_a"), F.col("segment_id"))
    second = segment_of.select(F.col("code").alias("code_b"), F.col("segment_id"))
    association = association_column(config.segmentation.association_measure, n_train)
    inside = pairs.join(F.broadcast(first), on="code_a", how="inner").join(
        F.broadcast(second), on=["code_b", "segment_id"], how="inner"
    )
    rows = (
        inside.groupBy(F.col("segment_id"))
        .agg(F.max(association).alias("association"))
        .collect()
    )
    largest = np.zeros(result.n_segments, dtype=np.float64)
    for row in rows:
        largest[int(row["segment_id"])] = float(row["association"])
    return largest


# --------------------------------------------------------------------------- writing


def segment_rows(result: SegmentationResult, segment_table: pd.DataFrame) -> pd.DataFrame:
    """Build the ``segments`` rows: one per label, with its segment's statistics."""
    per_label = result.to_frame()
    per_segment = segment_table.drop(columns=["merged_from"]).rename(
        columns={"band": "segment_band", "colour": "segment_colour"}
    )
    rows = per_label.merge(per_segment, on="segment_id", how="left", validate="many_to_one")
    return rows[tables.SEGMENTS.columns]


def imbalance_rows(imbalance: dict) -> pd.DataFrame:
    """Build the ``imbalance`` rows: one per metric, the value as a double."""
    return pd.DataFrame(
        {"metric": list(imbalance), "value": [float(value) for value in imbalance.values()]}
    )


def to_spark(spark: SparkSession, frame: pd.DataFrame, spec: tables.TableSpec) -> DataFrame:
    """Convert driver rows to a Spark frame with the spec's columns and types."""
    numpy_types = {
        T.StringType(): object,
        T.LongType(): np.int64,
        T.IntegerType(): np.int32,
        T.DoubleType(): np.float64,
    }
    typed = pd.DataFrame(
        {field.name: frame[field.name].to_numpy(dtype=numpy_types[field.dataType])
         for field in spec.schema.fields}
    )
    return spark.createDataFrame(typed, schema=spec.schema)


def write_tables(
    spark: SparkSession,
    config: Config,
    labels: pd.DataFrame,
    pairs: DataFrame,
    result: SegmentationResult,
    segment_table: pd.DataFrame,
    imbalance: dict,
) -> dict[str, delta.WriteResult]:
    """Write the four gold tables, deleting rows whose key this run did not produce."""
    frames = {
        tables.LABEL_STATS: to_spark(spark, labels, tables.LABEL_STATS),
        tables.COOCCURRENCE: pairs.select(*tables.COOCCURRENCE.columns),
        tables.SEGMENTS: to_spark(spark, segment_rows(result, segment_table), tables.SEGMENTS),
        tables.IMBALANCE: to_spark(spark, imbalance_rows(imbalance), tables.IMBALANCE),
    }
    # Each MERGE of a small table is mostly driver-side Delta work, so the four
    # overlap well in threads. They write different tables and do not conflict.
    with ThreadPoolExecutor(max_workers=len(frames), thread_name_prefix="gold-write") as pool:
        futures = {
            spec.name: pool.submit(
                delta.merge_table, spark, frame, spec, config, delete_missing=True
            )
            for spec, frame in frames.items()
        }
        writes = {name: future.result() for name, future in futures.items()}
    logger.info(
        "Wrote %s",
        "; ".join(
            f"{write.table} version {write.version} ({write.inserted} inserted, "
            f"{write.updated} updated, {write.deleted} deleted)"
            for write in writes.values()
        ),
    )
    return writes


def write_plot(
    config: Config, labels: pd.DataFrame, segment_table: pd.DataFrame, imbalance: dict
) -> str | None:
    """Draw the long-tail plot to ``<lakehouse.root>/gold/reports/long_tail.png``.

    Returns the path, or None when the lakehouse root is a URL, which matplotlib
    cannot write to.
    """
    path = report_path(config, "long_tail.png")
    if path is None:
        logger.warning(
            "Skipped the long-tail plot: lakehouse.root %s is a URL; use a file system path "
            "such as /dbfs/... to get gold/reports/long_tail.png",
            config.lakehouse.root,
        )
        return None
    plot_long_tail(labels, segment_table, imbalance, Path(path))
    logger.info("Wrote the long-tail plot to %s", path)
    return path


# --------------------------------------------------------------------------- log text


def format_imbalance(imbalance: dict) -> str:
    """Return the imbalance summary as an aligned, readable block of text."""
    rare = imbalance["rare_threshold"]
    lines = [
        ("train documents", f"{imbalance['n_documents']:,}"),
        ("labels", f"{imbalance['n_labels']:,}"),
        ("label occurrences", f"{imbalance['n_label_occurrences']:,}"),
        ("labels per document", f"{imbalance['mean_labels_per_document']:.2f}"),
        ("imbalance ratio (max / min count)", f"{imbalance['imbalance_ratio']:,.1f}"),
        ("Gini coefficient of counts", f"{imbalance['gini']:.3f}"),
        ("share of occurrences, top 1% of codes", f"{imbalance['top_1pct_share']:.1%}"),
        ("share of occurrences, top 10% of codes", f"{imbalance['top_10pct_share']:.1%}"),
        (f"codes seen fewer than {rare:g} times", f"{imbalance['n_rare_labels']:,}"),
    ]
    width = max(len(name) for name, _ in lines)
    body = "\n".join(f"  {name:<{width}}  {value:>10}" for name, value in lines)
    return f"Label imbalance of the train split:\n{body}"


def format_segments(segment_table: pd.DataFrame, min_segment_size: int) -> str:
    """Return the segment count, sizes and count ranges as a compact text table."""
    sizes = segment_table["n_labels"].to_numpy()
    header = (
        f"{len(segment_table)} segments; labels per segment min {sizes.min()}, "
        f"median {np.median(sizes):g}, max {sizes.max()}; "
        f"{int((sizes < min_segment_size).sum())} smaller than {min_segment_size}"
    )
    lines = [f"{'segment':>7} {'band':>4} {'colour':>6} {'labels':>6} "
             f"{'min count':>9} {'max count':>9} {'mean count':>10} {'max assoc':>9}"]
    for row in segment_table.itertuples(index=False):
        lines.append(
            f"{row.segment_id:>7} {row.band:>4} {row.colour:>6} {row.n_labels:>6} "
            f"{row.min_count:>9} {row.max_count:>9} {row.mean_count:>10.1f} "
            f"{row.max_internal_association:>9.3f}"
        )
    return "Label segments: " + header + "\n" + "\n".join("  " + line for line in lines)
