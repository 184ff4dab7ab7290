"""The built-in sample through ingestion: all rows land, and a second run changes nothing."""

from __future__ import annotations

import json

import pytest

from frames import assert_frames_equal
from shl.config import load_config
from shl.ingest.job import run_ingest
from shl.ingest.sample_source import MARKER_FILE

TABLES = ("notes", "codes", "code_descriptions", "quarantine")


@pytest.fixture(scope="module")
def two_runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    config = load_config(
        None,
        [
            f"source.path={root / 'sample'}",
            f"lakehouse.root={root / 'lakehouse'}",
            "sample.n_admissions=300",
            "sample.n_patients=120",
            "sample.n_diagnosis_codes=80",
            "sample.n_procedure_codes=20",
        ],
    )
    first = run_ingest(config, spark)
    # Read the first run's rows into memory: the Delta tables change under a lazy frame.
    snapshot = {
        name: spark.createDataFrame(
            spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}").collect(),
            spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}").schema,
        )
        for name in TABLES
    }
    second = run_ingest(config, spark)
    tables = {name: spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}") for name in TABLES}
    summary = json.loads((root / "sample" / "truth" / "summary.json").read_text())
    return first, second, snapshot, tables, summary, root


def test_every_sample_row_is_ingested(two_runs):
    first, _, _, tables, summary, _ = two_runs
    counts = summary["counts"]
    assert tables["notes"].count() == counts["notes"] == 300
    assert tables["codes"].count() == counts["diagnosis_rows"] + counts["procedure_rows"]
    assert first.tables["notes"].write.inserted == 300
    assert first.quarantined_total == 0


def test_second_run_leaves_identical_tables(two_runs):
    _, second, snapshot, tables, _, _ = two_runs
    for name in TABLES:
        assert_frames_equal(tables[name], snapshot[name])
    for name in ("notes", "codes", "code_descriptions"):
        assert second.tables[name].write.inserted == 0
        assert second.tables[name].write.updated == 0


def test_sample_is_reused_when_settings_match(two_runs):
    _, _, _, _, _, root = two_runs
    marker = json.loads((root / "sample" / MARKER_FILE).read_text())
    assert marker["n_admissions"] == 300
    assert marker["seed"] == 7


def test_sample_codes_are_icd10(two_runs):
    _, _, _, tables, _, _ = two_runs
    systems = {row["code_system"] for row in tables["codes"].select("code_system").distinct().collect()}
    assert systems == {"icd10cm", "icd10pcs"}
    with_titles = tables["codes"].join(tables["code_descriptions"], on=["code", "code_system"], how="left_anti")
    assert with_titles.count() == 0
