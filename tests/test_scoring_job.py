"""The scoring job: incremental and full runs, quarantine, and agreement with an
in-process run of the same model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from shl.config import load_config
from shl.documents.job import run_tokenize
from shl.ingest.job import run_ingest
from shl.model.coding_model import CodingModelConfig, build_coding_model, load_tokenizer
from shl.model.io import load_model, save_model
from shl.scoring.job import VocabularyMismatchError, run_score
from shl.scoring.predict import model_version, predict_probabilities

FINDINGS = [
    ("Essential hypertension treated with lisinopril.", "I10"),
    ("Type 2 diabetes mellitus, insulin started.", "E119"),
    ("Acute kidney failure after contrast.", "N179"),
    ("Community acquired pneumonia on chest x-ray.", "J189"),
]


def _write_mimic4(folder, admissions):
    """Write a MIMIC-IV layout with one note and its codes per admission."""
    (folder / "note").mkdir(parents=True)
    (folder / "hosp").mkdir()
    with open(folder / "note" / "discharge.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"])
        for hadm, subject, text, _ in admissions:
            writer.writerow([f"{subject}-DS-{hadm}", subject, hadm, "DS", 1, "2180-01-01 00:00:00", "", text])
    for name, header in (
        ("diagnoses_icd", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"]),
        ("procedures_icd", ["subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"]),
        ("d_icd_diagnoses", ["icd_code", "icd_version", "long_title"]),
        ("d_icd_procedures", ["icd_code", "icd_version", "long_title"]),
    ):
        with open(folder / "hosp" / f"{name}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            if name == "diagnoses_icd":
                for hadm, subject, _, codes in admissions:
                    for seq, code in enumerate(codes, start=1):
                        writer.writerow([subject, hadm, seq, code, 10])


def _admissions(first_hadm: int, count: int):
    rows = []
    for index in range(count):
        picked = [FINDINGS[index % 4], FINDINGS[(index + 1) % 4]]
        text = f"Admission {first_hadm + index}. " + " ".join(sentence for sentence, _ in picked)
        rows.append((first_hadm + index, 100 + index, text, [code for _, code in picked]))
    return rows


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    _write_mimic4(root / "day1", _admissions(1000, 12))
    _write_mimic4(root / "day2", _admissions(2000, 4))
    overrides = [
        "source.format=mimic4",
        "source.name=site",
        f"lakehouse.root={root / 'lakehouse'}",
        "labels.min_train_count=1",
        "tokenizer.chunk_len=32",
        "tokenizer.max_chunks=2",
        f"scoring.model={root / 'model'}",
        "scoring.top_k=3",
        "scoring.batch_size=4",
    ]
    day1 = load_config(None, overrides + [f"source.path={root / 'day1'}"])
    day2 = load_config(None, overrides + [f"source.path={root / 'day2'}"])
    run_ingest(day1, spark)
    run_tokenize(day1, spark)

    labels = [row["label"] for row in spark.read.format("delta").load(f"{root}/lakehouse/silver/label_index").orderBy("column").collect()]
    torch.manual_seed(0)
    model = build_coding_model(CodingModelConfig(num_labels=len(labels), head="linear", chunk_len=32, max_chunks=2))
    segments = [index % 2 for index in range(len(labels))]
    save_model(model, root / "model", labels, segments, {"global": 0.5, "per_segment": {"0": 0.4, "1": 0.6}})

    reports = {"first": run_score(day1, spark)}
    run_ingest(day2, spark)
    run_tokenize(day2, spark)
    reports["after_new_notes"] = run_score(day2, spark)
    reports["again"] = run_score(day2, spark)
    full = load_config(None, overrides + [f"source.path={root / 'day2'}", "scoring.mode=full"])
    reports["full"] = run_score(full, spark)
    predictions = spark.read.format("delta").load(f"{root}/lakehouse/gold/predictions")
    documents = spark.read.format("delta").load(f"{root}/lakehouse/silver/documents")
    return root, day2, reports, predictions, documents, labels


def test_first_run_scores_every_document(scored):
    _, _, reports, _, _, _ = scored
    assert reports["first"].to_score == 12
    assert reports["first"].scored == 12
    assert reports["first"].skipped == 0


def test_incremental_scores_only_new_documents(scored):
    _, _, reports, _, _, _ = scored
    report = reports["after_new_notes"]
    assert report.to_score == 4
    assert report.skipped == 12
    assert report.write.inserted == 4
    assert report.write.updated == 0


def test_second_incremental_scores_none(scored):
    _, _, reports, _, _, _ = scored
    assert reports["again"].to_score == 0
    assert reports["again"].write.inserted == 0


def test_full_run_rewrites_without_duplicates(scored):
    _, _, reports, predictions, _, _ = scored
    assert reports["full"].to_score == 16
    assert reports["full"].write.inserted == 0
    assert reports["full"].write.updated == 16
    assert predictions.count() == 16
    assert predictions.select("doc_id").distinct().count() == 16
    assert predictions.select("model_version").distinct().count() == 1


def test_probabilities_match_in_process_model(scored):
    root, _, _, predictions, documents, labels = scored
    model, metadata = load_model(root / "model")
    tokenizer = load_tokenizer(metadata.tokenizer_path)
    rows = documents.join(predictions, on="doc_id", how="inner").orderBy("doc_id").collect()
    expected = predict_probabilities(model, tokenizer, [row["text"] for row in rows], chunk_len=32, max_chunks=2, batch_size=3)
    actual = np.array([row["probabilities"] for row in rows], dtype=np.float32)
    assert actual.shape == (16, len(labels))
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


def test_top_codes_and_thresholds(scored):
    _, _, _, predictions, _, labels = scored
    row = predictions.orderBy("doc_id").first()
    probabilities = np.array(row["probabilities"])
    top = row["top_codes"]
    assert [entry["label"] for entry in top] == [labels[i] for i in np.argsort(-probabilities, kind="stable")[:3]]
    assert top[0]["probability"] == pytest.approx(probabilities.max(), abs=1e-6)
    # Even columns are segment 0 (threshold 0.4), odd columns segment 1 (threshold 0.6).
    expected = [label for column, label in enumerate(labels) if probabilities[column] >= (0.4 if column % 2 == 0 else 0.6)]
    assert row["predicted_codes"] == expected


def test_model_version_is_content_hash(scored):
    root, _, reports, predictions, _, _ = scored
    assert reports["first"].model_version == model_version(str(root / "model"))
    assert predictions.first()["model_version"] == reports["first"].model_version


def test_empty_and_large_documents_quarantined(scored, spark, tmp_path):
    root, day2, _, _, _, _ = scored
    import dataclasses

    tight = dataclasses.replace(day2, scoring=dataclasses.replace(day2.scoring, mode="full", max_document_chars=100))
    report = run_score(tight, spark)
    long_documents = spark.read.format("delta").load(f"{root}/lakehouse/silver/documents").filter("length(text) > 100").count()
    assert long_documents > 0
    assert report.quarantined == {"document_too_large": long_documents}
    quarantine = spark.read.format("delta").load(f"{root}/lakehouse/bronze/quarantine").filter("target_table = 'predictions'")
    assert quarantine.count() == long_documents
    assert "over scoring.max_document_chars (100)" in quarantine.first()["detail"]


def test_mismatched_vocabulary_is_rejected(scored, spark):
    root, day2, _, _, _, _ = scored
    tokens_path = f"{root}/lakehouse/silver/tokens"
    first_doc = spark.read.format("delta").load(tokens_path).agg({"doc_id": "min"}).first()[0]
    spark.sql(f"UPDATE delta.`{tokens_path}` SET vocab_sha256 = 'other' WHERE doc_id = '{first_doc}'")
    with pytest.raises(VocabularyMismatchError, match="run the tokenize stage with the model's tokenizer"):
        run_score(day2, spark)
