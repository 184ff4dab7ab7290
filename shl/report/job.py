"""The report stage: one HTML page with PNG plots for the evaluated model.

The page is written to ``<evaluation.report_dir>/<model_version>/report.html``
(``report_dir`` defaults to ``<lakehouse.root>/gold/reports``). It shows the
headline metrics, metrics per segment and per frequency band, and every model evaluated
on the same split side by side. Its plots are the long-tail curve with segment
boundaries, the co-occurrence structure of the most frequent labels, per-segment F1 of
each model and precision-recall curves. The table versions read and the run's
configuration close the page.
Running it again overwrites the same files.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shl import delta, tables
from shl.config import Config, ConfigError, config_to_dict
from shl.evaluation.data import ScoredModel, read_scored_model, read_scored_split
from shl.evaluation.metrics import precision_recall_curve
from shl.labels.plots import plot_long_tail, report_path
from shl.report import html, plots
from shl.spark import get_spark

logger = logging.getLogger(__name__)

HEADLINE = ("micro_f1", "macro_f1", "micro_f1_at_0.5", "macro_f1_at_0.5", "precision_at_5", "map", "codiesp_map",
            "micro_auc", "macro_auc")
GROUP_METRICS = ("labels", "positives", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "map",
                 "micro_auc", "macro_auc")
# Metrics that count things, shown as whole numbers.
COUNT_METRICS = frozenset({"documents", "labels", "positives", "auc_labels", "gold_codes_outside_labels"})
# Segments drawn as their own precision-recall curve; more would not be legible.
MAX_CURVES = 8


@dataclass
class ReportResult:
    """Result of the report stage: the page path, its images and the table versions read."""

    path: str = ""
    images: list[str] = field(default_factory=list)
    models_compared: int = 0
    versions_read: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def report_folder(config: Config, version: str) -> str:
    """Return the folder of a model version's report.

    Raises
    ------
    ConfigError
        If ``evaluation.report_dir`` is empty and the lakehouse root is a URL, which
        file APIs cannot write to.
    """
    base = config.evaluation.report_dir or report_path(config, "")
    if base is None:
        raise ConfigError(
            f"lakehouse.root {config.lakehouse.root!r} is a URL; set evaluation.report_dir to a file path "
            "such as /dbfs/reports or /Volumes/<catalog>/<schema>/reports"
        )
    return os.path.join(os.path.abspath(base), version)


def model_name(loss: str, version: str) -> str:
    """Display name of a model in tables and legends: its loss and short version."""
    return f"{loss or 'model'} {version[:8]}"


def run_report(config: Config, spark: SparkSession | None = None) -> ReportResult:
    """Write the HTML report of the configured model's evaluation and return where it is.

    Raises
    ------
    FileNotFoundError
        If the evaluation table is missing or has no rows for this model and split
        (run the evaluate stage first).
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    model = read_scored_model(config)
    split = config.evaluation.split
    folder = Path(report_folder(config, model.version))
    logger.info("Report started: model version %s, split %s, folder %s", model.version, split, folder)
    result = ReportResult(path=str(folder / "report.html"))

    evaluation = _evaluation_rows(spark, config, split)
    result.versions_read["evaluation"] = delta.table_version(spark, tables.EVALUATION.path(config)) or 0
    own = evaluation[evaluation["model_version"] == model.version]
    if own.empty:
        raise FileNotFoundError(
            f"gold.evaluation has no {split} rows for model version {model.version}; run the evaluate stage first"
        )
    scored = read_scored_split(spark, config, model)
    result.versions_read.update(scored.versions_read)

    page = html.ReportPage(
        title=f"SHL coding report: {model_name(model.loss, model.version)} on the {split} split",
        facts={
            "model": config.scoring.model,
            "model version": model.version,
            "loss": model.loss or "not recorded",
            "loss options": str(model.training.get("loss_options", {})),
            "split": split,
            "documents evaluated": len(scored.doc_ids),
            "documents of the split without a prediction": scored.unscored,
            "labels": len(model.labels),
            "thresholds": _thresholds_text(model),
            "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
        config_yaml=yaml.safe_dump(config_to_dict(config), sort_keys=False),
    )
    page.tables.extend(_metric_tables(own, evaluation))
    result.models_compared = evaluation["model_version"].nunique()

    folder.mkdir(parents=True, exist_ok=True)
    images = [
        _long_tail(spark, config, folder, result),
        _cooccurrence(spark, config, folder, result),
        _segment_f1(evaluation, folder),
        _pr_curves(model, scored, folder),
    ]
    page.images = [image for image in images if image is not None]
    result.images = [str(folder / name) for _, name, _ in page.images]
    page.versions_read = result.versions_read
    Path(result.path).write_text(html.render(page), encoding="utf-8")
    result.seconds = time.monotonic() - started
    logger.info(
        "Report finished in %.1f s: %d plots, %d models compared; read %s; report at %s",
        result.seconds, len(result.images), result.models_compared, result.versions_read, result.path,
    )
    return result


def _evaluation_rows(spark: SparkSession, config: Config, split: str) -> pd.DataFrame:
    path = tables.EVALUATION.path(config)
    if not delta.table_exists(spark, path):
        raise FileNotFoundError(f"the gold.evaluation table is missing at {path}; run the evaluate stage first")
    frame = (
        delta.read_table(spark, tables.EVALUATION, config)
        .filter(F.col("split") == split)
        .select("model_version", "loss", "scope", "group_id", "metric", "value", "evaluated_ts")
        .toPandas()
    )
    return frame.sort_values(["evaluated_ts", "model_version"], kind="stable")


def _thresholds_text(model: ScoredModel) -> str:
    per_segment = model.thresholds.get("per_segment") or {}
    text = f"global {float(model.thresholds.get('global', 0.5)):.2f}"
    if per_segment:
        text += "; per segment " + ", ".join(f"{key}: {float(value):.2f}" for key, value in sorted(
            per_segment.items(), key=lambda item: int(item[0])))
    return text


def _metric_tables(own: pd.DataFrame, evaluation: pd.DataFrame) -> list[html.Table]:
    overall = own[own["scope"] == "overall"].set_index("metric")["value"]
    result = [html.Table(
        "Overall metrics",
        ("metric", "value"),
        [(name, float(overall[name])) for name in HEADLINE if name in overall.index],
        note="F1, precision and recall use the model's per-segment thresholds unless named at_0.5; "
             "CodiEsp MAP ranks every label against all gold codes of each document.",
    )]
    for scope, title in (("segment", "Metrics per segment"), ("band", "Metrics per frequency band")):
        rows = own[own["scope"] == scope]
        if rows.empty:
            continue
        wide = rows.pivot(index="group_id", columns="metric", values="value").sort_index()
        present = [name for name in GROUP_METRICS if name in wide.columns]
        result.append(html.Table(
            title, (scope, *present),
            [(int(group), *(_cell(name, wide.loc[group, name]) for name in present)) for group in wide.index],
        ))
    comparison = evaluation[evaluation["scope"] == "overall"]
    names = [name for name in HEADLINE if name in set(comparison["metric"])]
    models = comparison.drop_duplicates("model_version", keep="last")[["model_version", "loss"]]
    rows = []
    for version, loss in models.itertuples(index=False):
        values = comparison[comparison["model_version"] == version].set_index("metric")["value"]
        rows.append((model_name(loss, version), *(float(values.get(name, np.nan)) for name in names)))
    result.append(html.Table("Every model evaluated on this split", ("model", *names), rows))
    return result


def _cell(metric: str, value: float) -> float | int:
    value = float(value)
    return int(value) if metric in COUNT_METRICS and value == value else value


def _long_tail(spark: SparkSession, config: Config, folder: Path, result: ReportResult):
    needed = (tables.LABEL_STATS, tables.SEGMENTS, tables.IMBALANCE)
    if not all(delta.table_exists(spark, spec.path(config)) for spec in needed):
        logger.warning("No long-tail plot: run the label-stats stage to write %s", ", ".join(s.name for s in needed))
        return None
    for spec in needed:
        result.versions_read[spec.name] = delta.table_version(spark, spec.path(config)) or 0
    labels = delta.read_table(spark, tables.LABEL_STATS, config).select("code", "count", "rank", "band").toPandas()
    segments = (
        delta.read_table(spark, tables.SEGMENTS, config)
        .groupBy("segment_id")
        .agg(F.first("segment_band").alias("band"), F.first("n_labels").alias("n_labels"),
             F.first("min_count").alias("min_count"), F.first("max_count").alias("max_count"),
             F.first("mean_count").alias("mean_count"))
        .orderBy("segment_id")
        .toPandas()
    )
    imbalance = {row["metric"]: row["value"] for row in delta.read_table(spark, tables.IMBALANCE, config).collect()}
    for name in ("n_labels", "n_documents"):
        imbalance[name] = int(imbalance.get(name, 0))
    plot_long_tail(labels, segments, imbalance, folder / "long_tail.png")
    return ("Long tail and segments", "long_tail.png",
            "Train count of every label by rank with its frequency bands, and each segment's count range.")


def _cooccurrence(spark: SparkSession, config: Config, folder: Path, result: ReportResult):
    needed = (tables.LABEL_STATS, tables.SEGMENTS, tables.COOCCURRENCE)
    if not all(delta.table_exists(spark, spec.path(config)) for spec in needed):
        logger.warning("No co-occurrence plot: run the label-stats stage")
        return None
    result.versions_read["cooccurrence"] = delta.table_version(spark, tables.COOCCURRENCE.path(config)) or 0
    top = (
        delta.read_table(spark, tables.LABEL_STATS, config)
        .filter(F.col("rank") <= config.evaluation.cooccurrence_top_labels)
        .join(delta.read_table(spark, tables.SEGMENTS, config).select("code", "segment_id"), on="code")
        .select("code", "count", "segment_id")
        .toPandas()
        .sort_values(["segment_id", "count", "code"], ascending=[True, False, True])
    )
    if len(top) < 2:
        return None
    codes = top["code"].tolist()
    pairs = (
        delta.read_table(spark, tables.COOCCURRENCE, config)
        .filter(F.col("code_a").isin(codes) & F.col("code_b").isin(codes))
        .select("code_a", "code_b", "n_ab")
        .toPandas()
    )
    matrix = plots.cooccurrence_matrix(codes, top["count"].tolist(), pairs)
    plots.plot_cooccurrence(matrix, codes, top["segment_id"].tolist(), folder / "cooccurrence.png")
    return ("Co-occurrence of the most frequent labels", "cooccurrence.png",
            "P(column | row) over train documents; white lines separate segments. Bright cells off the "
            "diagonal blocks are co-occurring labels the segmentation placed in different segments.")


def _segment_f1(evaluation: pd.DataFrame, folder: Path):
    rows = evaluation[(evaluation["scope"] == "segment") & (evaluation["metric"] == "macro_f1")]
    if rows.empty:
        return None
    table = pd.DataFrame({
        "model": [model_name(loss, version) for loss, version in zip(rows["loss"], rows["model_version"])],
        "segment": rows["group_id"].astype(int),
        "macro_f1": rows["value"].astype(float),
    })
    plots.plot_segment_f1(table, folder / "segment_f1.png")
    return ("Per-segment F1 of each model", "segment_f1.png",
            "Macro-F1 of each segment's labels for every model evaluated on this split, such as one per loss.")


def _pr_curves(model: ScoredModel, scored, folder: Path):
    curves = {"overall": precision_recall_curve(scored.probabilities, scored.targets)}
    segments = np.asarray(model.segments)
    for segment in np.unique(segments)[:MAX_CURVES]:
        members = segments == segment
        curves[f"segment {int(segment)}"] = precision_recall_curve(scored.probabilities[:, members],
                                                                   scored.targets[:, members])
    plots.plot_pr_curves(curves, folder / "precision_recall.png")
    return ("Precision-recall curves", "precision_recall.png",
            f"Micro precision and recall over all thresholds, overall and for the first {MAX_CURVES} segments.")
