"""The Spark session factory.

A job reuses the active session when there is one (a notebook, ``spark-submit``, a
test that made it). On Databricks it uses the cluster's session. Otherwise it starts a
local session with Delta Lake, whose jars Spark's Ivy resolves from Maven Central once
and caches in ``~/.ivy2``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

from shl.config import SparkSettings

logger = logging.getLogger(__name__)

# The delta-spark version of pyproject.toml, for the --packages hint of check_delta.
DELTA_VERSION = "3.3.2"
_DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def on_databricks() -> bool:
    """Return True inside a Databricks runtime, whose clusters already have Delta."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def launched_by_spark_submit() -> bool:
    """Return True when spark-submit (or the pyspark shell) started this Python process."""
    return "PYSPARK_GATEWAY_PORT" in os.environ and not on_databricks()


def check_delta(session: SparkSession) -> None:
    """Raise ConfigError unless the session can read and write Delta tables.

    Raises
    ------
    ConfigError
        If the Delta classes or SQL extension are missing, with the spark-submit
        options that add them.
    """
    from shl.config import ConfigError

    extensions = session.conf.get("spark.sql.extensions", "") or ""
    loaded = session.sparkContext._jvm.io.delta.tables.DeltaTable
    if _DELTA_SETTINGS["spark.sql.extensions"] not in extensions or not hasattr(loaded, "forPath"):
        options = " ".join(f"--conf {key}={value}" for key, value in _DELTA_SETTINGS.items())
        raise ConfigError(
            f"this Spark session has no Delta Lake (spark.sql.extensions={extensions!r}); submit with "
            f"--packages io.delta:delta-spark_2.12:{DELTA_VERSION} {options}, or use a runtime that ships Delta"
        )


def get_spark(settings: SparkSettings | None = None) -> SparkSession:
    """Return the active Spark session, or start a local one with Delta Lake.

    Parameters
    ----------
    settings : SparkSettings, optional
        Master, shuffle partitions, driver memory, Arrow batch size and warehouse
        folder of a new local session. They do not change a session that already runs,
        except the SQL settings (shuffle partitions, Arrow batch size), which are
        runtime settings and are applied to it.

    Returns
    -------
    pyspark.sql.SparkSession
    """
    settings = settings or SparkSettings()
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("Reusing the active Spark session (master %s)", active.sparkContext.master)
        _apply_runtime_settings(active, settings)
        return active

    if launched_by_spark_submit():
        # The JVM already runs with spark-submit's jars and settings, so Delta must come from them.
        session = SparkSession.builder.appName(settings.app_name).getOrCreate()
        check_delta(session)
        logger.info("Using the spark-submit session (master %s)", session.sparkContext.master)
        _apply_runtime_settings(session, settings)
        return session
    if on_databricks():
        logger.info("Using the Databricks cluster session")
        session = SparkSession.builder.getOrCreate()
        _apply_runtime_settings(session, settings)
        return session

    return _start_local_session(settings)


def _apply_runtime_settings(session: SparkSession, settings: SparkSettings) -> None:
    session.conf.set("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.arrow_batch_size))


def _start_local_session(settings: SparkSettings) -> SparkSession:
    # Imported here: delta's pip helper is not needed (and may be absent) on clusters.
    from delta import configure_spark_with_delta_pip

    started = time.monotonic()
    # Python workers must run the interpreter that has this package and its stack,
    # not whichever python3 is first on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warehouse = Path(settings.warehouse_dir).resolve()
    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.arrow_batch_size))
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.ui.enabled", "true" if settings.ui_enabled else "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Fast tokenizers can deadlock after fork in Python workers.
        .config("spark.executorEnv.TOKENIZERS_PARALLELISM", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Delta reads its log with this many tasks (50 by default), too many for a laptop.
        .config("spark.databricks.delta.snapshotPartitions", str(settings.shuffle_partitions))
    )
    for key, value in _DELTA_SETTINGS.items():
        builder = builder.config(key, value)
    for key, value in settings.conf.items():
        builder = builder.config(key, value)

    session = configure_spark_with_delta_pip(builder).getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    logger.info(
        "Started local Spark %s session (master %s, %s shuffle partitions) in %.1f s",
        session.version,
        settings.master,
        settings.shuffle_partitions,
        time.monotonic() - started,
    )
    return session


def resolve_delta_jars() -> None:
    """Start a local session and write one Delta table, so the jars are cached."""
    session = get_spark(SparkSettings(master="local[1]", shuffle_partitions=1))
    with tempfile.TemporaryDirectory() as folder:
        session.range(3).write.format("delta").save(os.path.join(folder, "check"))
        rows = session.read.format("delta").load(os.path.join(folder, "check")).count()
    session.stop()
    if rows != 3:
        raise RuntimeError(f"Delta check table has {rows} rows instead of 3")
    logger.info("Delta Lake jars resolved and a Delta table written and read")


def main() -> None:
    parser = argparse.ArgumentParser(description="Spark session helpers")
    parser.add_argument(
        "--resolve-jars",
        action="store_true",
        help="resolve and cache the Delta Lake jars by writing a small Delta table",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.resolve_jars:
        resolve_delta_jars()
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
