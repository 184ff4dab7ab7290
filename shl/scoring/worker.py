"""Scoring inside Spark Python workers: the model is loaded once per worker."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shl.scoring.predict import label_thresholds, predict_probabilities, thresholded_labels, top_k_labels

logger = logging.getLogger(__name__)

EMPTY_DOCUMENT = "empty_after_cleaning"
DOCUMENT_TOO_LARGE = "document_too_large"
OUTPUT_COLUMNS = ["doc_id", "top_codes", "predicted_codes", "probabilities", "reason", "detail"]
_MLFLOW_PREFIXES = ("runs:/", "models:/", "mlflow-artifacts:/")


@dataclass
class LoadedModel:
    """A model ready to score, with its labels, thresholds and chunk settings."""

    model: object
    tokenizer: object
    labels: list[str]
    thresholds: np.ndarray
    chunk_len: int
    max_chunks: int
    device: str


# Worker-side cache: one model per (location, device) for the life of the Python worker.
_LOADED: dict[tuple[str, str], LoadedModel] = {}


def local_model_folder(location: str) -> str:
    """Return a local folder for a model folder path or an MLflow model URI.

    MLflow URIs are downloaded once per process into a temporary folder.
    """
    if not location.startswith(_MLFLOW_PREFIXES):
        return location
    import mlflow

    return mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tempfile.mkdtemp(prefix="shl-model-"))


def select_device(requested: str) -> str:
    """Return the torch device for this worker: its Spark-assigned GPU, any GPU, or the CPU.

    Raises
    ------
    RuntimeError
        If ``requested`` is ``cuda`` and no GPU is visible.
    """
    import torch

    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError("scoring.device is cuda but this worker sees no GPU; set scoring.device=auto or cpu")
    from pyspark import TaskContext

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    if gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    return "cuda:0"


def load_for_scoring(location: str, device: str) -> LoadedModel:
    """Load (once per worker) the model, its tokenizer and its thresholds."""
    key = (location, device)
    if key not in _LOADED:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from shl.model.coding_model import load_tokenizer
        from shl.model.io import load_model

        folder = local_model_folder(location)
        model, metadata = load_model(folder, map_location=device)
        tokenizer = load_tokenizer(metadata.tokenizer_path)
        tokenizer.model_max_length = 10**9
        _LOADED[key] = LoadedModel(
            model=model,
            tokenizer=tokenizer,
            labels=list(metadata.label_index),
            thresholds=label_thresholds(metadata.thresholds, metadata.segments),
            chunk_len=metadata.config.chunk_len,
            max_chunks=metadata.config.max_chunks,
            device=device,
        )
        logger.info("Loaded model %s on %s for scoring (%d labels)", folder, device, len(metadata.label_index))
    return _LOADED[key]


def score_batches(
    batches: Iterator[pd.DataFrame],
    *,
    location: str,
    device: str,
    top_k: int,
    batch_size: int,
    max_document_chars: int,
    store_probabilities: bool,
) -> Iterator[pd.DataFrame]:
    """Score batches of (doc_id, text) rows; used with ``mapInPandas``.

    Rows that cannot be scored (empty, or longer than ``max_document_chars``) come back
    with a reason and no predictions; the job quarantines them.
    """
    loaded = load_for_scoring(location, select_device(device))
    for batch in batches:
        texts = batch["text"].fillna("")
        lengths = texts.str.len()
        reasons = pd.Series(None, index=batch.index, dtype=object)
        details = pd.Series(None, index=batch.index, dtype=object)
        empty = texts.str.strip() == ""
        reasons[empty] = EMPTY_DOCUMENT
        details[empty] = "the document has no text to score"
        large = ~empty & (lengths > max_document_chars)
        reasons[large] = DOCUMENT_TOO_LARGE
        details[large] = "the document has " + lengths[large].astype(str) + f" characters, over scoring.max_document_chars ({max_document_chars})"

        scorable = reasons.isna().to_numpy()
        probabilities = predict_probabilities(
            loaded.model, loaded.tokenizer, texts[scorable].tolist(),
            chunk_len=loaded.chunk_len, max_chunks=loaded.max_chunks, batch_size=batch_size, device=loaded.device,
        )
        yield _output_frame(batch, reasons, details, scorable, probabilities, loaded, top_k, store_probabilities)


def _output_frame(batch, reasons, details, scorable, probabilities, loaded, top_k, store_probabilities) -> pd.DataFrame:
    count = len(batch)
    top = [None] * count
    predicted = [None] * count
    stored = [None] * count
    rows = np.flatnonzero(scorable)
    if len(rows):
        top_lists = top_k_labels(probabilities, loaded.labels, top_k)
        predicted_lists = thresholded_labels(probabilities, loaded.labels, loaded.thresholds)
        for position, row in enumerate(rows):
            top[row] = [{"label": label, "probability": probability} for label, probability in top_lists[position]]
            predicted[row] = predicted_lists[position]
            stored[row] = probabilities[position] if store_probabilities else None
    return pd.DataFrame(
        {
            "doc_id": batch["doc_id"].to_numpy(),
            "top_codes": top,
            "predicted_codes": predicted,
            "probabilities": stored,
            "reason": reasons.to_numpy(),
            "detail": details.to_numpy(),
        }
    )
