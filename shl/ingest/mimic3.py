"""The MIMIC-III layout: ``NOTEEVENTS``, ``DIAGNOSES_ICD``, ``PROCEDURES_ICD``,
``D_ICD_DIAGNOSES`` and ``D_ICD_PROCEDURES``, as ``.csv.gz`` or ``.csv``.

All MIMIC-III codes are ICD-9: diagnoses in ICD-9-CM, procedures in ICD-9-CM volume 3,
stored without dots. Rows of NOTEEVENTS marked ``ISERROR`` are quarantined as
``marked_error``; notes of categories outside ``ingest.mimic3_categories`` are counted
and skipped. The staged rows are single notes; the ingestion job merges each
admission's discharge summary and addenda into one note.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from shl.ingest import rules
from shl.ingest.files import find_table_file
from shl.ingest.records import CsvLayout, iter_batches, iter_csv_records
from shl.ingest.staging import CODE_COLUMNS, DESCRIPTION_COLUMNS, NOTE_COLUMNS

LAYOUT_NAME = "MIMIC-III"

NOTEEVENTS = CsvLayout(
    "MIMIC-III NOTEEVENTS",
    ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "CATEGORY", "DESCRIPTION", "ISERROR", "TEXT"),
)
DIAGNOSES = CsvLayout("MIMIC-III DIAGNOSES_ICD", ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"))
PROCEDURES = CsvLayout("MIMIC-III PROCEDURES_ICD", ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"))
D_DIAGNOSES = CsvLayout("MIMIC-III D_ICD_DIAGNOSES", ("ICD9_CODE", "LONG_TITLE"))
D_PROCEDURES = CsvLayout("MIMIC-III D_ICD_PROCEDURES", ("ICD9_CODE", "LONG_TITLE"))
NOTE_LAYOUT = NOTEEVENTS
CODE_LAYOUTS = {"diagnosis": DIAGNOSES, "procedure": PROCEDURES}
DICTIONARY_LAYOUTS = {"diagnosis": D_DIAGNOSES, "procedure": D_PROCEDURES}

_SYSTEMS = {"diagnosis": "icd9cm", "procedure": "icd9pcs"}


def note_files(root: str) -> list[str]:
    return [find_table_file(root, "NOTEEVENTS", LAYOUT_NAME)]


def code_files(root: str) -> list[tuple[str, str]]:
    """Return (path, kind) of the diagnosis and procedure files."""
    return [
        (find_table_file(root, "DIAGNOSES_ICD", LAYOUT_NAME), "diagnosis"),
        (find_table_file(root, "PROCEDURES_ICD", LAYOUT_NAME), "procedure"),
    ]


def dictionary_files(root: str) -> list[tuple[str, str]]:
    return [
        (find_table_file(root, "D_ICD_DIAGNOSES", LAYOUT_NAME), "diagnosis"),
        (find_table_file(root, "D_ICD_PROCEDURES", LAYOUT_NAME), "procedure"),
    ]


def stage_notes(
    path: str, *, batch_rows: int, max_note_chars: int, categories: list[str]
) -> Iterator[pd.DataFrame]:
    """Parse and check NOTEEVENTS into staged single-note rows.

    ``note_id`` is the ROW_ID and ``note_type`` the DESCRIPTION (``Report``,
    ``Addendum``), which the merge per admission uses to order the parts.
    """
    selected = {category.strip().lower() for category in categories}
    for batch in iter_batches(iter_csv_records(path, NOTEEVENTS), batch_rows):
        frame = rules.records_to_frame(batch, NOTEEVENTS.columns)
        category = frame["CATEGORY"].fillna("").str.strip().str.lower()
        rules.flag(frame, ~category.isin(selected), rules.NOT_SELECTED, "CATEGORY " + frame["CATEGORY"].fillna(""))
        is_error = frame["ISERROR"].fillna("").str.strip() == "1"
        rules.flag(frame, is_error, rules.MARKED_ERROR, "ISERROR is 1: the note was marked as an error in MIMIC-III")
        rules.check_ids(frame, ["ROW_ID", "SUBJECT_ID", "HADM_ID"])
        rules.check_text(frame, max_chars=max_note_chars, column="TEXT")
        rules.check_timestamp(frame, "CHARTDATE")
        rules.check_timestamp(frame, "CHARTTIME")

        frame["note_id"] = frame["ROW_ID"]
        frame["subject_id"] = frame["SUBJECT_ID"]
        frame["hadm_id"] = frame["HADM_ID"]
        frame["note_type"] = frame["DESCRIPTION"]
        frame["charttime"] = frame["CHARTTIME"].where(frame["CHARTTIME"].notna(), frame["CHARTDATE"])
        frame["text"] = frame["TEXT"]
        frame["text_sha256"] = rules.sha256_hex(frame["text"])
        frame["source_split"] = None
        yield rules.finish(frame, NOTE_COLUMNS, path)


def stage_codes(path: str, kind: str, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parse and check DIAGNOSES_ICD or PROCEDURES_ICD into staged code rows."""
    layout = CODE_LAYOUTS[kind]
    for batch in iter_batches(iter_csv_records(path, layout), batch_rows):
        frame = rules.records_to_frame(batch, layout.columns)
        rules.check_ids(frame, ["SUBJECT_ID", "HADM_ID"])
        systems = pd.Series(_SYSTEMS[kind], index=frame.index, dtype=object)
        frame["code"] = rules.normalize_code_column(frame, "ICD9_CODE", systems)
        frame["code_system"] = systems
        rules.check_integer(frame, "SEQ_NUM")
        frame["subject_id"] = frame["SUBJECT_ID"]
        frame["hadm_id"] = frame["HADM_ID"]
        frame["seq_num"] = frame["SEQ_NUM"]
        yield rules.finish(frame, CODE_COLUMNS, path)


def stage_dictionary(path: str, kind: str, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parse D_ICD_DIAGNOSES or D_ICD_PROCEDURES into staged code description rows."""
    layout = DICTIONARY_LAYOUTS[kind]
    for batch in iter_batches(iter_csv_records(path, layout), batch_rows):
        frame = rules.records_to_frame(batch, layout.columns)
        systems = pd.Series(_SYSTEMS[kind], index=frame.index, dtype=object)
        frame["code"] = rules.normalize_code_column(frame, "ICD9_CODE", systems)
        frame["code_system"] = systems
        frame["title"] = frame["LONG_TITLE"]
        rules.check_text(frame, max_chars=rules.MAX_TITLE_CHARS, column="title")
        yield rules.finish(frame, DESCRIPTION_COLUMNS, path)
