"""Streaming readers of delimited files and text files, line by line, with no Spark.

Each input record comes back with the physical lines it spans, so every rejected row
can be quarantined with its file and line. A record is rejected here when it cannot be
parsed at all: a CSV syntax error, the wrong number of fields, or bytes that are not
UTF-8. The checks that need the meaning of a column live in :mod:`shl.ingest.rules`.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Reasons a record can be quarantined for, before its columns are read.
MALFORMED_CSV = "malformed_csv"
NON_UTF8 = "non_utf8"

# The csv module rejects fields over 128 KiB by default; notes can be longer. Records
# over the note size limit are quarantined by the note rules, not here.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class MissingInputError(FileNotFoundError):
    """Raised when an input file of a dataset layout does not exist."""


class MissingColumnError(ValueError):
    """Raised when an input file lacks a column its layout requires."""


@dataclass(frozen=True)
class CsvLayout:
    """The expected shape of one delimited input file.

    Attributes
    ----------
    name : str
        What the file is, for messages: ``"MIMIC-IV hosp/diagnoses_icd"``.
    columns : tuple of str
        Columns the file must have, matched case-insensitively against its header.
        Extra columns are ignored. Without a header, the columns in file order.
    delimiter : str
        Field delimiter.
    has_header : bool
        Whether the first line names the columns.
    """

    name: str
    columns: tuple[str, ...]
    delimiter: str = ","
    has_header: bool = True


@dataclass
class Record:
    """One input record: its fields by column name, or the reason it was rejected.

    ``line`` and ``line_end`` are 1-based physical line numbers in the file.
    ``fields`` is None when the record could not be parsed. ``raw`` is the record's
    text as read (bytes that are not UTF-8 replaced by U+FFFD).
    """

    line: int
    line_end: int
    fields: dict[str, str | None] | None
    raw: str
    reason: str | None = None
    detail: str | None = None


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for binary reading, decompressing it when its name ends in ``.gz``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"input file not found: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


class _LineFeed:
    """Decode physical lines one at a time for csv.reader, remembering what it consumed.

    csv.reader pulls lines on demand, so the lines pulled between two records are
    exactly the lines of the second record.
    """

    def __init__(self, handle: IO[bytes]):
        self._handle = handle
        self.line_number = 0
        self.pending: list[str] = []
        self.pending_invalid: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        data = self._handle.readline()
        if not data:
            raise StopIteration
        self.line_number += 1
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            text = data.decode("utf-8", errors="replace")
            self.pending_invalid.append(
                f"line {self.line_number} has a byte that is not UTF-8 at offset {error.start} "
                f"(0x{data[error.start]:02x}); convert the file to UTF-8 or fix the byte"
            )
        self.pending.append(text)
        return text

    def take(self) -> tuple[str, list[str]]:
        raw = "".join(self.pending)
        invalid = self.pending_invalid
        self.pending = []
        self.pending_invalid = []
        return raw, invalid


def read_header(path: str | Path, layout: CsvLayout) -> list[int]:
    """Check a file's header and return the field index of each layout column.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    MissingColumnError
        If the header lacks a column of the layout; the message names the file, the
        missing columns, the columns found and the layout.
    """
    if not layout.has_header:
        return list(range(len(layout.columns)))
    with open_binary(path) as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    header = next(csv.reader([first], delimiter=layout.delimiter), [])
    found = [name.strip().lower() for name in header]
    missing = [column for column in layout.columns if column.lower() not in found]
    if missing:
        raise MissingColumnError(
            f"{path}: missing column(s) {', '.join(missing)} for the {layout.name} layout; "
            f"found {', '.join(header) or 'no header'}; expected {', '.join(layout.columns)}"
        )
    return [found.index(column.lower()) for column in layout.columns]


def iter_csv_records(path: str | Path, layout: CsvLayout) -> Iterator[Record]:
    """Read a delimited file record by record, keeping the lines of each record.

    Quoted fields may span lines. Blank lines between records are skipped. Empty
    fields become None. A record whose syntax is invalid, whose field count differs
    from the header's, or that contains bytes that are not UTF-8 comes back with
    ``fields=None`` and a reason, and reading goes on with the next line.

    Raises
    ------
    MissingInputError, MissingColumnError
        As :func:`read_header` does.
    """
    indices = read_header(path, layout)
    with open_binary(path) as handle:
        feed = _LineFeed(handle)
        reader = csv.reader(feed, delimiter=layout.delimiter, strict=True)
        expected_fields: int | None = None if layout.has_header else len(layout.columns)
        if layout.has_header:
            header = next(reader, [])
            feed.take()
            expected_fields = len(header)
        while True:
            start = feed.line_number + 1
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raw, _ = feed.take()
                detail = f"CSV syntax error: {error}"
                yield Record(start, feed.line_number, None, raw, MALFORMED_CSV, detail)
                continue
            raw, invalid = feed.take()
            # csv.reader returns a blank line as an empty record.
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if invalid:
                yield Record(start, feed.line_number, None, raw, NON_UTF8, "; ".join(invalid))
                continue
            if len(values) != expected_fields:
                detail = f"expected {expected_fields} fields, found {len(values)}"
                yield Record(start, feed.line_number, None, raw, MALFORMED_CSV, detail)
                continue
            fields = {
                column: (values[index] if values[index] != "" else None)
                for column, index in zip(layout.columns, indices)
            }
            yield Record(start, feed.line_number, fields, raw)


def read_text_file(path: str | Path) -> Record:
    """Read a whole text file as one record, such as a CodiEsp clinical case.

    The record spans lines 1 to the last line. Bytes that are not UTF-8 reject it.
    """
    with open_binary(path) as handle:
        data = handle.read()
    line_end = max(1, data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raw = data.decode("utf-8", errors="replace")
        detail = (
            f"line {line} has a byte that is not UTF-8 at file offset {error.start} "
            f"(0x{data[error.start]:02x}); convert the file to UTF-8 or fix the byte"
        )
        return Record(1, line_end, None, raw, NON_UTF8, detail)
    return Record(1, line_end, {"text": text}, text)


def iter_batches(records: Iterator[Record], batch_rows: int) -> Iterator[list[Record]]:
    """Group records into lists of at most ``batch_rows``."""
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= batch_rows:
            yield batch
            batch = []
    if batch:
        yield batch

