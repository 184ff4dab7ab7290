"""Patients and admissions of the sample, written row by row."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np

from shl.sample import files
from shl.sample.labels import (
    DIAGNOSIS,
    PROCEDURE,
    CodeSampler,
    LabelSet,
    change_labels,
    inject_noise,
)
from shl.sample.text import RandomStream, edit_note, render_note

logger = logging.getLogger(__name__)

# Codes per admission: 1 + Poisson(5) diagnoses and Poisson(1.2) procedures.
MEAN_EXTRA_DIAGNOSES = 5.0
MEAN_PROCEDURES = 1.2
MEAN_EXTRA_STAY_DAYS = 4.0
# Share of near-duplicates whose labels differ from their source's, and share that
# copy a note of the same patient when the buffer contains one.
CHANGED_LABELS_SHARE = 0.2
SAME_PATIENT_SHARE = 0.5
PROGRESS_INTERVAL = 100_000
# MIMIC-IV shifts dates into 2100-2200; first admissions fall in 2110-2199.
_FIRST_DATE = date(2110, 1, 1)
_FIRST_DATE_SPAN_DAYS = 90 * 365


@dataclass
class GenerationCounts:
    """Rows written so far."""

    admissions: int = 0
    patients: int = 0
    notes: int = 0
    diagnosis_rows: int = 0
    procedure_rows: int = 0
    duplicates: int = 0
    labels_changed: int = 0
    noisy_labels: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts by name."""
        return asdict(self)


@dataclass
class _Patient:
    subject_id: int
    sex: str
    age: int
    first_date: date
    next_date: date
    note_seq: int = 0


@dataclass(frozen=True)
class _BufferedNote:
    note_id: str
    hadm_id: int
    subject_id: int
    text: str
    labels: LabelSet


class AdmissionWriter:
    """Writes the notes, codes and truth rows of each admission as it is generated.

    Parameters
    ----------
    writers : dict
        Open writers of the discharge, diagnoses, procedures, duplicates and label
        noise files, by their path in :mod:`shl.sample.files`.
    rng : numpy.random.Generator
        The only source of randomness.
    samplers : dict
        Code samplers by code type (``diagnosis``, ``procedure``).
    duplicate_rate, noise_rate : float
        Per-admission probabilities of a near-duplicate note and of a label error.
    subject_id_start, hadm_id_start : int
        First ids.
    buffer : collections.deque
        Bounded buffer of recent notes, the sources of near-duplicates.
    """

    def __init__(self, writers, rng: np.random.Generator, samplers: dict[str, CodeSampler],
                 duplicate_rate: float, noise_rate: float, *, subject_id_start: int,
                 hadm_id_start: int, buffer: deque) -> None:
        self._writers = writers
        self._rng = rng
        self._stream = RandomStream(rng)
        self._samplers = samplers
        self._duplicate_rate = duplicate_rate
        self._noise_rate = noise_rate
        self._subject_id_start = subject_id_start
        self._hadm_id_start = hadm_id_start
        self._buffer = buffer
        self.counts = GenerationCounts()

    def write_all(self, n_admissions: int, n_patients: int) -> GenerationCounts:
        """Write ``n_admissions`` admissions spread over ``n_patients`` patients.

        Each patient gets one admission plus a binomial share of the admissions left,
        drawn one patient at a time, so the counts follow a multinomial distribution
        without an array of all patients.
        """
        started = time.perf_counter()
        remaining = n_admissions
        for index in range(n_patients):
            patients_left = n_patients - index
            extra = remaining - patients_left
            if patients_left == 1:
                count = remaining
            else:
                count = 1 + int(self._rng.binomial(extra, 1.0 / patients_left))
            remaining -= count
            patient = self._new_patient(self._subject_id_start + index)
            self.counts.patients += 1
            for _ in range(count):
                self._write_admission(patient)
                if self.counts.admissions % PROGRESS_INTERVAL == 0:
                    elapsed = time.perf_counter() - started
                    logger.info(
                        "Wrote %d of %d admissions (%.0f per second)",
                        self.counts.admissions, n_admissions, self.counts.admissions / elapsed,
                    )
        return self.counts

    def _new_patient(self, subject_id: int) -> _Patient:
        stream = self._stream
        first = _FIRST_DATE + timedelta(days=stream.below(_FIRST_DATE_SPAN_DAYS))
        sex = "F" if stream.chance(0.5) else "M"
        return _Patient(subject_id, sex, 18 + stream.below(74), first, first)

    def _write_admission(self, patient: _Patient) -> None:
        stream = self._stream
        hadm_id = self._hadm_id_start + self.counts.admissions
        admitted = patient.next_date
        discharged = admitted + timedelta(days=1 + stream.poisson(MEAN_EXTRA_STAY_DAYS))
        patient.next_date = discharged + timedelta(days=14 + stream.below(720))
        patient.note_seq += 1
        note_id = f"{patient.subject_id}-DS-{patient.note_seq}"
        age = patient.age + (admitted - patient.first_date).days // 365

        source = None
        if self._buffer and stream.chance(self._duplicate_rate):
            source = self._duplicate_source(patient.subject_id)
        if source is None:
            labels = LabelSet(
                self._samplers[DIAGNOSIS].draw(stream, 1 + stream.poisson(MEAN_EXTRA_DIAGNOSES)),
                self._samplers[PROCEDURE].draw(stream, stream.poisson(MEAN_PROCEDURES)),
            )
            text = render_note(stream, patient.sex, age, labels.diagnoses, labels.procedures)
        else:
            text, labels = self._write_duplicate(source, note_id, hadm_id, patient.subject_id)
        self._buffer.append(_BufferedNote(note_id, hadm_id, patient.subject_id, text, labels))

        written = labels
        if stream.chance(self._noise_rate):
            written = labels.copy()
            event = inject_noise(stream, written, self._samplers, text.lower())
            if event is not None:
                self._writers[files.LABEL_NOISE].write(
                    (hadm_id, event.entry.icd_code, 10, event.code_type, event.kind)
                )
                self.counts.noisy_labels += 1

        charttime = f"{discharged.isoformat()} 00:00:00"
        storetime = (
            f"{discharged.isoformat()} {8 + stream.below(12):02d}:"
            f"{stream.below(60):02d}:{stream.below(60):02d}"
        )
        self._writers[files.DISCHARGE].write(
            (note_id, patient.subject_id, hadm_id, "DS", patient.note_seq, charttime, storetime,
             text)
        )
        self.counts.notes += 1
        self._write_codes(patient.subject_id, hadm_id, written, admitted, discharged)
        self.counts.admissions += 1

    def _duplicate_source(self, subject_id: int) -> _BufferedNote:
        stream = self._stream
        if stream.chance(SAME_PATIENT_SHARE):
            own = [note for note in self._buffer if note.subject_id == subject_id]
            if own:
                return stream.choice(own)
        return stream.choice(self._buffer)

    def _write_duplicate(self, source: _BufferedNote, note_id: str, hadm_id: int,
                         subject_id: int) -> tuple[str, LabelSet]:
        stream = self._stream
        text, n_edits = edit_note(stream, source.text)
        labels = source.labels.copy()
        labels_changed = False
        if stream.chance(CHANGED_LABELS_SHARE):
            labels_changed = change_labels(stream, labels, self._samplers)
        self._writers[files.DUPLICATES].write(
            (note_id, hadm_id, subject_id, source.note_id, source.hadm_id, n_edits,
             int(labels_changed))
        )
        self.counts.duplicates += 1
        self.counts.labels_changed += int(labels_changed)
        return text, labels

    def _write_codes(self, subject_id: int, hadm_id: int, labels: LabelSet, admitted: date,
                     discharged: date) -> None:
        diagnoses = self._writers[files.DIAGNOSES]
        for seq_num, entry in enumerate(labels.diagnoses, start=1):
            diagnoses.write((subject_id, hadm_id, seq_num, entry.icd_code, 10))
        self.counts.diagnosis_rows += len(labels.diagnoses)

        procedures = self._writers[files.PROCEDURES]
        stay_days = (discharged - admitted).days
        for seq_num, entry in enumerate(labels.procedures, start=1):
            chartdate = admitted + timedelta(days=self._stream.below(stay_days + 1))
            procedures.write(
                (subject_id, hadm_id, seq_num, chartdate.isoformat(), entry.icd_code, 10)
            )
        self.counts.procedure_rows += len(labels.procedures)
