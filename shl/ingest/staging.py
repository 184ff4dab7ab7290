"""Parsing input files inside Spark tasks and splitting the rows into accepted and quarantined.

The parsers of :mod:`shl.ingest.records` run in Python workers through
``mapInPandas``, one task per input file, so files are read where the executors run
and the rows reach the JVM as Arrow batches. A compressed file cannot be split, so one
large file is read by one task.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shl.ingest import rules

# Staged columns of each target table, as the source modules produce them (strings).
NOTE_COLUMNS = ["note_id", "subject_id", "hadm_id", "note_type", "charttime", "text", "text_sha256", "source_split"]
CODE_COLUMNS = ["subject_id", "hadm_id", "code", "code_system", "seq_num"]
DESCRIPTION_COLUMNS = ["code", "code_system", "title"]
_TAIL = [
    T.StructField("source_file", T.StringType()),
    T.StructField("line", T.LongType()),
    T.StructField("line_end", T.LongType()),
    T.StructField("reason", T.StringType()),
    T.StructField("detail", T.StringType()),
    T.StructField("raw", T.StringType()),
]

StageFunction = Callable[..., Iterator[pd.DataFrame]]


def staged_schema(columns: list[str]) -> T.StructType:
    return T.StructType([T.StructField(column, T.StringType()) for column in columns] + _TAIL)


def _run_tasks(batches: Iterator[pd.DataFrame], stage: StageFunction, batch_rows: int) -> Iterator[pd.DataFrame]:
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    for batch in batches:
        for task in batch["task"]:
            for frame in stage(*json.loads(task)):
                pending.append(frame)
                pending_rows += len(frame)
                if pending_rows >= batch_rows:
                    yield pd.concat(pending, ignore_index=True)
                    pending, pending_rows = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def stage_in_spark(
    spark: SparkSession,
    tasks: list[tuple],
    stage: StageFunction,
    columns: list[str],
    *,
    batch_rows: int,
    max_tasks: int | None = None,
) -> DataFrame:
    """Run ``stage(*task)`` for each task in Spark tasks and return the staged rows.

    Parameters
    ----------
    tasks : list of tuple
        Positional arguments of each call, JSON-serialisable (file paths, kinds).
    stage : callable
        Returns an iterator of pandas frames with ``columns`` and the parse columns;
        bind keyword settings with ``functools.partial``.
    max_tasks : int, optional
        Number of Spark tasks; default one per task, at most 2000.

    Returns
    -------
    DataFrame
        Persisted, since parsing is the expensive step and the rows are read more
        than once; call ``unpersist()`` when done.
    """
    slices = max(1, min(len(tasks), max_tasks or 2000))
    payload = [(json.dumps(list(task)),) for task in tasks]
    task_rows = spark.sparkContext.parallelize(payload, slices)
    task_frame = spark.createDataFrame(task_rows, "task string")
    staged = task_frame.mapInPandas(
        functools.partial(_run_tasks, stage=stage, batch_rows=batch_rows), staged_schema(columns)
    )
    return staged.persist(StorageLevel.MEMORY_AND_DISK)


@dataclass
class SplitRows:
    """Staged rows split into those to write and those to quarantine."""

    accepted: DataFrame
    rejected: DataFrame
    skipped: int = 0


def split_rows(
    staged: DataFrame,
    *,
    content_columns: list[str],
    key_columns: list[str],
    source: str,
    target_table: str,
) -> SplitRows:
    """Separate accepted rows from rejected ones and reject duplicates.

    A row that repeats an earlier accepted row of the same content (``content_columns``
    equal, earlier by file and line) is quarantined as ``duplicate_row``. A row whose
    key repeats an earlier row's with other content is quarantined as ``duplicate_key``,
    since a table has one row per key. Rows outside the configured selection are
    counted in ``skipped`` and dropped.

    Returns
    -------
    SplitRows
        ``accepted`` has the staged columns; ``rejected`` has the quarantine columns
        without ``ingest_ts``.
    """
    order = [F.col("source_file"), F.col("line")]
    candidates = staged.filter(F.col("reason").isNull())

    by_content = Window.partitionBy(*content_columns).orderBy(*order)
    candidates = (
        candidates.withColumn("_rank", F.row_number().over(by_content))
        .withColumn("_first_file", F.first("source_file").over(by_content))
        .withColumn("_first_line", F.first("line").over(by_content))
    )
    is_copy = F.col("_rank") > 1
    copies = candidates.filter(is_copy).withColumn(
        "reason", F.lit(rules.DUPLICATE_ROW)
    ).withColumn(
        "detail", F.concat(F.lit("same content as line "), F.col("_first_line"), F.lit(" of "), F.col("_first_file"))
    )
    unique = candidates.filter(~is_copy)

    by_key = Window.partitionBy(*key_columns).orderBy(*order)
    unique = (
        unique.withColumn("_key_rank", F.row_number().over(by_key))
        .withColumn("_first_file", F.first("source_file").over(by_key))
        .withColumn("_first_line", F.first("line").over(by_key))
    )
    key_text = F.concat_ws(", ", *[F.coalesce(F.col(c).cast("string"), F.lit("null")) for c in key_columns])
    clashes = unique.filter(F.col("_key_rank") > 1).withColumn("reason", F.lit(rules.DUPLICATE_KEY)).withColumn(
        "detail",
        F.concat(
            F.lit(f"key ({', '.join(key_columns)}) = ("), key_text,
            F.lit(") is already on line "), F.col("_first_line"), F.lit(" of "), F.col("_first_file"),
            F.lit(" with other content"),
        ),
    )
    accepted = unique.filter(F.col("_key_rank") == 1).select(staged.columns)

    # Accepted rows dropped their raw text; rebuild it from the fields for duplicates.
    value_columns = [c for c in staged.columns if c not in ("source_file", "line", "line_end", "reason", "detail", "raw")]
    duplicates = copies.select(staged.columns).unionByName(clashes.select(staged.columns)).withColumn(
        "raw", F.to_json(F.struct(*value_columns))
    )
    rejected_staged = staged.filter(F.col("reason").isNotNull() & (F.col("reason") != rules.NOT_SELECTED))
    rejected = rejected_staged.unionByName(duplicates).select(
        F.lit(source).alias("source"),
        "source_file",
        F.col("line").cast("int").alias("line"),
        F.col("line_end").cast("int").alias("line_end"),
        F.lit(target_table).alias("target_table"),
        "reason",
        "detail",
        "raw",
    )
    skipped = staged.filter(F.col("reason") == rules.NOT_SELECTED).count()
    return SplitRows(accepted=accepted, rejected=rejected, skipped=skipped)
