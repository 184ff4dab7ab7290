"""Benchmark: the tokens step of the tokenize job against plain batch encoding.

Both sides encode the same documents of a built-in sample with the same tokenizer and
chunk settings and produce the same arrays. The Spark side runs ``tokens_frame`` (an
iterator pandas UDF) and writes the Delta table. The plain side runs the tokenizer's
batch encoding and the same chunking in this one process, batch by batch. The Spark
session start, the sample and the documents table are set up before the clocks run.

    python -m shl.bench.tokenize_speed --admissions 20000
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from shl.config import load_config
from shl.documents.chunking import chunk_token_ids
from shl.documents.job import run_tokenize, tokens_frame
from shl.documents.tokens import load_tokenizer
from shl.ingest.job import run_ingest
from shl.spark import get_spark

logger = logging.getLogger(__name__)


def _plain_encoding(texts: list[str], model: str, chunk_len: int, max_chunks: int, batch_rows: int) -> tuple[float, int]:
    tokenizer = load_tokenizer(model)
    started = time.perf_counter()
    total = 0
    for start in range(0, len(texts), batch_rows):
        encoded = tokenizer(texts[start : start + batch_rows], add_special_tokens=False)["input_ids"]
        chunks = chunk_token_ids(
            encoded, chunk_len=chunk_len, max_chunks=max_chunks,
            cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id,
        )
        total += int(chunks.n_tokens.sum())
    return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admissions", type=int, default=20000, help="sample size in admissions")
    parser.add_argument("--workdir", default=None, help="folder for the sample and tables (default: a temp folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = args.workdir or tempfile.mkdtemp(prefix="shl-bench-tokenize-")
    config = load_config(
        None,
        [
            f"source.path={workdir}/sample",
            f"lakehouse.root={workdir}/lakehouse",
            f"sample.n_admissions={args.admissions}",
            f"sample.n_patients={max(1, args.admissions * 2 // 5)}",
            "spark.shuffle_partitions=4",
        ],
    )
    spark = get_spark(config.spark)
    run_ingest(config, spark)
    run_tokenize(config, spark)
    documents = spark.read.format("delta").load(f"{workdir}/lakehouse/silver/documents").select("doc_id", "text", "text_sha256")
    documents = spark.createDataFrame(documents.collect(), documents.schema).persist()
    texts = [row["text"] for row in documents.select("text").collect()]
    settings = config.tokenizer

    started = time.perf_counter()
    output = os.path.join(workdir, "bench_tokens")
    tokens_frame(documents, settings).write.format("delta").mode("overwrite").save(output)
    spark_seconds = time.perf_counter() - started
    spark_tokens = spark.read.format("delta").load(output).agg({"n_tokens": "sum"}).first()[0]

    plain_seconds, plain_tokens = _plain_encoding(
        texts, settings.model, settings.chunk_len, settings.max_chunks, config.spark.arrow_batch_size
    )
    if spark_tokens != plain_tokens:
        raise RuntimeError(f"token counts differ: Spark {spark_tokens}, plain {plain_tokens}")

    count = len(texts)
    rows = [
        ("Spark tokens step (local[2], write included)", spark_seconds),
        ("plain Python batch encoding, one process", plain_seconds),
    ]
    print(f"{count} documents, {plain_tokens} word pieces, chunk_len {settings.chunk_len}, max_chunks {settings.max_chunks}")
    print("| side | seconds | documents/s | tokens/s |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {count / seconds:,.0f} | {plain_tokens / seconds:,.0f} |")
    print(f"ratio (Spark throughput / plain throughput): {plain_seconds / spark_seconds:.2f}")


if __name__ == "__main__":
    main()
