"""The Segmented Harmonic Loss (SHL) for multi-label coding.

The labels are split into K segments (for example ICD chapters, or frequency bands).
For a batch with probabilities ``p = sigmoid(logits)``, targets ``y`` and per-entry
weights ``w``, segment k with label set S_k gets soft counts summed over the batch rows
and the labels in S_k::

    TP_k = sum w p y        FP_k = sum w p (1 - y)        FN_k = sum w (1 - p) y
    F1_k = (2 TP_k + eps) / (2 TP_k + FP_k + FN_k + eps)

The F1 term combines the F1_k of the selected segments into H, the harmonic mean
``|A| / sum_{k in A} 1 / F1_k`` (or their arithmetic mean). The base term is a per-entry
loss (BCE or ASL) averaged inside each segment and then over segments. The loss is::

    SHL = lam * base + (1 - lam) * (1 - H)

The harmonic mean is dominated by the worst segment, so the gradient concentrates on
the segments with the lowest soft F1.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shl.losses.baselines import (
    asymmetric_loss_elementwise,
    check_asymmetric_options,
    check_choice,
    check_logits_targets,
    compute_dtype,
    expand_weights,
)

logger = logging.getLogger(__name__)

COMBINES = ("harmonic", "arithmetic")
BASES = ("bce", "asl")
# The F1 term couples all rows of the batch, so SHL has no per-entry ("none") form.
SHL_REDUCTIONS = ("mean",)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_options(
    lam: float,
    eps: float,
    combine: str,
    active_only: bool,
    base: str,
    reduction: str,
    asl_gamma_neg: float,
    asl_gamma_pos: float,
    asl_clip: float,
) -> None:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        raise ValueError(f"invalid lam {lam!r}: expected a number in [0, 1]")
    # eps > 0 keeps every F1_k positive, so 1 / F1_k and its gradient stay finite.
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
        raise ValueError(f"invalid eps {eps!r}: expected a finite number > 0")
    check_choice("combine", combine, COMBINES)
    if not isinstance(active_only, bool):
        raise ValueError(f"invalid active_only {active_only!r}: expected True or False")
    check_choice("base", base, BASES)
    check_choice("reduction", reduction, SHL_REDUCTIONS)
    check_asymmetric_options(asl_gamma_neg, asl_gamma_pos, asl_clip)


def check_momentum(momentum: float | None) -> None:
    """Raise ValueError unless ``momentum`` is None or a number in [0, 1)."""
    if momentum is None:
        return
    is_number = isinstance(momentum, (int, float)) and not isinstance(momentum, bool)
    if not is_number or not 0 <= momentum < 1:
        raise ValueError(f"invalid momentum {momentum!r}: expected None or a number in [0, 1)")


def validate_segments(
    segments: Tensor | list[int], num_labels: int | None = None, num_segments: int | None = None
) -> tuple[Tensor, int]:
    """Check segment ids and return them as int64 together with the segment count K.

    Parameters
    ----------
    segments : Tensor or list of int
        Segment id of every label, shape (labels,).
    num_labels : int, optional
        Expected number of labels. Default None accepts any length >= 1.
    num_segments : int, optional
        Segment count K. Default ``max(segments) + 1``.

    Returns
    -------
    tuple of (Tensor, int)
        The ids as an int64 tensor of shape (labels,) and K.

    Raises
    ------
    ValueError
        If the ids are not a non-empty 1-D integer sequence of length ``num_labels``, or lie
        outside ``0 .. K - 1``, or ``num_segments`` is not a positive integer.
    """
    ids = torch.as_tensor(segments)
    if ids.dim() != 1:
        raise ValueError(f"segments must have shape (labels,), got shape {tuple(ids.shape)}")
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"segments must hold integer ids, got dtype {ids.dtype}")
    if num_labels is not None and ids.shape[0] != num_labels:
        raise ValueError(
            f"segments has {ids.shape[0]} entries but there are {num_labels} labels"
        )
    if ids.shape[0] == 0:
        raise ValueError("the loss needs at least one label, got 0 labels")
    if num_segments is not None and (
        isinstance(num_segments, bool) or not isinstance(num_segments, int) or num_segments < 1
    ):
        raise ValueError(f"invalid num_segments {num_segments!r}: expected an integer >= 1")

    low, high = (int(value) for value in torch.aminmax(ids))
    count = high + 1 if num_segments is None else num_segments
    if low < 0 or high >= count:
        raise ValueError(
            f"segment ids must lie in 0..{count - 1}, got ids from {low} to {high}"
        )
    return ids.to(torch.long), count


# ---------------------------------------------------------------------------
# Core computation
# ---------------------------------------------------------------------------


def _segment_sums(values: Tensor, segment_ids: Tensor, num_segments: int) -> Tensor:
    # values: (rows, labels) -> (rows, K), summed over the labels of each segment.
    sums = torch.zeros(
        (values.shape[0], num_segments), dtype=values.dtype, device=values.device
    )
    return sums.index_add(1, segment_ids, values)


def _combine_f1(f1: Tensor, selected: Tensor, combine: str) -> Tensor:
    """Return ``1 - H`` over the selected segments, or 0 when none is selected."""
    # f1, selected: (K,)
    count = selected.sum().to(f1.dtype)
    any_selected = count > 0
    if combine == "harmonic":
        inverse_sum = torch.where(selected, 1.0 / f1, torch.zeros_like(f1)).sum()
        # The safe denominator keeps the unused branch of torch.where finite, so no NaN
        # reaches the gradient when no segment is selected.
        safe_sum = torch.where(any_selected, inverse_sum, torch.ones_like(inverse_sum))
        mean_f1 = count / safe_sum
    else:
        mean_f1 = torch.where(selected, f1, torch.zeros_like(f1)).sum() / count.clamp(min=1.0)
    return torch.where(any_selected, 1.0 - mean_f1, torch.zeros_like(mean_f1))


def _shl_with_counts(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor | None,
    segment_ids: Tensor,
    num_segments: int,
    *,
    lam: float,
    eps: float,
    combine: str,
    active_only: bool,
    base: str,
    running_counts: Tensor | None,
    asl_gamma_neg: float,
    asl_gamma_pos: float,
    asl_clip: float,
) -> tuple[Tensor, Tensor]:
    """Return the loss and the detached batch soft counts, shape (3, K) for TP, FP, FN.

    Inputs must be validated already.
    """
    dtype = compute_dtype(logits)
    segment_ids = segment_ids.to(logits.device)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)  # (batch, labels)
        y = targets.to(dtype)  # (batch, labels)
        # None means all ones. The multiplications by w are then skipped, which saves
        # several passes over the (batch, labels) entries.
        w = expand_weights(weights, logits, dtype)

        # Soft confusion counts per label, then per segment. FP and FN are computed as
        # sum(w p) - TP and sum(w y) - TP, which equals the definitions in exact arithmetic.
        p = torch.sigmoid(x)
        weighted_p = p if w is None else w * p
        weighted_y = y if w is None else w * y
        true_positive = (weighted_p * y).sum(0)  # (labels,)
        false_positive = weighted_p.sum(0) - true_positive
        false_negative = weighted_y.sum(0) - true_positive
        # A segment is active when it has a target equal to 1 in this batch, whatever
        # the weight of that entry. Targets lie in [0, 1], so a label has such a target
        # exactly when its maximum over the batch is 1.
        if targets.shape[0] > 0:
            has_positive = (targets.amax(0) == 1).to(dtype)  # (labels,)
        else:
            has_positive = torch.zeros(targets.shape[1], dtype=dtype, device=logits.device)
        per_label = torch.stack(
            (true_positive, false_positive, false_negative, has_positive)
        )  # (4, labels)
        segment_totals = _segment_sums(per_label, segment_ids, num_segments)  # (4, K)
        batch_counts = segment_totals[:3]  # (3, K): TP, FP, FN
        positives = segment_totals[3]  # (K,)

        counts = batch_counts
        if running_counts is not None:
            counts = batch_counts + running_counts.to(device=logits.device, dtype=dtype)
        tp, fp, fn = counts.unbind(0)  # each (K,)
        f1 = (2.0 * tp + eps) / (2.0 * tp + fp + fn + eps)  # (K,)

        if active_only:
            selected = positives > 0
        else:
            selected = torch.ones(num_segments, dtype=torch.bool, device=logits.device)
        f1_term = _combine_f1(f1, selected, combine)

        # Base term: weighted mean inside each segment, then the mean over segments.
        if base == "bce":
            per_entry = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        else:
            per_entry = asymmetric_loss_elementwise(
                x, y, gamma_neg=asl_gamma_neg, gamma_pos=asl_gamma_pos, clip=asl_clip
            )
        if w is None:
            label_loss = per_entry.sum(0)  # (labels,)
            label_weight = torch.full_like(label_loss, float(x.shape[0]))
        else:
            label_loss = (w * per_entry).sum(0)
            label_weight = w.sum(0)
        segment_loss, segment_weight = _segment_sums(
            torch.stack((label_loss, label_weight)), segment_ids, num_segments
        ).unbind(0)  # each (K,)
        weighted_segment = segment_weight > 0
        segment_mean = segment_loss / torch.where(
            weighted_segment, segment_weight, torch.ones_like(segment_weight)
        )
        base_term = segment_mean.sum() / weighted_segment.sum().to(dtype).clamp(min=1.0)

        loss = lam * base_term + (1.0 - lam) * f1_term
    return loss, batch_counts.detach()


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def segmented_harmonic_loss(
    logits: Tensor,
    targets: Tensor,
    segments: Tensor | list[int],
    weights: Tensor | None = None,
    *,
    lam: float = 0.5,
    eps: float = 1.0,
    combine: str = "harmonic",
    active_only: bool = True,
    base: str = "bce",
    num_segments: int | None = None,
    reduction: str = "mean",
    running_counts: Tensor | None = None,
    asl_gamma_neg: float = 4.0,
    asl_gamma_pos: float = 0.0,
    asl_clip: float = 0.05,
) -> Tensor:
    """Compute the Segmented Harmonic Loss ``lam * base + (1 - lam) * (1 - H)``.

    Soft counts per segment k, summed over batch rows and the labels of segment k,
    with ``p = sigmoid(logits)``::

        TP_k = sum w p y,   FP_k = sum w p (1 - y),   FN_k = sum w (1 - p) y
        F1_k = (2 TP_k + eps) / (2 TP_k + FP_k + FN_k + eps)

    With ``combine="harmonic"``, ``H = |A| / sum_{k in A} 1 / F1_k``, and with
    ``"arithmetic"`` H is the mean of F1_k over A. With ``active_only=True``, A contains
    the segments that have at least one target equal to 1 in the batch (the weight of
    that entry does not matter). With ``active_only=False``, A contains all K segments,
    and a segment without labels or weight then has F1_k = eps / eps = 1. When A is
    empty, the F1 term ``1 - H`` is 0, so the loss is ``lam * base``, still attached
    to the graph.

    The base term is the per-entry loss (BCE with logits, or ASL) times ``w``, summed
    within each segment and divided by the segment's weight sum, which is a weighted
    mean. It is then averaged over the segments with a positive weight sum, so every
    segment counts equally. Segments with weight sum 0 are left out of that average.
    If no segment has weight, the base term is 0.

    With weights all ones, the within-segment mean equals the plain mean over
    ``batch * |S_k|`` entries. Entries of weight 0 change nothing, except that a
    target of 1 on such an entry still makes its segment active.

    Everything is computed in ``torch.promote_types(logits.dtype, torch.float32)``
    with autocast disabled: float32 for half or bfloat16 inputs, float64 for float64.

    Parameters
    ----------
    logits : Tensor
        Raw scores (not probabilities), shape (batch, labels).
    targets : Tensor
        Targets in [0, 1], shape (batch, labels).
    segments : Tensor or list of int
        Segment id in ``0 .. K - 1`` of every label, shape (labels,).
    weights : Tensor, optional
        Non-negative per-entry weights broadcastable to (batch, labels). Default ones.
    lam : float
        Weight of the base term in [0, 1], default 0.5.
    eps : float
        Smoothing added to numerator and denominator of every F1_k, > 0, default 1.
        The counts are sums over the batch, so eps matters less for larger batches.
    combine : {"harmonic", "arithmetic"}
        How the per-segment F1 values are combined, default "harmonic".
    active_only : bool
        Combine only segments with a positive in the batch, default True.
    base : {"bce", "asl"}
        Per-entry loss of the base term, default "bce".
    num_segments : int, optional
        Segment count K. Default ``max(segments) + 1``.
    reduction : {"mean"}
        Only "mean" is supported, because the F1 term is a batch-level quantity.
    running_counts : Tensor, optional
        Extra soft counts of shape (3, K), rows TP, FP, FN, added to the batch counts
        before F1_k is computed. :class:`SegmentedHarmonicLoss` uses it for its running
        counts. Gradients do not flow into it.
    asl_gamma_neg, asl_gamma_pos, asl_clip : float
        ASL options used when ``base="asl"``, defaults 4, 0 and 0.05.

    Returns
    -------
    Tensor
        The scalar loss, float32 (float64 for float64 logits).

    Raises
    ------
    ValueError
        On an invalid option, mismatched shapes, segment ids out of range, targets
        outside [0, 1] or negative weights.
    """
    _check_options(
        lam, eps, combine, active_only, base, reduction, asl_gamma_neg, asl_gamma_pos, asl_clip
    )
    check_logits_targets(logits, targets)
    segment_ids, count = validate_segments(segments, logits.shape[1], num_segments)
    if running_counts is not None and tuple(running_counts.shape) != (3, count):
        raise ValueError(
            f"running_counts must have shape (3, {count}), got {tuple(running_counts.shape)}"
        )
    loss, _ = _shl_with_counts(
        logits,
        targets,
        weights,
        segment_ids,
        count,
        lam=lam,
        eps=eps,
        combine=combine,
        active_only=active_only,
        base=base,
        running_counts=running_counts,
        asl_gamma_neg=asl_gamma_neg,
        asl_gamma_pos=asl_gamma_pos,
        asl_clip=asl_clip,
    )
    return loss


class SegmentedHarmonicLoss(nn.Module):
    """Segmented Harmonic Loss module with optional running soft counts.

    The module stores the segment ids (buffer ``segments``) and is called as
    ``loss(logits, targets, weights=None)``, like the baseline losses. See
    :func:`segmented_harmonic_loss` for the formula and the other options.

    Running counts: with ``momentum`` m set, the buffer ``running_counts`` of shape
    (3, K), rows TP, FP, FN, starts at zero. Every forward uses
    ``counts = batch_counts + running_counts`` for F1_k, and after a forward in training
    mode the buffer becomes ``m * (running_counts + batch_counts.detach())``. At step t
    the counts used are therefore ``C_t + m C_{t-1} + m^2 C_{t-2} + ...``, a decayed sum
    over earlier batches that carries no gradient. In eval mode the buffer is used but
    not updated. The active segments still come from the current batch only.

    Parameters
    ----------
    segments : Tensor or list of int
        Segment id of every label, shape (labels,).
    num_segments : int, optional
        Segment count K. Default ``max(segments) + 1``.
    momentum : float, optional
        Decay in [0, 1) of the running counts. Default None turns them off.
    lam, eps, combine, active_only, base, reduction, asl_gamma_neg, asl_gamma_pos, asl_clip
        As in :func:`segmented_harmonic_loss`.

    Raises
    ------
    ValueError
        On an invalid option or invalid segment ids.
    """

    def __init__(
        self,
        segments: Tensor | list[int],
        *,
        num_segments: int | None = None,
        lam: float = 0.5,
        eps: float = 1.0,
        combine: str = "harmonic",
        active_only: bool = True,
        base: str = "bce",
        momentum: float | None = None,
        reduction: str = "mean",
        asl_gamma_neg: float = 4.0,
        asl_gamma_pos: float = 0.0,
        asl_clip: float = 0.05,
    ) -> None:
        super().__init__()
        _check_options(
            lam, eps, combine, active_only, base, reduction, asl_gamma_neg, asl_gamma_pos, asl_clip
        )
        check_momentum(momentum)
        segment_ids, count = validate_segments(segments, num_segments=num_segments)
        self.num_segments = count
        self.lam = lam
        self.eps = eps
        self.combine = combine
        self.active_only = active_only
        self.base = base
        self.momentum = momentum
        self.reduction = reduction
        self.asl_gamma_neg = asl_gamma_neg
        self.asl_gamma_pos = asl_gamma_pos
        self.asl_clip = asl_clip
        self.register_buffer("segments", segment_ids)
        running = None if momentum is None else torch.zeros(3, count, dtype=torch.float32)
        self.register_buffer("running_counts", running)

    def extra_repr(self) -> str:
        return (
            f"num_labels={self.segments.shape[0]}, num_segments={self.num_segments}, "
            f"lam={self.lam}, eps={self.eps}, combine={self.combine!r}, "
            f"active_only={self.active_only}, base={self.base!r}, momentum={self.momentum}"
        )

    def reset_running_counts(self) -> None:
        """Set the running counts to zero. Does nothing when momentum is None."""
        if self.running_counts is not None:
            self.running_counts.zero_()

    def forward(self, logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """Return the scalar loss for logits and targets of shape (batch, labels)."""
        check_logits_targets(logits, targets)
        if logits.shape[1] != self.segments.shape[0]:
            raise ValueError(
                f"logits have {logits.shape[1]} labels but the loss was built for "
                f"{self.segments.shape[0]} labels"
            )
        loss, batch_counts = _shl_with_counts(
            logits,
            targets,
            weights,
            self.segments,
            self.num_segments,
            lam=self.lam,
            eps=self.eps,
            combine=self.combine,
            active_only=self.active_only,
            base=self.base,
            running_counts=self.running_counts,
            asl_gamma_neg=self.asl_gamma_neg,
            asl_gamma_pos=self.asl_gamma_pos,
            asl_clip=self.asl_clip,
        )
        if self.training and self.running_counts is not None:
            # A new tensor, not an in-place update, so that a graph which read the old
            # buffer is never invalidated.
            updated = self.momentum * (
                self.running_counts + batch_counts.to(self.running_counts.dtype)
            )
            self.running_counts = updated.detach()
        return loss
