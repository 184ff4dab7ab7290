"""ICD code normalisation: every code system, with and without dots, in any case."""

import pytest

from shl.icd import InvalidCodeError, icd_version_to_systems, normalize_code, try_normalize_code

# (raw input, code system, canonical code)
VALID_CODES = [
    # ICD-9-CM diagnoses: dot after 3 characters, after 4 for E codes.
    ("4019", "icd9cm", "401.9"),
    ("401.9", "icd9cm", "401.9"),
    ("0117", "icd9cm", "011.7"),
    ("117", "icd9cm", "117"),
    ("25000", "icd9cm", "250.00"),
    ("v1046", "icd9cm", "V10.46"),
    ("V10.46", "icd9cm", "V10.46"),
    ("E8790", "icd9cm", "E879.0"),
    ("e879.0", "icd9cm", "E879.0"),
    ("E849", "icd9cm", "E849"),
    (" 4280 ", "icd9cm", "428.0"),
    # ICD-9-CM procedures: dot after 2 characters.
    ("3893", "icd9pcs", "38.93"),
    ("38.93", "icd9pcs", "38.93"),
    ("9904", "icd9pcs", "99.04"),
    ("966", "icd9pcs", "96.6"),
    ("99", "icd9pcs", "99"),
    # ICD-10-CM: dot after 3 characters.
    ("R509", "icd10cm", "R50.9"),
    ("r50.9", "icd10cm", "R50.9"),
    ("I10", "icd10cm", "I10"),
    ("i10", "icd10cm", "I10"),
    ("E1165", "icd10cm", "E11.65"),
    ("S72001A", "icd10cm", "S72.001A"),
    ("s72.001a", "icd10cm", "S72.001A"),
    ("Z9911", "icd10cm", "Z99.11"),
    # ICD-10-PCS: 7 characters, no dot.
    ("bw03zzz", "icd10pcs", "BW03ZZZ"),
    ("0DTJ4ZZ", "icd10pcs", "0DTJ4ZZ"),
    ("5a1955z", "icd10pcs", "5A1955Z"),
]

# (raw input, code system): inputs that are not codes of that system.
INVALID_CODES = [
    ("", "icd9cm"),
    ("   ", "icd10cm"),
    ("40", "icd9cm"),  # too short for a diagnosis
    ("401999", "icd9cm"),  # too long
    ("40.19", "icd9cm"),  # dot in the wrong place
    ("V1", "icd9cm"),
    ("E87", "icd9cm"),
    ("X123", "icd9cm"),
    ("3", "icd9pcs"),
    ("38931", "icd9pcs"),
    ("389.3", "icd9pcs"),  # a diagnosis-style dot on a procedure
    ("150.9", "icd10cm"),  # starts with a digit
    ("R5", "icd10cm"),
    ("R5.09", "icd10cm"),
    ("R50.99999", "icd10cm"),
    ("0DTJ4Z", "icd10pcs"),  # 6 characters
    ("0DTJ4ZZZ", "icd10pcs"),
    ("0DTI4ZZ", "icd10pcs"),  # PCS has no letter I
    ("0DT.J4ZZ", "icd10pcs"),  # PCS has no dot
    ("R50-9", "icd10cm"),
]


@pytest.mark.parametrize(("raw", "system", "expected"), VALID_CODES)
def test_normalize_valid_code(raw, system, expected):
    assert normalize_code(raw, system) == expected


@pytest.mark.parametrize(("raw", "system"), INVALID_CODES)
def test_normalize_invalid_code_raises(raw, system):
    with pytest.raises(InvalidCodeError):
        normalize_code(raw, system)


@pytest.mark.parametrize(("raw", "system"), INVALID_CODES)
def test_try_normalize_returns_reason(raw, system):
    code, reason = try_normalize_code(raw, system)
    assert code is None
    assert system in reason


def test_leading_zero_is_kept():
    assert normalize_code("0117", "icd9cm") != normalize_code("117", "icd9cm")


def test_same_digits_differ_by_system():
    assert normalize_code("3893", "icd9cm") == "389.3"
    assert normalize_code("3893", "icd9pcs") == "38.93"


def test_partial_pcs_only_when_allowed():
    assert normalize_code("bn20", "icd10pcs", allow_partial=True) == "BN20"
    with pytest.raises(InvalidCodeError):
        normalize_code("bn20", "icd10pcs")
    with pytest.raises(InvalidCodeError):
        normalize_code("bn", "icd10pcs", allow_partial=True)


def test_unknown_system_raises_value_error():
    with pytest.raises(ValueError, match="unknown code system 'icd11'"):
        normalize_code("R50.9", "icd11")


@pytest.mark.parametrize(("version", "systems"), [(9, ("icd9cm", "icd9pcs")), ("10", ("icd10cm", "icd10pcs"))])
def test_icd_version_to_systems(version, systems):
    assert icd_version_to_systems(version) == systems


@pytest.mark.parametrize("version", [None, "", "11", "9.0"])
def test_icd_version_invalid(version):
    with pytest.raises(ValueError, match="must be 9 or 10"):
        icd_version_to_systems(version)
