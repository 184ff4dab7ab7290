"""The scoring job: documents to the gold ``predictions`` table.

``full`` scores every document. ``incremental`` scores only the documents with no
prediction for the current model version: a nightly job runs it after ingesting and
tokenizing the day's notes. Predictions are written with MERGE on
(doc_id, model_version), so a re-run never duplicates a document.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shl import delta, tables
from shl.config import Config
from shl.documents.tokens import vocabulary_sha256
from shl.scoring.errors import VocabularyMismatchError
from shl.scoring.predict import model_version
from shl.scoring.worker import OUTPUT_COLUMNS, local_model_folder, score_batches
from shl.spark import get_spark

logger = logging.getLogger(__name__)


@dataclass
class ScoreReport:
    """Counts, timings and table versions of one scoring run."""

    model_version: str = ""
    mode: str = ""
    to_score: int = 0
    scored: int = 0
    skipped: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    documents_per_second: float = 0.0
    versions_read: dict[str, int] = field(default_factory=dict)
    write: delta.WriteResult | None = None
    seconds: float = 0.0


def run_score(config: Config, spark: SparkSession | None = None) -> ScoreReport:
    """Score the documents of the lakehouse with the configured model.

    Raises
    ------
    FileNotFoundError
        If the model folder or the documents table is missing.
    VocabularyMismatchError
        If the tokens table was made with a different tokenizer vocabulary.
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    settings = config.scoring
    folder = local_model_folder(settings.model)
    report = ScoreReport(model_version=model_version(folder), mode=settings.mode)
    logger.info(
        "Score started: model %s (version %s), mode %s, top %d, batch size %d, device %s",
        settings.model, report.model_version, settings.mode, settings.top_k, settings.batch_size, settings.device,
    )
    _check_vocabulary(spark, config, folder, report)

    report.versions_read["documents"] = delta.table_version(spark, tables.DOCUMENTS.path(config)) or 0
    documents = delta.read_table(spark, tables.DOCUMENTS, config).select("doc_id", "text")
    candidates = _documents_to_score(spark, config, documents, report)
    candidates = candidates.persist()
    report.to_score = candidates.count()
    logger.info("%d documents to score, %d skipped (already scored by version %s)",
                report.to_score, report.skipped, report.model_version)

    scoring_started = time.monotonic()
    results = _score_frame(candidates, config, folder).persist()
    accepted = results.filter(F.col("reason").isNull())
    rejected = results.filter(F.col("reason").isNotNull())
    predictions = accepted.select(
        "doc_id",
        F.lit(report.model_version).alias("model_version"),
        "top_codes",
        "predicted_codes",
        "probabilities",
        F.current_timestamp().alias("scored_ts"),
    )
    report.write = delta.merge_table(spark, predictions, tables.PREDICTIONS, config)
    report.scored = report.write.written
    report.quarantined = _quarantine(spark, config, rejected, report.model_version)
    elapsed = time.monotonic() - scoring_started
    report.documents_per_second = report.to_score / elapsed if elapsed > 0 else 0.0
    results.unpersist()
    candidates.unpersist()

    report.seconds = time.monotonic() - started
    logger.info(
        "Score finished in %.1f s: %d to score, %d scored, %d skipped, %d quarantined %s, %.1f documents/s; "
        "predictions version %d",
        report.seconds, report.to_score, report.scored, report.skipped, sum(report.quarantined.values()),
        report.quarantined, report.documents_per_second, report.write.version,
    )
    return report


def _check_vocabulary(spark: SparkSession, config: Config, folder: str, report: ScoreReport) -> None:
    path = tables.TOKENS.path(config)
    if not delta.table_exists(spark, path):
        return
    report.versions_read["tokens"] = delta.table_version(spark, path) or 0
    from shl.model.coding_model import load_tokenizer

    model_vocab = vocabulary_sha256(load_tokenizer(folder))
    found = [row["vocab_sha256"] for row in spark.read.format("delta").load(path).select("vocab_sha256").distinct().collect()]
    mismatched = [vocab for vocab in found if vocab != model_vocab]
    if mismatched:
        raise VocabularyMismatchError(
            f"the tokens table at {path} was made with vocabulary {mismatched[0][:12]}..., but the model in "
            f"{folder} uses {model_vocab[:12]}...; run the tokenize stage with the model's tokenizer "
            f"(tokenizer.model) or score with a model trained on these tokens"
        )


def _documents_to_score(spark: SparkSession, config: Config, documents: DataFrame, report: ScoreReport) -> DataFrame:
    path = tables.PREDICTIONS.path(config)
    if config.scoring.mode == "full" or not delta.table_exists(spark, path):
        return documents
    scored = (
        spark.read.format("delta").load(path)
        .filter(F.col("model_version") == report.model_version)
        .select("doc_id")
    )
    remaining = documents.join(scored, on="doc_id", how="left_anti")
    report.skipped = documents.count() - remaining.count()
    return remaining


def _score_frame(candidates: DataFrame, config: Config, folder: str) -> DataFrame:
    settings = config.scoring
    top_code = T.StructType([T.StructField("label", T.StringType()), T.StructField("probability", T.FloatType())])
    schema = T.StructType(
        [
            T.StructField("doc_id", T.StringType()),
            T.StructField("top_codes", T.ArrayType(top_code)),
            T.StructField("predicted_codes", T.ArrayType(T.StringType())),
            T.StructField("probabilities", T.ArrayType(T.FloatType())),
            T.StructField("reason", T.StringType()),
            T.StructField("detail", T.StringType()),
        ]
    )
    score = functools.partial(
        score_batches,
        location=folder,
        device=settings.device,
        top_k=settings.top_k,
        batch_size=settings.batch_size,
        max_document_chars=settings.max_document_chars,
        store_probabilities=settings.store_probabilities,
    )
    return candidates.mapInPandas(score, schema).select(OUTPUT_COLUMNS)


def _quarantine(spark: SparkSession, config: Config, rejected: DataFrame, version: str) -> dict[str, int]:
    counts = {row["reason"]: int(row["count"]) for row in rejected.groupBy("reason").count().collect()}
    if not counts:
        return counts
    rows = rejected.select(
        F.lit(config.source_name).alias("source"),
        F.concat(F.lit("gold/predictions/"), F.col("doc_id")).alias("source_file"),
        F.lit(0).alias("line"),
        F.lit(0).alias("line_end"),
        F.lit("predictions").alias("target_table"),
        "reason",
        F.concat(F.col("detail"), F.lit(f" (model version {version})")).alias("detail"),
        F.lit(None).cast("string").alias("raw"),
    )
    delta.merge_table(spark, delta.with_ingest_time(rows), tables.QUARANTINE, config)
    logger.warning("%d documents could not be scored and were quarantined: %s", sum(counts.values()), counts)
    return counts
