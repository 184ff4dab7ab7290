"""Code sets of the sample admissions: Zipf draws, co-occurring groups and label noise."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from shl.sample.text import RandomStream
from shl.sample.vocabulary import CodeEntry, zipf_cumulative

DIAGNOSIS = "diagnosis"
PROCEDURE = "procedure"
# Share of the label errors that remove an evidenced code. The others add a code.
_REMOVED_SHARE = 0.25
# Share of the added label errors that are procedure codes, when procedures exist.
_ADDED_PROCEDURE_SHARE = 0.2
_ABSENT_CODE_ATTEMPTS = 20


@dataclass
class LabelSet:
    """Diagnosis and procedure codes of one admission, in sequence order."""

    diagnoses: list[CodeEntry]
    procedures: list[CodeEntry]

    def copy(self) -> LabelSet:
        """Return a copy whose lists can change without changing this set."""
        return LabelSet(list(self.diagnoses), list(self.procedures))

    def codes(self) -> set[str]:
        """Return the canonical codes of both lists."""
        return {entry.code for entry in self.diagnoses} | {entry.code for entry in self.procedures}


@dataclass(frozen=True)
class NoiseEvent:
    """One injected label error: ``kind`` is ``added`` or ``removed``."""

    entry: CodeEntry
    code_type: str
    kind: str


def has_evidence(entry: CodeEntry, lower_text: str) -> bool:
    """Return whether the lower-cased note text contains the title or short form of a code."""
    return entry.phrase in lower_text or entry.short_phrase in lower_text


class CodeSampler:
    """Draws code sets with Zipf-distributed ranks and co-occurring groups.

    Parameters
    ----------
    entries : sequence of CodeEntry
        The vocabulary, most frequent rank first. May be empty.
    exponent : float
        Zipf exponent ``s``: rank ``r`` is drawn with probability proportional to
        ``1 / r**s``.
    groups : sequence of tuple of int
        Zero-based ranks of codes that co-occur.
    group_probability : float
        Probability that the other members of a group join a drawn member.
    """

    def __init__(
        self,
        entries: Sequence[CodeEntry],
        exponent: float,
        groups: Sequence[tuple[int, ...]],
        group_probability: float,
    ) -> None:
        self.entries = list(entries)
        self._cumulative = zipf_cumulative(len(self.entries), exponent) if self.entries else []
        self._group_of = {rank: group for group in groups for rank in group}
        self._group_probability = group_probability

    def draw_rank(self, stream: RandomStream) -> int:
        """Return one zero-based rank drawn from the Zipf distribution."""
        rank = bisect.bisect_right(self._cumulative, stream.random())
        return min(rank, len(self._cumulative) - 1)

    def draw(self, stream: RandomStream, count: int) -> list[CodeEntry]:
        """Draw about ``count`` distinct codes, in draw order.

        Group members join a drawn code, so the result can contain more than
        ``count`` codes. It contains fewer when the vocabulary is too small to fill
        ``count`` within the bounded number of draws.
        """
        if not self.entries:
            return []
        ranks: list[int] = []
        drawn: set[int] = set()
        for _ in range(4 * count + 10):
            if len(ranks) >= count:
                break
            rank = self.draw_rank(stream)
            if rank in drawn:
                continue
            ranks.append(rank)
            drawn.add(rank)
            group = self._group_of.get(rank)
            if group is not None and stream.chance(self._group_probability):
                for member in group:
                    if member not in drawn:
                        ranks.append(member)
                        drawn.add(member)
        return [self.entries[rank] for rank in ranks]

    def draw_absent(
        self, stream: RandomStream, present: set[str], lower_text: str | None
    ) -> CodeEntry | None:
        """Draw a code that is not in ``present`` and, given a text, has no evidence in it.

        Returns None when a bounded number of draws finds no such code.
        """
        if not self.entries:
            return None
        for _ in range(_ABSENT_CODE_ATTEMPTS):
            entry = self.entries[self.draw_rank(stream)]
            if entry.code in present:
                continue
            if lower_text is not None and has_evidence(entry, lower_text):
                continue
            return entry
        return None


def inject_noise(
    stream: RandomStream,
    labels: LabelSet,
    samplers: dict[str, CodeSampler],
    lower_text: str,
) -> NoiseEvent | None:
    """Add an unevidenced code to, or remove an evidenced code from, a label set.

    ``labels`` changes in place. A removal keeps at least one diagnosis, and when no
    code can be removed, a code is added instead.

    Returns
    -------
    NoiseEvent or None
        The error injected, or None when no absent code was found to add.
    """
    if stream.chance(_REMOVED_SHARE):
        event = _remove_evidenced(stream, labels, lower_text)
        if event is not None:
            return event

    code_type = DIAGNOSIS
    if samplers[PROCEDURE].entries and stream.chance(_ADDED_PROCEDURE_SHARE):
        code_type = PROCEDURE
    entry = samplers[code_type].draw_absent(stream, labels.codes(), lower_text)
    if entry is None:
        return None
    if code_type == DIAGNOSIS:
        # Position 0 is the primary diagnosis, which keeps its place.
        labels.diagnoses.insert(1 + stream.below(len(labels.diagnoses)), entry)
    else:
        labels.procedures.insert(stream.below(len(labels.procedures) + 1), entry)
    return NoiseEvent(entry, code_type, "added")


def _remove_evidenced(stream: RandomStream, labels: LabelSet, lower_text: str) -> NoiseEvent | None:
    candidates = []
    if len(labels.diagnoses) > 1:
        candidates += [(DIAGNOSIS, index) for index, entry in enumerate(labels.diagnoses)
                       if has_evidence(entry, lower_text)]
    candidates += [(PROCEDURE, index) for index, entry in enumerate(labels.procedures)
                   if has_evidence(entry, lower_text)]
    if not candidates:
        return None
    code_type, index = stream.choice(candidates)
    codes = labels.diagnoses if code_type == DIAGNOSIS else labels.procedures
    return NoiseEvent(codes.pop(index), code_type, "removed")


def change_labels(stream: RandomStream, labels: LabelSet, samplers: dict[str, CodeSampler]) -> bool:
    """Remove one code from, or add one diagnosis code to, a label set in place.

    Used for the near-duplicates whose labels differ from their source's. A removal
    keeps the primary diagnosis. Return True when the set changed. It stays unchanged
    only when no code but the primary diagnosis exists and no absent code is found.
    """
    removable = [(labels.diagnoses, index) for index in range(1, len(labels.diagnoses))]
    removable += [(labels.procedures, index) for index in range(len(labels.procedures))]
    if removable and stream.chance(0.5):
        codes, index = stream.choice(removable)
        codes.pop(index)
        return True
    entry = samplers[DIAGNOSIS].draw_absent(stream, labels.codes(), None)
    if entry is None:
        return False
    labels.diagnoses.append(entry)
    return True
