"""Epoch checkpoints in ``<output_dir>/checkpoints`` and resuming from the latest one.

A checkpoint is a folder ``epoch-<NNNN>`` with:

- ``model.safetensors``: the model's weights (encoder and head);
- ``training_state.pt``: optimizer, scheduler, gradient-scaler and loss state
  (``torch.save``; read back with ``weights_only=True``);
- ``state.json``: epochs completed, optimiser step, early-stopping state, the metric
  history, the run configuration, the label index and the segments.

The folder is written under a temporary name and renamed, then the file ``latest``
is replaced with its name, so a run killed while writing leaves the previous
checkpoint as the latest one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

import safetensors.torch
import torch
from torch import nn

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.json"
TRAINING_STATE_FILE = "training_state.pt"


@dataclass
class TrainState:
    """Progress of a run, saved in every checkpoint.

    Attributes
    ----------
    epochs_completed : int
        Epochs finished, validation and checkpoint included.
    step : int
        Optimiser steps taken.
    best_metric : float
        Best validation micro-F1 so far; -1 before the first validation.
    best_epoch : int
        Epoch (1-based) of ``best_metric``; 0 before the first validation.
    epochs_without_improvement : int
        Validations since the last improvement, for early stopping.
    stopped_early : bool
        Early stopping ended the run.
    history : list of dict
        One entry per epoch: its number, step, train loss and validation metrics.
    """

    epochs_completed: int = 0
    step: int = 0
    best_metric: float = -1.0
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    folder: str
    state: TrainState
    weights: dict[str, torch.Tensor]
    training_state: dict[str, Any]
    metadata: dict[str, Any]


def checkpoint_root(output_dir: str) -> str:
    return os.path.join(output_dir, CHECKPOINTS)


def _write_text_atomically(path: str, text: str) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def save_checkpoint(
    output_dir: str,
    model: nn.Module,
    training_state: dict[str, Any],
    state: TrainState,
    metadata: dict[str, Any],
    keep: int = 2,
) -> str:
    """Write a checkpoint for ``state.epochs_completed`` and make it the latest.

    Parameters
    ----------
    output_dir : str
        Run folder; checkpoints go to ``<output_dir>/checkpoints``.
    model : nn.Module
        The unwrapped model (not the DDP wrapper).
    training_state : dict
        ``optimizer``, ``scheduler``, ``scaler`` and ``loss`` state dicts.
    state : TrainState
    metadata : dict
        JSON-serialisable run description: ``config``, ``labels``, ``segments``, ``model``.
    keep : int
        Checkpoints to keep; older ones are deleted.

    Returns
    -------
    str
        The checkpoint folder.
    """
    root = checkpoint_root(output_dir)
    os.makedirs(root, exist_ok=True)
    name = f"epoch-{state.epochs_completed:04d}"
    folder = os.path.join(root, name)
    temporary = folder + ".tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)

    safetensors.torch.save_model(model, os.path.join(temporary, WEIGHTS_FILE))
    torch.save(training_state, os.path.join(temporary, TRAINING_STATE_FILE))
    payload = {"state": asdict(state), **metadata}
    with open(os.path.join(temporary, STATE_FILE), "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)

    shutil.rmtree(folder, ignore_errors=True)
    os.replace(temporary, folder)
    _write_text_atomically(os.path.join(root, LATEST), name + "\n")
    _prune(root, keep)
    logger.info("Saved checkpoint %s (epoch %d, step %d)", folder, state.epochs_completed, state.step)
    return folder


def _prune(root: str, keep: int) -> None:
    names = sorted(name for name in os.listdir(root) if name.startswith("epoch-") and not name.endswith(".tmp"))
    for name in names[: max(0, len(names) - max(1, keep))]:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def latest_checkpoint_folder(output_dir: str) -> str | None:
    """Return the folder named by ``checkpoints/latest``, or None when there is none."""
    pointer = os.path.join(checkpoint_root(output_dir), LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, encoding="utf-8") as handle:
        name = handle.read().strip()
    folder = os.path.join(checkpoint_root(output_dir), name)
    if not os.path.isfile(os.path.join(folder, STATE_FILE)):
        raise FileNotFoundError(
            f"{pointer} names checkpoint {name!r}, but {folder} has no {STATE_FILE}; delete {pointer} to start "
            "the run over or restore the checkpoint folder"
        )
    return folder


def load_checkpoint(folder: str, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint`."""
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as handle:
        payload = json.load(handle)
    state = TrainState(**payload.pop("state"))
    weights = safetensors.torch.load_file(os.path.join(folder, WEIGHTS_FILE), device=str(map_location))
    training_state = torch.load(
        os.path.join(folder, TRAINING_STATE_FILE), map_location=map_location, weights_only=True
    )
    return Checkpoint(folder=folder, state=state, weights=weights, training_state=training_state, metadata=payload)


def check_compatible(checkpoint: Checkpoint, metadata: dict[str, Any], output_dir: str) -> None:
    """Raise ValueError when a checkpoint was made for other labels, segments or model settings."""
    for key in ("labels", "segments", "model"):
        if checkpoint.metadata.get(key) != metadata.get(key):
            raise ValueError(
                f"the checkpoint {checkpoint.folder} was made with different {key} than this run; "
                f"set training.output_dir to a new folder, or delete {checkpoint_root(output_dir)} to "
                "start over in this one"
            )


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load checkpoint weights into a model, all names required.

    ``safetensors.torch.save_model`` drops the second name of tied tensors, so names
    missing from the file that share storage with a loaded tensor are accepted.
    """
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise ValueError(f"checkpoint weights have names the model lacks, such as {unexpected[:5]}; the checkpoint is from another model")
    state = model.state_dict()
    stored = {state[name].data_ptr() for name in weights}
    untied = [name for name in missing if state[name].data_ptr() not in stored]
    if untied:
        raise ValueError(f"checkpoint weights are missing {len(untied)} names of the model, such as {untied[:5]}")
