"""Benchmark: the scoring job against a bare PyTorch loop, and the driver's memory.

For each size, a built-in sample is ingested and tokenized (outside the clocks), an
untrained model with the sample's label index is saved, and then:

- the scoring job scores every document (``scoring.mode=full``), while a thread samples
  the resident memory of the driver (this Python process plus its JVM, without the
  Python workers);
- a bare loop in this process runs the same model with the same batch size over the
  same documents (texts read into memory before its clock starts).

    python -m shl.bench.score_speed --sizes 10000,100000

``--bare-limit N`` makes the bare loop score only the first N documents of each size,
which bounds its time at 100,000 documents; the job always scores them all.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time

import psutil
import torch

from shl.config import load_config
from shl.documents.job import run_tokenize
from shl.ingest.job import run_ingest
from shl.model.coding_model import CodingModelConfig, build_coding_model, load_tokenizer
from shl.model.io import load_model, save_model
from shl.scoring.job import run_score
from shl.scoring.predict import predict_probabilities
from shl.spark import get_spark

CHUNK_LEN = 64
MAX_CHUNKS = 1
BATCH_SIZE = 32


class DriverMemory:
    """Peak resident memory of this Python process and of its JVM child, sampled every 0.2 s.

    On ``local[N]`` the JVM is the driver and the executors at once, so its resident
    memory includes cached partitions and shuffle buffers, capped by
    ``spark.driver.memory``. The Python process is the driver alone.
    """

    def __init__(self) -> None:
        self.peak_python_bytes = 0
        self.peak_jvm_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def peak_bytes(self) -> int:
        return self.peak_python_bytes + self.peak_jvm_bytes

    def _sample(self) -> None:
        process = psutil.Process()
        self.peak_python_bytes = max(self.peak_python_bytes, process.memory_info().rss)
        jvm = sum(child.memory_info().rss for child in process.children() if "java" in child.name())
        self.peak_jvm_bytes = max(self.peak_jvm_bytes, jvm)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.2)

    def __enter__(self) -> DriverMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _measure(size: int, workdir: str, spark, bare_limit: int = 0, reuse: bool = False):
    config = load_config(
        None,
        [
            f"source.path={workdir}/sample{size}",
            f"lakehouse.root={workdir}/lakehouse{size}",
            f"sample.n_admissions={size}",
            f"sample.n_patients={max(1, size * 2 // 5)}",
            f"tokenizer.chunk_len={CHUNK_LEN}",
            f"tokenizer.max_chunks={MAX_CHUNKS}",
            f"scoring.model={workdir}/model{size}",
            "scoring.mode=full",
            f"scoring.batch_size={BATCH_SIZE}",
            "scoring.store_probabilities=false",
        ],
    )
    if not (reuse and os.path.isdir(f"{workdir}/lakehouse{size}/silver/documents")):
        run_ingest(config, spark)
        run_tokenize(config, spark)
    labels = [row["label"] for row in spark.read.format("delta").load(f"{workdir}/lakehouse{size}/silver/label_index").orderBy("column").collect()]
    torch.manual_seed(0)
    model = build_coding_model(CodingModelConfig(num_labels=len(labels), head="linear", chunk_len=CHUNK_LEN, max_chunks=MAX_CHUNKS))
    save_model(model, f"{workdir}/model{size}", labels, [0] * len(labels), {"global": 0.5})

    with DriverMemory() as memory:
        started = time.perf_counter()
        report = run_score(config, spark)
        job_seconds = time.perf_counter() - started

    documents = spark.read.format("delta").load(f"{workdir}/lakehouse{size}/silver/documents").select("text")
    if bare_limit:
        documents = documents.limit(bare_limit)
    texts = [row["text"] for row in documents.collect()]
    loaded, metadata = load_model(f"{workdir}/model{size}")
    tokenizer = load_tokenizer(metadata.tokenizer_path)
    tokenizer.model_max_length = 10**9
    started = time.perf_counter()
    predict_probabilities(loaded, tokenizer, texts, chunk_len=CHUNK_LEN, max_chunks=MAX_CHUNKS, batch_size=BATCH_SIZE)
    loop_seconds = time.perf_counter() - started
    return (report.to_score / job_seconds, len(texts) / loop_seconds, memory, report.to_score, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sample sizes in admissions")
    parser.add_argument("--workdir", default=None, help="folder for samples, tables and models (default: a temp folder)")
    parser.add_argument(
        "--bare-limit", type=int, default=0,
        help="documents the bare loop scores, the first N of each size (default 0: all of them)",
    )
    parser.add_argument(
        "--reuse", action="store_true",
        help="reuse the tables of an earlier run in --workdir instead of ingesting and tokenizing again",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = args.workdir or tempfile.mkdtemp(prefix="shl-bench-score-")
    spark = get_spark(load_config(None, ["spark.shuffle_partitions=4"]).spark)
    print(f"chunk_len {CHUNK_LEN}, max_chunks {MAX_CHUNKS}, batch size {BATCH_SIZE}, linear head, torch threads {torch.get_num_threads()}")
    print("| documents | job documents/s | bare loop documents/s (documents) | ratio "
          "| peak Python driver (MiB) | peak JVM (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in (int(value) for value in args.sizes.split(",")):
        job_rate, loop_rate, memory, documents, looped = _measure(size, workdir, spark, args.bare_limit, args.reuse)
        print(
            f"| {documents:,} | {job_rate:.1f} | {loop_rate:.1f} ({looped:,}) | {job_rate / loop_rate:.2f} "
            f"| {memory.peak_python_bytes / 2**20:,.0f} | {memory.peak_jvm_bytes / 2**20:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
