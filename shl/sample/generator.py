"""Synthetic MIMIC-IV-style sample: discharge notes with ICD-10 codes and known flaws.

The sample is written as a stream, so memory stays flat as ``n_admissions`` grows:
each admission's rows go to gzip CSV files as soon as they exist, and only the last
few hundred notes are kept, as sources of near-duplicates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shl.icd_dictionary import dictionary_source
from shl.sample import files
from shl.sample.admissions import AdmissionWriter, GenerationCounts
from shl.sample.labels import DIAGNOSIS, PROCEDURE, CodeSampler
from shl.sample.vocabulary import available_code_count, build_vocabulary, draw_groups

logger = logging.getLogger(__name__)

# MIMIC-IV ids have 8 digits: subject_id from 10000000 and hadm_id from 20000000.
SUBJECT_ID_START = 10_000_000
HADM_ID_START = 20_000_000
MAX_ADMISSIONS = 9_999_999
ZIPF_EXPONENT = 1.1
GROUP_SHARE = 0.1
GROUP_PROBABILITY = 0.8
DUPLICATE_BUFFER_SIZE = 500


@dataclass(frozen=True)
class SampleSummary:
    """Paths and row counts of a generated sample."""

    output_dir: Path
    discharge_path: Path
    diagnoses_path: Path
    procedures_path: Path
    d_icd_diagnoses_path: Path
    d_icd_procedures_path: Path
    duplicates_path: Path
    label_noise_path: Path
    summary_path: Path
    n_admissions: int
    n_patients: int
    n_notes: int
    n_diagnosis_rows: int
    n_procedure_rows: int
    n_duplicates: int
    n_noisy_labels: int
    n_diagnosis_codes: int
    n_procedure_codes: int
    seconds: float


def generate_sample(
    output_dir: str | os.PathLike,
    *,
    n_admissions: int = 2000,
    n_patients: int | None = None,
    n_diagnosis_codes: int = 300,
    n_procedure_codes: int = 50,
    duplicate_rate: float = 0.03,
    noise_rate: float = 0.05,
    seed: int = 7,
) -> SampleSummary:
    """Write a synthetic sample of discharge notes and ICD-10 codes in the MIMIC-IV layout.

    Parameters
    ----------
    output_dir : str or path-like
        Folder to write into. ``note/``, ``hosp/`` and ``truth/`` are created in it,
        and existing sample files there are overwritten.
    n_admissions : int
        Admissions, each with one discharge note, from 1 to 9,999,999.
    n_patients : int, optional
        Patients, from 1 to ``n_admissions``. Every patient has at least one
        admission. Defaults to ``round(n_admissions / 2.5)``, at least 1.
    n_diagnosis_codes : int
        ICD-10-CM codes in the vocabulary, at least 1.
    n_procedure_codes : int
        ICD-10-PCS codes in the vocabulary, 0 for no procedures.
    duplicate_rate : float
        Probability, in [0, 1], that a note is a lightly edited copy of one of the
        last 500 notes.
    noise_rate : float
        Probability, in [0, 1], that an admission gets one label error.
    seed : int
        Seed of :func:`numpy.random.default_rng`. The same arguments write
        byte-identical files.

    Returns
    -------
    SampleSummary
        The paths written and the row counts.

    Raises
    ------
    ValueError
        If an argument is out of range or of the wrong type. The message names it.

    Notes
    -----
    Codes are real billable ICD-10-CM and ICD-10-PCS codes, stored without dots as in
    MIMIC-IV, and the rank ``r`` code is drawn with probability proportional to
    ``1 / r**1.1``. A note that is not a near-duplicate contains the title or the short
    form of every code that it was written for. A near-duplicate keeps its source's
    text apart from its edits. The written code files contain the label errors.

    ``truth/duplicates.csv.gz`` lists each near-duplicate note with its source.
    ``labels_changed`` is 1 when the copy's codes were changed on purpose from the
    source's codes before label noise. ``truth/label_noise.csv.gz`` lists each label
    error: ``added`` codes have no phrase in the note, ``removed`` codes have one.
    """
    if n_patients is None and _is_integer(n_admissions):
        n_patients = max(1, round(n_admissions / 2.5))
    _validate_arguments(
        n_admissions, n_patients, n_diagnosis_codes, n_procedure_codes,
        duplicate_rate, noise_rate, seed,
    )
    # NumPy integers and floats pass the checks. Plain types keep summary.json valid.
    n_admissions, n_patients, seed = int(n_admissions), int(n_patients), int(seed)
    n_diagnosis_codes, n_procedure_codes = int(n_diagnosis_codes), int(n_procedure_codes)
    duplicate_rate, noise_rate = float(duplicate_rate), float(noise_rate)
    started = time.perf_counter()
    output = Path(output_dir)
    for folder in ("note", "hosp", "truth"):
        (output / folder).mkdir(parents=True, exist_ok=True)
    logger.info(
        "Generating a sample of %d admissions of %d patients in %s (seed %d)",
        n_admissions, n_patients, output, seed,
    )

    rng = np.random.default_rng(seed)
    vocabularies = {
        DIAGNOSIS: build_vocabulary("icd10cm", n_diagnosis_codes),
        PROCEDURE: build_vocabulary("icd10pcs", n_procedure_codes) if n_procedure_codes else [],
    }
    groups = {
        code_type: draw_groups(len(entries), GROUP_SHARE, rng)
        for code_type, entries in vocabularies.items()
    }
    counts = _write_admissions(output, rng, vocabularies, groups, n_admissions, n_patients,
                               duplicate_rate, noise_rate)

    _write_dictionaries(output, vocabularies)
    parameters = {
        "n_admissions": n_admissions, "n_patients": n_patients,
        "n_diagnosis_codes": n_diagnosis_codes, "n_procedure_codes": n_procedure_codes,
        "duplicate_rate": duplicate_rate, "noise_rate": noise_rate, "seed": seed,
    }
    _write_summary(output / files.SUMMARY, parameters, counts, vocabularies, groups)
    seconds = time.perf_counter() - started
    logger.info(
        "Wrote the sample in %s: %d admissions, %d patients, %d diagnosis rows, "
        "%d procedure rows, %d duplicates, %d noisy labels in %.1f s",
        output, counts.admissions, n_patients, counts.diagnosis_rows, counts.procedure_rows,
        counts.duplicates, counts.noisy_labels, seconds,
    )
    return _summary(output, counts, n_patients, vocabularies, seconds)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_integer(name: str, value, minimum: int, maximum: int | None) -> None:
    if not _is_integer(value) or value < minimum or (maximum is not None and value > maximum):
        upper = f" to {maximum}" if maximum is not None else " or more"
        raise ValueError(f"{name} must be an integer from {minimum}{upper}, got {value!r}")


def _check_rate(name: str, value) -> None:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")


def _validate_arguments(
    n_admissions, n_patients, n_diagnosis_codes, n_procedure_codes, duplicate_rate,
    noise_rate, seed,
) -> None:
    _check_integer("n_admissions", n_admissions, 1, MAX_ADMISSIONS)
    _check_integer("n_patients", n_patients, 1, n_admissions)
    _check_integer("n_diagnosis_codes", n_diagnosis_codes, 1, None)
    _check_integer("n_procedure_codes", n_procedure_codes, 0, None)
    _check_rate("duplicate_rate", duplicate_rate)
    _check_rate("noise_rate", noise_rate)
    _check_integer("seed", seed, 0, None)
    # The dictionary is loaded only once the cheap checks have passed.
    _check_integer("n_diagnosis_codes", n_diagnosis_codes, 1, available_code_count("icd10cm"))
    _check_integer("n_procedure_codes", n_procedure_codes, 0, available_code_count("icd10pcs"))


def _write_admissions(
    output: Path, rng: np.random.Generator, vocabularies: dict, groups: dict,
    n_admissions: int, n_patients: int, duplicate_rate: float, noise_rate: float,
) -> GenerationCounts:
    samplers = {
        code_type: CodeSampler(entries, ZIPF_EXPONENT, groups[code_type], GROUP_PROBABILITY)
        for code_type, entries in vocabularies.items()
    }
    streamed = (files.DISCHARGE, files.DIAGNOSES, files.PROCEDURES, files.DUPLICATES,
                files.LABEL_NOISE)
    with contextlib.ExitStack() as stack:
        writers = {
            name: stack.enter_context(files.GzipCsvWriter(output / name, files.HEADERS[name]))
            for name in streamed
        }
        admissions = AdmissionWriter(
            writers, rng, samplers, duplicate_rate, noise_rate,
            subject_id_start=SUBJECT_ID_START, hadm_id_start=HADM_ID_START,
            buffer=deque(maxlen=DUPLICATE_BUFFER_SIZE),
        )
        return admissions.write_all(n_admissions, n_patients)


def _write_dictionaries(output: Path, vocabularies: dict) -> None:
    tables = ((files.D_ICD_DIAGNOSES, DIAGNOSIS), (files.D_ICD_PROCEDURES, PROCEDURE))
    for name, code_type in tables:
        rows = ((entry.icd_code, 10, entry.title) for entry in vocabularies[code_type])
        files.write_table(output / name, files.HEADERS[name], rows)


def _write_summary(
    path: Path, parameters: dict, counts: GenerationCounts, vocabularies: dict, groups: dict
) -> None:
    cooccurrence = [
        {
            "code_type": code_type,
            "icd_codes": [vocabularies[code_type][rank].icd_code for rank in group],
        }
        for code_type in (DIAGNOSIS, PROCEDURE)
        for group in groups[code_type]
    ]
    summary = {
        "generator": "shl.sample",
        "seed": parameters["seed"],
        "parameters": parameters,
        "counts": counts.as_dict(),
        "dictionary": dictionary_source(),
        "zipf_exponent": ZIPF_EXPONENT,
        "group_probability": GROUP_PROBABILITY,
        "cooccurrence_groups": cooccurrence,
        "files": {
            name: name
            for name in (files.DISCHARGE, files.DIAGNOSES, files.PROCEDURES, files.D_ICD_DIAGNOSES,
                         files.D_ICD_PROCEDURES, files.DUPLICATES, files.LABEL_NOISE)
        },
    }
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _summary(output: Path, counts: GenerationCounts, n_patients: int, vocabularies: dict,
             seconds: float) -> SampleSummary:
    return SampleSummary(
        output_dir=output,
        discharge_path=output / files.DISCHARGE,
        diagnoses_path=output / files.DIAGNOSES,
        procedures_path=output / files.PROCEDURES,
        d_icd_diagnoses_path=output / files.D_ICD_DIAGNOSES,
        d_icd_procedures_path=output / files.D_ICD_PROCEDURES,
        duplicates_path=output / files.DUPLICATES,
        label_noise_path=output / files.LABEL_NOISE,
        summary_path=output / files.SUMMARY,
        n_admissions=counts.admissions,
        n_patients=n_patients,
        n_notes=counts.notes,
        n_diagnosis_rows=counts.diagnosis_rows,
        n_procedure_rows=counts.procedure_rows,
        n_duplicates=counts.duplicates,
        n_noisy_labels=counts.noisy_labels,
        n_diagnosis_codes=len(vocabularies[DIAGNOSIS]),
        n_procedure_codes=len(vocabularies[PROCEDURE]),
        seconds=seconds,
    )
