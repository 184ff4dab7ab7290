"""Compare the LSH similarity join with an exact blocked cosine search as the corpus grows.

Run ``python -m shl.bench.lsh_scale --sizes 5000 20000 50000``. For each size N the
script builds N synthetic unit vectors of dimension 384 (the MiniLM embedding size):
isotropic random vectors, of which ``--planted-share`` have a planted near-duplicate
partner whose cosine to them is uniform in [tau, 1). Isotropic vectors of this
dimension have cosines near 0 (|cos| < 0.3 at these sizes), so the exact pairs are
the planted ones. Real embeddings are not isotropic; the vectors only set the scale.

In the same run it times:

- the exact search: blocks of 2,048 rows multiplied by the whole matrix with NumPy
  (float32 BLAS on every core), keeping the pairs at cosine >= tau;
- :func:`shl.noise.duplicates.similar_pairs` on a cached Spark DataFrame of the same
  vectors, for each LSH setting given, collecting the pairs.

It prints the recall of the exact pairs and the LSH-to-exact time ratio per size. Spark
runs on ``--master`` (default ``local[*]``, all cores, as NumPy uses).

With ``--embeddings PATH`` (an ``embeddings`` Delta table) the script compares the
same way on those real vectors, after removing their mean vector as the job does,
instead of on synthetic ones.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from shl.bench.loss_speed import machine_description

logger = logging.getLogger(__name__)

DIMENSION = 384
BLOCK_ROWS = 2048


def synthetic_vectors(n: int, planted_share: float, tau: float, seed: int) -> np.ndarray:
    """Return (n, DIMENSION) float32 unit vectors, the last ``planted`` rows partners of the first."""
    rng = np.random.default_rng(seed)
    planted = int(n * planted_share)
    base = rng.standard_normal((n - planted, DIMENSION))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    anchors = base[:planted]
    # A unit direction orthogonal to each anchor, mixed in to reach the drawn cosine.
    noise = rng.standard_normal((planted, DIMENSION))
    noise -= (noise * anchors).sum(axis=1, keepdims=True) * anchors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosine = rng.uniform(tau, 1.0, size=(planted, 1))
    partners = cosine * anchors + np.sqrt(1.0 - cosine**2) * noise
    return np.vstack([base, partners]).astype(np.float32)


def exact_pairs(vectors: np.ndarray, tau: float) -> set[tuple[int, int]]:
    """Return every index pair (i < j) with cosine >= tau, by blocked matrix products."""
    pairs = set()
    for start in range(0, len(vectors), BLOCK_ROWS):
        block = vectors[start : start + BLOCK_ROWS] @ vectors.T  # shape (block rows, n)
        rows, columns = np.nonzero(block >= tau)
        rows += start
        upper = columns > rows
        pairs.update(zip(rows[upper].tolist(), columns[upper].tolist()))
    return pairs


def lsh_pairs(
    spark, vectors: np.ndarray, tau: float, bucket_length: float, tables: int, band_width: int
):
    """Return the pairs from the LSH join and its seconds, excluding building the input."""
    from pyspark.sql import functions as F

    from shl.noise.duplicates import similar_pairs

    import pandas as pd

    doc_ids = [f"{index:07d}" for index in range(len(vectors))]
    rows = pd.DataFrame({"doc_id": doc_ids, "vector": list(vectors)})
    frame = spark.createDataFrame(rows, "doc_id string, vector array<float>")
    frame = frame.repartition(spark.sparkContext.defaultParallelism * 2).persist()
    frame.count()
    started = time.perf_counter()
    found = similar_pairs(frame, tau, bucket_length, tables, band_width).select(
        F.col("doc_id_a").cast("int"), F.col("doc_id_b").cast("int")
    ).collect()
    seconds = time.perf_counter() - started
    frame.unpersist()
    return {(row[0], row[1]) for row in found}, seconds


def table_vectors(spark, path: str) -> np.ndarray:
    """Return an embeddings table's vectors by doc_id, mean removed and L2-normalised."""
    table = spark.read.format("delta").load(path)
    rows = table.select("doc_id", "vector").orderBy("doc_id").toPandas()
    vectors = np.stack(rows["vector"].map(lambda vector: np.asarray(vector, dtype=np.float64)))
    vectors -= vectors.mean(axis=0, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def parse_setting(text: str) -> tuple[float, int, int]:
    """Parse ``bucket_length:tables:band_width``, such as ``0.05:30:8``."""
    bucket_length, tables, band_width = text.split(":")
    return float(bucket_length), int(tables), int(band_width)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000], help="corpus sizes N")
    parser.add_argument("--tau", type=float, default=0.95, help="cosine threshold (default 0.95)")
    parser.add_argument(
        "--planted-share", type=float, default=0.02, help="share of vectors that are planted partners"
    )
    parser.add_argument(
        "--settings", nargs="+", default=["0.05:30:8"],
        help="LSH settings bucket_length:tables:band_width; band width 1 is approxSimilarityJoin",
    )
    parser.add_argument(
        "--max-size-band-1", type=int, default=5000,
        help="largest N to run band width 1 on, whose candidates grow with N squared",
    )
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--embeddings", help="path of an embeddings Delta table to use instead of synthetic vectors"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from shl.config import SparkSettings
    from shl.spark import get_spark

    settings = SparkSettings(
        master=arguments.master, shuffle_partitions=8, driver_memory="8g",
        warehouse_dir="/tmp/lsh_scale_warehouse",
    )
    spark = get_spark(settings)
    print(f"Machine: {machine_description()}")
    print(
        "| N | exact pairs | exact s | setting (bucket:tables:band) | LSH pairs | recall | LSH s "
        "| LSH / exact |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    real = table_vectors(spark, arguments.embeddings) if arguments.embeddings else None
    for size in [len(real)] if real is not None else arguments.sizes:
        if real is not None:
            vectors = real
        else:
            vectors = synthetic_vectors(size, arguments.planted_share, arguments.tau, arguments.seed)
        started = time.perf_counter()
        truth = exact_pairs(vectors, arguments.tau)
        exact_seconds = time.perf_counter() - started
        for text in arguments.settings:
            bucket_length, tables, band_width = parse_setting(text)
            if band_width == 1 and size > arguments.max_size_band_1:
                continue
            found, seconds = lsh_pairs(
                spark, vectors, arguments.tau, bucket_length, tables, band_width
            )
            recall = len(found & truth) / len(truth) if truth else float("nan")
            print(
                f"| {size} | {len(truth)} | {exact_seconds:.2f} | {text} | {len(found)} | {recall:.4f} | "
                f"{seconds:.2f} | {seconds / exact_seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
