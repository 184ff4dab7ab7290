"""The evaluate and report stages on a small scored lakehouse, checked against
scikit-learn on the stored predictions, and their pure parts by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from shl import tables
from shl.documents.job import run_tokenize
from shl.evaluation.data import ScoredModel, ScoredSplit
from shl.evaluation.job import metric_rows, run_evaluate
from shl.ingest.job import run_ingest
from shl.labels.job import run_label_stats
from shl.model.coding_model import CodingModelConfig, build_coding_model
from shl.model.io import save_model
from shl.report import html
from shl.report.job import run_report
from shl.report.plots import cooccurrence_matrix
from shl.scoring.job import run_score
from test_scoring_job import _admissions, _write_mimic4


def test_metric_rows_by_hand():
    model = ScoredModel("m", "v1", ["icd10cm:A", "icd10cm:B", "icd10cm:C"], [0, 0, 1],
                        {"global": 0.5, "per_segment": {"1": 0.2}}, {"loss": "shl"})
    scored = ScoredSplit(
        split="test",
        doc_ids=["d1", "d2"],
        probabilities=np.array([[0.9, 0.4, 0.3], [0.1, 0.6, 0.1]], dtype=np.float32),
        targets=np.array([[1, 0, 1], [0, 1, 0]], dtype=bool),
        gold_labels=[["icd10cm:A", "icd10cm:C", "icd10cm:Z"], ["icd10cm:B"]],
    )
    rows = metric_rows(model, scored, np.array([0, 1, 1]), [1])
    value = {(r["scope"], r["group"], r["metric"]): r["value"] for r in rows}
    # Thresholds 0.5, 0.5, 0.2: predictions A d1, B d2, C d1 -> all three right.
    assert value[("overall", -1, "micro_f1")] == pytest.approx(1.0)
    # At 0.5, C on d1 (0.3) is missed: TP 2, FN 1 -> micro-F1 4/5; per label F1 1, 1, 0.
    assert value[("overall", -1, "micro_f1_at_0.5")] == pytest.approx(0.8)
    assert value[("overall", -1, "macro_f1_at_0.5")] == pytest.approx(2 / 3)
    # d1 ranks A, B, C: A at 1, C at 3, Z never -> (1 + 2/3) / 3; d2 ranks B first -> 1.
    assert value[("overall", -1, "codiesp_map")] == pytest.approx(((1 + 2 / 3) / 3 + 1) / 2)
    assert value[("overall", -1, "gold_codes_outside_labels")] == 1
    assert value[("segment", 1, "labels")] == 1
    assert value[("band", 1, "labels")] == 2


def test_cooccurrence_matrix_by_hand():
    pairs = pd.DataFrame({"code_a": ["a", "a", "x"], "code_b": ["b", "c", "y"], "n_ab": [2, 1, 5]})
    matrix = cooccurrence_matrix(["a", "b", "c"], [4, 2, 0], pairs)
    np.testing.assert_allclose(matrix, [[1.0, 0.5, 0.25], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_html_escapes_and_formats():
    page = html.ReportPage(
        title="Report <b>", facts={"model": "/m&<x>", "documents": 1234, "f1": 0.123456, "auc": float("nan")},
        tables=[html.Table("t", ("code", "value"), [("<I10>", 12000.0)])],
        images=[("plot", "a b.png", "caption")], versions_read={"documents": 3}, config_yaml="a: <1>",
    )
    text = html.render(page)
    assert "<title>Report &lt;b&gt;</title>" in text
    for fragment in ("/m&amp;&lt;x&gt;", "&lt;I10&gt;", "a: &lt;1&gt;", "<td>1,234</td>", "<td>0.1235</td>",
                     "<td>n/a</td>", "<td>12,000</td>", '<img src="a b.png"'):
        assert fragment in text
    assert "<td>documents</td><td>3</td>" in text


@pytest.fixture(scope="module")
def evaluated(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    _write_mimic4(root / "notes", _admissions(1000, 30))
    from shl.config import load_config

    config = load_config(None, [
        "source.format=mimic4", f"source.path={root / 'notes'}", f"lakehouse.root={root / 'lakehouse'}",
        "labels.min_train_count=1", "tokenizer.chunk_len=32", "tokenizer.max_chunks=2",
        "split.val_fraction=0.2", "split.test_fraction=0.3", "segmentation.min_segment_size=1",
        f"scoring.model={root / 'model'}", "scoring.mode=full", "scoring.batch_size=8",
        "evaluation.k_values=[1,2]",
    ])
    run_ingest(config, spark)
    run_tokenize(config, spark)
    run_label_stats(config, spark)
    labels = [row["label"] for row in spark.read.format("delta").load(tables.LABEL_INDEX.path(config)).orderBy("column").collect()]
    segment = {row["code"]: row["segment_id"] for row in spark.read.format("delta").load(tables.SEGMENTS.path(config)).collect()}
    torch.manual_seed(3)
    model = build_coding_model(CodingModelConfig(num_labels=len(labels), head="linear", chunk_len=32, max_chunks=2))
    segments = [segment[label] for label in labels]
    save_model(model, root / "model", labels, segments, {"global": 0.5, "per_segment": {"0": 0.45}},
               training={"loss": "bce", "loss_options": {}})
    run_score(config, spark)
    first = run_evaluate(config, spark)
    second = run_evaluate(config, spark)
    report = run_report(config, spark)
    return config, labels, segments, first, second, report


def test_evaluation_matches_scikit_learn(spark, evaluated):
    config, labels, segments, report, _, _ = evaluated
    documents = spark.read.format("delta").load(tables.DOCUMENTS.path(config)).filter("split = 'test'")
    predictions = spark.read.format("delta").load(tables.PREDICTIONS.path(config))
    rows = documents.join(predictions, "doc_id").orderBy("doc_id").collect()
    probabilities = np.array([row["probabilities"] for row in rows])
    targets = np.array([[label in row["labels"] for label in labels] for row in rows]).astype(int)
    cut = np.array([0.45 if s == 0 else 0.5 for s in segments])
    assert report.documents == len(rows) > 0
    assert report.unscored == 0
    assert report.loss == "bce"
    assert report.overall["micro_f1"] == pytest.approx(skm.f1_score(targets, probabilities >= cut, average="micro", zero_division=0))
    assert report.overall["macro_f1"] == pytest.approx(skm.f1_score(targets, probabilities >= cut, average="macro", zero_division=0))
    assert report.overall["micro_f1_at_0.5"] == pytest.approx(skm.f1_score(targets, probabilities >= 0.5, average="micro", zero_division=0))
    assert report.overall["micro_auc"] == pytest.approx(skm.roc_auc_score(targets.ravel(), probabilities.ravel()))
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :2]
    assert report.overall["precision_at_2"] == pytest.approx(np.mean([targets[i, top[i]].sum() / 2 for i in range(len(rows))]))
    assert report.overall["documents"] == len(rows)
    stored = spark.read.format("delta").load(tables.EVALUATION.path(config))
    assert stored.filter("scope = 'overall' AND metric = 'micro_f1'").first()["value"] == pytest.approx(report.overall["micro_f1"])
    assert {row["scope"] for row in stored.select("scope").distinct().collect()} == {"overall", "segment", "band"}
    assert stored.select("loss").distinct().collect()[0]["loss"] == "bce"


def test_second_evaluation_changes_nothing(evaluated):
    _, _, _, first, second, _ = evaluated
    assert first.write.inserted == first.rows > 0
    assert (second.write.inserted, second.write.updated) == (0, 0)
    assert second.overall == first.overall


def test_report_page_and_plots(evaluated):
    config, _, _, first, _, report = evaluated
    assert report.path.endswith(f"gold/reports/{first.model_version}/report.html")
    names = sorted(path.rsplit("/", 1)[1] for path in report.images)
    assert names == ["cooccurrence.png", "long_tail.png", "precision_recall.png", "segment_f1.png"]
    for path in report.images:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    text = open(report.path, encoding="utf-8").read()
    assert f"bce {first.model_version[:8]}" in text
    for fragment in ("Metrics per segment", "Metrics per frequency band", "<td>predictions</td>", "evaluation:", "k_values:"):
        assert fragment in text
    assert report.models_compared == 1


def test_evaluate_unscored_model_fails_clearly(spark, evaluated, tmp_path):
    config, labels, segments, *_ = evaluated
    from dataclasses import replace

    missing = replace(config, scoring=replace(config.scoring, model=str(tmp_path / "missing")))
    with pytest.raises(FileNotFoundError, match="missing config.json in model folder"):
        run_evaluate(missing, spark)
    torch.manual_seed(4)
    model = build_coding_model(CodingModelConfig(num_labels=len(labels), head="linear", chunk_len=32, max_chunks=2))
    save_model(model, tmp_path / "unscored", labels, segments, {"global": 0.5})
    unscored = replace(config, scoring=replace(config.scoring, model=str(tmp_path / "unscored")))
    with pytest.raises(ValueError, match="no test document has a prediction with probabilities by model version"):
        run_evaluate(unscored, spark)
