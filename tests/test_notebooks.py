"""Each Databricks notebook's code, run locally on a small built-in sample with a
stand-in for ``dbutils`` widgets. The notebooks run in pipeline order on one lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_SEPARATOR = "# COMMAND ----------"


class Widgets:
    """The part of ``dbutils.widgets`` the notebooks use, with values set by the test."""

    def __init__(self, values: dict[str, str]):
        self.values = dict(values)
        self.created: dict[str, str] = {}

    def text(self, name: str, default: str, label: str) -> None:
        self.created[name] = label
        self.values.setdefault(name, default)

    def get(self, name: str) -> str:
        if name not in self.created:
            raise ValueError(f"widget {name!r} was read before it was created")
        return self.values[name]


class DbUtils:
    def __init__(self, values: dict[str, str]):
        self.widgets = Widgets(values)


def run_notebook(name: str, spark, widget_values: dict[str, str]) -> dict:
    """Execute a source-format notebook cell by cell and return its namespace."""
    source = (NOTEBOOKS / f"{name}.py").read_text(encoding="utf-8")
    assert source.startswith("# Databricks notebook source\n")
    namespace = {"spark": spark, "dbutils": DbUtils(widget_values), "display": print}
    for index, cell in enumerate(source.split(CELL_SEPARATOR)):
        code = "\n".join(line for line in cell.splitlines() if not line.startswith("# MAGIC"))
        exec(compile(code, f"{name}.py[cell {index}]", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    overrides = " ".join(
        [
            f"source.path={root / 'sample'}",
            f"lakehouse.root={root / 'lakehouse'}",
            "sample.n_admissions=120",
            "sample.n_patients=50",
            "sample.n_diagnosis_codes=40",
            "sample.n_procedure_codes=5",
            "labels.min_train_count=3",
            "tokenizer.chunk_len=32",
            "tokenizer.max_chunks=2",
            "segmentation.min_segment_size=2",
            "training.epochs=1",
            "training.batch_size=4",
            "training.reader_workers=1",
            "training.log_every_steps=100",
            f"training.output_dir={root / 'run'}",
            f"training.petastorm_cache_dir={root / 'petastorm'}",
            f"scoring.model={root / 'run' / 'model'}",
            "scoring.mode=full",
        ]
    )
    return root, {"config": "", "overrides": overrides}


def test_every_notebook_is_source_format():
    names = sorted(path.name for path in NOTEBOOKS.glob("*.py"))
    assert names == [
        "00_overview.py", "01_ingest.py", "02_tokenize.py", "03_label_stats.py", "04_dedup_noise.py",
        "05_train.py", "06_score.py", "07_evaluate.py", "08_report.py",
    ]
    for path in NOTEBOOKS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Databricks notebook source\n"), path.name
        assert CELL_SEPARATOR in text, path.name


def test_ingest_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("01_ingest", spark, widgets)
    assert namespace["report"].tables["notes"].write.inserted == 120
    assert namespace["dbutils"].widgets.created.keys() == {"config", "overrides"}


def test_tokenize_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("02_tokenize", spark, widgets)
    assert namespace["report"].documents == 120
    assert namespace["report"].labels > 0


def test_label_stats_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("03_label_stats", spark, widgets)
    report = namespace["report"]
    assert report.n_labels > 0
    assert len(report.segments) > 0
    assert (root / "lakehouse" / "gold" / "reports" / "long_tail.png").is_file()


def test_dedup_noise_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("04_dedup_noise", spark, widgets)
    assert spark.read.format("delta").load(f"{root}/lakehouse/gold/embeddings").count() == 120
    assert spark.read.format("delta").load(f"{root}/lakehouse/gold/training_view").count() > 0
    assert namespace["report"].documents == 120


def test_train_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("05_train", spark, widgets)
    report = namespace["report"]
    assert report.complete
    assert report.epochs_completed == 1
    assert report.num_proc == 2
    assert (root / "run" / "model" / "config.json").is_file()


def test_score_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("06_score", spark, widgets)
    assert namespace["report"].scored == 120
    assert spark.read.format("delta").load(f"{root}/lakehouse/gold/predictions").count() == 120


def test_evaluate_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("07_evaluate", spark, widgets)
    report = namespace["report"]
    test_documents = spark.read.format("delta").load(f"{root}/lakehouse/silver/documents").filter("split = 'test'").count()
    assert report.documents == test_documents > 0
    assert report.loss == "shl"
    assert 0.0 <= report.overall["micro_f1"] <= 1.0
    assert 0.0 <= report.overall["codiesp_map"] <= 1.0


def test_report_notebook(spark, lakehouse):
    root, widgets = lakehouse
    namespace = run_notebook("08_report", spark, widgets)
    report = namespace["report"]
    assert report.path.startswith(str(root / "lakehouse" / "gold" / "reports"))
    assert len(report.images) == 4
    assert open(report.path, encoding="utf-8").read().startswith("<!DOCTYPE html>")


def test_overview_notebook_resumes_from_the_tables(spark, lakehouse):
    root, widgets = lakehouse
    skipped = "pipeline.skip=[ingest,tokenize,label-stats,dedup-noise,train]"
    namespace = run_notebook("00_overview", spark, {**widgets, "overrides": f"{widgets['overrides']} {skipped}"})
    report = namespace["report"]
    assert list(report.seconds) == ["score", "evaluate", "report"]
    assert report.reports["score"].write.inserted == 0
    assert report.reports["evaluate"].write.inserted == 0
    assert report.reports["evaluate"].write.updated == 0
    assert report.report_path.endswith("report.html")
