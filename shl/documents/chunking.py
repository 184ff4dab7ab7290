"""Cutting token ids into the fixed-size chunks the encoder reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Chunks:
    """Token ids of documents as chunks, flattened per document.

    ``input_ids`` and ``attention_mask`` are int32 arrays of shape
    (documents, max_chunks * chunk_len): chunk ``c`` of a document is columns
    ``c * chunk_len`` to ``(c + 1) * chunk_len``. Chunks after the last real one are
    padding chunks with an all-zero attention mask.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    # Real chunks per document (at least 1).
    n_chunks: np.ndarray
    # Word pieces per document before truncation, and how many were kept.
    n_tokens: np.ndarray
    n_tokens_kept: np.ndarray


def chunk_token_ids(
    token_ids: Sequence[Sequence[int]],
    *,
    chunk_len: int,
    max_chunks: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> Chunks:
    """Cut each document's word pieces into chunks of ``chunk_len`` tokens.

    Each chunk is ``[CLS] piece [SEP]`` with up to ``chunk_len - 2`` word pieces, padded
    with ``pad_id``. Word pieces after ``max_chunks`` chunks are cut. A document with no
    word pieces gets one chunk with only CLS and SEP.

    Parameters
    ----------
    token_ids : sequence of sequences of int
        Word piece ids of each document, without special tokens.

    Raises
    ------
    ValueError
        If ``chunk_len`` < 3 or ``max_chunks`` < 1.
    """
    if chunk_len < 3:
        raise ValueError(f"invalid chunk_len {chunk_len!r}: expected an integer >= 3")
    if max_chunks < 1:
        raise ValueError(f"invalid max_chunks {max_chunks!r}: expected an integer >= 1")
    piece_len = chunk_len - 2
    count = len(token_ids)
    input_ids = np.full((count, max_chunks, chunk_len), pad_id, dtype=np.int32)
    attention_mask = np.zeros((count, max_chunks, chunk_len), dtype=np.int32)
    n_chunks = np.zeros(count, dtype=np.int32)
    n_tokens = np.zeros(count, dtype=np.int32)
    n_tokens_kept = np.zeros(count, dtype=np.int32)

    for row, ids in enumerate(token_ids):
        kept = list(ids[: piece_len * max_chunks])
        n_tokens[row] = len(ids)
        n_tokens_kept[row] = len(kept)
        pieces = [kept[start : start + piece_len] for start in range(0, len(kept), piece_len)] or [[]]
        n_chunks[row] = len(pieces)
        for chunk, piece in enumerate(pieces):
            length = len(piece) + 2
            input_ids[row, chunk, :length] = [cls_id, *piece, sep_id]
            attention_mask[row, chunk, :length] = 1

    flat = (count, max_chunks * chunk_len)
    return Chunks(input_ids.reshape(flat), attention_mask.reshape(flat), n_chunks, n_tokens, n_tokens_kept)


def word_pieces(input_ids: np.ndarray, attention_mask: np.ndarray, *, chunk_len: int, cls_id: int, sep_id: int) -> list[int]:
    """Recover a document's word piece ids from its flattened chunks (the inverse of chunking)."""
    pieces: list[int] = []
    for start in range(0, len(input_ids), chunk_len):
        ids = input_ids[start : start + chunk_len][attention_mask[start : start + chunk_len] == 1]
        if len(ids) == 0:
            continue
        if ids[0] != cls_id or ids[-1] != sep_id:
            raise ValueError(f"chunk at offset {start} does not start with CLS and end with SEP")
        pieces.extend(int(token) for token in ids[1:-1])
    return pieces
