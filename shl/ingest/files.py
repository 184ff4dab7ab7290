"""Finding the input files of a dataset layout."""

from __future__ import annotations

from pathlib import Path

from shl.ingest.records import MissingInputError


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
