"""Scoring documents with a loaded model: pure functions, no Spark.

The same functions run inside the Spark job's Python workers and in a plain process,
so the job's probabilities can be checked against an in-process run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shl.model.coding_model import tokenize_chunks

DEFAULT_THRESHOLD = 0.5


def model_version(folder: str) -> str:
    """Return a short content hash of a saved model: its weights and its config.

    Two folders with the same files have the same version, and retraining into the
    same folder gives a new one, so incremental scoring notices a new model.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"missing {name} in model folder {folder}; train or copy a complete model there")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def label_thresholds(thresholds: Mapping[str, Any], segments: Sequence[int]) -> np.ndarray:
    """Return the decision threshold of each label, in logit order.

    ``thresholds`` contains ``"global"`` (default 0.5) and optionally ``"per_segment"``,
    a mapping of segment id (as a string or int) to threshold. A label takes its
    segment's threshold when there is one, and the global threshold otherwise.
    """
    global_threshold = float(thresholds.get("global", DEFAULT_THRESHOLD))
    per_segment = {int(key): float(value) for key, value in (thresholds.get("per_segment") or {}).items()}
    return np.array([per_segment.get(int(segment), global_threshold) for segment in segments], dtype=np.float32)


@dataclass
class Scores:
    """Probabilities of a batch of documents, shape (documents, labels), float32."""

    probabilities: np.ndarray


def predict_probabilities(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    chunk_len: int,
    max_chunks: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Tokenize texts as the model was trained and return sigmoid probabilities.

    Returns
    -------
    numpy.ndarray
        float32, shape (documents, labels).
    """
    outputs = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            input_ids, attention_mask = tokenize_chunks(
                tokenizer, list(texts[start : start + batch_size]), chunk_len=chunk_len, max_chunks=max_chunks
            )
            logits = model(input_ids.to(device), attention_mask.to(device))  # (batch, labels)
            outputs.append(torch.sigmoid(logits.float()).cpu().numpy())
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)


def top_k_labels(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Return the ``k`` most probable labels of each document with their probabilities.

    Ties are broken by label column, so the result is deterministic.
    """
    k = min(k, probabilities.shape[1])
    # A stable sort on the negated probabilities keeps the lower column first on ties.
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(labels[column], float(row[column])) for column in columns] for row, columns in zip(probabilities, order)]


def thresholded_labels(probabilities: np.ndarray, labels: Sequence[str], thresholds: np.ndarray) -> list[list[str]]:
    """Return, per document, the labels whose probability is at least their threshold."""
    hits = probabilities >= thresholds[None, :]
    return [[labels[column] for column in np.flatnonzero(row)] for row in hits]
