"""The evaluate stage: metrics of a scored split into the gold ``evaluation`` table.

For the model of ``scoring.model`` and the split of ``evaluation.split``, the job
collects probabilities and targets, applies the model's per-segment thresholds and
writes one row per (scope, group, metric): overall, per segment and per frequency
band. It adds micro- and macro-F1 at a fixed 0.5 threshold (how well the loss
calibrates its decisions) and CodiEsp MAP over each document's ranked labels against
all its gold codes. Rows are merged on their key, so evaluating the same model twice
leaves the same table, and several models sit side by side for the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shl import delta, tables
from shl.config import Config
from shl.evaluation.data import ScoredModel, ScoredSplit, read_bands, read_scored_model, read_scored_split
from shl.evaluation.metrics import codiesp_map, evaluate_groups, precision_recall_f1, rank_labels
from shl.scoring.predict import label_thresholds
from shl.spark import get_spark

logger = logging.getLogger(__name__)

# Ranks a ranked list is cut at for CodiEsp MAP, as trec_eval's default depth.
MAP_DEPTH = 1000
FIXED_THRESHOLD = 0.5


@dataclass
class EvaluationReport:
    """Headline metrics, counts and table versions of one evaluation."""

    model_version: str = ""
    loss: str = ""
    split: str = ""
    documents: int = 0
    unscored: int = 0
    labels: int = 0
    # Overall metrics by name, such as micro_f1 or codiesp_map.
    overall: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    versions_read: dict[str, int] = field(default_factory=dict)
    write: delta.WriteResult | None = None
    seconds: float = 0.0


def metric_rows(model: ScoredModel, scored: ScoredSplit, bands: np.ndarray | None, k_values: list[int]) -> list[dict]:
    """Return every metric row of a scored split: the pure part of the stage."""
    segments = np.asarray(model.segments, dtype=np.int64)
    cut = label_thresholds(model.thresholds, segments).astype(np.float64)
    groupings = {"segment": segments}
    if bands is not None:
        groupings["band"] = bands
    rows = evaluate_groups(scored.probabilities, scored.targets, cut, groupings, k_values)
    fixed = precision_recall_f1(scored.targets, scored.probabilities >= FIXED_THRESHOLD)
    extra = {f"{name}_at_{FIXED_THRESHOLD}": fixed[name] for name in ("micro_f1", "macro_f1")}
    order = rank_labels(scored.probabilities)[:, :MAP_DEPTH]
    ranked = [[model.labels[column] for column in row] for row in order]
    extra["codiesp_map"] = codiesp_map(ranked, scored.gold_labels)
    extra["gold_codes_outside_labels"] = float(
        sum(len(set(gold) - set(model.labels)) for gold in scored.gold_labels)
    )
    rows.extend({"scope": "overall", "group": -1, "metric": name, "value": value} for name, value in extra.items())
    return rows


def run_evaluate(config: Config, spark: SparkSession | None = None) -> EvaluationReport:
    """Evaluate the configured model on ``evaluation.split`` and write gold ``evaluation``.

    Raises
    ------
    FileNotFoundError
        If the model folder, the documents or the predictions table is missing.
    ValueError
        If the split has no scored document with probabilities.
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    model = read_scored_model(config)
    report = EvaluationReport(model_version=model.version, loss=model.loss, split=config.evaluation.split,
                              labels=len(model.labels))
    logger.info(
        "Evaluate started: model %s (version %s, loss %s), split %s, %d labels, k %s",
        config.scoring.model, model.version, model.loss or "unknown", report.split, report.labels,
        config.evaluation.k_values,
    )
    scored = read_scored_split(spark, config, model)
    bands, bands_version = read_bands(spark, config, model.labels)
    report.versions_read = dict(scored.versions_read)
    if bands_version is not None:
        report.versions_read["label_stats"] = bands_version
    report.documents, report.unscored = len(scored.doc_ids), scored.unscored

    rows = metric_rows(model, scored, bands, config.evaluation.k_values)
    report.rows = len(rows)
    report.overall = {row["metric"]: row["value"] for row in rows if row["scope"] == "overall"}
    frame = spark.createDataFrame(
        [(model.version, report.split, row["scope"], int(row["group"]), row["metric"],
          None if np.isnan(row["value"]) else float(row["value"]), model.loss, config.scoring.model)
         for row in rows],
        "model_version string, split string, scope string, group_id int, metric string, value double, "
        "loss string, model_path string",
    ).withColumn("evaluated_ts", F.current_timestamp())
    report.write = delta.merge_table(spark, frame, tables.EVALUATION, config)
    report.seconds = time.monotonic() - started
    headline = ("micro_f1", "macro_f1", "micro_f1_at_0.5", "macro_f1_at_0.5", "map", "codiesp_map", "micro_auc", "macro_auc")
    logger.info(
        "Evaluate finished in %.1f s: %d %s documents (%d unscored), %s; %d rows, evaluation version %d; read %s",
        report.seconds, report.documents, report.split, report.unscored,
        ", ".join(f"{name} {report.overall[name]:.4f}" for name in headline if name in report.overall),
        report.rows, report.write.version, report.versions_read,
    )
    return report
