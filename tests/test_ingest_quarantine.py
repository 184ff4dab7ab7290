"""Bad input of each kind goes to quarantine with its reason, file and line, and the good
rows of the same file are ingested. One ingestion run over hand-made MIMIC-IV files."""

from __future__ import annotations

import pytest

from shl.config import load_config
from shl.ingest.job import run_ingest

# note/discharge.csv: the line each row starts on is in the comment.
DISCHARGE_ROWS = [
    b"note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text",  # 1
    b'10000001-DS-1,10000001,20000001,DS,1,2180-07-23 12:35:00,,"Chief complaint: fever.',  # 2
    b'Patient has essential hypertension."',  # 3
    b"10000002-DS-1,10000002,20000002,DS,1,2180-08-01 09:00:00,,Type 2 diabetes mellitus.",  # 4
    b"10000003-DS-1,10000003,20000003,DS,1,2180-08-02 10:00:00,one field short",  # 5
    b"10000004-DS-1,10000004,,DS,1,2180-08-03 10:00:00,,Admission id is missing.",  # 6
    b'10000005-DS-1,10000005,20000005,DS,1,2180-08-04 10:00:00,,""',  # 7: empty text
    b'10000006-DS-1,10000006,20000006,DS,1,2180-08-05 10:00:00,,"   "',  # 8: whitespace only
    b"10000007-DS-1,10000007,20000007,DS,1,2180-08-06 10:00:00,,Caf\xe9 au lait spots.",  # 9
    b"10000002-DS-1,10000002,20000002,DS,1,2180-08-01 09:00:00,,Type 2 diabetes mellitus.",  # 10: copy of 4
    b"10000008-DS-1,10000008,20000008,DS,1,2180-08-07 10:00:00,," + b"x" * 120,  # 11: over the limit
    b"10000009-DS-1,10000009,20000009,DS,1,yesterday,,Chart time is not a time.",  # 12
    b'10000002-DS-1,10000002,20000002,DS,1,2180-08-01 09:00:00,,"Other text, same note id."',  # 13
    b"10000010-DS-1,10000010,20000010,DS,1,2180-08-08 10:00:00,,Acute kidney failure.",  # 14
]
DIAGNOSES_ROWS = [
    b"subject_id,hadm_id,seq_num,icd_code,icd_version",  # 1
    b"10000001,20000001,1,I10,10",  # 2
    b"10000001,20000001,2,3893,9",  # 3: ICD-9-CM 389.3
    b"10000001,20000001,3,0117,9",  # 4: ICD-9-CM 011.7
    b"10000001,20000001,4,117,9",  # 5: ICD-9-CM 117, not the same as 011.7
    b"10000002,20000002,1,E119,10",  # 6
    b"10000002,20000002,2,XYZ,10",  # 7: unknown code format
    b"10000002,20000002,3,E785,",  # 8: icd_version missing
    b"10000002,20000002,4,E785,11",  # 9: icd_version out of range
    b"10000002,20000002,1,E119,10",  # 10: copy of 6
    b"10000003,,1,N179,10",  # 11: admission id missing
    b"10000010,20000010,1,N179,10",  # 12
    b"10000010,2000001O,1,N179,10",  # 13: letter O in the admission id
]
PROCEDURES_ROWS = [
    b"subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version",  # 1
    b"10000001,20000001,1,2180-07-24,3893,9",  # 2: ICD-9 procedure 38.93, same digits as line 3 above
    b"10000001,20000001,2,2180-07-24,0dtj4zz,10",  # 3
    b"10000002,20000002,1,2180-08-01,0DTJ4Z,10",  # 4: six characters, not a PCS code
]
D_DIAGNOSES_ROWS = [
    b"icd_code,icd_version,long_title",
    b"I10,10,Essential (primary) hypertension",
    b"E119,10,Type 2 diabetes mellitus without complications",
    b"3893,9,Tinnitus of unspecified type",
    b"N179,10,",  # 5: empty title
]
D_PROCEDURES_ROWS = [
    b"icd_code,icd_version,long_title",
    b"3893,9,Venous catheterization NEC",
    b'0DTJ4ZZ,10,"Resection of Appendix, Percutaneous Endoscopic Approach"',
]


def _write_layout(root):
    files = {
        "note/discharge.csv": DISCHARGE_ROWS,
        "hosp/diagnoses_icd.csv": DIAGNOSES_ROWS,
        "hosp/procedures_icd.csv": PROCEDURES_ROWS,
        "hosp/d_icd_diagnoses.csv": D_DIAGNOSES_ROWS,
        "hosp/d_icd_procedures.csv": D_PROCEDURES_ROWS,
    }
    for relative, rows in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join(rows) + b"\n")


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic4_bad")
    _write_layout(root / "input")
    config = load_config(
        None,
        [
            "source.format=mimic4",
            f"source.path={root / 'input'}",
            f"lakehouse.root={root / 'lakehouse'}",
            "ingest.max_note_chars=100",
        ],
    )
    report = run_ingest(config, spark)
    tables = {
        name: spark.read.format("delta").load(f"{root}/lakehouse/bronze/{name}")
        for name in ("notes", "codes", "code_descriptions", "quarantine")
    }
    quarantine = {(row["source_file"].rsplit("/", 2)[-2] + "/" + row["source_file"].rsplit("/", 1)[-1], row["line"]): row
                  for row in tables["quarantine"].collect()}
    return report, tables, quarantine


def _reason(quarantine, file, line):
    return quarantine[(file, line)]["reason"]


NOTE_FILE = "note/discharge.csv"
DIAGNOSIS_FILE = "hosp/diagnoses_icd.csv"


def test_good_notes_are_ingested(ingested):
    _, tables, _ = ingested
    rows = {row["note_id"]: row for row in tables["notes"].collect()}
    assert sorted(rows) == ["10000001-DS-1", "10000002-DS-1", "10000010-DS-1"]
    first = rows["10000001-DS-1"]
    assert first["text"] == "Chief complaint: fever.\nPatient has essential hypertension."
    assert first["hadm_id"] == "20000001"
    assert first["source_line"] == 2
    assert str(first["charttime"]) == "2180-07-23 12:35:00"
    assert first["source_note_ids"] == ["10000001-DS-1"]
    assert len(first["text_sha256"]) == 64


def test_malformed_csv_line(ingested):
    _, _, quarantine = ingested
    row = quarantine[(NOTE_FILE, 5)]
    assert row["reason"] == "malformed_csv"
    assert row["detail"] == "expected 8 fields, found 7"
    assert row["raw"].startswith("10000003-DS-1,")
    assert row["target_table"] == "notes"


def test_missing_admission_id(ingested):
    _, _, quarantine = ingested
    assert _reason(quarantine, NOTE_FILE, 6) == "missing_id"
    assert quarantine[(NOTE_FILE, 6)]["detail"] == "hadm_id is empty"
    assert _reason(quarantine, DIAGNOSIS_FILE, 11) == "missing_id"


def test_invalid_admission_id(ingested):
    _, _, quarantine = ingested
    row = quarantine[(DIAGNOSIS_FILE, 13)]
    assert row["reason"] == "invalid_id"
    assert row["detail"] == "hadm_id 2000001O is not a whole number"


def test_empty_text(ingested):
    _, _, quarantine = ingested
    assert _reason(quarantine, NOTE_FILE, 7) == "empty_text"


def test_whitespace_only_text(ingested):
    _, _, quarantine = ingested
    assert _reason(quarantine, NOTE_FILE, 8) == "empty_text"
    assert quarantine[(NOTE_FILE, 8)]["detail"] == "text is empty or only whitespace"


def test_non_utf8_bytes(ingested):
    _, _, quarantine = ingested
    row = quarantine[(NOTE_FILE, 9)]
    assert row["reason"] == "non_utf8"
    assert "0xe9" in row["detail"]


def test_exact_duplicate_row(ingested):
    _, _, quarantine = ingested
    row = quarantine[(NOTE_FILE, 10)]
    assert row["reason"] == "duplicate_row"
    assert row["detail"].startswith("same content as line 4 of ")
    assert "Type 2 diabetes mellitus." in row["raw"]
    assert _reason(quarantine, DIAGNOSIS_FILE, 10) == "duplicate_row"


def test_note_over_size_limit(ingested):
    _, _, quarantine = ingested
    row = quarantine[(NOTE_FILE, 11)]
    assert row["reason"] == "note_too_large"
    assert row["detail"] == "text has 120 characters, more than the limit of 100 (ingest.max_note_chars)"
    assert row["raw"].endswith("x" * 120 + "\n")


def test_invalid_timestamp(ingested):
    _, _, quarantine = ingested
    assert _reason(quarantine, NOTE_FILE, 12) == "invalid_value"


def test_duplicate_key_with_other_content(ingested):
    _, tables, quarantine = ingested
    row = quarantine[(NOTE_FILE, 13)]
    assert row["reason"] == "duplicate_key"
    assert "(note_id) = (10000002-DS-1) is already on line 4" in row["detail"]
    kept = tables["notes"].filter("note_id = '10000002-DS-1'").first()
    assert kept["text"] == "Type 2 diabetes mellitus."


def test_unknown_code_format(ingested):
    _, _, quarantine = ingested
    row = quarantine[(DIAGNOSIS_FILE, 7)]
    assert row["reason"] == "unknown_code_format"
    assert row["detail"] == "icd_code: 'XYZ' is not a valid icd10cm code"
    assert _reason(quarantine, "hosp/procedures_icd.csv", 4) == "unknown_code_format"


def test_missing_icd_version(ingested):
    _, _, quarantine = ingested
    assert _reason(quarantine, DIAGNOSIS_FILE, 8) == "missing_icd_version"
    assert _reason(quarantine, DIAGNOSIS_FILE, 9) == "invalid_icd_version"


def test_good_codes_keep_system_and_zeros(ingested):
    _, tables, _ = ingested
    codes = sorted((r["hadm_id"], r["code"], r["code_system"]) for r in tables["codes"].collect())
    assert codes == [
        ("20000001", "011.7", "icd9cm"),
        ("20000001", "0DTJ4ZZ", "icd10pcs"),
        ("20000001", "117", "icd9cm"),
        ("20000001", "38.93", "icd9pcs"),
        ("20000001", "389.3", "icd9cm"),
        ("20000001", "I10", "icd10cm"),
        ("20000002", "E11.9", "icd10cm"),
        ("20000010", "N17.9", "icd10cm"),
    ]


def test_descriptions_keyed_by_system(ingested):
    _, tables, quarantine = ingested
    titles = {(r["code"], r["code_system"]): r["title"] for r in tables["code_descriptions"].collect()}
    assert titles[("389.3", "icd9cm")] == "Tinnitus of unspecified type"
    assert titles[("38.93", "icd9pcs")] == "Venous catheterization NEC"
    assert titles[("0DTJ4ZZ", "icd10pcs")] == "Resection of Appendix, Percutaneous Endoscopic Approach"
    assert len(titles) == 5
    assert _reason(quarantine, "hosp/d_icd_diagnoses.csv", 5) == "empty_text"


def test_report_counts(ingested):
    report, tables, quarantine = ingested
    notes = report.tables["notes"]
    assert notes.rows_read == 12
    assert notes.write.inserted == 3
    assert notes.quarantined == {
        "malformed_csv": 1, "missing_id": 1, "empty_text": 2, "non_utf8": 1, "duplicate_row": 1,
        "note_too_large": 1, "invalid_value": 1, "duplicate_key": 1,
    }
    codes = report.tables["codes"]
    assert codes.rows_read == 15
    assert codes.write.inserted == 8
    assert sum(codes.quarantined.values()) == 7
    assert report.quarantine.inserted == len(quarantine) == 9 + 7 + 1
    assert tables["quarantine"].filter("source != 'mimic4'").count() == 0
