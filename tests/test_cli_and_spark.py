"""The console command's error handling and the Spark session factory."""

from __future__ import annotations

import logging

from shl.cli import main
from shl.config import SparkSettings
from shl.spark import get_spark


def test_get_spark_reuses_active_session(spark):
    again = get_spark(SparkSettings(master="local[1]", shuffle_partitions=3, arrow_batch_size=500))
    assert again is spark
    assert again.conf.get("spark.sql.shuffle.partitions") == "3"
    assert again.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") == "500"
    spark.conf.set("spark.sql.shuffle.partitions", "2")


def test_local_session_has_delta(spark):
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.catalog.spark_catalog").endswith("DeltaCatalog")


def test_missing_input_file_is_named(spark, tmp_path, caplog):
    source = tmp_path / "mimic4"
    (source / "note").mkdir(parents=True)
    (source / "note" / "discharge.csv").write_text("note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text\n")
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "source.format=mimic4", f"source.path={source}", f"lakehouse.root={tmp_path / 'lh'}"])
    assert code == 2
    assert f"input file not found: {source}/hosp/diagnoses_icd.csv.gz or {source}/hosp/diagnoses_icd.csv" in caplog.text
    assert "MIMIC-IV layout" in caplog.text


def test_missing_column_is_named(spark, tmp_path, caplog):
    source = tmp_path / "mimic4"
    (source / "note").mkdir(parents=True)
    (source / "note" / "discharge.csv").write_text("note_id,subject_id,hadm_id,text\n")
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "source.format=mimic4", f"source.path={source}", f"lakehouse.root={tmp_path / 'lh'}"])
    assert code == 2
    assert "discharge.csv: missing column(s) note_type, note_seq, charttime, storetime" in caplog.text
    assert "MIMIC-IV note/discharge layout" in caplog.text


def test_bad_override_exits_with_usage_error(caplog):
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "spark.shuffle_partitions=many"])
    assert code == 2
    assert "key 'spark.shuffle_partitions' must be an integer, found 'many'" in caplog.text
