"""Read what training needs from the Delta tables: labels, segments, train and validation rows.

- ``silver.label_index``: the label of every output column and its train count.
- ``gold.segments`` when it exists, else one segment per frequency band of the train
  counts (a fallback that logs a warning).
- Train rows: ``gold.training_view`` (deduplicated, with a weight per label) when it
  exists and ``training.use_training_view`` is set, else the train split of
  ``silver.documents`` with weight 1 for every label.
- Validation rows: the val split of ``silver.documents``.
- Token ids from ``silver.tokens``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shl import delta, tables
from shl.config import Config
from shl.labels.segmentation import segment_labels

logger = logging.getLogger(__name__)

TRAIN_COLUMNS = ("doc_id", "input_ids", "attention_mask", "label_columns", "label_weights")


@dataclass
class TrainingInputs:
    """Labels, segments and the train and validation rows of one training run.

    ``train`` and ``val`` have the columns ``TRAIN_COLUMNS``. :func:`lay_out_train_rows`
    numbers the train rows (``row_id``) for the converter.
    """

    labels: list[str]
    label_counts: list[int]
    segments: list[int]
    segments_source: str
    train_source: str
    chunk_len: int
    max_chunks: int
    tokenizer_name: str
    train: DataFrame
    val: DataFrame
    versions: dict[str, int] = field(default_factory=dict)


def read_inputs(spark: SparkSession, config: Config) -> TrainingInputs:
    """Read the label index, segments, train and validation rows.

    Raises
    ------
    FileNotFoundError
        If ``silver.label_index``, ``silver.documents`` or ``silver.tokens`` is missing.
    ValueError
        If the label index is empty, ``gold.segments`` lacks a label, or the tokens
        table mixes chunk sizes or tokenizers.
    """
    versions = {}
    for spec in (tables.LABEL_INDEX, tables.DOCUMENTS, tables.TOKENS):
        versions[f"{spec.layer}.{spec.name}"] = delta.table_version(spark, spec.path(config)) or 0

    index_rows = delta.read_table(spark, tables.LABEL_INDEX, config).select("label", "column", "train_count").collect()
    if not index_rows:
        raise ValueError(
            f"silver.label_index at {tables.LABEL_INDEX.path(config)} is empty; lower labels.min_train_count "
            "or add documents, then run the tokenize stage again"
        )
    index_rows = sorted(index_rows, key=lambda row: row["column"])
    if [row["column"] for row in index_rows] != list(range(len(index_rows))):
        raise ValueError(
            f"silver.label_index columns are not 0..{len(index_rows) - 1}; run the tokenize stage again"
        )
    labels = [row["label"] for row in index_rows]
    counts = [int(row["train_count"]) for row in index_rows]
    segments, segments_source = load_segments(spark, config, labels, counts)

    tokens = delta.read_table(spark, tables.TOKENS, config)
    chunk_len, max_chunks, tokenizer_name = _token_shape(tokens, config)
    tokens = tokens.select("doc_id", "input_ids", "attention_mask")
    label_index = spark.createDataFrame(
        [(row["label"], row["column"]) for row in index_rows], "label string, column int"
    )
    documents = delta.read_table(spark, tables.DOCUMENTS, config)

    label_sets, train_source = _train_label_sets(spark, config, documents, versions)
    val_sets = documents.filter(F.col("split") == "val").select(
        "doc_id", "labels", F.transform("labels", lambda _: F.lit(1.0).cast("float")).alias("label_weights")
    )
    return TrainingInputs(
        labels=labels,
        label_counts=counts,
        segments=segments,
        segments_source=segments_source,
        train_source=train_source,
        chunk_len=chunk_len,
        max_chunks=max_chunks,
        tokenizer_name=tokenizer_name,
        train=labelled_tokens(label_sets, label_index, tokens),
        val=labelled_tokens(val_sets, label_index, tokens),
        versions=versions,
    )


def load_segments(
    spark: SparkSession, config: Config, labels: list[str], counts: list[int]
) -> tuple[list[int], str]:
    """Return the segment id of every label, in label-index order, and where it came from.

    ``gold.segments`` is used when it exists. Without it, the labels are segmented by
    train-count frequency bands alone (no co-occurrence conflicts), with
    ``segmentation.band_ratio`` and ``segmentation.min_segment_size``.

    Raises
    ------
    ValueError
        If ``gold.segments`` exists but has no row for some label.
    """
    spec = getattr(tables, "SEGMENTS", None)
    if spec is not None and delta.table_exists(spark, spec.path(config)):
        rows = delta.read_table(spark, spec, config).select("code", "segment_id").collect()
        segment_of = {row["code"]: int(row["segment_id"]) for row in rows}
        missing = [label for label in labels if label not in segment_of]
        if missing:
            raise ValueError(
                f"gold.segments at {spec.path(config)} has no segment for {len(missing)} of {len(labels)} "
                f"labels of silver.label_index (first: {missing[0]!r}); run the label-stats stage again"
            )
        segments = [segment_of[label] for label in labels]
        logger.info("Read %d segments of %d labels from gold.segments", len(set(segments)), len(labels))
        return segments, "gold.segments"

    logger.warning(
        "gold.segments not found under %s; segmenting the %d labels by train-count frequency bands only "
        "(band ratio %s). Run the label-stats stage for segments that also separate co-occurring labels",
        config.lakehouse.root, len(labels), config.segmentation.band_ratio,
    )
    result = segment_labels(
        dict(zip(labels, counts)),
        None,
        rho=config.segmentation.band_ratio,
        min_segment_size=config.segmentation.min_segment_size,
    )
    return [int(result.segment_of[label]) for label in labels], "frequency bands"


def _train_label_sets(
    spark: SparkSession, config: Config, documents: DataFrame, versions: dict[str, int]
) -> tuple[DataFrame, str]:
    """Return (doc_id, labels, label_weights) of the train rows and the table they came from."""
    spec = getattr(tables, "TRAINING_VIEW", None)
    if config.training.use_training_view:
        if spec is not None and delta.table_exists(spark, spec.path(config)):
            versions["gold.training_view"] = delta.table_version(spark, spec.path(config)) or 0
            view = delta.read_table(spark, spec, config)
            logger.info("Train rows: gold.training_view version %d", versions["gold.training_view"])
            return view.select("doc_id", "labels", "label_weights"), "gold.training_view"
        logger.warning(
            "gold.training_view not found under %s; training on the train split of silver.documents with "
            "weight 1 for every label. Run the dedup-noise stage, or set training.use_training_view=false",
            config.lakehouse.root,
        )
    train = documents.filter(F.col("split") == "train").select(
        "doc_id", "labels", F.transform("labels", lambda _: F.lit(1.0).cast("float")).alias("label_weights")
    )
    return train, "silver.documents"


def _token_shape(tokens: DataFrame, config: Config) -> tuple[int, int, str]:
    shapes = tokens.select("chunk_len", "max_chunks", "tokenizer_name").distinct().collect()
    if len(shapes) != 1:
        found = [tuple(row) for row in shapes] or "no rows"
        raise ValueError(
            f"silver.tokens at {tables.TOKENS.path(config)} must have one (chunk_len, max_chunks, tokenizer) "
            f"for all rows, found {found}; run the tokenize stage again"
        )
    chunk_len, max_chunks, tokenizer_name = shapes[0]
    if tokenizer_name != config.tokenizer.model:
        raise ValueError(
            f"silver.tokens was made with tokenizer {tokenizer_name!r} but tokenizer.model is "
            f"{config.tokenizer.model!r}; the encoder must match the token ids, so run the tokenize stage again "
            "or set tokenizer.model to the tokenizer of the table"
        )
    return int(chunk_len), int(max_chunks), str(tokenizer_name)


def labelled_tokens(label_sets: DataFrame, label_index: DataFrame, tokens: DataFrame) -> DataFrame:
    """Join label sets with the token ids and map each label to its column.

    Parameters
    ----------
    label_sets : DataFrame
        ``doc_id``, ``labels`` (array<string>) and ``label_weights`` (array<float>,
        parallel to ``labels``).
    label_index : DataFrame
        ``label`` and ``column``.
    tokens : DataFrame
        ``doc_id``, ``input_ids`` and ``attention_mask``.

    Returns
    -------
    DataFrame
        ``TRAIN_COLUMNS``: one row per document that has tokens, with the columns of
        its labels in ascending order and their weights. Labels outside the label
        index are dropped; a document without labels gets empty arrays.
    """
    entries = (
        label_sets.select("doc_id", F.posexplode("labels").alias("position", "label"), "label_weights")
        .select("doc_id", "label", F.col("label_weights")[F.col("position")].alias("weight"))
        .join(F.broadcast(label_index), on="label", how="inner")
        .groupBy("doc_id")
        .agg(F.array_sort(F.collect_list(F.struct("column", F.coalesce("weight", F.lit(1.0)).alias("weight")))).alias("entries"))
    )
    empty_ints = F.array().cast(T.ArrayType(T.IntegerType()))
    empty_floats = F.array().cast(T.ArrayType(T.FloatType()))
    return (
        label_sets.select("doc_id")
        .join(entries, on="doc_id", how="left")
        .join(tokens, on="doc_id", how="inner")
        .select(
            "doc_id",
            "input_ids",
            "attention_mask",
            F.coalesce(F.col("entries.column"), empty_ints).cast(T.ArrayType(T.IntegerType())).alias("label_columns"),
            F.coalesce(F.col("entries.weight"), empty_floats).cast(T.ArrayType(T.FloatType())).alias("label_weights"),
        )
    )


def lay_out_train_rows(spark: SparkSession, frame: DataFrame, files: int) -> DataFrame:
    """Number the rows by doc_id and deal them round-robin into ``files`` partitions.

    Row ``i`` (0-based, in doc_id order) gets ``row_id = i`` and goes to partition
    ``i % files``, so partition sizes differ by at most one row. The result is
    persisted, so the converter and the row-id lookup see the same numbering.

    Returns
    -------
    DataFrame
        ``row_id`` followed by the columns of ``frame``, in ``files`` partitions.
    """
    schema = T.StructType([T.StructField("row_id", T.LongType(), False), *frame.schema.fields])
    numbered = (
        frame.orderBy("doc_id")
        .rdd.zipWithIndex()
        .map(lambda pair: (pair[1] % files, (pair[1], *pair[0])))
        .partitionBy(files, lambda key: key)
        .values()
    )
    return spark.createDataFrame(numbered, schema).persist(StorageLevel.MEMORY_AND_DISK)
