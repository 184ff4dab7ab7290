"""Baseline multi-label losses with one call interface: ``(logits, targets, weights=None)``.

Every function takes raw scores (logits, never probabilities) and targets of shape
(batch, labels), plus optional non-negative per-entry weights that broadcast to that
shape. Each computes in ``torch.promote_types(logits.dtype, torch.float32)``, which is
float32 for half and bfloat16 inputs and float64 for float64 inputs, also under autocast.

With ``reduction="mean"`` a baseline returns ``sum(weights * loss) / (batch * labels)``,
the convention of ``torch.nn.functional.binary_cross_entropy_with_logits(weight=...)``.
Entries with weight 0 therefore still count in the denominator. ``"sum"`` returns the
weighted sum and ``"none"`` the weighted per-entry losses of shape (batch, labels).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------
# Argument checks shared with the Segmented Harmonic Loss
# ---------------------------------------------------------------------------


def check_choice(name: str, value: object, valid: Collection[str]) -> None:
    """Raise ValueError unless ``value`` is one of the strings in ``valid``."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"invalid {name} {value!r}: expected one of {sorted(valid)}")


def check_logits_targets(logits: Tensor, targets: Tensor) -> None:
    """Raise ValueError unless logits and targets are 2-D tensors of one shape.

    Logits must be floating point, and targets must lie in [0, 1].
    """
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise ValueError(
            f"logits and targets must be tensors, got {type(logits).__name__} "
            f"and {type(targets).__name__}"
        )
    if logits.dim() != 2:
        raise ValueError(
            f"logits must have shape (batch, labels), got shape {tuple(logits.shape)}"
        )
    if targets.shape != logits.shape:
        raise ValueError(
            f"targets shape {tuple(targets.shape)} does not match logits shape "
            f"{tuple(logits.shape)}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if targets.numel() > 0:
        low, high = (float(value) for value in torch.aminmax(targets))
        if low < 0 or high > 1:
            raise ValueError(f"targets must lie in [0, 1], got values from {low} to {high}")


def expand_weights(weights: Tensor | None, logits: Tensor, dtype: torch.dtype) -> Tensor | None:
    """Return per-entry weights of the logits shape (batch, labels) in ``dtype``.

    ``None`` is returned unchanged and means all ones. A tensor must broadcast to the
    logits shape, so a per-label vector of shape (labels,) is accepted. Negative weights
    raise ValueError.
    """
    if weights is None:
        return None
    if not isinstance(weights, Tensor):
        raise ValueError(f"weights must be a tensor or None, got {type(weights).__name__}")
    try:
        expanded = torch.broadcast_to(weights, logits.shape)
    except RuntimeError as error:
        raise ValueError(
            f"weights shape {tuple(weights.shape)} does not broadcast to logits shape "
            f"{tuple(logits.shape)}"
        ) from error
    if expanded.numel() > 0 and bool((expanded < 0).any()):
        raise ValueError("weights must be non-negative, got a negative entry")
    return expanded.to(dtype)


def compute_dtype(logits: Tensor) -> torch.dtype:
    """Return the dtype the losses compute in: at least float32, float64 for float64 input."""
    return torch.promote_types(logits.dtype, torch.float32)


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"invalid {name} {value!r}: expected a number >= 0")


def _reduce(per_entry: Tensor, weights: Tensor | None, reduction: str) -> Tensor:
    # per_entry: (batch, labels). weights: (batch, labels), or None for all ones.
    weighted = per_entry if weights is None else weights * per_entry
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if weighted.numel() == 0:
        return weighted.sum()
    return weighted.sum() / weighted.numel()


# ---------------------------------------------------------------------------
# Elementwise terms
# ---------------------------------------------------------------------------


def asymmetric_loss_elementwise(
    logits: Tensor,
    targets: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
) -> Tensor:
    """Compute the unweighted asymmetric loss (ASL) of every entry.

    ASL (Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021)
    shifts the probability of negatives, ``p_m = max(p - clip, 0)`` with
    ``p = sigmoid(logits)``, and returns
    ``-[y (1 - p)^gamma_pos log(p) + (1 - y) p_m^gamma_neg log(1 - p_m)]``.

    ``log(p)`` is ``logsigmoid(logits)``. For ``clip > 0``, ``1 - p_m`` equals
    ``min(sigmoid(-logits) + clip, 1) >= clip``, so its log stays finite. For
    ``clip == 0`` it is ``logsigmoid(-logits)``.

    Parameters
    ----------
    logits, targets : Tensor
        Raw scores and targets in [0, 1], same shape. No dtype cast happens here.
    gamma_neg, gamma_pos : float
        Focusing exponents for negatives and positives.
    clip : float
        Probability margin subtracted from the probability of negatives.

    Returns
    -------
    Tensor
        Per-entry losses, same shape as ``logits``.
    """
    probabilities = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    if clip > 0:
        shifted = torch.clamp(probabilities - clip, min=0.0)
        log_one_minus_shifted = torch.log(torch.clamp(torch.sigmoid(-logits) + clip, max=1.0))
    else:
        shifted = probabilities
        log_one_minus_shifted = F.logsigmoid(-logits)

    positive_term = log_p
    if gamma_pos != 0:
        positive_term = positive_term * torch.pow(1.0 - probabilities, gamma_pos)
    negative_term = log_one_minus_shifted
    if gamma_neg != 0:
        negative_term = negative_term * torch.pow(shifted, gamma_neg)
    return -(targets * positive_term + (1.0 - targets) * negative_term)


# ---------------------------------------------------------------------------
# Functional losses
# ---------------------------------------------------------------------------


def binary_cross_entropy_loss(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    """Compute binary cross-entropy on logits, weighted per entry.

    Parameters
    ----------
    logits : Tensor
        Raw scores of shape (batch, labels).
    targets : Tensor
        Targets in [0, 1], shape (batch, labels).
    weights : Tensor, optional
        Non-negative weights broadcastable to (batch, labels). Default all ones.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides the weighted sum by ``batch * labels``.

    Returns
    -------
    Tensor
        A scalar, or per-entry losses of shape (batch, labels) for ``"none"``.

    Raises
    ------
    ValueError
        On a shape mismatch, targets outside [0, 1], negative weights or an
        unknown reduction.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_logits_targets(logits, targets)
    dtype = compute_dtype(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        y = targets.to(dtype)
        w = expand_weights(weights, logits, dtype)
        per_entry = F.binary_cross_entropy_with_logits(x, y, reduction="none")  # (batch, labels)
        return _reduce(per_entry, w, reduction)


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Compute the sigmoid focal loss (Lin et al. 2017) in the torchvision formulation.

    ``loss = BCE(logits, y) * (1 - p_t)^gamma`` with ``p = sigmoid(logits)`` and
    ``p_t = p y + (1 - p)(1 - y)``. With ``alpha`` set, the loss is multiplied by
    ``alpha_t = alpha y + (1 - alpha)(1 - y)``.

    Parameters
    ----------
    logits : Tensor
        Raw scores of shape (batch, labels).
    targets : Tensor
        Targets in [0, 1], shape (batch, labels).
    weights : Tensor, optional
        Non-negative weights broadcastable to (batch, labels). Default all ones.
    gamma : float
        Focusing exponent, default 2.
    alpha : float, optional
        Weight of positives in [0, 1]. Default None applies no alpha weighting,
        unlike ``torchvision.ops.sigmoid_focal_loss``, whose default is 0.25.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides the weighted sum by ``batch * labels``.

    Returns
    -------
    Tensor
        A scalar, or per-entry losses of shape (batch, labels) for ``"none"``.

    Raises
    ------
    ValueError
        On invalid shapes, a negative gamma, alpha outside [0, 1] or an unknown reduction.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    _check_non_negative("gamma", gamma)
    if alpha is not None and (not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1):
        raise ValueError(f"invalid alpha {alpha!r}: expected None or a number in [0, 1]")
    check_logits_targets(logits, targets)
    dtype = compute_dtype(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        y = targets.to(dtype)
        w = expand_weights(weights, logits, dtype)
        probabilities = torch.sigmoid(x)
        cross_entropy = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = probabilities * y + (1.0 - probabilities) * (1.0 - y)
        per_entry = cross_entropy
        if gamma != 0:
            per_entry = per_entry * torch.pow(1.0 - p_t, gamma)
        if alpha is not None:
            per_entry = per_entry * (alpha * y + (1.0 - alpha) * (1.0 - y))
        return _reduce(per_entry, w, reduction)


def asymmetric_loss(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    reduction: str = "mean",
) -> Tensor:
    """Compute the asymmetric loss (ASL) of Ridnik et al. 2021, weighted per entry.

    See :func:`asymmetric_loss_elementwise` for the formula. The reference
    implementation sums over entries, while this function averages by default.

    Parameters
    ----------
    logits : Tensor
        Raw scores of shape (batch, labels).
    targets : Tensor
        Targets in [0, 1], shape (batch, labels).
    weights : Tensor, optional
        Non-negative weights broadcastable to (batch, labels). Default all ones.
    gamma_neg, gamma_pos : float
        Focusing exponents for negatives (default 4) and positives (default 0).
    clip : float
        Probability margin for negatives in [0, 1), default 0.05.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides the weighted sum by ``batch * labels``.

    Returns
    -------
    Tensor
        A scalar, or per-entry losses of shape (batch, labels) for ``"none"``.

    Raises
    ------
    ValueError
        On invalid shapes, negative exponents, clip outside [0, 1) or an unknown reduction.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_asymmetric_options(gamma_neg, gamma_pos, clip)
    check_logits_targets(logits, targets)
    dtype = compute_dtype(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        y = targets.to(dtype)
        w = expand_weights(weights, logits, dtype)
        per_entry = asymmetric_loss_elementwise(
            x, y, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip
        )
        return _reduce(per_entry, w, reduction)


def check_asymmetric_options(gamma_neg: float, gamma_pos: float, clip: float) -> None:
    """Raise ValueError unless the ASL exponents are >= 0 and clip lies in [0, 1)."""
    _check_non_negative("gamma_neg", gamma_neg)
    _check_non_negative("gamma_pos", gamma_pos)
    if not isinstance(clip, (int, float)) or not 0 <= clip < 1:
        raise ValueError(f"invalid clip {clip!r}: expected a number in [0, 1)")


def class_balanced_weights(label_counts: Tensor, beta: float = 0.999) -> Tensor:
    """Compute the class-balanced per-label weights of Cui et al. 2019.

    The weight of label c is ``(1 - beta) / (1 - beta ** n_c)``, the inverse of the
    effective number of samples, where ``n_c`` is the number of positive examples of
    label c. A label with count 0 is treated as if it had count 1 (weight 1 before
    normalisation). The weights are then scaled so that they sum to the number of labels.

    Parameters
    ----------
    label_counts : Tensor
        Non-negative positive counts per label, shape (labels,).
    beta : float
        Hyperparameter in [0, 1), default 0.999. ``beta = 0`` gives all-ones weights.

    Returns
    -------
    Tensor
        Float32 weights of shape (labels,) on the device of ``label_counts``.

    Raises
    ------
    ValueError
        If ``beta`` is outside [0, 1), the counts are not 1-D, empty or negative.
    """
    if not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ValueError(f"invalid beta {beta!r}: expected a number in [0, 1)")
    counts = torch.as_tensor(label_counts)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(
            f"label_counts must have shape (labels,) with labels >= 1, got shape "
            f"{tuple(counts.shape)}"
        )
    if bool((counts < 0).any()):
        raise ValueError("label_counts must be non-negative, got a negative count")

    counts = torch.clamp(counts.to(torch.float64), min=1.0)
    raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    normalised = raw * counts.numel() / raw.sum()
    return normalised.to(torch.float32)


def class_balanced_bce_loss(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    *,
    label_counts: Tensor,
    beta: float = 0.999,
    reduction: str = "mean",
) -> Tensor:
    """Compute binary cross-entropy with class-balanced per-label weights (Cui et al. 2019).

    Each entry's BCE is multiplied by :func:`class_balanced_weights` of its label
    and by the per-entry weight.

    Parameters
    ----------
    logits : Tensor
        Raw scores of shape (batch, labels).
    targets : Tensor
        Targets in [0, 1], shape (batch, labels).
    weights : Tensor, optional
        Non-negative weights broadcastable to (batch, labels). Default all ones.
    label_counts : Tensor
        Positive counts per label in the training data, shape (labels,).
    beta : float
        Hyperparameter in [0, 1), default 0.999.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides the weighted sum by ``batch * labels``.

    Returns
    -------
    Tensor
        A scalar, or per-entry losses of shape (batch, labels) for ``"none"``.

    Raises
    ------
    ValueError
        On invalid shapes, a label count vector whose length differs from the label
        count of the logits, an invalid beta or an unknown reduction.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_logits_targets(logits, targets)
    label_weights = class_balanced_weights(label_counts, beta)
    return _class_balanced_bce(logits, targets, weights, label_weights, reduction)


def _class_balanced_bce(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None,
    label_weights: Tensor,
    reduction: str,
) -> Tensor:
    if label_weights.shape[0] != logits.shape[1]:
        raise ValueError(
            f"label_counts has {label_weights.shape[0]} entries but logits have "
            f"{logits.shape[1]} labels"
        )
    dtype = compute_dtype(logits)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        y = targets.to(dtype)
        w = expand_weights(weights, logits, dtype)
        per_label = label_weights.to(device=logits.device, dtype=dtype)  # (labels,)
        per_entry = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        return _reduce(per_label * per_entry, w, reduction)


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


class BinaryCrossEntropyLoss(nn.Module):
    """Module form of :func:`binary_cross_entropy_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        return binary_cross_entropy_loss(logits, targets, weights, reduction=self.reduction)


class FocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss`."""

    def __init__(
        self, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        _check_non_negative("gamma", gamma)
        if alpha is not None and (not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1):
            raise ValueError(f"invalid alpha {alpha!r}: expected None or a number in [0, 1]")
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        return sigmoid_focal_loss(
            logits,
            targets,
            weights,
            gamma=self.gamma,
            alpha=self.alpha,
            reduction=self.reduction,
        )


class AsymmetricLoss(nn.Module):
    """Module form of :func:`asymmetric_loss`."""

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        check_asymmetric_options(gamma_neg, gamma_pos, clip)
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        return asymmetric_loss(
            logits,
            targets,
            weights,
            gamma_neg=self.gamma_neg,
            gamma_pos=self.gamma_pos,
            clip=self.clip,
            reduction=self.reduction,
        )


class ClassBalancedBCELoss(nn.Module):
    """Module form of :func:`class_balanced_bce_loss`.

    The per-label weights are computed once from ``label_counts`` and kept in the
    buffer ``label_weights`` of shape (labels,).
    """

    def __init__(self, label_counts: Tensor, beta: float = 0.999, reduction: str = "mean") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.beta = beta
        self.reduction = reduction
        self.register_buffer("label_weights", class_balanced_weights(label_counts, beta))

    def forward(self, logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        check_logits_targets(logits, targets)
        return _class_balanced_bce(logits, targets, weights, self.label_weights, self.reduction)
