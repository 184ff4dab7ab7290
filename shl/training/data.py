"""Training data: Delta tables to Spark DataFrames to Petastorm converters and torch batches.

The driver joins ``silver.tokens`` with the label sets and turns each label into its
column in ``silver.label_index``. A row of the converted DataFrame contains ``row_id``, the
flattened ``input_ids`` and ``attention_mask``, ``label_columns`` (array<int>) and
``label_weights`` (array<float>, parallel). A Petastorm ``TransformSpec`` turns the
variable-length columns into dense float32 ``targets`` and ``weights`` of shape
(labels,), because the torch loader needs fixed shapes.

Petastorm shards by Parquet row group: rank r of n reads the row groups whose index is
r modulo n. The train rows are therefore written round-robin into a multiple of n
files of one row group each, so every shard has the same number of rows, give or take
one row per file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shl.config import ConfigError

logger = logging.getLogger(__name__)

PARENT_CACHE_DIR_KEY = "petastorm.spark.converter.parentCacheDirUrl"
# Rows per Parquet file of the train converter. Each file is one row group (see
# ROW_GROUP_BYTES) and one unit of sharding.
ROWS_PER_FILE = 2048
# Large enough that a file of ROWS_PER_FILE token rows stays one row group.
ROW_GROUP_BYTES = 256 * 1024 * 1024


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def cache_dir_url(path: str) -> str:
    """Return the Petastorm cache folder as a URL with a scheme.

    A plain path becomes an absolute ``file://`` URL; a value with a scheme
    (``file:///...``, ``dbfs:/...``, ``hdfs://...``) is returned unchanged.

    Raises
    ------
    ConfigError
        If ``path`` is empty.
    """
    if not path or not path.strip():
        raise ConfigError(
            "training.petastorm_cache_dir is empty; set it to a folder that the driver and every "
            "worker can read, such as /dbfs/tmp/petastorm or file:///shared/petastorm"
        )
    path = path.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        return path
    return "file://" + os.path.abspath(path)


def dense_targets(
    label_columns: Sequence[Sequence[int]],
    label_weights: Sequence[Sequence[float]],
    num_labels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Build dense targets and weights from per-document label columns.

    Parameters
    ----------
    label_columns : sequence of int sequences
        Label columns of each document, 0-based.
    label_weights : sequence of float sequences
        Weight of each of those labels, parallel to ``label_columns``.
    num_labels : int
        Width of the output.

    Returns
    -------
    tuple of numpy.ndarray
        ``targets`` (1 at the document's labels, else 0) and ``weights`` (the label's
        weight at its labels, 1 elsewhere), both float32 of shape (documents, labels).

    Raises
    ------
    ValueError
        If a document's columns and weights differ in length or a column is outside
        ``0 .. num_labels - 1``.
    """
    count = len(label_columns)
    if len(label_weights) != count:
        raise ValueError(f"got label columns for {count} documents but weights for {len(label_weights)}")
    targets = np.zeros((count, num_labels), dtype=np.float32)
    weights = np.ones((count, num_labels), dtype=np.float32)
    for row, (columns, row_weights) in enumerate(zip(label_columns, label_weights)):
        columns = np.asarray(columns if columns is not None else [], dtype=np.int64)
        row_weights = np.asarray(row_weights if row_weights is not None else [], dtype=np.float32)
        if columns.shape != row_weights.shape:
            raise ValueError(
                f"document {row} has {columns.size} label columns but {row_weights.size} label weights"
            )
        if columns.size and (columns.min() < 0 or columns.max() >= num_labels):
            raise ValueError(
                f"document {row} has label column {int(columns.max())} outside 0..{num_labels - 1}"
            )
        targets[row, columns] = 1.0
        weights[row, columns] = row_weights
    return targets, weights


def files_for(rows: int, num_proc: int) -> int:
    """Return how many files the train rows go into: a multiple of ``num_proc``.

    Each process gets ``ceil(rows / (num_proc * ROWS_PER_FILE))`` files, at least one.
    """
    per_process = max(1, math.ceil(rows / (num_proc * ROWS_PER_FILE)))
    return num_proc * per_process


def micro_batches_per_epoch(rows: int, files: int, num_proc: int, batch_size: int, grad_accumulation: int) -> int:
    """Return the batches every process runs per epoch.

    Rows are spread round-robin over ``files`` files, so a file has at most
    ``ceil(rows / files)`` rows and a shard (``files / num_proc`` files) at most
    ``files / num_proc * ceil(rows / files)``. The count covers the largest shard and
    is a multiple of ``grad_accumulation``. So every process reads its whole shard
    each epoch, and all processes run the same number of optimiser steps. A process
    with a smaller shard starts its shard over for the last batches.
    """
    if files % num_proc:
        raise ValueError(f"files ({files}) must be a multiple of num_proc ({num_proc})")
    largest_shard = (files // num_proc) * math.ceil(rows / files)
    batches = max(1, math.ceil(largest_shard / batch_size))
    return math.ceil(batches / grad_accumulation) * grad_accumulation


class DenseLabelTransform:
    """Petastorm transform: label columns and weights to dense arrays, token arrays to int32.

    An instance is pickled to the workers with the training plan, so it is a plain
    class instead of a closure.
    """

    def __init__(self, num_labels: int, tokens_per_document: int) -> None:
        self.num_labels = num_labels
        self.tokens_per_document = tokens_per_document

    def __call__(self, frame):
        targets, weights = dense_targets(frame["label_columns"], frame["label_weights"], self.num_labels)
        frame = frame.drop(columns=["label_columns", "label_weights"])
        for column in ("input_ids", "attention_mask"):
            frame[column] = [np.asarray(values, dtype=np.int32) for values in frame[column]]
        frame["targets"] = list(targets)
        frame["weights"] = list(weights)
        return frame

    def spec(self):
        """Return the ``petastorm.TransformSpec`` with the fixed output shapes."""
        from petastorm import TransformSpec

        length = (self.tokens_per_document,)
        return TransformSpec(
            self,
            edit_fields=[
                ("input_ids", np.int32, length, False),
                ("attention_mask", np.int32, length, False),
                ("targets", np.float32, (self.num_labels,), False),
                ("weights", np.float32, (self.num_labels,), False),
            ],
            removed_fields=["label_columns", "label_weights"],
        )


# ---------------------------------------------------------------------------
# Loaders, used inside the training processes
# ---------------------------------------------------------------------------


def quiet_petastorm_warnings() -> None:
    """Silence the FutureWarnings petastorm 0.13.1 raises on every pyarrow 14 read."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?")


@dataclass
class PetastormSource:
    """The train and validation converters, and how to read them, for the training processes.

    Attributes
    ----------
    train, val : petastorm.spark.SparkDatasetConverter
        Converters made on the driver; they pickle to the workers.
    transform : DenseLabelTransform
    reader_workers : int
        Petastorm reader threads per loader.
    seed : int
        Seed of the row-group order, the row order within row groups and the shard
        assignment; the same on every process, so the shards stay disjoint.
    """

    train: Any
    val: Any
    transform: DenseLabelTransform
    reader_workers: int
    seed: int

    @contextlib.contextmanager
    def open_train(self, rank: int, size: int, batch_size: int) -> Iterator[Iterator[dict]]:
        """Yield an endless iterator over this process's shard of the train rows.

        ``num_epochs=None`` makes the reader start the shard over when it ends, so the
        caller bounds each epoch by its own step count.
        """
        quiet_petastorm_warnings()
        with self.train.make_torch_dataloader(
            batch_size=batch_size,
            num_epochs=None,
            cur_shard=rank,
            shard_count=size,
            workers_count=self.reader_workers,
            transform_spec=self.transform.spec(),
            seed=self.seed,
            shuffle_rows=True,
            shuffle_row_groups=True,
        ) as loader:
            yield iter(loader)

    @contextlib.contextmanager
    def open_val(self, batch_size: int) -> Iterator[Iterator[dict]]:
        """Yield one pass over all validation rows, in a fixed order.

        The reader is made directly from the converter's files, as
        ``make_torch_dataloader`` does, because that method logs a broken warning when
        one Horovod process reads unsharded.
        """
        from petastorm import make_batch_reader
        from petastorm.pytorch import DataLoader

        quiet_petastorm_warnings()
        reader = make_batch_reader(
            self.val.file_urls,
            num_epochs=1,
            workers_count=self.reader_workers,
            transform_spec=self.transform.spec(),
            shuffle_row_groups=False,
        )
        try:
            yield iter(DataLoader(reader, batch_size=batch_size))
        finally:
            reader.stop()
            reader.join()


# ---------------------------------------------------------------------------
# Converters, made on the driver
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def petastorm_converters(spark, cache_dir: str, train_frame, val_frame) -> Iterator[tuple[Any, Any]]:
    """Materialise the train and validation frames as Petastorm converters; delete them on exit.

    Parameters
    ----------
    spark : SparkSession
    cache_dir : str
        ``training.petastorm_cache_dir``: a path or a URL with a scheme.
    train_frame, val_frame : DataFrame
        Rows with numeric columns only; the torch loader rejects strings.

    Yields
    ------
    tuple
        The train and validation ``SparkDatasetConverter``.
    """
    quiet_petastorm_warnings()
    from petastorm.spark import make_spark_converter

    url = cache_dir_url(cache_dir)
    spark.conf.set(PARENT_CACHE_DIR_KEY, url)
    logger.info("Petastorm cache: %s", url)
    converters = []
    try:
        converters.append(make_spark_converter(train_frame, parquet_row_group_size_bytes=ROW_GROUP_BYTES))
        converters.append(make_spark_converter(val_frame, parquet_row_group_size_bytes=ROW_GROUP_BYTES))
        logger.info(
            "Petastorm converters: %d train rows in %d files, %d validation rows",
            len(converters[0]), len(converters[0].file_urls), len(converters[1]),
        )
        yield converters[0], converters[1]
    finally:
        for converter in converters:
            try:
                converter.delete()
            except OSError as error:
                logger.warning("Failed to delete the Petastorm cache %s: %s", converter.cache_dir_url, error)


class InMemorySource:
    """Batches from arrays in memory, with the interface of :class:`PetastormSource`.

    For runs without Spark, such as the GPU benchmark. Each array maps a column
    (``row_id``, ``input_ids``, ``attention_mask``, ``targets``, ``weights``) to an array
    whose first axis is the row. Process ``rank`` of ``size`` reads rows
    ``rank, rank + size, ...``.
    """

    def __init__(self, train: dict[str, np.ndarray], val: dict[str, np.ndarray], seed: int = 0) -> None:
        self.train = train
        self.val = val
        self.seed = seed

    @staticmethod
    def _batch(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict:
        import torch

        return {name: torch.from_numpy(np.ascontiguousarray(values[rows])) for name, values in columns.items()}

    @contextlib.contextmanager
    def open_train(self, rank: int, size: int, batch_size: int) -> Iterator[Iterator[dict]]:
        """Yield an endless iterator over this process's rows, reshuffled on every pass."""
        shard = np.arange(rank, len(self.train["row_id"]), size)
        rng = np.random.default_rng(self.seed)

        def batches() -> Iterator[dict]:
            while True:
                order = rng.permutation(shard)
                for start in range(0, len(order), batch_size):
                    yield self._batch(self.train, order[start : start + batch_size])

        yield batches()

    @contextlib.contextmanager
    def open_val(self, batch_size: int) -> Iterator[Iterator[dict]]:
        """Yield one pass over the validation rows in order."""
        count = len(self.val["row_id"])
        yield (self._batch(self.val, np.arange(start, min(start + batch_size, count)))
               for start in range(0, count, batch_size))
