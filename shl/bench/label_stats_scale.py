"""Measure how the label statistics job scales with the number of documents.

Run ``python -m shl.bench.label_stats_scale``. For each size (default 100,000,
300,000 and 1,000,000 admissions) the script

1. generates the built-in sample once into ``<work-dir>/sample_<n>`` and reuses it
   while its settings match;
2. builds the ``documents`` table from ``hosp/diagnoses_icd.csv.gz`` with Spark.
   Each hadm_id becomes one document whose labels are its ``icd10cm:<code>``
   diagnoses. The split comes from a hash of subject_id (70% train, 10% val, 20%
   test), and the text is empty, since the job reads only labels and split. Ingest
   and tokenize are skipped, because on a small machine they take far longer than
   the statistics at these sizes;
3. runs ``run_label_stats`` in a fresh process with a fresh lakehouse gold folder,
   and samples the driver JVM's heap and the processes' memory while it runs;
4. computes the same statistics in one pandas/scipy process with
   ``shl.labels.statistics.compute_label_statistics`` and
   ``shl.labels.segmentation.segment_labels_from_pairs``, reading the same Parquet
   files of the ``documents`` table.

Each measurement runs in its own Python process so that peak memory belongs to
that measurement. The script prints the machine and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from shl.config import Config, load_config

DEFAULT_SIZES = (100_000, 300_000, 1_000_000)
N_DIAGNOSIS_CODES = 2000
SAMPLE_INTERVAL_S = 0.1


def bench_config(work_dir: Path, n_admissions: int, extra: list[str]) -> Config:
    """Return the configuration of one size: its sample folder and its lakehouse."""
    return load_config(
        None,
        [
            f"source.path={work_dir / f'sample_{n_admissions}'}",
            f"lakehouse.root={work_dir / f'lakehouse_{n_admissions}'}",
            f"sample.n_admissions={n_admissions}",
            f"sample.n_patients={round(n_admissions / 2.5)}",
            f"sample.n_diagnosis_codes={N_DIAGNOSIS_CODES}",
            *extra,
        ],
    )


# --------------------------------------------------------------------------- workers


def build_documents(config: Config) -> dict:
    """Write ``documents`` from the sample's diagnoses and list its Parquet files."""
    from pyspark.sql import functions as F

    from shl import tables
    from shl.sample import files
    from shl.spark import get_spark

    spark = get_spark(config.spark)
    started = time.monotonic()
    codes = spark.read.csv(
        str(Path(config.source.path) / files.DIAGNOSES),
        header=True,
        schema="subject_id string, hadm_id string, seq_num int, icd_code string, icd_version int",
    )
    system = F.when(F.col("icd_version") == 9, F.lit("icd9cm:")).otherwise(F.lit("icd10cm:"))
    admissions = codes.groupBy(F.col("subject_id"), F.col("hadm_id")).agg(
        F.array_sort(F.collect_set(F.concat(system, F.col("icd_code")))).alias("labels")
    )
    bucket = F.pmod(F.xxhash64(F.col("subject_id")), F.lit(10))
    split = F.when(bucket < 7, "train").when(bucket == 7, "val").otherwise("test")
    documents = admissions.select(
        F.concat(F.lit("sample:"), F.col("hadm_id")).alias("doc_id"),
        F.lit("sample").alias("source"),
        F.col("subject_id"),
        F.col("hadm_id"),
        F.lit("").alias("text"),
        F.sha2(F.lit(""), 256).alias("text_sha256"),
        F.col("labels"),
        split.alias("split"),
    )
    path = tables.DOCUMENTS.path(config)
    documents.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    written = spark.read.format("delta").load(path)
    return {
        "seconds": time.monotonic() - started,
        "documents": written.count(),
        # Local paths for pyarrow, which does not read "file:/..." names.
        "files": sorted(name.removeprefix("file:") for name in written.inputFiles()),
    }


class MemorySampler:
    """Sample the driver JVM's used heap and resident memory in a background thread."""

    def __init__(self, spark) -> None:
        self._runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
        self.jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        self.peak_heap = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            used = self._runtime.totalMemory() - self._runtime.freeMemory()
            self.peak_heap = max(self.peak_heap, int(used))
            self.peak_rss = max(self.peak_rss, _rss_bytes(self.jvm_pid))
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        # Fields 14 and 15 (utime, stime) follow the command name in brackets.
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Return the resident set (VmRSS) or its peak (VmHWM) of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    # VmHWM and not ru_maxrss: Linux carries ru_maxrss over from the forking parent
    # through exec, so a worker would report the driver script's peak as its own.
    return _rss_bytes(os.getpid(), "VmHWM")


def warm_up(spark, folder: Path) -> None:
    """Write, merge and read a tiny Delta table, so that the timed job pays no JVM warm-up.

    The first Delta read in a fresh JVM takes seconds to a minute of class loading
    and code generation on a busy 2-core machine, whatever the table size.
    """
    from delta.tables import DeltaTable

    shutil.rmtree(folder, ignore_errors=True)
    spark.range(10).selectExpr("id", "id * 2 AS value").write.format("delta").save(str(folder))
    source = spark.range(5, 15).selectExpr("id", "id * 3 AS value")
    (
        DeltaTable.forPath(spark, str(folder)).alias("t")
        .merge(source.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().whenNotMatchedBySourceDelete()
        .execute()
    )
    spark.read.format("delta").load(str(folder)).groupBy("value").count().collect()


def run_spark_job(config: Config) -> dict:
    """Run the label statistics job once on fresh gold tables and measure it."""
    from shl.labels.job import run_label_stats
    from shl.spark import get_spark

    shutil.rmtree(Path(config.lakehouse.root) / "gold", ignore_errors=True)
    spark = get_spark(config.spark)
    warm_up(spark, Path(config.lakehouse.root) / "warm_up")
    python_rss_before = _rss_bytes(os.getpid())
    with MemorySampler(spark) as sampler:
        cpu_before = _cpu_seconds(sampler.jvm_pid) + _cpu_seconds(os.getpid())
        started = time.monotonic()
        report = run_label_stats(config, spark)
        seconds = time.monotonic() - started
        cpu = _cpu_seconds(sampler.jvm_pid) + _cpu_seconds(os.getpid()) - cpu_before
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "timings": report.timings,
        "documents": report.n_documents,
        "labels": report.n_labels,
        "pairs": report.n_pairs,
        "edges": report.n_conflict_edges,
        "segments": report.n_segments,
        "peak_heap": sampler.peak_heap,
        "peak_jvm_rss": sampler.peak_rss,
        "python_rss": _peak_rss_bytes(),
        "python_rss_before": python_rss_before,
        "collected_bytes": int(
            report.conflict_edges.memory_usage(deep=True).sum()
            + report.segments.memory_usage(deep=True).sum()
        ),
    }


def run_pandas(config: Config, files: list[str]) -> dict:
    """Compute the same statistics and segments in this process with pandas and scipy."""
    import pandas as pd

    from shl.labels.segmentation import segment_labels_from_pairs
    from shl.labels.statistics import compute_label_counts, compute_label_statistics

    settings = config.segmentation
    cpu_before = _cpu_seconds(os.getpid())
    started = time.monotonic()
    frame = pd.read_parquet(files, columns=["labels", "split"])
    train = frame.loc[frame["split"] == "train", "labels"]
    statistics = compute_label_statistics(train, rho=settings.band_ratio)
    for split in ("val", "test"):
        compute_label_counts(frame.loc[frame["split"] == split, "labels"])
    result = segment_labels_from_pairs(
        statistics.label_counts(), statistics.cooccurrence,
        rho=settings.band_ratio, tau=settings.association_threshold,
        measure=settings.association_measure, min_segment_size=settings.min_segment_size,
        n_documents=len(train),
    )
    return {
        "seconds": time.monotonic() - started,
        "cpu_seconds": _cpu_seconds(os.getpid()) - cpu_before,
        "labels": len(statistics.counts),
        "pairs": len(statistics.cooccurrence),
        "segments": result.n_segments,
        "python_rss": _peak_rss_bytes(),
    }


def run_worker(arguments: argparse.Namespace) -> None:
    """Run one measurement and print its result as one JSON line."""
    import logging

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = bench_config(Path(arguments.work_dir), arguments.size, arguments.set)
    if arguments.worker == "build":
        result = build_documents(config)
    elif arguments.worker == "spark":
        result = run_spark_job(config)
    else:
        listing = json.loads(_listing_path(config).read_text(encoding="utf-8"))
        result = run_pandas(config, listing["files"])
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- driver


def _listing_path(config: Config) -> Path:
    return Path(config.lakehouse.root) / "documents_files.json"


def _spawn(arguments: argparse.Namespace, worker: str, size: int) -> dict:
    command = [
        sys.executable, "-m", "shl.bench.label_stats_scale", "--worker", worker,
        "--size", str(size), "--work-dir", arguments.work_dir,
        *(f"--set={value}" for value in arguments.set),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    results = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not results:
        sys.stderr.write(completed.stderr[-4000:])
        raise RuntimeError(
            f"the {worker} measurement of {size} admissions failed with exit code "
            f"{completed.returncode}; its stderr is above"
        )
    return json.loads(results[-1][len("RESULT "):])


def _prepare(arguments: argparse.Namespace, size: int) -> dict:
    """Generate the sample and build ``documents`` unless a listing of them exists."""
    from shl.ingest.sample_source import ensure_sample

    config = bench_config(Path(arguments.work_dir), size, arguments.set)
    ensure_sample(config)
    listing = _listing_path(config)
    if listing.is_file() and all(Path(name).exists()
                                 for name in json.loads(listing.read_text())["files"]):
        return json.loads(listing.read_text(encoding="utf-8"))
    built = _spawn(arguments, "build", size)
    listing.write_text(json.dumps(built), encoding="utf-8")
    print(f"built documents of {size:,} admissions in {built['seconds']:.0f} s", file=sys.stderr)
    return built


def run_benchmark(arguments: argparse.Namespace) -> None:
    # Imported here: that module imports torch, which would add its memory to the workers.
    from shl.bench.loss_speed import machine_description

    print(f"Machine: {machine_description()}")
    print(f"Load average before the run: {os.getloadavg()[0]:.1f}\n")
    rows = []
    for size in arguments.sizes:
        built = _prepare(arguments, size)
        load = os.getloadavg()[0]
        spark = _spawn(arguments, "spark", size)
        pandas_result = _spawn(arguments, "pandas", size) if size <= arguments.pandas_max else None
        rows.append((size, built, load, spark, pandas_result))
        print(f"measured {size:,} admissions: {json.dumps(spark)}", file=sys.stderr)

    print_tables(rows)


def _mib(value: float) -> str:
    return f"{value / 1024**2:,.0f}"


def print_tables(rows: list[tuple]) -> None:
    """Print the data sizes, then the times, then the memory, as markdown tables."""
    print("| admissions | train documents | labels | co-occurring pairs | conflict edges "
          "| segments |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, _, _, spark, _ in rows:
        print(
            f"| {size:,} | {spark['documents'].get('train', 0):,} | {spark['labels']:,} | "
            f"{spark['pairs']:,} | {spark['edges']:,} | {spark['segments']} |"
        )

    print("\n| admissions | Spark job s | counts + pairs + segmentation s | writes + plot s | "
          "Spark CPU s | pandas/scipy s | pandas CPU s | Spark job / pandas | load average |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, _, load, spark, pandas_result in rows:
        timings = spark["timings"]
        phases = ("label counts", "co-occurrence", "segmentation")
        compute = sum(timings.get(phase, 0.0) for phase in phases)
        writes = timings.get("write", 0.0) + timings.get("plot", 0.0)
        pandas_cells = "n/a | n/a | n/a"
        if pandas_result is not None:
            ratio = spark["seconds"] / pandas_result["seconds"]
            pandas_cells = (
                f"{pandas_result['seconds']:.1f} | {pandas_result['cpu_seconds']:.1f} | {ratio:.1f}"
            )
        print(
            f"| {size:,} | {spark['seconds']:.1f} | {compute:.1f} | {writes:.1f} | "
            f"{spark['cpu_seconds']:.1f} | {pandas_cells} | {load:.1f} |"
        )

    print("\n| admissions | JVM heap used, peak MiB | JVM RSS, peak MiB | Python driver RSS "
          "before / peak MiB | collected edges + segments MiB | pandas process RSS, peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, _, _, spark, pandas_result in rows:
        pandas_rss = _mib(pandas_result["python_rss"]) if pandas_result is not None else "n/a"
        print(
            f"| {size:,} | {_mib(spark['peak_heap'])} | {_mib(spark['peak_jvm_rss'])} | "
            f"{_mib(spark['python_rss_before'])} / {_mib(spark['python_rss'])} | "
            f"{spark['collected_bytes'] / 1024**2:.2f} | {pandas_rss} |"
        )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="numbers of admissions to generate and measure")
    parser.add_argument(
        "--work-dir", default=str(Path(tempfile.gettempdir()) / "shl-label-stats-bench"),
        help="folder for the samples and lakehouses, reused between runs",
    )
    parser.add_argument("--pandas-max", type=int, default=10_000_000,
                        help="largest size at which the pandas/scipy comparison runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="configuration override for every run, "
                             "e.g. --set spark.driver_memory=8g")
    parser.add_argument("--worker", choices=("build", "spark", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.worker:
        run_worker(arguments)
    else:
        run_benchmark(arguments)


if __name__ == "__main__":
    main()
