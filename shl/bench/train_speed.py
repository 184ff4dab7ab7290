"""Benchmark: training samples per second with one and two Horovod processes on the CPU,
and the Petastorm loader's rows per second against what the model consumes.

The script writes synthetic silver tables (``shl.training.synthetic``) into a work
folder. It then runs the training job twice with the Horovod launcher on the local
Spark session, with ``num_proc=1`` and with ``num_proc=2``, each for a fixed number of
optimiser steps. Samples per second is what the processes report for their training
batches: forward, backward, gradient exchange and optimiser step, with the loader
running alongside. Model loading, validation and checkpoints are not in it. The
loader is then timed alone: one process reads batches from the same train converter
without a model.

    python -m shl.bench.train_speed --documents 240 --steps 12
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from shl.config import load_config
from shl.spark import get_spark
from shl.training import data
from shl.training.inputs import lay_out_train_rows, read_inputs
from shl.training.job import run_train
from shl.training.synthetic import write_synthetic_silver

logger = logging.getLogger(__name__)


def _loader_rows_per_second(spark, config, batches: int, batch_size: int) -> float:
    """Time ``batches`` batches of the train converter read by one process, after one warm-up batch."""
    inputs = read_inputs(spark, config)
    frame = lay_out_train_rows(spark, inputs.train, data.files_for(inputs.train.count(), 1))
    try:
        with data.petastorm_converters(
            spark, config.training.petastorm_cache_dir, frame.drop("doc_id"), inputs.val.drop("doc_id")
        ) as (train_converter, val_converter):
            source = data.PetastormSource(
                train=train_converter,
                val=val_converter,
                transform=data.DenseLabelTransform(len(inputs.labels), inputs.chunk_len * inputs.max_chunks),
                reader_workers=config.training.reader_workers,
                seed=config.training.seed,
            )
            with source.open_train(0, 1, batch_size) as loader:
                next(loader)
                started = time.perf_counter()
                rows = sum(len(next(loader)["row_id"]) for _ in range(batches))
                return rows / (time.perf_counter() - started)
    finally:
        frame.unpersist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=240, help="synthetic documents (70%% of them train)")
    parser.add_argument("--labels", type=int, default=50, help="synthetic labels")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=4, help="documents per process and step")
    parser.add_argument("--chunk-len", type=int, default=64, help="tokens per chunk")
    parser.add_argument("--max-chunks", type=int, default=2, help="chunks per document")
    parser.add_argument("--loader-batches", type=int, default=200, help="batches read in the loader timing")
    parser.add_argument("--workdir", default=None, help="folder for tables and runs (default: a temp folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workdir = args.workdir or tempfile.mkdtemp(prefix="shl-bench-train-")

    def config_for(num_proc: int):
        return load_config(None, [
            f"lakehouse.root={workdir}/lakehouse",
            "spark.shuffle_partitions=2",
            f"tokenizer.chunk_len={args.chunk_len}",
            f"tokenizer.max_chunks={args.max_chunks}",
            f"training.petastorm_cache_dir={workdir}/petastorm",
            f"training.output_dir={workdir}/run-{num_proc}",
            "training.launcher=horovod",
            f"training.num_proc={num_proc}",
            f"training.batch_size={args.batch_size}",
            "training.epochs=1",
            f"training.max_steps={args.steps}",
            "training.early_stopping_patience=0",
            "training.scale_lr_with_workers=false",
        ])

    spark = get_spark(config_for(1).spark)
    counts = write_synthetic_silver(spark, config_for(1), n_documents=args.documents, n_labels=args.labels)
    tokens = args.chunk_len * args.max_chunks
    print(f"synthetic tables: {counts.train} train, {counts.val} val documents, {counts.labels} labels, "
          f"{tokens} tokens per document; {args.steps} steps of {args.batch_size} documents per process")

    rates = {}
    for num_proc in (1, 2):
        report = run_train(config_for(num_proc), spark)
        per_process = [record["samples"] / record["train_seconds"] for record in report.rank_records]
        rates[num_proc] = report.samples_per_second
        print(f"horovod num_proc={num_proc}: {report.samples_per_second:.2f} samples/s in total, per process "
              f"{', '.join(f'{rate:.2f}' for rate in per_process)}; job {report.seconds:.0f} s "
              f"({', '.join(f'{phase} {seconds:.0f} s' for phase, seconds in report.timings.items())})")

    loader_rate = _loader_rows_per_second(spark, config_for(1), args.loader_batches, args.batch_size)
    efficiency = rates[2] / (2 * rates[1])
    print()
    print("| processes | samples/s | samples/s per process | scaling efficiency |")
    print("|---:|---:|---:|---:|")
    print(f"| 1 | {rates[1]:.2f} | {rates[1]:.2f} | 1.00 |")
    print(f"| 2 | {rates[2]:.2f} | {rates[2] / 2:.2f} | {efficiency:.2f} |")
    print()
    print(f"Petastorm loader, one process, batches of {args.batch_size}: {loader_rate:.0f} rows/s "
          f"({loader_rate / max(rates[1], 1e-9):.0f}x what one training process consumes)")


if __name__ == "__main__":
    main()
