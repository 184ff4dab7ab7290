"""The training job: Delta tables to a trained, thresholded model in ``<output_dir>/model``.

The driver reads the tables, lays out the train rows for even shards, materialises
Petastorm converters, plans the steps and starts the configured launcher. The
processes train, validate, checkpoint and save the best model; the driver then logs
the run to MLflow and returns a :class:`TrainReport`.

Starting the job again with the same ``training.output_dir`` resumes from the last
epoch checkpoint there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from pyspark.sql import SparkSession

from shl.config import Config, ConfigError, config_to_dict
from shl.losses import LOSS_OPTIONS, build_loss
from shl.model import CodingModelConfig
from shl.spark import get_spark
from shl.training import data, launchers
from shl.training.inputs import TrainingInputs, lay_out_train_rows, read_inputs
from shl.training.loop import MODEL_FOLDER, RANKS_FOLDER, SELECTION_METRIC
from shl.training.optim import warmup_steps_for
from shl.training.plan import TrainingPlan
from shl.training.tracking import RunTracker, tracking_uri

logger = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """Report of one start of the training job: inputs, plan, progress, results and timings."""

    output_dir: str
    model_dir: str | None
    launcher: str
    num_proc: int
    train_rows: int
    val_rows: int
    labels: int
    segments: int
    segments_source: str
    train_source: str
    steps_per_epoch: int
    total_steps: int
    learning_rate: float
    final_step: int = 0
    epochs_completed: int = 0
    # Epochs the checkpoint this start resumed from had completed; None for a fresh start.
    resumed_from_epoch: int | None = None
    stopped_early: bool = False
    # False when training.stop_after_epochs ended this start before the run was complete.
    complete: bool = False
    best_epoch: int = 0
    best_metric: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] | None = None
    # One record per rank: rows read (row_ids and doc_ids), samples, speed, parameter checksum.
    rank_records: list[dict[str, Any]] = field(default_factory=list)
    # Training samples per second of all processes together, over this start.
    samples_per_second: float = 0.0
    mlflow_run_id: str = ""
    # Seconds per phase: read, lay out, convert, train (the launcher call), track.
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = time.monotonic() - started


def parse_loss_options(config: Config) -> dict[str, Any]:
    """Return ``training.loss_options`` with YAML-typed values, checked against the loss.

    Raises
    ------
    ConfigError
        If an option is not an option of ``training.loss``.
    """
    name = config.training.loss
    options = {key: yaml.safe_load(value) if isinstance(value, str) else value
               for key, value in config.training.loss_options.items()}
    unknown = sorted(set(options) - set(LOSS_OPTIONS[name]))
    if unknown:
        raise ConfigError(
            f"training.loss_options.{unknown[0]} is not an option of loss {name!r}; valid options: "
            f"{', '.join(LOSS_OPTIONS[name])}"
        )
    return options


def _check_loss(config: Config, options: dict[str, Any], inputs: TrainingInputs) -> None:
    try:
        build_loss(config.training.loss, options, segments=inputs.segments, label_counts=inputs.label_counts)
    except ValueError as error:
        raise ConfigError(f"training.loss {config.training.loss!r} with training.loss_options {options}: {error}") from error


def _output_dir(config: Config) -> str:
    path = config.training.output_dir
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        raise ConfigError(
            f"training.output_dir is the URL {path!r}; checkpoints are written with file APIs, so give a path "
            "that every worker can reach, such as /dbfs/... or /Volumes/..."
        )
    return os.path.abspath(path)


def build_plan(
    config: Config, inputs: TrainingInputs, train_rows: int, files: int, loss_options: dict[str, Any], output_dir: str
) -> TrainingPlan:
    """Plan the steps, schedule and learning rate of a run from the row counts and settings."""
    settings = config.training
    micro = data.micro_batches_per_epoch(
        train_rows, files, settings.num_proc, settings.batch_size, settings.grad_accumulation
    )
    steps_per_epoch = micro // settings.grad_accumulation
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    scale = settings.num_proc if settings.scale_lr_with_workers else 1
    model = CodingModelConfig(
        num_labels=len(inputs.labels),
        encoder=config.tokenizer.model,
        head=settings.head,
        dropout=settings.dropout,
        chunk_len=inputs.chunk_len,
        max_chunks=inputs.max_chunks,
    )
    return TrainingPlan(
        launcher=settings.launcher,
        num_proc=settings.num_proc,
        output_dir=output_dir,
        labels=inputs.labels,
        segments=inputs.segments,
        label_counts=inputs.label_counts,
        model=model.to_dict(),
        loss=settings.loss,
        loss_options=loss_options,
        batch_size=settings.batch_size,
        grad_accumulation=settings.grad_accumulation,
        micro_batches_per_epoch=micro,
        epochs=settings.epochs,
        max_steps=settings.max_steps,
        total_steps=total_steps,
        warmup_steps=warmup_steps_for(total_steps, settings.warmup_ratio),
        learning_rate=settings.learning_rate * scale,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        mixed_precision=settings.mixed_precision,
        device=settings.device,
        seed=settings.seed,
        early_stopping_patience=settings.early_stopping_patience,
        stop_after_epochs=settings.stop_after_epochs,
        log_every_steps=settings.log_every_steps,
        keep_checkpoints=settings.keep_checkpoints,
        config=config_to_dict(config),
    )


def run_train(config: Config, spark: SparkSession | None = None) -> TrainReport:
    """Train the coding model with the configured launcher and return the report.

    Parameters
    ----------
    config : Config
        ``training`` sets the launcher, processes, loss, optimiser and run folder;
        ``tokenizer.model`` is the encoder to fine-tune.
    spark : SparkSession, optional

    Returns
    -------
    TrainReport

    Raises
    ------
    FileNotFoundError
        If a silver table is missing (run the tokenize stage first).
    ConfigError
        If the loss options, the output folder or the Petastorm cache are invalid.
    ValueError
        If the train or validation split is empty.
    """
    started = time.monotonic()
    settings = config.training
    loss_options = parse_loss_options(config)
    output_dir = _output_dir(config)
    tracking_uri(config)  # raises a ConfigError now rather than after the data is prepared
    spark = spark or get_spark(config.spark)
    logger.info(
        "Training started: launcher %s, %d processes, loss %s %s, head %s, %d epochs, batch %d, output %s",
        settings.launcher, settings.num_proc, settings.loss, loss_options, settings.head, settings.epochs,
        settings.batch_size, output_dir,
    )

    timings: dict[str, float] = {}
    with _timed(timings, "read"):
        inputs = read_inputs(spark, config)
        _check_loss(config, loss_options, inputs)
        train_rows = inputs.train.count()
        val_rows = inputs.val.count()
    if train_rows == 0 or val_rows == 0:
        raise ValueError(
            f"training needs train and validation rows, found {train_rows} train rows ({inputs.train_source}) "
            f"and {val_rows} validation rows; check split.val_fraction and run the tokenize stage"
        )
    files = data.files_for(train_rows, settings.num_proc)
    with _timed(timings, "lay out"):
        train_frame = lay_out_train_rows(spark, inputs.train, files)
    plan = build_plan(config, inputs, train_rows, files, loss_options, output_dir)
    report = TrainReport(
        output_dir=output_dir, model_dir=None, launcher=settings.launcher, num_proc=settings.num_proc,
        train_rows=train_rows, val_rows=val_rows, labels=len(inputs.labels), segments=len(set(inputs.segments)),
        segments_source=inputs.segments_source, train_source=inputs.train_source,
        steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps, learning_rate=plan.learning_rate,
        timings=timings,
    )
    logger.info(
        "Plan: %d train rows (%s) in %d files, %d validation rows, %d labels in %d segments (%s); "
        "%d steps per epoch, %d steps in total, learning rate %.3g",
        train_rows, inputs.train_source, files, val_rows, report.labels, report.segments, inputs.segments_source,
        plan.steps_per_epoch, plan.total_steps, plan.learning_rate,
    )

    tracker = None
    try:
        tracker = RunTracker(config, output_dir)
        report.mlflow_run_id = tracker.run_id
        tracker.log_params(_run_params(config, report, plan, loss_options, inputs.versions))
        converting = time.monotonic()
        with data.petastorm_converters(
            spark, settings.petastorm_cache_dir, train_frame.drop("doc_id"), inputs.val.drop("doc_id")
        ) as (train_converter, val_converter):
            timings["convert"] = time.monotonic() - converting
            plan.data = data.PetastormSource(
                train=train_converter,
                val=val_converter,
                transform=data.DenseLabelTransform(len(inputs.labels), inputs.chunk_len * inputs.max_chunks),
                reader_workers=settings.reader_workers,
                seed=settings.seed,
            )
            with _timed(timings, "train"):
                launchers.launch(plan, spark, local_mode=settings.distributor_local_mode)
        doc_ids = {int(row["row_id"]): row["doc_id"] for row in train_frame.select("row_id", "doc_id").collect()}
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    finally:
        train_frame.unpersist()

    _collect_records(report, plan, doc_ids)
    with _timed(timings, "track"):
        _log_to_mlflow(tracker, report)
    report.seconds = time.monotonic() - started
    logger.info(
        "Training finished in %.1f s (%s): %d epochs, step %d, best %s %.4f at epoch %d, %.1f samples/s%s; model %s",
        report.seconds, ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in timings.items()),
        report.epochs_completed, report.final_step, SELECTION_METRIC, report.best_metric,
        report.best_epoch, report.samples_per_second,
        "" if report.complete else " (stopped by training.stop_after_epochs; start again to resume)",
        report.model_dir,
    )
    return report


def _run_params(
    config: Config, report: TrainReport, plan: TrainingPlan, loss_options: dict[str, Any], versions: dict[str, int]
) -> dict[str, Any]:
    """Return the MLflow parameters of a run: the settings, the data sizes and the table versions."""
    settings = config_to_dict(config)
    return {
        "training": settings["training"],
        "loss_options_parsed": loss_options,
        "tokenizer": settings["tokenizer"],
        "data": {
            "train_rows": report.train_rows,
            "val_rows": report.val_rows,
            "labels": report.labels,
            "segments": report.segments,
            "segments_source": report.segments_source,
            "train_source": report.train_source,
            "steps_per_epoch": plan.steps_per_epoch,
            "total_steps": plan.total_steps,
            "effective_learning_rate": plan.learning_rate,
            **{f"version.{table}": version for table, version in versions.items()},
        },
    }


def _collect_records(report: TrainReport, plan: TrainingPlan, doc_ids: dict[int, str]) -> None:
    """Read the rank records, add doc ids and fill the report from rank 0's state."""
    records = []
    for rank in range(plan.num_proc):
        path = os.path.join(plan.output_dir, RANKS_FOLDER, f"rank-{rank}.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"training process {rank} wrote no record at {path}; see its log for the error")
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        record["doc_ids"] = sorted(doc_ids[row] for row in record["row_ids"])
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        records.append(record)
    report.rank_records = records
    report.samples_per_second = sum(r["samples"] / r["train_seconds"] for r in records if r["train_seconds"] > 0)

    from shl.training.checkpoint import latest_checkpoint_folder, load_checkpoint

    folder = latest_checkpoint_folder(plan.output_dir)
    if folder is None:
        return
    state = load_checkpoint(folder).state
    report.final_step = state.step
    report.epochs_completed = state.epochs_completed
    report.resumed_from_epoch = records[0]["resumed_from_epoch"]
    report.stopped_early = state.stopped_early
    report.best_epoch = state.best_epoch
    report.best_metric = state.best_metric
    report.history = state.history
    report.complete = (
        state.stopped_early
        or state.epochs_completed >= plan.epochs
        or (plan.max_steps > 0 and state.step >= plan.max_steps)
    )
    model_dir = os.path.join(plan.output_dir, MODEL_FOLDER)
    config_path = os.path.join(model_dir, "config.json")
    if os.path.isfile(config_path):
        report.model_dir = model_dir
        with open(config_path, encoding="utf-8") as handle:
            report.thresholds = json.load(handle)["thresholds"]


def _log_to_mlflow(tracker: RunTracker, report: TrainReport) -> None:
    first_new_epoch = (report.resumed_from_epoch or 0) + 1
    tracker.log_epochs(report.history, first_epoch=first_new_epoch)
    tracker.log_metrics({
        f"best_{SELECTION_METRIC}": report.best_metric,
        "best_epoch": report.best_epoch,
        "final_step": report.final_step,
        "samples_per_second": report.samples_per_second,
    })
    if report.complete and report.model_dir:
        tracker.log_model_folder(report.model_dir)
    tracker.finish("FINISHED" if report.complete else "KILLED")
