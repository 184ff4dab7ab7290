"""Discharge note text of the sample and the light edits of its near-duplicates."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from shl.sample import phrases
from shl.sample.vocabulary import CodeEntry

# Probability that a code is listed by its title under Discharge Diagnosis or Major
# Surgical or Invasive Procedure, and that the Brief Hospital Course mentions it.
# A code that is neither listed nor mentioned is mentioned anyway, so every code that
# the note is generated for has at least one phrase in the text.
_PRIMARY_LISTED = 0.95
_DIAGNOSIS_LISTED = 0.8
_DIAGNOSIS_MENTIONED = 0.9
_PROCEDURE_LISTED = 0.85
_PROCEDURE_MENTIONED = 0.6
# Probability that a mention uses the full title rather than its short form.
_FULL_TITLE = 0.6
# Extra Hospital Course sentences: exponential with this mean at the average level of
# detail, and a long note (50 to
# 100 more sentences) at the given rate so that some notes exceed 1,000 words.
_MEAN_EXTRA_SENTENCES = 6.0
_LONG_NOTE_RATE = 0.03

# Probability that the Physical Exam and the Pertinent Results sections are present.
_OPTIONAL_SECTION = 0.85

_SECTION_BREAK = "\n \n"
_EDITABLE = re.compile(r"\b(?:" + "|".join(phrases.SUBSTITUTIONS) + r")\b|\b\d+\.\d+\b")


class RandomStream:
    """Scalar random draws served from blocks of a NumPy generator's uniform numbers.

    Calling the generator once per draw costs microseconds, which the note text would
    pay tens of times per note. Every value comes from ``rng.random``, so the draws are
    fixed by the generator's seed.
    """

    def __init__(self, rng: np.random.Generator, block_size: int = 8192) -> None:
        self.rng = rng
        self._block_size = block_size
        self._values: list[float] = []
        self._position = 0

    def random(self) -> float:
        """Return a uniform number in [0, 1)."""
        if self._position == len(self._values):
            self._values = self.rng.random(self._block_size).tolist()
            self._position = 0
        value = self._values[self._position]
        self._position += 1
        return value

    def below(self, n: int) -> int:
        """Return a uniform integer in [0, n)."""
        return min(int(self.random() * n), n - 1)

    def chance(self, probability: float) -> bool:
        """Return True with the given probability."""
        return self.random() < probability

    def choice(self, items: Sequence):
        """Return a uniformly chosen item of a non-empty sequence."""
        return items[self.below(len(items))]

    def sample(self, items: Sequence, count: int) -> list:
        """Return ``count`` distinct items in random order, all items when fewer."""
        pool = list(items)
        count = min(count, len(pool))
        for index in range(count):
            swap = index + self.below(len(pool) - index)
            pool[index], pool[swap] = pool[swap], pool[index]
        return pool[:count]

    def poisson(self, mean: float) -> int:
        """Return a Poisson draw by Knuth's product method, fast for small means."""
        limit = math.exp(-mean)
        count = 0
        product = self.random()
        while product > limit:
            count += 1
            product *= self.random()
        return count

    def exponential(self, mean: float) -> float:
        """Return an exponential draw with the given mean."""
        return -mean * math.log(1.0 - self.random())


def render_note(
    stream: RandomStream,
    sex: str,
    age: int,
    diagnoses: Sequence[CodeEntry],
    procedures: Sequence[CodeEntry],
) -> str:
    """Write the text of one discharge note that gives evidence for the given codes.

    Parameters
    ----------
    stream : RandomStream
        Source of the random choices.
    sex : str
        ``F`` or ``M``.
    age : int
        Age in years.
    diagnoses, procedures : sequence of CodeEntry
        The codes of the admission, the primary diagnosis first.

    Returns
    -------
    str
        Multi-line text in the section layout of MIMIC-IV discharge notes. Each code
        appears as its title, the lower-cased title or its short form.
    """
    patient = ("Mr. ___" if sex == "M" else "Ms. ___", "man" if sex == "M" else "woman")
    complaint = stream.choice(phrases.CHIEF_COMPLAINTS)
    dx_listed = [
        stream.chance(_PRIMARY_LISTED if rank == 0 else _DIAGNOSIS_LISTED)
        for rank in range(len(diagnoses))
    ]
    px_listed = [stream.chance(_PROCEDURE_LISTED) for _ in procedures]

    # One level of detail per note scales all its filler counts, so brief notes and
    # wordy notes both occur.
    detail = stream.random()
    parts = [_header(stream, sex, complaint)]
    parts.append(_procedure_list(procedures, px_listed))
    parts.append(_history(stream, detail, patient, age, complaint, diagnoses))
    parts.append(_exam_and_results(stream, detail))
    parts.append(
        _hospital_course(stream, detail, patient, age, diagnoses, procedures, dx_listed, px_listed)
    )
    parts.append(_discharge(stream, detail, patient, diagnoses, dx_listed))
    return _SECTION_BREAK.join(part for part in parts if part)


def _fill(stream: RandomStream, template: tuple) -> str:
    text, slots = template
    if not slots:
        return text
    values = []
    for low, high, decimals in slots:
        if decimals == 0:
            values.append(str(int(low) + stream.below(int(high) - int(low) + 1)))
        else:
            values.append(f"{low + stream.random() * (high - low):.{decimals}f}")
    return text.format(*values)


def _fillers(stream: RandomStream, bank: tuple, count: int) -> list[str]:
    """Fill ``count`` templates of a bank. No template repeats before all have been used."""
    templates = stream.sample(bank, count)
    while len(templates) < count:
        templates += stream.sample(bank, count - len(templates))
    return [_fill(stream, template) for template in templates]


def _count(stream: RandomStream, detail: float, minimum: int, maximum: int) -> int:
    """Draw a count from ``minimum`` up to a maximum that grows with the note's detail."""
    return minimum + stream.below(1 + int(detail * (maximum - minimum)))


def _age_phrase(age: int) -> str:
    article = "an" if age in (11, 18) or str(age).startswith("8") else "a"
    return f"{article} {age} year old"


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _header(stream: RandomStream, sex: str, complaint: str) -> str:
    return _SECTION_BREAK.join(
        [
            "Name:  ___                     Unit No:   ___",
            "Admission Date:  ___              Discharge Date:   ___",
            f"Date of Birth:  ___             Sex:   {sex}",
            f"Service: {stream.choice(phrases.SERVICES)}",
            f"Allergies: \n{stream.choice(phrases.ALLERGIES)}",
            "Attending: ___.",
            f"Chief Complaint:\n{complaint}",
        ]
    )


def _procedure_list(procedures: Sequence[CodeEntry], listed: list[bool]) -> str:
    titles = [entry.title for entry, is_listed in zip(procedures, listed) if is_listed]
    body = "\n".join(titles) if titles else "None"
    return f"Major Surgical or Invasive Procedure:\n{body}"


def _history(stream, detail, patient, age, complaint, diagnoses: Sequence[CodeEntry]) -> str:
    honorific, person = patient
    history = [entry.short_phrase for entry in diagnoses[1:4] if stream.chance(0.5)]
    background = f" with a history of {', '.join(history)}" if history else ""
    opening = (
        f"{honorific} is {_age_phrase(age)} {person}{background} who presents with "
        f"{complaint.lower()}."
    )
    sentences = [opening] + _fillers(stream, phrases.HPI_FILLER, _count(stream, detail, 0, 5))
    past = [f"- {_capitalize(entry.short_phrase)}" for entry in diagnoses[1:] if stream.chance(0.4)]
    return _SECTION_BREAK.join(
        [
            "History of Present Illness:\n" + " ".join(sentences),
            "Past Medical History:\n" + ("\n".join(past) if past else "None"),
            "Social History:\n___",
            "Family History:\n" + stream.choice(phrases.FAMILY_HISTORY),
        ]
    )


def _exam_and_results(stream: RandomStream, detail: float) -> str:
    sections = []
    if stream.chance(_OPTIONAL_SECTION):
        exam = _fillers(stream, phrases.EXAM_FILLER, _count(stream, detail, 1, 9))
        sections.append("Physical Exam:\nADMISSION EXAM:\n" + "\n".join(exam))
    if stream.chance(_OPTIONAL_SECTION):
        labs = _fillers(stream, phrases.LAB_FILLER, _count(stream, detail, 1, 8))
        sections.append("Pertinent Results:\n" + "\n".join(labs))
    return _SECTION_BREAK.join(sections)


def _mention(stream: RandomStream, entry: CodeEntry, templates: tuple) -> str:
    phrase = entry.phrase if stream.chance(_FULL_TITLE) else entry.short_phrase
    return _capitalize(stream.choice(templates).format(phrase))


def _hospital_course(
    stream, detail, patient, age, diagnoses, procedures, dx_listed, px_listed
) -> str:
    honorific, person = patient
    primary = diagnoses[0].short_phrase
    opening = f"{honorific} is {_age_phrase(age)} {person} admitted with {primary}."
    lines = [opening]
    for entry, is_listed in zip(diagnoses, dx_listed):
        if stream.chance(_DIAGNOSIS_MENTIONED) or not is_listed:
            sentences = [_mention(stream, entry, phrases.DIAGNOSIS_TEMPLATES)]
            sentences += _fillers(stream, phrases.COURSE_FILLER, _count(stream, detail, 0, 2))
            lines.append(f"# {_capitalize(entry.short_phrase)}: " + " ".join(sentences))
    for entry, is_listed in zip(procedures, px_listed):
        if stream.chance(_PROCEDURE_MENTIONED) or not is_listed:
            lines.append(_mention(stream, entry, phrases.PROCEDURE_TEMPLATES))

    n_extra = int(stream.exponential(2 * detail * _MEAN_EXTRA_SENTENCES))
    if stream.chance(_LONG_NOTE_RATE):
        n_extra += 50 + stream.below(51)
    extra = _fillers(stream, phrases.COURSE_FILLER, n_extra)
    for start in range(0, len(extra), 5):
        lines.append(" ".join(extra[start : start + 5]))
    return "Brief Hospital Course:\n" + "\n".join(lines)


def _discharge(stream, detail, patient, diagnoses: Sequence[CodeEntry], dx_listed) -> str:
    medications = [
        f"{number}. {medication}"
        for number, medication in enumerate(
            stream.sample(phrases.MEDICATIONS, _count(stream, detail, 1, 14)), start=1
        )
    ]
    primary = [entry.title for entry, is_listed in zip(diagnoses[:1], dx_listed) if is_listed]
    secondary = [entry.title for entry, is_listed in zip(diagnoses[1:], dx_listed[1:]) if is_listed]
    diagnosis = "PRIMARY DIAGNOSIS:\n" + ("\n".join(primary) or "See hospital course")
    if secondary:
        diagnosis += "\n\nSECONDARY DIAGNOSES:\n" + "\n".join(secondary)
    instructions = [f"Dear {patient[0]},"] + stream.sample(
        phrases.INSTRUCTIONS, _count(stream, detail, 1, 5)
    )
    return _SECTION_BREAK.join(
        [
            "Discharge Medications:\n" + "\n".join(medications),
            "Discharge Disposition:\n" + stream.choice(phrases.DISPOSITIONS),
            "Discharge Diagnosis:\n" + diagnosis,
            "Discharge Condition:\n" + phrases.CONDITION,
            "Discharge Instructions:\n" + "\n".join(instructions),
            "Followup Instructions:\n___",
        ]
    )


def edit_note(stream: RandomStream, text: str) -> tuple[str, int]:
    """Apply 1 to 5 light edits to a note, for a near-duplicate.

    An edit swaps a common filler word for a synonym (see ``phrases.SUBSTITUTIONS``) or
    changes a decimal number, such as a lab value. Two draws of the same place count
    once, so fewer edits than drawn can result.

    Returns
    -------
    tuple of (str, int)
        The edited text and the number of edits made.
    """
    matches = list(_EDITABLE.finditer(text))
    if not matches:
        return text + "\nPatient seen and examined on the day of discharge.", 1

    chosen = sorted({stream.below(len(matches)) for _ in range(1 + stream.below(5))})
    pieces = []
    end = 0
    for index in chosen:
        match = matches[index]
        pieces.append(text[end : match.start()])
        pieces.append(_replacement(stream, match.group()))
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces), len(chosen)


def _replacement(stream: RandomStream, original: str) -> str:
    if original in phrases.SUBSTITUTIONS:
        return phrases.SUBSTITUTIONS[original]
    decimals = len(original.split(".", 1)[1])
    # An increase keeps the value positive and always changes it.
    value = float(original) + 10.0**-decimals * (1 + stream.below(9))
    return f"{value:.{decimals}f}"
