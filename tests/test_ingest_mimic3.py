"""MIMIC-III: discharge summaries and addenda merged per admission, ISERROR rows
quarantined and counted, other categories counted and skipped, ICD-9 systems kept apart."""

from __future__ import annotations

import gzip

import pytest

from shl.config import load_config
from shl.ingest.job import run_ingest

HEADER = b'"ROW_ID","SUBJECT_ID","HADM_ID","CHARTDATE","CHARTTIME","STORETIME","CATEGORY","DESCRIPTION","CGID","ISERROR","TEXT"'
NOTEEVENTS_ROWS = [
    HEADER,  # 1
    b'11,101,1001,2151-08-10,,,"Discharge summary","Addendum",,,"Addendum: culture negative."',  # 2
    b'10,101,1001,2151-08-04,,,"Discharge summary","Report",,,"Admission Date: [**2151-7-16**]',  # 3
    b'Hospital course: pneumonia treated."',  # 4
    b'12,101,1001,2151-08-05,,,"Discharge summary","Addendum",,,"Addendum: follow-up booked."',  # 5
    b'13,101,1001,2151-08-05,2151-08-05 10:00:00,,"Nursing/other","Report",,,"Nursing note."',  # 6
    b'14,102,1002,2151-09-01,,,"Discharge summary","Report",,1,"Written in error."',  # 7
    b'15,102,1002,2151-09-02,,,"Discharge summary","Report",,,"Second admission summary."',  # 8
]
DIAGNOSES_ROWS = [
    b'"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"',
    b"1,101,1001,1,4019",
    b"2,101,1001,2,3893",
    b"3,102,1002,1,V1046",
]
PROCEDURES_ROWS = [
    b'"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"',
    b"1,101,1001,1,3893",
]
D_DIAGNOSES_ROWS = [
    b'"ROW_ID","ICD9_CODE","SHORT_TITLE","LONG_TITLE"',
    b'1,"4019","Hypertension NOS","Unspecified essential hypertension"',
]
D_PROCEDURES_ROWS = [
    b'"ROW_ID","ICD9_CODE","SHORT_TITLE","LONG_TITLE"',
    b'1,"3893","Venous cath NEC","Venous catheterization, not elsewhere classified"',
]


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic3")
    source = root / "input"
    source.mkdir()
    # Mixed compression: the reader takes .csv.gz and .csv.
    with gzip.open(source / "NOTEEVENTS.csv.gz", "wb") as handle:
        handle.write(b"\n".join(NOTEEVENTS_ROWS) + b"\n")
    for name, rows in {
        "DIAGNOSES_ICD.csv": DIAGNOSES_ROWS,
        "PROCEDURES_ICD.csv": PROCEDURES_ROWS,
        "D_ICD_DIAGNOSES.csv.gz": D_DIAGNOSES_ROWS,
        "D_ICD_PROCEDURES.csv": D_PROCEDURES_ROWS,
    }.items():
        data = b"\n".join(rows) + b"\n"
        if name.endswith(".gz"):
            data = gzip.compress(data)
        (source / name).write_bytes(data)

    config = load_config(
        None, ["source.format=mimic3", f"source.path={source}", f"lakehouse.root={root / 'lakehouse'}"]
    )
    report = run_ingest(config, spark)
    tables = {
        name: spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}")
        for name in ("notes", "codes", "code_descriptions", "quarantine")
    }
    return report, tables


def test_report_and_addenda_merged_in_order(ingested):
    _, tables = ingested
    note = tables["notes"].filter("hadm_id = '1001'").first()
    assert note["note_id"] == "DS-1001"
    assert note["text"] == (
        "Admission Date: [**2151-7-16**]\nHospital course: pneumonia treated.\n\n"
        "Addendum: follow-up booked.\n\nAddendum: culture negative."
    )
    assert note["source_note_ids"] == ["10", "12", "11"]
    assert note["source_line"] == 3
    assert str(note["charttime"]) == "2151-08-04 00:00:00"
    assert note["note_type"] == "Discharge summary"


def test_error_rows_quarantined_and_counted(ingested):
    report, tables = ingested
    rows = tables["quarantine"].collect()
    assert [(row["line"], row["reason"]) for row in rows] == [(7, "marked_error")]
    assert report.tables["notes"].quarantined == {"marked_error": 1}
    second = tables["notes"].filter("hadm_id = '1002'").first()
    assert second["text"] == "Second admission summary."
    assert second["source_note_ids"] == ["15"]


def test_other_categories_counted_as_skipped(ingested):
    report, tables = ingested
    assert report.tables["notes"].rows_read == 6
    assert report.tables["notes"].skipped == 1
    assert tables["notes"].count() == 2


def test_icd9_diagnosis_and_procedure_do_not_collide(ingested):
    _, tables = ingested
    codes = sorted((r["hadm_id"], r["code"], r["code_system"], r["seq_num"]) for r in tables["codes"].collect())
    assert codes == [
        ("1001", "38.93", "icd9pcs", 1),
        ("1001", "389.3", "icd9cm", 2),
        ("1001", "401.9", "icd9cm", 1),
        ("1002", "V10.46", "icd9cm", 1),
    ]
    titles = {(r["code"], r["code_system"]): r["title"] for r in tables["code_descriptions"].collect()}
    assert titles == {
        ("401.9", "icd9cm"): "Unspecified essential hypertension",
        ("38.93", "icd9pcs"): "Venous catheterization, not elsewhere classified",
    }
