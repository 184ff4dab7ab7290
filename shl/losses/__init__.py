"""Multi-label losses: the Segmented Harmonic Loss and baselines (BCE, focal, ASL, CB)."""

from shl.losses.baselines import (
    AsymmetricLoss,
    BinaryCrossEntropyLoss,
    ClassBalancedBCELoss,
    FocalLoss,
    asymmetric_loss,
    binary_cross_entropy_loss,
    class_balanced_bce_loss,
    class_balanced_weights,
    sigmoid_focal_loss,
)
from shl.losses.factory import LOSS_NAMES, LOSS_OPTIONS, build_loss
from shl.losses.shl_loss import SegmentedHarmonicLoss, segmented_harmonic_loss

__all__ = [
    "AsymmetricLoss",
    "BinaryCrossEntropyLoss",
    "ClassBalancedBCELoss",
    "FocalLoss",
    "LOSS_NAMES",
    "LOSS_OPTIONS",
    "SegmentedHarmonicLoss",
    "asymmetric_loss",
    "binary_cross_entropy_loss",
    "build_loss",
    "class_balanced_bce_loss",
    "class_balanced_weights",
    "segmented_harmonic_loss",
    "sigmoid_focal_loss",
]
