"""CodiEsp diagnoses in memory for the loss experiment, and cached encoder states.

:func:`corpus_for` runs the ingest, tokenize and label-stats stages once into a work
folder, with ICD-10-CM diagnoses only. It reads labels, segments, token ids, targets
and gold codes of the train, val and test splits into a :class:`Corpus` and saves it
next to the tables. :func:`states_for` runs the encoder once and caches the hidden
states that :class:`~shl.bench.cached_training.CachedStatesModel` trains on. Neither
logs or stores note text, only ids, codes, token ids and counts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from shl.bench.cached_training import CachedStates, encode_chunks
from shl.bench.loss_grid import markdown_table

logger = logging.getLogger(__name__)

CODE_SYSTEM = "icd10cm"
SPLITS = ("train", "val", "test")
CODIESP_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "codiesp.yaml")
# Config sections that decide the tables; the work folder is rebuilt when one changes.
TABLE_SECTIONS = ("source", "labels", "split", "tokenizer", "segmentation")


def build_config(workdir: str, data: str, min_count: int, chunk_len: int, max_chunks: int):
    """Return the CodiEsp config: diagnoses only, corpus in ``data``, tables under ``workdir``."""
    from shl.config import load_config

    return load_config(CODIESP_CONFIG, [
        f"source.path={data}",
        f"lakehouse.root={workdir}/lakehouse",
        f"spark.warehouse_dir={workdir}/warehouse",
        "spark.shuffle_partitions=2",
        f"labels.code_systems=[{CODE_SYSTEM}]",
        f"labels.min_train_count={min_count}",
        f"tokenizer.chunk_len={chunk_len}",
        f"tokenizer.max_chunks={max_chunks}",
        "training.use_training_view=false",
    ])


def prepare_tables(config, spark, workdir: str) -> None:
    """Run ingest, tokenize and label-stats unless ``workdir`` has tables of the same settings."""
    from shl.config import config_to_dict
    from shl.documents.job import run_tokenize
    from shl.ingest.job import run_ingest
    from shl.labels.job import run_label_stats

    settings = config_to_dict(config)
    expected = {key: settings[key] for key in TABLE_SECTIONS}
    marker = os.path.join(workdir, "prepared.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            if json.load(handle) == expected:
                logger.info("Tables in %s are up to date", workdir)
                return
    for stage in (run_ingest, run_tokenize, run_label_stats):
        started = time.monotonic()
        stage(config, spark)
        logger.info("%s finished in %.0f s", stage.__name__, time.monotonic() - started)
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(expected, handle)


@dataclass
class Corpus:
    """Labels, segments, token ids, targets and gold codes of the three splits, in memory."""

    labels: list[str]
    codes: list[str]  # the code of each label, as in bronze codes ("R50.9")
    label_counts: np.ndarray  # (labels,) train documents with the label
    segments: np.ndarray  # (labels,) segment id
    doc_ids: dict[str, list[str]]
    input_ids: dict[str, np.ndarray]  # (documents, chunks, chunk_len) int32
    attention_mask: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]  # (documents, labels) float32
    # Every ICD-10-CM code of each document, in the label space or not.
    gold_codes: dict[str, list[list[str]]]


def _collect_rows(frame, labels: int, chunks: int, chunk_len: int):
    """Return doc ids, token ids, masks and dense targets of a ``TRAIN_COLUMNS`` frame."""
    rows = frame.orderBy("doc_id").collect()
    doc_ids = [row["doc_id"] for row in rows]
    # The tokens table stores flattened (chunks, chunk_len) arrays.
    shape = (len(rows), chunks, chunk_len)
    input_ids = np.array([row["input_ids"] for row in rows], dtype=np.int32).reshape(shape)
    attention_mask = np.array([row["attention_mask"] for row in rows], dtype=np.int8)
    targets = np.zeros((len(rows), labels), dtype=np.float32)
    for index, row in enumerate(rows):
        targets[index, row["label_columns"]] = 1.0
    return doc_ids, input_ids, attention_mask.reshape(shape), targets


def _gold_codes(spark, config, documents) -> dict[str, list[str]]:
    """Return every ICD-10-CM code of bronze ``codes`` by doc_id, in or out of the labels."""
    from pyspark.sql import functions as F

    from shl import delta, tables

    codes = delta.read_table(spark, tables.CODES, config).filter(
        (F.col("source") == config.source_name) & (F.col("code_system") == CODE_SYSTEM)
    )
    rows = (
        documents.select("doc_id", "hadm_id")
        .join(codes.select("hadm_id", "code"), on="hadm_id", how="left")
        .groupBy("doc_id")
        .agg(F.array_sort(F.collect_set("code")).alias("codes"))
        .collect()
    )
    return {row["doc_id"]: list(row["codes"] or []) for row in rows}


def read_corpus(spark, config) -> Corpus:
    """Read the corpus with the training job's reader, plus the test split and gold codes."""
    from pyspark.sql import functions as F

    from shl import delta, tables
    from shl.training.inputs import labelled_tokens, read_inputs

    inputs = read_inputs(spark, config)
    index = (
        delta.read_table(spark, tables.LABEL_INDEX, config)
        .select("label", "column", "code")
        .collect()
    )
    code_of = {row["label"]: row["code"] for row in index}
    label_index = spark.createDataFrame(
        [(row["label"], row["column"]) for row in index], "label string, column int"
    )
    documents = delta.read_table(spark, tables.DOCUMENTS, config)
    weights = F.transform("labels", lambda _: F.lit(1.0).cast("float")).alias("label_weights")
    test_sets = documents.filter(F.col("split") == "test").select("doc_id", "labels", weights)
    tokens = delta.read_table(spark, tables.TOKENS, config).select(
        "doc_id", "input_ids", "attention_mask"
    )
    frames = {
        "train": inputs.train,
        "val": inputs.val,
        "test": labelled_tokens(test_sets, label_index, tokens),
    }
    gold_of = _gold_codes(spark, config, documents)

    corpus = Corpus(
        labels=inputs.labels,
        codes=[code_of[label] for label in inputs.labels],
        label_counts=np.array(inputs.label_counts, dtype=np.int64),
        segments=np.array(inputs.segments, dtype=np.int64),
        doc_ids={}, input_ids={}, attention_mask={}, targets={}, gold_codes={},
    )
    for split, frame in frames.items():
        doc_ids, input_ids, attention_mask, targets = _collect_rows(
            frame, len(inputs.labels), inputs.max_chunks, inputs.chunk_len
        )
        corpus.doc_ids[split] = doc_ids
        corpus.input_ids[split] = input_ids
        corpus.attention_mask[split] = attention_mask
        corpus.targets[split] = targets
        corpus.gold_codes[split] = [gold_of.get(doc_id, []) for doc_id in doc_ids]
    return corpus


def save_corpus(corpus: Corpus, path: str) -> None:
    """Write the corpus to one ``.npz`` file, the lists as a JSON string inside it."""
    arrays = {"label_counts": corpus.label_counts, "segments": corpus.segments}
    for split in SPLITS:
        arrays[f"{split}_input_ids"] = corpus.input_ids[split]
        arrays[f"{split}_attention_mask"] = corpus.attention_mask[split]
        arrays[f"{split}_targets"] = corpus.targets[split]
    lists = {
        "labels": corpus.labels,
        "codes": corpus.codes,
        "doc_ids": corpus.doc_ids,
        "gold_codes": corpus.gold_codes,
    }
    np.savez(path, lists=np.array(json.dumps(lists)), **arrays)


def load_corpus(path: str) -> Corpus:
    """Read a corpus written by :func:`save_corpus`."""
    with np.load(path) as data:
        lists = json.loads(str(data["lists"]))
        return Corpus(
            labels=lists["labels"],
            codes=lists["codes"],
            label_counts=data["label_counts"],
            segments=data["segments"],
            doc_ids=lists["doc_ids"],
            input_ids={split: data[f"{split}_input_ids"] for split in SPLITS},
            attention_mask={split: data[f"{split}_attention_mask"] for split in SPLITS},
            targets={split: data[f"{split}_targets"] for split in SPLITS},
            gold_codes=lists["gold_codes"],
        )


def corpus_for(workdir: str, data: str, min_count: int, chunk_len: int, max_chunks: int) -> Corpus:
    """Return the corpus of ``workdir``, preparing and reading the tables with Spark when needed."""
    path = os.path.join(workdir, f"corpus-n{min_count}-{chunk_len}x{max_chunks}.npz")
    if os.path.exists(path):
        return load_corpus(path)
    from shl.spark import get_spark

    config = build_config(workdir, data, min_count, chunk_len, max_chunks)
    spark = get_spark(config.spark)
    prepare_tables(config, spark, workdir)
    corpus = read_corpus(spark, config)
    spark.stop()
    save_corpus(corpus, path)
    return corpus


def describe_corpus(corpus: Corpus) -> str:
    """Return document, label and segment counts as Markdown lines and a segment table."""
    sizes = ", ".join(f"{split} {len(corpus.doc_ids[split])}" for split in SPLITS)
    segment_count = int(corpus.segments.max()) + 1
    lines = [f"- documents: {sizes}", f"- labels: {len(corpus.labels)}, segments: {segment_count}"]
    for split in SPLITS:
        targets = corpus.targets[split]
        gold = sum(len(codes) for codes in corpus.gold_codes[split])
        unlabelled = int((targets.sum(1) == 0).sum())
        lines.append(f"- {split}: {int(targets.sum())} of {gold} gold diagnosis codes are labels; "
                     f"{unlabelled} documents have no label")
    rows = []
    for segment in range(segment_count):
        members = corpus.segments == segment
        counts = corpus.label_counts[members]
        test_positives = int(corpus.targets["test"][:, members].sum())
        rows.append([str(segment), str(counts.size), f"{counts.min()}-{counts.max()}",
                     f"{counts.mean():.1f}", str(test_positives)])
    header = ["segment", "labels", "train count range", "mean train count", "test positives"]
    return "\n".join(lines) + "\n\n" + markdown_table(header, rows)


def states_for(
    workdir: str, corpus: Corpus, encoder, layer: int, tag: str, also: tuple[int, ...] = ()
) -> dict[str, CachedStates]:
    """Return the hidden states ``layer`` of every split, encoding and saving them once.

    ``layer`` indexes ``hidden_states``: 0 is the embedding output, ``i`` the output
    of transformer layer ``i``. When the encoder has to run, the layers in ``also``
    that are not cached yet are kept from the same pass, so a later setting finds them.
    """
    def path_of(index: int) -> str:
        return os.path.join(workdir, "states", f"{tag}-layer{index}.pt")

    if not os.path.exists(path_of(layer)):
        missing = {index for index in also if not os.path.exists(path_of(index))}
        _encode_and_save(corpus, encoder, tuple(sorted(missing | {layer})), path_of)
    loaded = torch.load(path_of(layer), weights_only=True)
    return {
        split: CachedStates(
            loaded[split]["states"], loaded[split]["mask"], loaded[split]["offsets"].numpy()
        )
        for split in SPLITS
    }


def _encode_and_save(corpus: Corpus, encoder, layers: tuple[int, ...], path_of) -> None:
    os.makedirs(os.path.dirname(path_of(layers[0])), exist_ok=True)
    saved: dict[int, dict] = {index: {} for index in layers}
    for split in SPLITS:
        started = time.monotonic()
        encoded = encode_chunks(
            encoder, corpus.input_ids[split], corpus.attention_mask[split], layers
        )
        for index, states in encoded.items():
            saved[index][split] = {
                "states": states.states,
                "mask": states.mask,
                "offsets": torch.from_numpy(states.offsets),
            }
        logger.info(
            "Encoded %s: %d documents, %d chunks, layers %s, %.0f s", split,
            len(corpus.doc_ids[split]), encoded[layers[0]].states.shape[0], layers,
            time.monotonic() - started,
        )
    for index in layers:
        torch.save(saved[index], path_of(index))
