"""Build a loss module by name from a plain dict of options, for example a YAML config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from shl.losses.baselines import (
    AsymmetricLoss,
    BinaryCrossEntropyLoss,
    ClassBalancedBCELoss,
    FocalLoss,
)
from shl.losses.shl_loss import SegmentedHarmonicLoss

logger = logging.getLogger(__name__)

# Option names accepted for each loss. They are the keyword arguments of the modules.
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "shl": (
        "lam",
        "eps",
        "combine",
        "active_only",
        "base",
        "momentum",
        "num_segments",
        "reduction",
        "asl_gamma_neg",
        "asl_gamma_pos",
        "asl_clip",
    ),
    "bce": ("reduction",),
    "focal": ("gamma", "alpha", "reduction"),
    "asl": ("gamma_neg", "gamma_pos", "clip", "reduction"),
    "cb": ("beta", "reduction"),
}
LOSS_NAMES = tuple(LOSS_OPTIONS)


def build_loss(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    segments: Tensor | list[int] | None = None,
    label_counts: Tensor | list[int] | None = None,
) -> nn.Module:
    """Build the loss module ``name`` with the keyword options in ``options``.

    Every returned module is called as ``loss(logits, targets, weights=None)`` with
    logits (raw scores) and targets of shape (batch, labels).

    Parameters
    ----------
    name : {"shl", "bce", "focal", "asl", "cb"}
        Segmented Harmonic Loss, binary cross-entropy, sigmoid focal loss, asymmetric
        loss, or class-balanced BCE.
    options : mapping, optional
        Keyword arguments of the chosen module; see ``LOSS_OPTIONS`` for the names.
        Default None uses the module defaults.
    segments : Tensor or list of int, optional
        Segment id of every label, shape (labels,). Required for "shl".
    label_counts : Tensor or list of int, optional
        Positive count of every label in the training data, shape (labels,).
        Required for "cb".

    Returns
    -------
    nn.Module
        The loss module.

    Raises
    ------
    ValueError
        On an unknown name or option, a missing ``segments`` or ``label_counts``, or
        an invalid option value.
    """
    if not isinstance(name, str) or name not in LOSS_OPTIONS:
        raise ValueError(f"invalid loss name {name!r}: expected one of {list(LOSS_NAMES)}")
    kwargs = dict(options or {})
    unknown = sorted(set(kwargs) - set(LOSS_OPTIONS[name]))
    if unknown:
        raise ValueError(
            f"invalid options {unknown} for loss {name!r}: expected a subset of "
            f"{list(LOSS_OPTIONS[name])}"
        )
    logger.info("Building loss %r with options %s", name, kwargs)

    if name == "shl":
        if segments is None:
            raise ValueError("loss 'shl' needs segments, the segment id of every label")
        return SegmentedHarmonicLoss(segments, **kwargs)
    if name == "bce":
        return BinaryCrossEntropyLoss(**kwargs)
    if name == "focal":
        return FocalLoss(**kwargs)
    if name == "asl":
        return AsymmetricLoss(**kwargs)
    if label_counts is None:
        raise ValueError("loss 'cb' needs label_counts, the positive count of every label")
    return ClassBalancedBCELoss(label_counts, **kwargs)
