"""Train, val and test splits by patient, stratified over labels.

Iterative stratification (Sechidis, Tsoumakas and Vlahavas, "On the stratification of
multi-label data", ECML PKDD 2011), applied to groups: a patient with several
admissions is one example whose label set is the union of the admissions' labels, so
no patient lands in two splits.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np


def stratified_group_split(
    group_labels: Mapping[str, Sequence[str]],
    fractions: Mapping[str, float],
    *,
    seed: int,
    group_sizes: Mapping[str, int] | None = None,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Assign each group (patient) to a split so that every label is spread as ``fractions``.

    The rarest label is placed first: each of its unplaced groups goes to the split
    that still lacks the most of that label, ties broken by the split that lacks the
    most documents, then at random. Groups without labels fill the splits by size.
    Deficits are counted in documents: a patient whose three admissions carry a label
    counts three times for it, so document-level prevalence follows the fractions.

    Parameters
    ----------
    group_labels : mapping of str to sequence of str
        Labels of each group's documents, one entry per document that carries the
        label (a label repeated n times is on n of the group's documents).
    fractions : mapping of str to float
        Target share of each split, such as ``{"train": 0.7, "val": 0.1, "test": 0.2}``.
        Must be non-negative and sum to 1.
    seed : int
        Seed of the tie-breaking; the same inputs and seed give the same splits.
    group_sizes : mapping of str to int, optional
        Documents per group; default 1 each.
    fixed : mapping of str to str, optional
        Groups whose split is already decided (from an earlier run). They keep it and
        count towards the fractions, so only new groups are placed.

    Returns
    -------
    dict
        Group to split name.

    Raises
    ------
    ValueError
        If the fractions are negative or do not sum to 1.
    """
    names = list(fractions)
    shares = np.array([fractions[name] for name in names], dtype=float)
    if (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"split fractions must be non-negative and sum to 1, found {dict(fractions)}")

    rng = np.random.default_rng(seed)
    groups = sorted(group_labels)
    sizes = {group: (group_sizes or {}).get(group, 1) for group in groups}
    multiplicity = {group: Counter(group_labels[group]) for group in groups}
    label_groups: dict[str, list[str]] = defaultdict(list)
    label_documents: Counter[str] = Counter()
    for group in groups:
        for label, count in multiplicity[group].items():
            label_groups[label].append(group)
            label_documents[label] += count

    size_deficit = shares * sum(sizes.values())
    label_deficit = {label: shares * label_documents[label] for label in label_groups}
    remaining = {label: len(members) for label, members in label_groups.items()}
    assignment: dict[str, str] = {}

    def place(group: str, choice_scores: np.ndarray) -> None:
        best = np.flatnonzero(choice_scores == choice_scores.max())
        if len(best) > 1:
            totals = size_deficit[best]
            best = best[totals == totals.max()]
        split_index = int(best[0] if len(best) == 1 else rng.choice(best))
        assignment[group] = names[split_index]
        size_deficit[split_index] -= sizes[group]
        for label, count in multiplicity[group].items():
            label_deficit[label][split_index] -= count
            remaining[label] -= 1
            heapq.heappush(queue, (remaining[label], label))

    queue: list[tuple[int, str]] = []
    for group, split in sorted((fixed or {}).items()):
        if group in multiplicity and split in names:
            place(group, (np.array(names) == split).astype(float))

    # A heap of (unplaced groups, label) with stale entries skipped on pop.
    queue = [(count, label) for label, count in remaining.items()]
    heapq.heapify(queue)
    while queue:
        count, label = heapq.heappop(queue)
        if count != remaining[label] or count == 0:
            continue
        members = [group for group in label_groups[label] if group not in assignment]
        for index in rng.permutation(len(members)):
            group = members[index]
            if group not in assignment:
                place(group, label_deficit[label].copy())

    unlabelled = [group for group in groups if group not in assignment]
    for index in rng.permutation(len(unlabelled)):
        place(unlabelled[index], size_deficit.copy())
    return assignment


def holdout_split(
    group_labels: Mapping[str, Sequence[str]], holdout_fraction: float, *, seed: int, name: str = "val"
) -> dict[str, str]:
    """Split groups into ``train`` and a stratified holdout of ``holdout_fraction``."""
    fractions = {"train": 1.0 - holdout_fraction, name: holdout_fraction}
    return stratified_group_split(group_labels, fractions, seed=seed)
