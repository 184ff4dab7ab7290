"""Save and load a :class:`CodingModel` with its label index, segments and thresholds.

A saved model is a folder with:

- ``model.safetensors``: the full state dict (encoder and head);
- ``config.json``: the model settings, the encoder's Hugging Face config, the label
  index, the segment id of every label and the decision thresholds;
- the tokenizer files written by ``tokenizer.save_pretrained``, so that scoring can
  tokenize with ``load_tokenizer(folder)``.

Loading rebuilds the encoder from the stored config, so the original encoder files are
not needed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from shl.model.coding_model import CodingModel, CodingModelConfig, load_tokenizer

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


@dataclass
class SavedModelMetadata:
    """Metadata stored next to the weights of a saved model.

    Attributes
    ----------
    config : CodingModelConfig
        Model settings, including ``chunk_len`` and ``max_chunks`` for tokenization.
    label_index : list of str
        Label (code) of every output column, in logit order.
    segments : list of int
        Segment id of every label, in logit order.
    thresholds : dict
        Decision thresholds as saved, for example ``{"global": 0.5}``.
    tokenizer_path : str
        Folder to load the tokenizer from.
    """

    config: CodingModelConfig
    label_index: list[str]
    segments: list[int]
    thresholds: dict[str, Any]
    tokenizer_path: str


def _detached_state_dict(model: torch.nn.Module) -> dict[str, Tensor]:
    """Return a CPU state dict in which no two tensors share memory.

    ``safetensors.torch.save_file`` rejects tensors that share storage, as tied weights
    do. The second and later names of a shared storage get their own copy, so loading
    restores every name, and modules that tie weights at construction tie them again.
    """
    tensors: dict[str, Tensor] = {}
    seen_storages: set[tuple[int, int]] = set()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        storage_key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if storage_key in seen_storages:
            tensor = tensor.clone()
        else:
            seen_storages.add(storage_key)
        tensors[name] = tensor.contiguous()
    return tensors


def _check_metadata(
    model: CodingModel, label_index: list[str], segments: list[int], thresholds: dict
) -> None:
    num_labels = model.config.num_labels
    if len(label_index) != num_labels:
        raise ValueError(
            f"label_index has {len(label_index)} entries but the model has {num_labels} labels"
        )
    if not all(isinstance(label, str) for label in label_index):
        raise ValueError("label_index must contain only strings")
    if len(set(label_index)) != len(label_index):
        raise ValueError("label_index contains duplicate labels")
    if len(segments) != num_labels:
        raise ValueError(
            f"segments has {len(segments)} entries but the model has {num_labels} labels"
        )
    if not all(isinstance(segment, int) and segment >= 0 for segment in segments):
        raise ValueError("segments must contain only integers >= 0")
    if not isinstance(thresholds, dict):
        raise ValueError(f"thresholds must be a dict, got {type(thresholds).__name__}")


def _write_json_atomically(path: str, payload: dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(temporary, path)


def save_model(
    model: CodingModel,
    folder: str | os.PathLike[str],
    label_index: list[str],
    segments: list[int],
    thresholds: dict[str, Any],
    tokenizer=None,
    training: dict[str, Any] | None = None,
) -> None:
    """Write the model, its metadata and its tokenizer files to ``folder``.

    Parameters
    ----------
    model : CodingModel
        The model to save.
    folder : str or path
        Output folder, created if missing. Existing files of the same names are replaced.
    label_index : list of str
        Label of every logit column; unique, length ``num_labels``.
    segments : list of int
        Segment id (>= 0) of every label, length ``num_labels``.
    thresholds : dict
        JSON-serialisable decision thresholds.
    tokenizer : transformers tokenizer, optional
        Tokenizer to save. Default: loaded from ``model.tokenizer_source``.
    training : dict, optional
        JSON-serialisable facts about how the model was trained (loss, options, seed),
        stored for evaluation reports; see :func:`read_saved_config`.

    Raises
    ------
    ValueError
        If the metadata does not fit the model or is not JSON-serialisable.
    """
    label_index = list(label_index)
    segments = [int(segment) for segment in segments]
    _check_metadata(model, label_index, segments, thresholds)
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "encoder_config": model.encoder.config.to_dict(),
        "label_index": label_index,
        "segments": segments,
        "thresholds": thresholds,
        "training": training or {},
    }
    try:
        json.dumps(payload)
    except TypeError as error:
        raise ValueError(f"metadata is not JSON-serialisable: {error}") from error

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if tokenizer is None:
        tokenizer = load_tokenizer(model.tokenizer_source)
    tokenizer.save_pretrained(folder)

    weights_path = os.path.join(folder, WEIGHTS_FILE)
    safetensors.torch.save_file(
        _detached_state_dict(model), weights_path + ".tmp", metadata={"format": "pt"}
    )
    os.replace(weights_path + ".tmp", weights_path)
    # config.json is written last, so a folder that has it contains a complete model.
    _write_json_atomically(os.path.join(folder, CONFIG_FILE), payload)
    logger.info(
        "Saved model with %d labels (%s head) to %s",
        model.config.num_labels,
        model.config.head,
        folder,
    )


def read_saved_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``config.json`` of a saved model without loading its weights.

    The mapping has ``label_index``, ``segments``, ``thresholds``, ``model`` and
    ``training`` (empty for models saved without it).

    Raises
    ------
    FileNotFoundError
        If the folder has no ``config.json``.
    ValueError
        If the file is not valid JSON.
    """
    path = os.path.join(os.fspath(folder), CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing {CONFIG_FILE} in model folder {os.fspath(folder)}; train a model there first")
    with open(path, encoding="utf-8") as handle:
        try:
            payload = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON in {path}: {error}") from error
    payload.setdefault("training", {})
    return payload


def load_model(
    folder: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[CodingModel, SavedModelMetadata]:
    """Rebuild a model saved by :func:`save_model`, in eval mode.

    Parameters
    ----------
    folder : str or path
        Folder written by :func:`save_model`.
    map_location : str or torch.device
        Device for the weights, default "cpu".

    Returns
    -------
    tuple of (CodingModel, SavedModelMetadata)
        The model and its label index, segments, thresholds and tokenizer folder.

    Raises
    ------
    FileNotFoundError
        If the folder, ``config.json`` or ``model.safetensors`` is missing.
    ValueError
        If ``config.json`` is invalid or the weights do not match the model.
    """
    from transformers import AutoConfig, AutoModel

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"model folder not found: {folder}")
    config_path = os.path.join(folder, CONFIG_FILE)
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"missing {os.path.basename(path)} in model folder: {path}")

    payload = read_saved_config(folder)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported format_version {payload.get('format_version')!r} in {config_path}: "
            f"expected {FORMAT_VERSION}"
        )
    missing_keys = [
        key
        for key in ("model", "encoder_config", "label_index", "segments", "thresholds")
        if key not in payload
    ]
    if missing_keys:
        raise ValueError(f"{config_path} lacks the keys {missing_keys}")

    config = CodingModelConfig.from_dict(payload["model"])
    encoder_settings = dict(payload["encoder_config"])
    model_type = encoder_settings.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"encoder_config in {config_path} lacks model_type")
    encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **encoder_settings))
    model = CodingModel(config, encoder)

    state = safetensors.torch.load_file(weights_path, device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{weights_path} does not match the model in {config_path}: {error}"
        ) from error
    model.to(map_location)
    model.tokenizer_source = folder
    model.eval()

    metadata = SavedModelMetadata(
        config=config,
        label_index=list(payload["label_index"]),
        segments=[int(segment) for segment in payload["segments"]],
        thresholds=dict(payload["thresholds"]),
        tokenizer_path=folder,
    )
    _check_metadata(model, metadata.label_index, metadata.segments, metadata.thresholds)
    logger.info("Loaded model with %d labels from %s", config.num_labels, folder)
    return model, metadata
