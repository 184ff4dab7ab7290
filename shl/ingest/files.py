"""Finding the input files of a dataset layout."""

from __future__ import annotations

from pathlib import Path

from shl.ingest.records import MissingInputError, read_header


def find_table_file(root: str | Path, relative: str, layout_name: str) -> str:
    """Return the path of ``<root>/<relative>.csv.gz`` or ``<root>/<relative>.csv``.

    Raises
    ------
    MissingInputError
        If neither exists; the message names both paths and the layout.
    """
    base = Path(root) / relative
    for suffix in (".csv.gz", ".csv"):
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return str(candidate.resolve())
    raise MissingInputError(
        f"{layout_name} layout: input file not found: {base}.csv.gz or {base}.csv; "
        f"check source.path ({Path(root).resolve()}) and source.format"
    )


def check_csv_inputs(reader, root: str) -> None:
    """Check on the driver that every file of a MIMIC layout exists and has its columns.

    ``reader`` is a layout module (:mod:`shl.ingest.mimic3` or :mod:`shl.ingest.mimic4`)
    with ``note_files``, ``code_files``, ``dictionary_files`` and their layouts.

    Raises
    ------
    MissingInputError, MissingColumnError
        Naming the file, the missing columns and the layout.
    """
    for path in reader.note_files(root):
        read_header(path, reader.NOTE_LAYOUT)
    for path, kind in reader.code_files(root):
        read_header(path, reader.CODE_LAYOUTS[kind])
    for path, kind in reader.dictionary_files(root):
        read_header(path, reader.DICTIONARY_LAYOUTS[kind])
