"""The training plan: everything a training process needs, decided on the driver.

The plan is pickled to every process, so it contains plain values and the Petastorm
converters only, never a Spark session or DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainingPlan:
    """Settings, labels and data of one training run, the same for every process.

    Attributes
    ----------
    launcher : str
        ``horovod``, ``horovodrun`` or ``torch_distributor``; recorded in the logs.
    num_proc : int
        Processes the launcher starts.
    output_dir : str
        Absolute run folder: checkpoints, rank records and the final model.
    labels, segments, label_counts : list
        Label of every output column, its segment id and its train count.
    model : dict
        ``CodingModelConfig.to_dict()``.
    loss : str
        Loss name for ``shl.losses.build_loss``; ``loss_options`` its keyword options.
    batch_size : int
        Documents per process and batch.
    micro_batches_per_epoch : int
        Batches every process runs per epoch, a multiple of ``grad_accumulation``.
    total_steps, warmup_steps : int
        Optimiser steps of the whole run and of the warm-up.
    learning_rate : float
        The peak learning rate, already multiplied by the process count when
        ``training.scale_lr_with_workers`` is set.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    config : dict
        The full run configuration, stored in checkpoints.
    data : object
        A source with ``open_train(rank, size, batch_size)`` and ``open_val(batch_size)``
        context managers, such as ``shl.training.data.PetastormSource``.
    """

    launcher: str
    num_proc: int
    output_dir: str
    labels: list[str]
    segments: list[int]
    label_counts: list[int]
    model: dict[str, Any]
    loss: str
    loss_options: dict[str, Any]
    batch_size: int
    grad_accumulation: int
    micro_batches_per_epoch: int
    epochs: int
    max_steps: int
    total_steps: int
    warmup_steps: int
    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    mixed_precision: bool
    device: str
    seed: int
    early_stopping_patience: int
    stop_after_epochs: int
    log_every_steps: int
    keep_checkpoints: int
    config: dict[str, Any] = field(default_factory=dict)
    data: Any = None

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch."""
        return self.micro_batches_per_epoch // self.grad_accumulation

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Return what a checkpoint must match to be resumed: labels, segments and model settings."""
        return {"labels": self.labels, "segments": self.segments, "model": self.model, "config": self.config}
