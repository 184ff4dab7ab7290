"""AdamW with decoupled weight decay and a linear warm-up then linear decay schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters whose names contain one of these get no weight decay, as is usual for
# transformers: biases and layer-norm weights.
NO_DECAY_MARKERS = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Return the learning-rate factor at optimiser step ``step`` (0-based).

    The factor rises linearly from 0 at step 0 to 1 at ``warmup_steps``, then falls
    linearly to 0 at ``total_steps``. Without warm-up it starts at 1.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if step < warmup_steps:
        return step / warmup_steps
    remaining = total_steps - warmup_steps
    if remaining <= 0:
        return 0.0
    return max(0.0, (total_steps - step) / remaining)


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """Return the warm-up length in optimiser steps: ``ceil(total_steps * warmup_ratio)``."""
    return int(math.ceil(total_steps * warmup_ratio))


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """Return AdamW with weight decay on all parameters except biases and norm weights."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if any(marker in name for marker in NO_DECAY_MARKERS) else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([group for group in groups if group["params"]], lr=learning_rate)


class WarmupDecay:
    """Picklable schedule function for ``torch.optim.lr_scheduler.LambdaLR``."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        return linear_warmup_decay(step, self.warmup_steps, self.total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Return a LambdaLR with :func:`linear_warmup_decay`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupDecay(warmup_steps, total_steps))
