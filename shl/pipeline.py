"""The whole pipeline: every stage in order, each optional, each reading what the
earlier ones left in Delta.

``shl run`` (and ``jobs/pipeline.py``) runs ingest, tokenize, label-stats, dedup-noise,
train, score, evaluate and report. ``pipeline.skip`` leaves stages out, and later stages
read the tables a skipped stage left in an earlier run. So a failed run goes on from the
stage that failed when the stages before it are skipped. Every stage is idempotent (MERGE, and
training resumes from its last checkpoint), so running the whole pipeline again is
safe too.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from shl.config import PIPELINE_STAGES, Config
from shl.spark import get_spark

logger = logging.getLogger(__name__)

# Stage name to "module:function"; each function takes (config, spark) and returns its report.
STAGE_FUNCTIONS = {
    "sample": "shl.ingest.sample_source:run_sample",
    "ingest": "shl.ingest.job:run_ingest",
    "tokenize": "shl.documents.job:run_tokenize",
    "label-stats": "shl.labels.job:run_label_stats",
    "dedup-noise": "shl.noise.job:run_dedup_noise",
    "train": "shl.training.job:run_train",
    "score": "shl.scoring.job:run_score",
    "evaluate": "shl.evaluation.job:run_evaluate",
    "report": "shl.report.job:run_report",
}


@dataclass
class PipelineReport:
    """The report of every stage that ran, with its wall time, in order."""

    stages: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reports: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    report_path: str = ""


def run_stage(name: str, config: Config, spark: SparkSession | None = None) -> Any:
    """Run one stage by name and return its report."""
    module_name, function_name = STAGE_FUNCTIONS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)(config, spark)


def run_pipeline(config: Config, spark: SparkSession | None = None) -> PipelineReport:
    """Run the stages of :data:`shl.config.PIPELINE_STAGES` not in ``pipeline.skip``."""
    spark = spark or get_spark(config.spark)
    report = PipelineReport(
        stages=[name for name in PIPELINE_STAGES if name not in config.pipeline.skip],
        skipped=[name for name in PIPELINE_STAGES if name in config.pipeline.skip],
    )
    logger.info("Pipeline started: %s%s", ", ".join(report.stages),
                f" (skipped: {', '.join(report.skipped)})" if report.skipped else "")
    for number, name in enumerate(report.stages, start=1):
        logger.info("Pipeline stage %d of %d: %s", number, len(report.stages), name)
        started = time.monotonic()
        try:
            report.reports[name] = run_stage(name, config, spark)
        except Exception:
            done = report.stages[:number - 1]
            logger.error(
                "Pipeline stopped at stage %s after %s; fix the cause and resume with pipeline.skip=[%s]",
                name, ", ".join(done) or "no stage", ",".join(report.skipped + done),
            )
            raise
        report.seconds[name] = time.monotonic() - started
    if "report" in report.reports:
        report.report_path = report.reports["report"].path
    logger.info(
        "Pipeline finished in %.1f s (%s)%s",
        sum(report.seconds.values()), ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.seconds.items()),
        f"; report at {report.report_path}" if report.report_path else "",
    )
    return report
