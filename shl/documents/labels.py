"""The label space: which codes become labels, and how labels are named.

A label is ``"<code_system>:<code>"`` (``"icd10cm:R50.9"``), so the same characters in two
code systems (ICD-9 diagnosis 389.3 and procedure 38.93 share digits) never collide.
"""

from __future__ import annotations

from collections.abc import Mapping


def label_name(code_system: str, code: str, *, rollup: bool = False) -> str:
    """Return the label of a code, or of its category when ``rollup`` is set.

    The category is the part before the dot for the dotted systems (``R50.9`` ->
    ``R50``, ``E879.0`` -> ``E879``, ``38.93`` -> ``38``) and the first 3 characters
    of an ICD-10-PCS code (section, body system, root operation).
    """
    if rollup:
        code = code[:3] if code_system == "icd10pcs" else code.split(".", 1)[0]
    return f"{code_system}:{code}"


def split_label(label: str) -> tuple[str, str]:
    """Return ``(code_system, code)`` of a label.

    Raises
    ------
    ValueError
        If the label has no ``"<code_system>:"`` prefix.
    """
    code_system, separator, code = label.partition(":")
    if not separator or not code:
        raise ValueError(f"invalid label {label!r}: expected '<code_system>:<code>', e.g. 'icd10cm:R50.9'")
    return code_system, code


def select_label_space(train_counts: Mapping[str, int], *, min_train_count: int, top_k: int = 0) -> dict[str, int]:
    """Choose the labels of the model from their counts in the train split.

    Parameters
    ----------
    train_counts : mapping of str to int
        Number of train documents that carry each label.
    min_train_count : int
        Labels on fewer train documents are left out.
    top_k : int, default 0
        When positive, keep only the ``top_k`` most frequent labels (ties by label).

    Returns
    -------
    dict
        Label to train count for the kept labels, most frequent first.
    """
    kept = sorted(
        ((label, int(count)) for label, count in train_counts.items() if count >= min_train_count),
        key=lambda item: (-item[1], item[0]),
    )
    if top_k > 0:
        kept = kept[:top_k]
    return dict(kept)
