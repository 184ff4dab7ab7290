"""The training job end to end on small synthetic silver tables, with two CPU processes.

Three starts of the job share one lakehouse:

- a two-process Horovod run of two epochs, uninterrupted;
- a Horovod run stopped after its first epoch checkpoint (``stop_after_epochs=1``);
- the same run started again with TorchDistributor, which resumes from that checkpoint.

The checkpoint contains only the unwrapped model and optimizer state, so one launcher
can resume another's run. The third start is therefore also the TorchDistributor run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from shl import delta, tables
from shl.config import load_config
from shl.model import load_model
from shl.training.inputs import read_inputs
from shl.training.job import run_train
from shl.training.synthetic import synthetic_rows, write_synthetic_silver

N_DOCUMENTS = 40
N_LABELS = 8
BATCH = 4
EPOCHS = 2


def _config(root, overrides=()):
    return load_config(
        None,
        [
            f"lakehouse.root={root / 'lakehouse'}",
            "spark.shuffle_partitions=2",
            "tokenizer.chunk_len=32",
            "tokenizer.max_chunks=2",
            f"training.petastorm_cache_dir={root / 'petastorm'}",
            "training.num_proc=2",
            f"training.batch_size={BATCH}",
            f"training.epochs={EPOCHS}",
            "training.learning_rate=0.0005",
            "training.early_stopping_patience=0",
            "training.log_every_steps=5",
            "training.reader_workers=1",
            *overrides,
        ],
    )


def _train_doc_ids():
    documents, _, _ = synthetic_rows(N_DOCUMENTS, N_LABELS, 32, 2, seed=0)
    return {row[0] for row in documents if row[7] == "train"}


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    counts = write_synthetic_silver(spark, _config(root), n_documents=N_DOCUMENTS, n_labels=N_LABELS)
    return root, counts


@pytest.fixture(scope="module")
def horovod_run(spark, lakehouse):
    root, _ = lakehouse
    config = _config(root, [f"training.output_dir={root / 'horovod'}", "training.launcher=horovod"])
    return config, run_train(config, spark)


@pytest.fixture(scope="module")
def resumed_runs(spark, lakehouse):
    root, _ = lakehouse
    output = f"training.output_dir={root / 'resumed'}"
    stopped = run_train(_config(root, [output, "training.launcher=horovod", "training.stop_after_epochs=1"]), spark)
    config = _config(root, [output, "training.launcher=torch_distributor"])
    return stopped, run_train(config, spark)


def _assert_disjoint_cover(records, expected_doc_ids):
    assert [record["rank"] for record in records] == [0, 1]
    first, second = (set(record["doc_ids"]) for record in records)
    assert first.isdisjoint(second)
    assert first | second == expected_doc_ids
    # Rows go round-robin into one file per process, so the shards differ by at most one row.
    assert abs(len(first) - len(second)) <= 1


# ---------------------------------------------------------------------------
# Horovod, uninterrupted
# ---------------------------------------------------------------------------


def test_horovod_run_completes(horovod_run, lakehouse):
    _, counts = lakehouse
    _, report = horovod_run
    assert report.train_rows == counts.train == 28
    assert report.val_rows == counts.val == 6
    # 28 rows in 2 files of 14: 4 batches of 4 per process and epoch.
    assert report.steps_per_epoch == 4
    assert report.final_step == report.total_steps == EPOCHS * 4
    assert report.epochs_completed == EPOCHS
    assert report.complete
    assert report.resumed_from_epoch is None
    assert report.segments_source == "frequency bands"
    assert report.train_source == "silver.documents"
    assert report.learning_rate == pytest.approx(0.001)  # scaled by 2 processes
    assert [entry["epoch"] for entry in report.history] == [1, 2]


def test_horovod_shards_are_disjoint_and_cover_train(horovod_run):
    _, report = horovod_run
    _assert_disjoint_cover(report.rank_records, _train_doc_ids())
    for record in report.rank_records:
        assert record["context"] == "horovod"
        assert record["samples"] == EPOCHS * 4 * BATCH


def test_horovod_ranks_end_with_equal_parameters(horovod_run):
    _, report = horovod_run
    checksums = {record["parameters_sha256"] for record in report.rank_records}
    assert len(checksums) == 1
    assert len(checksums.pop()) == 64


def test_training_loss_goes_down(horovod_run):
    _, report = horovod_run
    first, last = report.history[0]["train_loss"], report.history[-1]["train_loss"]
    assert np.isfinite(first)
    assert last < first


def test_saved_model_has_labels_segments_thresholds(horovod_run, lakehouse):
    _, counts = lakehouse
    _, report = horovod_run
    model, metadata = load_model(report.model_dir)
    assert metadata.label_index == [f"icd10cm:S{index:02d}" for index in range(counts.labels)]
    assert len(metadata.segments) == counts.labels
    assert set(metadata.thresholds) == {"global", "per_segment"}
    assert 0.0 < metadata.thresholds["global"] < 1.0
    assert metadata.thresholds == report.thresholds
    assert metadata.config.chunk_len == 32
    assert metadata.config.max_chunks == 2
    with torch.no_grad():
        logits = model(torch.full((1, 2, 32), 101), torch.ones(1, 2, 32, dtype=torch.long))
    assert logits.shape == (1, counts.labels)


def test_validation_metrics_per_epoch(horovod_run):
    _, report = horovod_run
    for entry in report.history:
        for key in ("val_micro_f1", "val_macro_f1", "val_micro_f1_tuned", "val_segment_0_micro_f1"):
            assert 0.0 <= entry[key] <= 1.0
        assert entry["val_rows"] == 6
    best = max(entry["val_micro_f1_tuned"] for entry in report.history)
    assert report.best_metric == pytest.approx(best)


def test_checkpoint_of_each_epoch_kept(horovod_run):
    _, report = horovod_run
    folder = os.path.join(report.output_dir, "checkpoints")
    assert sorted(os.listdir(folder)) == ["epoch-0001", "epoch-0002", "latest"]
    with open(os.path.join(folder, "epoch-0002", "state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    assert state["state"]["step"] == EPOCHS * 4
    assert state["labels"] == [f"icd10cm:S{index:02d}" for index in range(len(state["labels"]))]
    assert sorted(os.listdir(os.path.join(folder, "epoch-0002"))) == [
        "model.safetensors", "state.json", "training_state.pt",
    ]


def test_mlflow_run_records_params_metrics_model(horovod_run):
    from mlflow.tracking import MlflowClient

    _, report = horovod_run
    root = os.path.dirname(report.output_dir)
    client = MlflowClient(f"file://{root}/lakehouse/mlruns")
    run = client.get_run(report.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["training.launcher"] == "horovod"
    assert run.data.params["data.train_rows"] == "28"
    history = client.get_metric_history(report.mlflow_run_id, "train_loss")
    assert [metric.step for metric in history] == [1, 2]
    assert [metric.value for metric in history] == pytest.approx([e["train_loss"] for e in report.history])
    artifacts = {item.path for item in client.list_artifacts(report.mlflow_run_id, "model")}
    assert {"model/config.json", "model/model.safetensors"} <= artifacts


# ---------------------------------------------------------------------------
# Stopped, then resumed with TorchDistributor
# ---------------------------------------------------------------------------


def test_stopped_run_ends_after_first_checkpoint(resumed_runs):
    stopped, _ = resumed_runs
    assert not stopped.complete
    assert stopped.epochs_completed == 1
    assert stopped.final_step == 4
    assert [entry["epoch"] for entry in stopped.history] == [1]
    assert stopped.model_dir == os.path.join(stopped.output_dir, "model")


def test_resumed_run_ends_at_uninterrupted_step(resumed_runs, horovod_run):
    _, resumed = resumed_runs
    _, uninterrupted = horovod_run
    assert resumed.resumed_from_epoch == 1
    assert resumed.complete
    assert resumed.final_step == uninterrupted.final_step == 8
    assert [entry["epoch"] for entry in resumed.history] == [1, 2]
    # The resumed start trained the second epoch only.
    for record in resumed.rank_records:
        assert record["samples"] == 4 * BATCH


def test_torch_distributor_shards_and_parameters(resumed_runs):
    _, resumed = resumed_runs
    _assert_disjoint_cover(resumed.rank_records, _train_doc_ids())
    assert [record["context"] for record in resumed.rank_records] == ["torch_ddp", "torch_ddp"]
    assert len({record["parameters_sha256"] for record in resumed.rank_records}) == 1


# ---------------------------------------------------------------------------
# Gold inputs: segments and the cleaned training view
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold_inputs(spark, lakehouse, horovod_run, resumed_runs):
    # Depends on the runs, so the gold tables appear only after they have trained.
    root, counts = lakehouse
    config = _config(root)
    labels = [f"icd10cm:S{index:02d}" for index in range(counts.labels)]
    segment_rows = [
        (label, 1, 0, 0, index % 3, 0, 0, 1, 1, 1, 1.0, 0.0) for index, label in enumerate(labels)
    ]
    delta.overwrite_table(spark, spark.createDataFrame(segment_rows, tables.SEGMENTS.schema), tables.SEGMENTS, config)
    documents = delta.read_table(spark, tables.DOCUMENTS, config).filter("split = 'train'").orderBy("doc_id").collect()
    view_documents = documents[:12]
    view_rows = [
        (row["doc_id"], row["source"], row["subject_id"], row["hadm_id"], row["text"], row["text_sha256"],
         row["labels"], [0.25] * len(row["labels"]), None, 1)
        for row in view_documents
    ]
    delta.overwrite_table(
        spark, spark.createDataFrame(view_rows, tables.TRAINING_VIEW.schema), tables.TRAINING_VIEW, config
    )
    return config, read_inputs(spark, config), view_documents


def test_gold_segments_are_used(gold_inputs):
    _, inputs, _ = gold_inputs
    assert inputs.segments_source == "gold.segments"
    assert inputs.segments == [index % 3 for index in range(len(inputs.labels))]


def test_training_view_rows_and_weights(gold_inputs):
    _, inputs, view_documents = gold_inputs
    assert inputs.train_source == "gold.training_view"
    rows = {row["doc_id"]: row for row in inputs.train.collect()}
    assert set(rows) == {row["doc_id"] for row in view_documents}
    for row in view_documents:
        columns = [inputs.labels.index(label) for label in row["labels"]]
        assert rows[row["doc_id"]]["label_columns"] == sorted(columns)
        assert rows[row["doc_id"]]["label_weights"] == [0.25] * len(columns)


def test_training_view_switch_off(spark, lakehouse, gold_inputs):
    root, _ = lakehouse
    inputs = read_inputs(spark, _config(root, ["training.use_training_view=false"]))
    assert inputs.train_source == "silver.documents"
    assert inputs.train.count() == 28
    assert {weight for row in inputs.train.collect() for weight in row["label_weights"]} == {1.0}
