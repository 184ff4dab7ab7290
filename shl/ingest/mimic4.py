"""The MIMIC-IV layout: ``note/discharge``, ``hosp/diagnoses_icd``, ``hosp/procedures_icd``
and the ``hosp/d_icd_*`` dictionaries, as ``.csv.gz`` or ``.csv``.

Codes are stored without dots, with ``icd_version`` 9 or 10 telling the code system.
The built-in sample is written in this layout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from shl.ingest import rules
from shl.ingest.files import find_table_file
from shl.ingest.records import CsvLayout, iter_batches, iter_csv_records
from shl.ingest.staging import CODE_COLUMNS, DESCRIPTION_COLUMNS, NOTE_COLUMNS

LAYOUT_NAME = "MIMIC-IV"

DISCHARGE = CsvLayout(
    "MIMIC-IV note/discharge",
    ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"),
)
DIAGNOSES = CsvLayout(
    "MIMIC-IV hosp/diagnoses_icd", ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
)
PROCEDURES = CsvLayout(
    "MIMIC-IV hosp/procedures_icd", ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
)
D_DIAGNOSES = CsvLayout("MIMIC-IV hosp/d_icd_diagnoses", ("icd_code", "icd_version", "long_title"))
D_PROCEDURES = CsvLayout("MIMIC-IV hosp/d_icd_procedures", ("icd_code", "icd_version", "long_title"))
NOTE_LAYOUT = DISCHARGE
CODE_LAYOUTS = {"diagnosis": DIAGNOSES, "procedure": PROCEDURES}
DICTIONARY_LAYOUTS = {"diagnosis": D_DIAGNOSES, "procedure": D_PROCEDURES}

# Relative path without extension of each code and dictionary file, by kind.
_CODE_FILES = {"diagnosis": "hosp/diagnoses_icd", "procedure": "hosp/procedures_icd"}
_DICTIONARY_FILES = {"diagnosis": "hosp/d_icd_diagnoses", "procedure": "hosp/d_icd_procedures"}


def note_files(root: str) -> list[str]:
    return [find_table_file(root, "note/discharge", LAYOUT_NAME)]


def code_files(root: str) -> list[tuple[str, str]]:
    """Return (path, kind) of the diagnosis and procedure files."""
    return [(find_table_file(root, relative, LAYOUT_NAME), kind) for kind, relative in _CODE_FILES.items()]


def dictionary_files(root: str) -> list[tuple[str, str]]:
    return [(find_table_file(root, relative, LAYOUT_NAME), kind) for kind, relative in _DICTIONARY_FILES.items()]


def stage_notes(path: str, *, batch_rows: int, max_note_chars: int) -> Iterator[pd.DataFrame]:
    """Parse and check ``note/discharge`` in batches of staged note rows."""
    for batch in iter_batches(iter_csv_records(path, DISCHARGE), batch_rows):
        frame = rules.records_to_frame(batch, DISCHARGE.columns)
        rules.check_ids(frame, ["note_id"], numeric=False)
        rules.check_ids(frame, ["subject_id", "hadm_id"])
        rules.check_text(frame, max_chars=max_note_chars)
        rules.check_timestamp(frame, "charttime")
        frame["text_sha256"] = rules.sha256_hex(frame["text"])
        frame["source_split"] = None
        yield rules.finish(frame, NOTE_COLUMNS, path)


def stage_codes(path: str, kind: str, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parse and check a MIMIC-IV diagnosis or procedure file into staged code rows."""
    layout = CODE_LAYOUTS[kind]
    for batch in iter_batches(iter_csv_records(path, layout), batch_rows):
        frame = rules.records_to_frame(batch, layout.columns)
        rules.check_ids(frame, ["subject_id", "hadm_id"])
        systems = rules.systems_from_icd_version(frame, "icd_version", kind)
        frame["code"] = rules.normalize_code_column(frame, "icd_code", systems)
        frame["code_system"] = systems
        rules.check_integer(frame, "seq_num")
        yield rules.finish(frame, CODE_COLUMNS, path)


def stage_dictionary(path: str, kind: str, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parse a MIMIC-IV ``d_icd_*`` file into staged code description rows."""
    layout = DICTIONARY_LAYOUTS[kind]
    for batch in iter_batches(iter_csv_records(path, layout), batch_rows):
        frame = rules.records_to_frame(batch, layout.columns)
        systems = rules.systems_from_icd_version(frame, "icd_version", kind)
        frame["code"] = rules.normalize_code_column(frame, "icd_code", systems)
        frame["code_system"] = systems
        frame["title"] = frame["long_title"]
        rules.check_text(frame, max_chars=rules.MAX_TITLE_CHARS, column="title")
        yield rules.finish(frame, DESCRIPTION_COLUMNS, path)

