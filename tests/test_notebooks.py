"""Each Databricks notebook's code, run locally on a small built-in sample with a
stand-in for ``dbutils`` widgets. The notebooks run in pipeline order on one lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shl.model.coding_model import CodingModelConfig, build_coding_model
from shl.model.io import save_model

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
            f"scoring.model={root / 'model'}",
        ]
    )
    return root, {"config": "", "overrides": overrides}


def test_every_notebook_is_source_format():
    names = sorted(path.name for path in NOTEBOOKS.glob("*.py"))
    assert "01_ingest.py" in names
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


def test_score_notebook(spark, lakehouse):
    root, widgets = lakehouse
    labels = [
        row["label"]
        for row in spark.read.format("delta").load(f"{root}/lakehouse/silver/label_index").orderBy("column").collect()
    ]
    torch.manual_seed(0)
    model = build_coding_model(CodingModelConfig(num_labels=len(labels), head="linear", chunk_len=32, max_chunks=2))
    save_model(model, root / "model", labels, [0] * len(labels), {"global": 0.5})
    namespace = run_notebook("06_score", spark, widgets)
    assert namespace["report"].scored == 120
    assert spark.read.format("delta").load(f"{root}/lakehouse/gold/predictions").count() == 120
