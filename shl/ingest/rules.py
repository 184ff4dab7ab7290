"""Row checks and conversions of the bronze ingestion, as pure pandas functions.

Every function works on a batch of parsed records with the columns ``reason`` and
``detail``. A check sets the reason of a row only when no earlier check rejected it,
so each rejected row carries the first problem found. Rows with a reason go to the
quarantine table; the others are written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from shl.icd import icd_version_to_systems, try_normalize_code
from shl.ingest.records import Record

# Quarantine reasons, besides the parse failures of shl.ingest.records.
MISSING_ID = "missing_id"
INVALID_ID = "invalid_id"
EMPTY_TEXT = "empty_text"
NOTE_TOO_LARGE = "note_too_large"
INVALID_VALUE = "invalid_value"
UNKNOWN_CODE_FORMAT = "unknown_code_format"
MISSING_ICD_VERSION = "missing_icd_version"
INVALID_ICD_VERSION = "invalid_icd_version"
DUPLICATE_ROW = "duplicate_row"
DUPLICATE_KEY = "duplicate_key"
MARKED_ERROR = "marked_error"
# Rows outside the configured selection (a MIMIC-III note category that is not
# ingested). They are counted in the log but are not bad input, so not quarantined.
NOT_SELECTED = "not_selected"

# Longer code titles are not titles: the dictionary file is probably misaligned.
MAX_TITLE_CHARS = 10_000

PARSE_COLUMNS = ["line", "line_end", "raw", "reason", "detail"]


def records_to_frame(records: Iterable[Record], columns: Iterable[str]) -> pd.DataFrame:
    """Turn parsed records into a frame with one column per field plus parse results."""
    columns = list(columns)
    rows = []
    for record in records:
        fields = record.fields or {}
        row = {column: fields.get(column) for column in columns}
        row.update(line=record.line, line_end=record.line_end, raw=record.raw, reason=record.reason, detail=record.detail)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns + PARSE_COLUMNS)
    return frame.astype({"line": "int64", "line_end": "int64"})


def flag(frame: pd.DataFrame, mask: pd.Series, reason: str, detail: pd.Series | str) -> None:
    """Set ``reason`` and ``detail`` on the rows of ``mask`` that have no reason yet."""
    target = mask.fillna(False).astype(bool) & frame["reason"].isna()
    if not target.any():
        return
    frame.loc[target, "reason"] = reason
    if isinstance(detail, pd.Series):
        frame.loc[target, "detail"] = detail[target]
    else:
        frame.loc[target, "detail"] = detail


def check_ids(frame: pd.DataFrame, columns: Iterable[str], *, numeric: bool = True) -> None:
    """Reject rows with a missing id, or with an id that is not a whole number."""
    for column in columns:
        values = frame[column].astype("string").str.strip()
        flag(frame, values.isna() | (values == ""), MISSING_ID, f"{column} is empty")
        if numeric:
            not_numeric = ~values.fillna("").str.fullmatch(r"\d+")
            flag(frame, not_numeric, INVALID_ID, f"{column} " + values.fillna("") + " is not a whole number")
        frame[column] = values.astype(object).where(values.notna(), None)


def check_text(frame: pd.DataFrame, *, max_chars: int, column: str = "text") -> None:
    """Reject empty or whitespace-only text and text longer than ``max_chars``."""
    text = frame[column].fillna("")
    flag(frame, text.str.strip() == "", EMPTY_TEXT, f"{column} is empty or only whitespace")
    lengths = text.str.len()
    detail = f"{column} has " + lengths.astype(str) + f" characters, more than the limit of {max_chars} (ingest.max_note_chars)"
    flag(frame, lengths > max_chars, NOTE_TOO_LARGE, detail)


def check_timestamp(frame: pd.DataFrame, column: str) -> None:
    """Reject values that are present but not a date or date and time."""
    values = frame[column]
    # ISO 8601 only, as MIMIC writes dates: Spark's to_timestamp reads exactly these.
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    invalid = values.notna() & parsed.isna()
    flag(frame, invalid, INVALID_VALUE, f"{column} " + values.astype(str) + " is not a date or timestamp")


def check_integer(frame: pd.DataFrame, column: str) -> None:
    """Reject values that are present but not whole numbers."""
    values = frame[column].astype("string").str.strip()
    invalid = values.notna() & ~values.fillna("0").str.fullmatch(r"-?\d+")
    flag(frame, invalid, INVALID_VALUE, f"{column} " + values.fillna("") + " is not a whole number")


def systems_from_icd_version(frame: pd.DataFrame, version_column: str, kind: str) -> pd.Series:
    """Map MIMIC-IV ``icd_version`` values to code systems, rejecting missing and bad ones.

    Parameters
    ----------
    kind : str
        ``diagnosis`` or ``procedure``: which of the version's two systems to take.
    """
    position = {"diagnosis": 0, "procedure": 1}[kind]
    versions = frame[version_column].astype("string").str.strip()
    flag(
        frame,
        versions.isna() | (versions == ""),
        MISSING_ICD_VERSION,
        f"{version_column} is empty; every MIMIC-IV code needs its ICD version (9 or 10)",
    )
    valid = versions.isin(["9", "10"]).fillna(False).astype(bool)
    flag(frame, ~valid, INVALID_ICD_VERSION, f"{version_column} " + versions.fillna("") + " is not 9 or 10")
    systems = pd.Series(None, index=frame.index, dtype=object)
    for version in ("9", "10"):
        systems[versions == version] = icd_version_to_systems(version)[position]
    return systems


def normalize_code_column(
    frame: pd.DataFrame, column: str, systems: pd.Series, *, allow_partial: bool = False
) -> pd.Series:
    """Normalise codes with their systems; reject codes that do not fit the system."""
    normalized = []
    details = []
    for raw, system in zip(frame[column], systems):
        if system is None or (isinstance(system, float) and np.isnan(system)):
            normalized.append(None)
            details.append(None)
            continue
        code, error = try_normalize_code(raw, system, allow_partial=allow_partial)
        normalized.append(code)
        details.append(f"{column}: {error}" if error else None)
    detail_series = pd.Series(details, index=frame.index, dtype=object)
    flag(frame, detail_series.notna(), UNKNOWN_CODE_FORMAT, detail_series)
    return pd.Series(normalized, index=frame.index, dtype=object)


def sha256_hex(texts: pd.Series) -> pd.Series:
    """Return the SHA-256 of each text (UTF-8), or None for missing text."""
    return texts.map(lambda text: hashlib.sha256(text.encode("utf-8")).hexdigest() if isinstance(text, str) else None)


def finish(frame: pd.DataFrame, columns: list[str], source_file: str) -> pd.DataFrame:
    """Select the staged columns and drop the raw text of accepted rows.

    Accepted rows keep their fields; rejected rows keep ``raw`` for the quarantine.
    """
    staged = frame.copy()
    staged["source_file"] = source_file
    staged.loc[staged["reason"].isna() | (staged["reason"] == NOT_SELECTED), "raw"] = None
    return staged[columns + ["source_file", "line", "line_end", "reason", "detail", "raw"]]
