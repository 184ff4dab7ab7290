"""The silver job: bronze notes and codes to ``documents``, ``label_index`` and ``tokens``.

One document per admission (per clinical case for CodiEsp) with the cleaned, merged
text of its notes, its label set after the label-space rules and its split. The tokens
are the configured tokenizer's word pieces cut into fixed-size chunks.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shl import delta, tables
from shl.config import Config, TokenizerSettings
from shl.documents.labels import label_name, select_label_space
from shl.documents.splits import holdout_split, stratified_group_split
from shl.documents.text import clean_text
from shl.documents.tokens import TOKEN_COLUMNS, load_tokenizer, tokenize_batches, vocabulary_sha256
from shl.spark import get_spark

logger = logging.getLogger(__name__)

EMPTY_AFTER_CLEANING = "empty_after_cleaning"


@dataclass
class TokenizeReport:
    """Counts and table versions of one run of the silver job."""

    documents: int = 0
    documents_by_split: dict[str, int] = field(default_factory=dict)
    documents_without_labels: int = 0
    quarantined: int = 0
    labels: int = 0
    tokens: int = 0
    truncated_documents: int = 0
    tokens_cut_share: float = 0.0
    tokens_rewritten: bool = False
    versions_read: dict[str, int] = field(default_factory=dict)
    writes: dict[str, delta.WriteResult] = field(default_factory=dict)
    seconds: float = 0.0


def run_tokenize(config: Config, spark: SparkSession | None = None) -> TokenizeReport:
    """Build the silver tables from the bronze tables of the configured source.

    Parameters
    ----------
    config : Config
        ``labels`` sets the label space, ``split`` the splits, ``tokenizer`` the
        tokenizer and chunking.
    spark : SparkSession, optional

    Returns
    -------
    TokenizeReport

    Raises
    ------
    FileNotFoundError
        If the bronze tables are missing (run the ingest stage first).
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    source = config.source_name
    report = TokenizeReport()
    logger.info(
        "Tokenize started: source %s, code systems %s, min train count %d, top k %d, rollup %s, tokenizer %s "
        "(%d chunks of %d tokens)",
        source, config.labels.code_systems, config.labels.min_train_count, config.labels.top_k,
        config.labels.rollup, config.tokenizer.model, config.tokenizer.max_chunks, config.tokenizer.chunk_len,
    )
    for spec in (tables.NOTES, tables.CODES):
        report.versions_read[spec.name] = delta.table_version(spark, spec.path(config)) or 0
    notes = delta.read_table(spark, tables.NOTES, config).filter(F.col("source") == source)
    codes = delta.read_table(spark, tables.CODES, config).filter(F.col("source") == source)
    logger.info("Read bronze notes version %d and codes version %d", report.versions_read["notes"], report.versions_read["codes"])

    merged = _merge_notes(notes).persist()
    empty = merged.filter(F.col("text") == "")
    report.quarantined = _quarantine_empty(spark, config, empty, source)
    documents = merged.filter(F.col("text") != "")
    documents = documents.join(_label_sets(codes, config), on="hadm_id", how="left").withColumn(
        "all_labels", F.coalesce(F.col("all_labels"), F.array().cast("array<string>"))
    )
    documents = _assign_splits(spark, documents, config).persist()

    label_counts = _train_label_counts(documents)
    kept = select_label_space(label_counts, min_train_count=config.labels.min_train_count, top_k=config.labels.top_k)
    report.labels = len(kept)
    logger.info("Label space: %d of %d train labels kept", len(kept), len(label_counts))
    label_index = _label_index_frame(spark, kept)
    documents = _restrict_labels(documents, label_index).persist()

    report.writes["documents"] = delta.merge_table(
        spark, documents.select(tables.DOCUMENTS.columns), tables.DOCUMENTS, config, delete_missing=True
    )
    report.writes["label_index"] = delta.merge_table(spark, label_index, tables.LABEL_INDEX, config, delete_missing=True)
    _count_documents(documents, report)
    _write_tokens(spark, config, documents, report)

    merged.unpersist()
    documents.unpersist()
    report.seconds = time.monotonic() - started
    logger.info(
        "Tokenize finished in %.1f s: %d documents %s, %d labels, %d quarantined; versions %s",
        report.seconds, report.documents, report.documents_by_split, report.labels, report.quarantined,
        {name: write.version for name, write in report.writes.items()},
    )
    return report


@F.pandas_udf(T.StringType())
def _clean_text_udf(texts: pd.Series) -> pd.Series:
    return texts.map(clean_text)


def _merge_notes(notes: DataFrame) -> DataFrame:
    """Merge each admission's notes in chart-time order into one cleaned text."""
    ordered = notes.withColumn("_part", F.struct(F.col("charttime"), F.col("note_id"), F.col("text")))
    merged = notes.select("source", "hadm_id").distinct().join(
        ordered.groupBy("hadm_id").agg(
            F.first("subject_id", ignorenulls=True).alias("subject_id"),
            F.first("source_split", ignorenulls=True).alias("source_split"),
            F.array_sort(F.collect_list("_part")).alias("_parts"),
        ),
        on="hadm_id",
        how="inner",
    )
    text = _clean_text_udf(F.array_join(F.transform("_parts", lambda part: part["text"]), "\n\n"))
    return merged.select(
        F.concat_ws(":", F.col("source"), F.col("hadm_id")).alias("doc_id"),
        "source",
        "subject_id",
        "hadm_id",
        "source_split",
        text.alias("text"),
    ).withColumn("text_sha256", F.sha2(F.col("text"), 256))


def _quarantine_empty(spark: SparkSession, config: Config, empty: DataFrame, source: str) -> int:
    rows = empty.select(
        F.lit(source).alias("source"),
        F.concat(F.lit("silver/documents/"), F.col("doc_id")).alias("source_file"),
        F.lit(0).alias("line"),
        F.lit(0).alias("line_end"),
        F.lit("documents").alias("target_table"),
        F.lit(EMPTY_AFTER_CLEANING).alias("reason"),
        F.lit("the admission's notes contain no text once whitespace and de-identification brackets are removed").alias("detail"),
        F.lit(None).cast("string").alias("raw"),
    )
    count = rows.count()
    if count:
        logger.warning("%d documents are empty after cleaning and were quarantined", count)
        delta.merge_table(spark, delta.with_ingest_time(rows), tables.QUARANTINE, config)
    return count


def _label_sets(codes: DataFrame, config: Config) -> DataFrame:
    """Collect each admission's labels in the configured code systems, before the count rules."""
    to_label = F.udf(functools.partial(_label_or_none, rollup=config.labels.rollup), T.StringType())
    selected = codes.filter(F.col("code_system").isin(config.labels.code_systems))
    return selected.groupBy("hadm_id").agg(
        F.array_sort(F.collect_set(to_label(F.col("code_system"), F.col("code")))).alias("all_labels")
    )


def _label_or_none(code_system: str, code: str, *, rollup: bool) -> str:
    return label_name(code_system, code, rollup=rollup)


def _assign_splits(spark: SparkSession, documents: DataFrame, config: Config) -> DataFrame:
    """Add ``split``: the source's own split where it has one, else by patient.

    NOTE: the patients' label sets are collected to the driver for the stratification.
    That is one row per patient: fine for MIMIC-sized archives, but not unbounded.
    """
    settings = config.split
    shipped = documents.filter(F.col("source_split").isNotNull()).limit(1).count() > 0
    if shipped:
        # A shipped dev or test split is the test split; val is held out of train.
        rows = documents.filter(F.col("source_split") == "train").select("doc_id", "all_labels").collect()
        groups = {row["doc_id"]: row["all_labels"] for row in rows}
        assignment = holdout_split(groups, settings.holdout_fraction, seed=settings.seed)
        mapping = spark.createDataFrame(list(assignment.items()), "doc_id string, split string")
        result = documents.join(mapping, on="doc_id", how="left")
        return result.withColumn("split", F.coalesce(F.col("split"), F.lit("test")))

    patients = documents.groupBy("subject_id").agg(
        F.flatten(F.collect_list("all_labels")).alias("labels"), F.count("*").alias("documents")
    ).collect()
    groups = {row["subject_id"] or "": row["labels"] for row in patients}
    sizes = {row["subject_id"] or "": int(row["documents"]) for row in patients}
    fixed = _previous_patient_splits(spark, config)
    fractions = {
        "train": 1.0 - settings.val_fraction - settings.test_fraction,
        "val": settings.val_fraction,
        "test": settings.test_fraction,
    }
    assignment = stratified_group_split(groups, fractions, seed=settings.seed, group_sizes=sizes, fixed=fixed)
    mapping = spark.createDataFrame(list(assignment.items()), "subject_id string, split string")
    keyed = documents.withColumn("_subject", F.coalesce(F.col("subject_id"), F.lit("")))
    return keyed.join(mapping.withColumnRenamed("subject_id", "_subject"), on="_subject", how="left").drop("_subject")


def _previous_patient_splits(spark: SparkSession, config: Config) -> dict[str, str]:
    """Read the patients' splits from the existing documents table, so a re-run keeps them.

    New admissions of a known patient join that patient's split, and only new patients
    are placed. A trained model's test patients therefore stay unseen in training.
    """
    path = tables.DOCUMENTS.path(config)
    if not delta.table_exists(spark, path):
        return {}
    rows = (
        spark.read.format("delta").load(path)
        .filter(F.col("source") == config.source_name)
        .select(F.coalesce(F.col("subject_id"), F.lit("")).alias("subject_id"), "split")
        .distinct()
        .collect()
    )
    fixed = {row["subject_id"]: row["split"] for row in rows}
    if fixed:
        logger.info("Keeping the splits of %d patients from the existing documents table", len(fixed))
    return fixed


def _train_label_counts(documents: DataFrame) -> dict[str, int]:
    counts = (
        documents.filter(F.col("split") == "train")
        .select(F.explode("all_labels").alias("label"))
        .groupBy("label")
        .count()
        .collect()
    )
    return {row["label"]: int(row["count"]) for row in counts}


def _label_index_frame(spark: SparkSession, kept: dict[str, int]) -> DataFrame:
    rows = []
    for column, label in enumerate(sorted(kept)):
        code_system, code = label.split(":", 1)
        rows.append((label, column, code, code_system, kept[label]))
    return spark.createDataFrame(rows, tables.LABEL_INDEX.schema)


def _restrict_labels(documents: DataFrame, label_index: DataFrame) -> DataFrame:
    exploded = documents.select("doc_id", F.explode("all_labels").alias("label"))
    kept = exploded.join(F.broadcast(label_index.select("label")), on="label", how="inner")
    label_sets = kept.groupBy("doc_id").agg(F.array_sort(F.collect_set("label")).alias("labels"))
    return documents.join(label_sets, on="doc_id", how="left").withColumn(
        "labels", F.coalesce(F.col("labels"), F.array().cast("array<string>"))
    )


def _count_documents(documents: DataFrame, report: TokenizeReport) -> None:
    rows = documents.groupBy("split").agg(
        F.count("*").alias("documents"), F.sum((F.size("labels") == 0).cast("int")).alias("without_labels")
    ).collect()
    report.documents_by_split = {row["split"]: int(row["documents"]) for row in rows}
    report.documents = sum(report.documents_by_split.values())
    report.documents_without_labels = sum(int(row["without_labels"]) for row in rows)
    if report.documents_without_labels:
        logger.info("%d documents have no label in the label space", report.documents_without_labels)


def tokens_frame(documents: DataFrame, settings: TokenizerSettings) -> DataFrame:
    """Tokenize ``documents`` (doc_id, text, text_sha256) into rows of the tokens table."""
    vocab = vocabulary_sha256(load_tokenizer(settings.model))
    schema = T.StructType([field for field in tables.TOKENS.schema.fields if field.name in TOKEN_COLUMNS])
    encode = functools.partial(
        tokenize_batches, model=settings.model, chunk_len=settings.chunk_len, max_chunks=settings.max_chunks
    )
    return (
        documents.select("doc_id", "text", "text_sha256")
        .mapInPandas(encode, schema)
        .withColumn("tokenizer_name", F.lit(settings.model))
        .withColumn("vocab_sha256", F.lit(vocab))
        .withColumn("chunk_len", F.lit(settings.chunk_len))
        .withColumn("max_chunks", F.lit(settings.max_chunks))
        .select(tables.TOKENS.columns)
    )


def _write_tokens(spark: SparkSession, config: Config, documents: DataFrame, report: TokenizeReport) -> None:
    settings = config.tokenizer
    vocab = vocabulary_sha256(load_tokenizer(settings.model))
    tokens = tokens_frame(documents, settings).persist()

    path = tables.TOKENS.path(config)
    previous = None
    if delta.table_exists(spark, path):
        previous = spark.read.format("delta").load(path).select("tokenizer_name", "vocab_sha256", "chunk_len", "max_chunks").first()
    current = (settings.model, vocab, settings.chunk_len, settings.max_chunks)
    if previous is not None and tuple(previous) != current:
        logger.warning(
            "Tokenizer or chunk settings changed from %s to %s: rewriting the whole tokens table",
            tuple(previous[i] for i in (0, 2, 3)), (settings.model, settings.chunk_len, settings.max_chunks),
        )
        report.writes["tokens"] = delta.overwrite_table(spark, tokens, tables.TOKENS, config)
        report.tokens_rewritten = True
    else:
        report.writes["tokens"] = delta.merge_table(spark, tokens, tables.TOKENS, config, delete_missing=True)

    totals = tokens.agg(
        F.sum("n_tokens").alias("tokens"),
        F.sum("n_tokens_kept").alias("kept"),
        F.sum((F.col("n_tokens") > F.col("n_tokens_kept")).cast("int")).alias("truncated"),
    ).first()
    report.tokens = int(totals["tokens"] or 0)
    report.truncated_documents = int(totals["truncated"] or 0)
    report.tokens_cut_share = (report.tokens - int(totals["kept"] or 0)) / report.tokens if report.tokens else 0.0
    logger.info(
        "Tokens: %d word pieces in %d documents, %d documents truncated, %.1f%% of word pieces cut",
        report.tokens, report.documents, report.truncated_documents, 100 * report.tokens_cut_share,
    )
    tokens.unpersist()
