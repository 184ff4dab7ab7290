"""Idempotent writes to Delta tables: MERGE on the table key, never a blind append."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shl.config import Config
from shl.tables import TableSpec

logger = logging.getLogger(__name__)

# Columns that record when a row was written; a change in them alone is not a change.
_TIMESTAMP_COLUMNS = ("ingest_ts", "evaluated_ts")


@dataclass
class WriteResult:
    """Row counts and the new version of one MERGE into one table."""

    table: str
    path: str
    version: int
    inserted: int
    updated: int
    deleted: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def table_version(spark: SparkSession, path: str) -> int | None:
    """Return the latest version of a Delta table, or None when there is no table."""
    if not table_exists(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def read_table(spark: SparkSession, spec: TableSpec, config: Config) -> DataFrame:
    """Read a table, with an error that names the job to run when it is missing."""
    path = spec.path(config)
    if not table_exists(spark, path):
        raise FileNotFoundError(
            f"Delta table {spec.layer}.{spec.name} not found at {path}; run the stage that writes it first"
        )
    return spark.read.format("delta").load(path)


def merge_table(
    spark: SparkSession, frame: DataFrame, spec: TableSpec, config: Config, *, delete_missing: bool = False
) -> WriteResult:
    """Insert new rows and update changed rows of a table, matching on its key.

    A row whose key is in the table with the same content (``ingest_ts`` aside) is
    left as it is, so running a job twice on the same input leaves the same table.
    The table is created with the spec's schema when it does not exist, so its
    NOT NULL columns are enforced.

    Parameters
    ----------
    frame : DataFrame
        Rows with the spec's columns. Keys must be unique within it; the caller
        quarantines duplicate keys first.
    delete_missing : bool, default False
        Also delete the table's rows whose key is not in ``frame``, for tables that a
        job derives in full from its inputs.

    Raises
    ------
    ValueError
        If the frame's columns differ from the spec's.
    """
    path = spec.path(config)
    if frame.columns != spec.columns:
        raise ValueError(
            f"rows for {spec.layer}.{spec.name} have columns {frame.columns}, expected {spec.columns}"
        )
    frame = frame.select([F.col(field.name).cast(field.dataType) for field in spec.schema.fields])

    if not table_exists(spark, path):
        # Created from the spec, so the NOT NULL columns are enforced by Delta.
        DeltaTable.createIfNotExists(spark).location(path).addColumns(spec.schema).execute()
        logger.info("Created Delta table %s.%s at %s", spec.layer, spec.name, path)

    version_before = table_version(spark, path)
    key_condition = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in spec.keys)
    compared = [column for column in spec.columns if column not in spec.keys and column not in _TIMESTAMP_COLUMNS]
    changed = " OR ".join(f"NOT (t.`{column}` <=> s.`{column}`)" for column in compared) or "false"
    merge = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(frame.alias("s"), key_condition)
        .whenMatchedUpdateAll(condition=changed)
        .whenNotMatchedInsertAll()
    )
    if delete_missing:
        merge = merge.whenNotMatchedBySourceDelete()
    merge.execute()

    last = DeltaTable.forPath(spark, path).history(1).select("version", "operation", "operationMetrics").first()
    # A MERGE that changes nothing may commit no version; the last entry is then an
    # older write whose counts are not this one's.
    metrics = (last["operationMetrics"] or {}) if int(last["version"]) != version_before else {}
    inserted = int(metrics.get("numTargetRowsInserted", 0))
    updated = int(metrics.get("numTargetRowsUpdated", 0))
    deleted = int(metrics.get("numTargetRowsDeleted", 0))
    result = WriteResult(f"{spec.layer}.{spec.name}", path, int(last["version"]), inserted, updated, deleted)
    logger.info(
        "Wrote %s: %d inserted, %d updated, %d deleted, version %d (%s)",
        result.table,
        result.inserted,
        result.updated,
        result.deleted,
        result.version,
        path,
    )
    return result


def overwrite_table(spark: SparkSession, frame: DataFrame, spec: TableSpec, config: Config) -> WriteResult:
    """Replace a table's whole content, for a rewrite after its settings changed."""
    path = spec.path(config)
    frame = frame.select([F.col(field.name).cast(field.dataType) for field in spec.schema.fields])
    if not table_exists(spark, path):
        DeltaTable.createIfNotExists(spark).location(path).addColumns(spec.schema).execute()
    frame.write.format("delta").mode("overwrite").save(path)
    last = DeltaTable.forPath(spark, path).history(1).select("version", "operationMetrics").first()
    rows = int((last["operationMetrics"] or {}).get("numOutputRows", 0))
    result = WriteResult(f"{spec.layer}.{spec.name}", path, int(last["version"]), rows, 0)
    logger.info("Overwrote %s with %d rows, version %d (%s)", result.table, rows, result.version, path)
    return result


def with_ingest_time(frame: DataFrame) -> DataFrame:
    """Add the ``ingest_ts`` column with the time of the write."""
    return frame.withColumn("ingest_ts", F.current_timestamp())
