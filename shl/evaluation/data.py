"""Collect a scored split to the driver: probabilities, targets and gold codes.

The evaluate and report stages both need three things for one model version and one
split. They need every document's probabilities (from gold ``predictions``) and its
label-space targets (from silver ``documents``). They also need all its gold codes in
the configured code systems (from bronze ``codes``), because CodiEsp MAP counts the
codes outside the label space too.

NOTE: the arrays are collected to the driver: documents x labels float32, 40 MB for
1,000 documents and 10,000 labels. That suits test splits; evaluate a sample of a
larger archive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shl import delta, tables
from shl.config import Config
from shl.documents.labels import label_name
from shl.model.io import read_saved_config
from shl.scoring.predict import model_version
from shl.scoring.worker import local_model_folder

logger = logging.getLogger(__name__)


@dataclass
class ScoredModel:
    """A saved model as evaluation needs it: version, labels, segments, thresholds."""

    folder: str
    version: str
    labels: list[str]
    segments: list[int]
    thresholds: dict[str, Any]
    training: dict[str, Any]

    @property
    def loss(self) -> str:
        return str(self.training.get("loss", ""))


@dataclass
class ScoredSplit:
    """Documents of one split that the model scored, as arrays in label-index order."""

    split: str
    doc_ids: list[str]
    probabilities: np.ndarray  # (documents, labels) float32
    targets: np.ndarray  # (documents, labels) bool
    gold_labels: list[list[str]]  # every gold label per document, label space or not
    unscored: int = 0  # documents of the split with no prediction by this model version
    versions_read: dict[str, int] = field(default_factory=dict)


def read_scored_model(config: Config) -> ScoredModel:
    """Return the model of ``scoring.model`` with its version and metadata."""
    folder = local_model_folder(config.scoring.model)
    saved = read_saved_config(folder)
    return ScoredModel(
        folder=folder,
        version=model_version(folder),
        labels=list(saved["label_index"]),
        segments=[int(segment) for segment in saved["segments"]],
        thresholds=dict(saved["thresholds"]),
        training=dict(saved["training"]),
    )


def _require(spark: SparkSession, spec: tables.TableSpec, config: Config, stage: str) -> int:
    path = spec.path(config)
    if not delta.table_exists(spark, path):
        raise FileNotFoundError(f"the {spec.layer}.{spec.name} table is missing at {path}; run the {stage} stage first")
    return delta.table_version(spark, path) or 0


def read_scored_split(spark: SparkSession, config: Config, model: ScoredModel) -> ScoredSplit:
    """Collect the probabilities, targets and gold codes of ``evaluation.split``.

    Raises
    ------
    FileNotFoundError
        If the documents or predictions table is missing.
    ValueError
        If no document of the split was scored by the model version, or the predictions
        lack probabilities (score with ``scoring.store_probabilities=true``), or their
        length does not match the model's labels.
    """
    split = config.evaluation.split
    versions = {
        "documents": _require(spark, tables.DOCUMENTS, config, "tokenize"),
        "predictions": _require(spark, tables.PREDICTIONS, config, "score"),
    }
    documents = delta.read_table(spark, tables.DOCUMENTS, config).filter(F.col("split") == split)
    predictions = (
        delta.read_table(spark, tables.PREDICTIONS, config)
        .filter(F.col("model_version") == model.version)
        .select("doc_id", "probabilities")
    )
    rows = (
        documents.select("doc_id", "source", "hadm_id", "labels")
        .join(predictions, on="doc_id", how="left")
        .orderBy("doc_id")
        .collect()
    )
    scored = [row for row in rows if row["doc_id"] is not None and row["probabilities"] is not None]
    unscored = sum(1 for row in rows if row["probabilities"] is None)
    if not scored:
        raise ValueError(
            f"no {split} document has a prediction with probabilities by model version {model.version} "
            f"({len(rows)} {split} documents); run the score stage with scoring.model={config.scoring.model} "
            "and scoring.store_probabilities=true"
        )
    if unscored:
        logger.warning(
            "%d of %d %s documents have no prediction with probabilities by model version %s and are left out; "
            "run the score stage (scoring.store_probabilities=true) to include them",
            unscored, len(rows), split, model.version,
        )
    n_labels = len(model.labels)
    bad = next((row for row in scored if len(row["probabilities"]) != n_labels), None)
    if bad is not None:
        raise ValueError(
            f"prediction of {bad['doc_id']} has {len(bad['probabilities'])} probabilities but model version "
            f"{model.version} has {n_labels} labels; rescore with scoring.mode=full"
        )
    column = {label: index for index, label in enumerate(model.labels)}
    probabilities = np.array([row["probabilities"] for row in scored], dtype=np.float32).reshape(len(scored), n_labels)
    targets = np.zeros((len(scored), n_labels), dtype=bool)
    for index, row in enumerate(scored):
        for label in row["labels"]:
            if label in column:
                targets[index, column[label]] = True
    doc_ids = [row["doc_id"] for row in scored]
    gold, versions["codes"] = _gold_labels(spark, config, documents, doc_ids)
    logger.info(
        "Collected %d scored %s documents x %d labels (%d gold entries in the label space, %d gold codes in all)",
        len(scored), split, n_labels, int(targets.sum()), sum(len(codes) for codes in gold),
    )
    return ScoredSplit(split, doc_ids, probabilities, targets, gold, unscored, versions)


def _gold_labels(spark: SparkSession, config: Config, documents, doc_ids: list[str]) -> tuple[list[list[str]], int]:
    """Return every gold label of each document in the configured code systems.

    Falls back to the documents' label-space labels when the bronze codes table is
    missing, with a warning, since CodiEsp MAP then ignores codes outside the space.
    """
    path = tables.CODES.path(config)
    if not delta.table_exists(spark, path):
        logger.warning("bronze.codes is missing at %s; CodiEsp MAP counts only label-space codes", path)
        by_doc = {row["doc_id"]: list(row["labels"]) for row in documents.select("doc_id", "labels").collect()}
        return [by_doc.get(doc_id, []) for doc_id in doc_ids], 0
    codes = (
        delta.read_table(spark, tables.CODES, config)
        .filter(F.col("code_system").isin(config.labels.code_systems))
        .select("source", "hadm_id", "code_system", "code")
    )
    pairs = documents.select("doc_id", "source", "hadm_id").join(codes, on=["source", "hadm_id"]).select(
        "doc_id", "code_system", "code"
    )
    by_doc: dict[str, set[str]] = {}
    for row in pairs.collect():
        by_doc.setdefault(row["doc_id"], set()).add(
            label_name(row["code_system"], row["code"], rollup=config.labels.rollup)
        )
    return [sorted(by_doc.get(doc_id, ())) for doc_id in doc_ids], delta.table_version(spark, path) or 0


def read_bands(spark: SparkSession, config: Config, labels: list[str]) -> tuple[np.ndarray | None, int | None]:
    """Return the frequency band of each label from gold ``label_stats`` and its version.

    Labels without a row get band -1. Returns (None, None) when the table is missing.
    """
    path = tables.LABEL_STATS.path(config)
    if not delta.table_exists(spark, path):
        logger.warning("gold.label_stats is missing at %s; no per-band metrics (run the label-stats stage)", path)
        return None, None
    band = {row["code"]: int(row["band"]) for row in delta.read_table(spark, tables.LABEL_STATS, config).select("code", "band").collect()}
    return np.array([band.get(label, -1) for label in labels], dtype=np.int64), delta.table_version(spark, path) or 0
