"""The gold job: sentence embeddings, near-duplicate clusters, label-noise scores, training view.

Reads ``documents`` (silver) and ``code_descriptions`` (bronze) and writes six gold
tables: ``embeddings``, ``code_embeddings``, ``duplicate_pairs``, ``duplicates``,
``label_noise`` and ``training_view``.

Embeddings are kept between runs: a document is embedded again only when its text,
the model or the chunk length changed, so a second run on the same input does no model
inference. Every table is written with MERGE on its key, and rows whose key the run no
longer produces are deleted, so a re-run on the same input leaves the same tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shl import delta, tables
from shl.config import Config
from shl.noise.cleaned import build_training_view
from shl.noise.duplicates import cluster_members, connected_components, remove_mean, similar_pairs
from shl.noise.embeddings import CHUNK_TOKENS, embed_frame, embedding_partitions, resolve_model_path
from shl.noise.label_noise import label_similarities, score_labels
from shl.spark import get_spark

logger = logging.getLogger(__name__)


@dataclass
class DedupNoiseReport:
    """Counts, table versions and timings of one run of the dedup-noise job."""

    documents: int = 0
    documents_embedded: int = 0
    embeddings_reused: int = 0
    code_titles_embedded: int = 0
    pairs: int = 0
    clusters: int = 0
    clustered_documents: int = 0
    # Train documents in clusters that also have val or test members.
    leaked_documents: int = 0
    label_conflict_clusters: int = 0
    labels_scored: int = 0
    labels_without_title: int = 0
    labels_flagged: int = 0
    training_documents: int = 0
    versions_read: dict[str, int] = field(default_factory=dict)
    writes: dict[str, delta.WriteResult] = field(default_factory=dict)
    seconds_by_step: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def run_dedup_noise(config: Config, spark: SparkSession | None = None) -> DedupNoiseReport:
    """Embed the documents, find near-duplicates and noisy labels, and write the training view.

    Parameters
    ----------
    config : Config
        ``noise`` sets the model, thresholds and conflict policy.
    spark : SparkSession, optional
        Default: :func:`shl.spark.get_spark` with ``config.spark``.

    Returns
    -------
    DedupNoiseReport

    Raises
    ------
    FileNotFoundError
        If ``documents`` or ``code_descriptions`` is missing (run the ingest and
        tokenize stages first), or the embedding model folder does not exist.
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    settings = config.noise
    model_path = resolve_model_path(settings.embedding_model)
    report = DedupNoiseReport()
    logger.info(
        "Dedup-noise started: model %s, duplicate threshold %.3f, LSH bucket length %.3f, "
        "%d tables of band width %d, min label agreement %.2f, z threshold %.2f, conflict policy %s",
        settings.embedding_model, settings.duplicate_threshold, settings.lsh_bucket_length,
        settings.lsh_num_hash_tables, _band_width(settings), settings.min_label_agreement,
        settings.noise_z_threshold, settings.conflict_policy,
    )
    documents = _read(spark, config, tables.DOCUMENTS, report)
    descriptions = _read(spark, config, tables.CODE_DESCRIPTIONS, report)
    documents = documents.select(*tables.DOCUMENTS.columns).persist()
    report.documents = documents.count()

    with _timed(report, "embeddings"):
        _update_document_embeddings(spark, config, documents, model_path, report)
        code_vectors = _update_code_embeddings(
            spark, config, documents, descriptions, model_path, report
        )
    embeddings = delta.read_table(spark, tables.EMBEDDINGS, config).join(
        documents.select("doc_id"), on="doc_id", how="left_semi"
    )
    with _timed(report, "duplicates"):
        _write_duplicates(spark, config, documents, embeddings, report)
    with _timed(report, "label_noise"):
        scores = score_labels(
            label_similarities(documents, embeddings, code_vectors),
            settings.noise_z_threshold,
            settings.noisy_label_weight,
        )
        _write_label_noise(spark, config, scores, report)
    with _timed(report, "training_view"):
        view = build_training_view(
            documents,
            delta.read_table(spark, tables.DUPLICATES, config),
            delta.read_table(spark, tables.LABEL_NOISE, config),
            settings.conflict_policy,
        )
        report.training_documents = _write(spark, config, tables.TRAINING_VIEW, view, report)
    documents.unpersist()

    report.seconds = time.monotonic() - started
    logger.info(
        "Dedup-noise finished in %.1f s: %d documents (%d embedded, %d reused), %d pairs in %d "
        "clusters of %d documents, %d leaked train documents, %d clusters with conflicting labels, "
        "%d of %d labels flagged (%d without a title), %d training documents; versions written %s; "
        "seconds by step %s",
        report.seconds, report.documents, report.documents_embedded, report.embeddings_reused,
        report.pairs, report.clusters, report.clustered_documents, report.leaked_documents,
        report.label_conflict_clusters, report.labels_flagged, report.labels_scored,
        report.labels_without_title, report.training_documents,
        {name: write.version for name, write in report.writes.items()},
        {name: round(seconds, 1) for name, seconds in report.seconds_by_step.items()},
    )
    return report


@contextmanager
def _timed(report: DedupNoiseReport, step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    report.seconds_by_step[step] = time.monotonic() - started


def _read(
    spark: SparkSession, config: Config, spec: tables.TableSpec, report: DedupNoiseReport
) -> DataFrame:
    frame = delta.read_table(spark, spec, config)
    version = delta.table_version(spark, spec.path(config))
    report.versions_read[spec.name] = version
    logger.info("Read %s.%s version %s", spec.layer, spec.name, version)
    return frame


def _write(
    spark: SparkSession,
    config: Config,
    spec: tables.TableSpec,
    rows: DataFrame,
    report: DedupNoiseReport,
    *,
    complete: bool = True,
) -> int:
    """Merge ``rows`` into a table and return their count.

    With ``complete``, the rows are the whole table, and rows whose key they lack are
    deleted. The rows are persisted first, because MERGE can read its source twice
    and the source may run the embedding model.
    """
    rows = rows.select(*spec.columns).persist()
    count = rows.count()
    report.writes[spec.name] = delta.merge_table(spark, rows, spec, config, delete_missing=complete)
    rows.unpersist()
    return count


def _delete_stale_rows(
    spark: SparkSession, config: Config, spec: tables.TableSpec, keys: DataFrame
) -> None:
    """Delete the table's rows whose key is not in ``keys``, without a commit when there are none."""
    table = DeltaTable.forPath(spark, spec.path(config))
    stale = table.toDF().join(keys, on=list(spec.keys), how="left_anti").count()
    if not stale:
        return
    condition = " AND ".join(f"t.`{key}` = s.`{key}`" for key in spec.keys)
    table.alias("t").merge(keys.alias("s"), condition).whenNotMatchedBySourceDelete().execute()
    version = delta.table_version(spark, spec.path(config))
    logger.info("Deleted %d stale rows from %s.%s, version %s", stale, spec.layer, spec.name, version)


def _embed_pending(
    spark: SparkSession, pending: DataFrame, model_path: str, count: int, rows_per_partition: int
) -> DataFrame:
    """Embed ``(id, text)`` rows, keeping the other columns of ``pending``.

    Lazy: the model runs when the result is written.
    """
    parallelism = spark.sparkContext.defaultParallelism
    partitions = embedding_partitions(count, parallelism, rows_per_partition)
    embedded = embed_frame(pending.select("id", "text"), model_path, partitions)
    return embedded.join(pending.drop("text"), on="id", how="inner")


def _update_document_embeddings(
    spark: SparkSession,
    config: Config,
    documents: DataFrame,
    model_path: str,
    report: DedupNoiseReport,
) -> None:
    """Embed the documents whose text, model or chunk length changed since the last run."""
    model = config.noise.embedding_model
    spec = tables.EMBEDDINGS
    exists = delta.table_exists(spark, spec.path(config))
    pending = documents.select(F.col("doc_id").alias("id"), F.col("text_sha256"), F.col("text"))

    if exists:
        current = delta.read_table(spark, spec, config).where(
            (F.col("model") == model) & (F.col("chunk_tokens") == CHUNK_TOKENS)
        )
        done = current.select(F.col("doc_id").alias("id"), F.col("text_sha256"))
        pending = pending.join(done, on=["id", "text_sha256"], how="left_anti")
    pending = pending.persist()

    report.documents_embedded = pending.count()
    report.embeddings_reused = report.documents - report.documents_embedded
    logger.info(
        "Embedding %d documents with %s (%d reused from the embeddings table)",
        report.documents_embedded, model, report.embeddings_reused,
    )

    if report.documents_embedded or not exists:
        embedded = _embed_pending(spark, pending, model_path, report.documents_embedded, 32)
        rows = embedded.select(
            F.col("id").alias("doc_id"),
            F.col("text_sha256"),
            F.lit(model).alias("model"),
            F.lit(CHUNK_TOKENS).alias("chunk_tokens"),
            F.col("chunk_count"),
            F.col("vector"),
            F.col("chunk_vectors"),
        )
        _write(spark, config, spec, rows, report, complete=False)
    _delete_stale_rows(spark, config, spec, documents.select("doc_id"))
    pending.unpersist()


def _update_code_embeddings(
    spark: SparkSession,
    config: Config,
    documents: DataFrame,
    descriptions: DataFrame,
    model_path: str,
    report: DedupNoiseReport,
) -> dict[str, np.ndarray]:
    """Embed the titles of the labels the documents use, and return their vectors by label."""
    model = config.noise.embedding_model
    spec = tables.CODE_EMBEDDINGS
    exists = delta.table_exists(spark, spec.path(config))
    used = documents.select(F.explode(F.col("labels")).alias("id")).distinct()
    label = F.concat_ws(":", F.col("code_system"), F.col("code"))
    titles = descriptions.select(label.alias("id"), F.col("title").alias("text"))
    titles = titles.join(used, on="id", how="inner").persist()
    pending = titles
    if exists:
        current = delta.read_table(spark, spec, config).where(F.col("model") == model)
        done = current.select(F.col("label").alias("id"), F.col("title").alias("text"))
        pending = titles.join(done, on=["id", "text"], how="left_anti")
    pending = pending.persist()
    report.code_titles_embedded = pending.count()
    if report.code_titles_embedded or not exists:
        embedded = _embed_pending(spark, pending.withColumn("title", F.col("text")), model_path,
                                  report.code_titles_embedded, 512)
        rows = embedded.select(
            F.col("id").alias("label"), F.col("title"), F.lit(model).alias("model"), F.col("vector")
        )
        _write(spark, config, spec, rows, report, complete=False)
    _delete_stale_rows(spark, config, spec, titles.select(F.col("id").alias("label")))
    logger.info("Embedded %d code titles", report.code_titles_embedded)
    pending.unpersist()
    titles.unpersist()

    stored = delta.read_table(spark, spec, config).join(
        used.select(F.col("id").alias("label")), on="label", how="left_semi"
    )
    rows = stored.select("label", "vector").collect()
    return {row["label"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}


def _write_duplicates(
    spark: SparkSession,
    config: Config,
    documents: DataFrame,
    embeddings: DataFrame,
    report: DedupNoiseReport,
) -> None:
    settings = config.noise
    if report.documents:
        pairs = similar_pairs(
            remove_mean(embeddings.select("doc_id", "vector")),
            settings.duplicate_threshold,
            settings.lsh_bucket_length,
            settings.lsh_num_hash_tables,
            _band_width(settings),
        )
    else:
        # The LSH model reads the vector size from the first row, so it cannot fit on no rows.
        pairs = spark.createDataFrame([], "doc_id_a string, doc_id_b string, cosine double")
    pairs = pairs.persist()
    report.pairs = pairs.count()
    logger.info(
        "Found %d near-duplicate pairs at cosine >= %.3f", report.pairs, settings.duplicate_threshold
    )

    components = connected_components(pairs).persist()
    members = cluster_members(pairs, components, documents, settings.min_label_agreement).persist()
    cluster_of_a = components.select(F.col("doc_id").alias("doc_id_a"), F.col("cluster_id"))
    pair_rows = pairs.join(cluster_of_a, on="doc_id_a", how="inner")
    _write(spark, config, tables.DUPLICATE_PAIRS, pair_rows, report)
    report.clustered_documents = _write(spark, config, tables.DUPLICATES, members, report)

    leaked = F.col("leakage") & (F.col("split") == "train")
    totals = members.agg(
        F.countDistinct("cluster_id").alias("clusters"),
        F.countDistinct(F.when(F.col("label_noise"), F.col("cluster_id"))).alias("conflicts"),
        F.count(F.when(leaked, True)).alias("leaked"),
    ).first()
    report.clusters = int(totals["clusters"])
    report.label_conflict_clusters = int(totals["conflicts"])
    report.leaked_documents = int(totals["leaked"])
    logger.info(
        "%d clusters of %d documents; %d clusters with conflicting labels; "
        "%d train documents leak into val or test",
        report.clusters, report.clustered_documents, report.label_conflict_clusters,
        report.leaked_documents,
    )
    for frame in (members, components, pairs):
        frame.unpersist()


def _band_width(settings) -> int:
    # Band width 1 is Spark's approxSimilarityJoin, whose candidate pairs grow with the
    # square of the document count at the default bucket length. docs/BENCHMARKS.md
    # compares it with banded hashing.
    return settings.lsh_band_width


def _write_label_noise(
    spark: SparkSession, config: Config, scores: DataFrame, report: DedupNoiseReport
) -> None:
    scores = scores.persist()
    report.labels_scored = _write(spark, config, tables.LABEL_NOISE, scores, report)
    totals = scores.agg(
        F.count(F.when(F.col("similarity").isNull(), True)).alias("without_title"),
        F.count(F.when(F.col("noisy"), True)).alias("flagged"),
    ).first()
    report.labels_without_title = int(totals["without_title"])
    report.labels_flagged = int(totals["flagged"])
    logger.info(
        "Scored %d (document, label) pairs: %d flagged as noisy at z < %.2f, %d without a code title",
        report.labels_scored, report.labels_flagged, config.noise.noise_z_threshold,
        report.labels_without_title,
    )
    scores.unpersist()
