"""ICD code normalisation for the four code systems the product reads.

Every code is stored in one canonical form: upper case, dotted as the code system
prints it. Inputs with or without the dot, in any case, map to the same code, and
leading zeros are kept (`0117` and `117` are different ICD-9 codes).

Dot positions:

- ``icd9cm`` (ICD-9-CM diagnoses): after 3 characters, after 4 for E codes.
- ``icd9pcs`` (ICD-9-CM procedures): after 2 characters.
- ``icd10cm`` (ICD-10-CM diagnoses): after 3 characters.
- ``icd10pcs`` (ICD-10-PCS procedures): no dot.
"""

from __future__ import annotations

import re

CODE_SYSTEMS = ("icd9cm", "icd9pcs", "icd10cm", "icd10pcs")

# The undotted shape of a valid code in each system.
_UNDOTTED_PATTERNS = {
    "icd9cm": re.compile(r"(?:\d{3,5}|V\d{2,4}|E\d{3,4})"),
    "icd9pcs": re.compile(r"\d{2,4}"),
    "icd10cm": re.compile(r"[A-Z]\d[0-9A-Z][0-9A-Z]{0,4}"),
    # ICD-10-PCS uses the digits and the letters except I and O, always 7 characters.
    "icd10pcs": re.compile(r"[0-9A-HJ-NP-Z]{7}"),
}
# CodiEsp procedure annotations often give only the first 4 characters of an ICD-10-PCS
# code (section, body system, root operation, body part) when the rest is not stated.
_PARTIAL_PCS_PATTERN = re.compile(r"[0-9A-HJ-NP-Z]{3,7}")


class InvalidCodeError(ValueError):
    """Raised when a code does not have the shape of its code system."""


def _dot_position(undotted: str, code_system: str) -> int | None:
    if code_system == "icd10pcs":
        return None
    if code_system == "icd9pcs":
        return 2
    if code_system == "icd9cm" and undotted.startswith("E"):
        return 4
    return 3


def normalize_code(raw: str, code_system: str, *, allow_partial: bool = False) -> str:
    """Normalise one ICD code to its canonical dotted, upper-case form.

    Parameters
    ----------
    raw : str
        The code as found in the input, with or without its dot, in any case.
        Surrounding whitespace is ignored.
    code_system : str
        One of ``icd9cm``, ``icd9pcs``, ``icd10cm``, ``icd10pcs``.
    allow_partial : bool, default False
        Accept ICD-10-PCS prefixes of 3 to 6 characters, as CodiEsp annotates
        procedures whose full code the text does not determine. Other systems ignore it.

    Returns
    -------
    str
        The canonical code, for example ``401.9``, ``E879.0``, ``38.93``, ``R50.9``
        or ``BW03ZZZ``.

    Raises
    ------
    ValueError
        If ``code_system`` is not one of the four systems.
    InvalidCodeError
        If the code is empty, has a dot in a place its system does not use, or does
        not have the shape of a code of that system.
    """
    if code_system not in _UNDOTTED_PATTERNS:
        raise ValueError(
            f"unknown code system {code_system!r}; expected one of {', '.join(CODE_SYSTEMS)}"
        )
    if raw is None or not str(raw).strip():
        raise InvalidCodeError(f"empty {code_system} code")

    text = str(raw).strip().upper()
    undotted = text.replace(".", "")
    pattern = _UNDOTTED_PATTERNS[code_system]
    if allow_partial and code_system == "icd10pcs":
        pattern = _PARTIAL_PCS_PATTERN
    if not pattern.fullmatch(undotted):
        raise InvalidCodeError(f"{raw!r} is not a valid {code_system} code")

    position = _dot_position(undotted, code_system)
    canonical = undotted
    if position is not None and len(undotted) > position:
        canonical = f"{undotted[:position]}.{undotted[position:]}"

    # A dot is accepted only where the code system puts it: "40.19" is not "401.9".
    if "." in text and text != canonical:
        raise InvalidCodeError(
            f"{raw!r} has a dot where {code_system} does not use one; expected {canonical!r}"
        )
    return canonical


def try_normalize_code(
    raw: str, code_system: str, *, allow_partial: bool = False
) -> tuple[str | None, str | None]:
    """Normalise a code and return ``(code, None)``, or ``(None, reason)`` when invalid.

    The form used by the ingestion jobs, which quarantine invalid codes instead of
    stopping. An unknown ``code_system`` still raises ``ValueError``: that is a bug in
    the caller, not bad input.
    """
    try:
        return normalize_code(raw, code_system, allow_partial=allow_partial), None
    except InvalidCodeError as error:
        return None, str(error)


def icd_version_to_systems(icd_version: int | str) -> tuple[str, str]:
    """Map a MIMIC-IV ``icd_version`` (9 or 10) to its (diagnosis, procedure) systems.

    Raises
    ------
    ValueError
        If the version is missing or not 9 or 10.
    """
    version = str(icd_version).strip() if icd_version is not None else ""
    if version == "9":
        return "icd9cm", "icd9pcs"
    if version == "10":
        return "icd10cm", "icd10pcs"
    raise ValueError(f"icd_version must be 9 or 10, found {icd_version!r}")
