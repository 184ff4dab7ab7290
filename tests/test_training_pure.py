"""Pure parts of training: F1 metrics, threshold tuning, dense targets, step plans, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from shl.config import ConfigError, load_config
from shl.training import checkpoint as checkpoints
from shl.training.data import (
    DenseLabelTransform,
    cache_dir_url,
    dense_targets,
    files_for,
    micro_batches_per_epoch,
)
from shl.training.job import parse_loss_options
from shl.training.loop import validation_metrics
from shl.training.metrics import (
    evaluate_predictions,
    evaluate_probabilities,
    label_thresholds,
    micro_f1_by_threshold,
    micro_macro_f1,
    tune_threshold,
    tune_thresholds,
)
from shl.training.optim import build_optimizer, linear_warmup_decay, warmup_steps_for
from shl.training.tracking import flatten, tracking_uri

TARGETS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
PREDICTIONS = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0]])


# ---------------------------------------------------------------------------
# F1
# ---------------------------------------------------------------------------


def test_f1_hand_worked_example():
    # Label 0: TP 2 -> F1 1. Label 1: TP 1, FN 1 -> 2/3. Label 2: FP 1, FN 1 -> 0.
    # Pooled: TP 3, FP 1, FN 2 -> 6 / 9.
    micro, macro = micro_macro_f1(TARGETS, PREDICTIONS)
    assert micro == pytest.approx(6 / 9)
    assert macro == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_f1_matches_sklearn_on_hand_example():
    micro, macro = micro_macro_f1(TARGETS, PREDICTIONS)
    assert micro == pytest.approx(f1_score(TARGETS, PREDICTIONS, average="micro", zero_division=0))
    assert macro == pytest.approx(f1_score(TARGETS, PREDICTIONS, average="macro", zero_division=0))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_f1_matches_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    targets = (rng.random((40, 12)) < 0.2).astype(int)
    predictions = (rng.random((40, 12)) < 0.25).astype(int)
    targets[:, 3] = 0
    predictions[:, 3] = 0  # a label with no true and no predicted positive scores 0
    micro, macro = micro_macro_f1(targets, predictions)
    assert micro == pytest.approx(f1_score(targets, predictions, average="micro", zero_division=0))
    assert macro == pytest.approx(f1_score(targets, predictions, average="macro", zero_division=0))


def test_f1_per_segment_hand_worked():
    metrics = evaluate_predictions(TARGETS, PREDICTIONS, [0, 0, 1])
    # Segment 0 = labels 0 and 1: TP 3, FP 0, FN 1 -> 6/7; macro (1 + 2/3) / 2.
    assert metrics["segment_0_micro_f1"] == pytest.approx(6 / 7)
    assert metrics["segment_0_macro_f1"] == pytest.approx(5 / 6)
    assert metrics["segment_1_micro_f1"] == 0.0
    assert metrics["segment_1_macro_f1"] == 0.0
    assert metrics["micro_f1"] == pytest.approx(6 / 9)
    assert sorted(metrics) == [
        "macro_f1", "micro_f1", "segment_0_macro_f1", "segment_0_micro_f1",
        "segment_1_macro_f1", "segment_1_micro_f1",
    ]


def test_f1_per_segment_matches_sklearn_on_columns():
    rng = np.random.default_rng(5)
    targets = (rng.random((30, 8)) < 0.3).astype(int)
    predictions = (rng.random((30, 8)) < 0.3).astype(int)
    segments = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    metrics = evaluate_predictions(targets, predictions, segments)
    for segment in range(3):
        columns = segments == segment
        expected_micro = f1_score(targets[:, columns], predictions[:, columns], average="micro", zero_division=0)
        expected_macro = f1_score(targets[:, columns], predictions[:, columns], average="macro", zero_division=0)
        assert metrics[f"segment_{segment}_micro_f1"] == pytest.approx(expected_micro)
        assert metrics[f"segment_{segment}_macro_f1"] == pytest.approx(expected_macro)


def test_f1_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="does not match"):
        micro_macro_f1(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="segments has 2 entries"):
        evaluate_predictions(TARGETS, PREDICTIONS, [0, 1])


# ---------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------


def test_threshold_is_inclusive():
    probabilities = np.array([[0.5, 0.49]])
    metrics = evaluate_probabilities(probabilities, np.array([[1, 1]]), [0, 0], 0.5)
    # 0.5 >= 0.5 is positive, 0.49 is not: TP 1, FN 1 -> 2/3.
    assert metrics["micro_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_by_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    # Rounded to 0.05 so that many scores equal a candidate exactly.
    probabilities = np.round(rng.random((25, 6)) * 20) / 20
    targets = (rng.random((25, 6)) < 0.3).astype(int)
    candidates = np.round(np.arange(0, 21) / 20, 2)
    expected = [
        f1_score(targets.ravel(), (probabilities >= t).ravel().astype(int), zero_division=0) for t in candidates
    ]
    np.testing.assert_allclose(micro_f1_by_threshold(probabilities, targets, candidates), expected)


def test_tune_threshold_hand_worked():
    # t <= 0.2: TP 3, FP 1 -> 6/7; (0.2, 0.3]: TP 2, FP 1, FN 1 -> 4/6; (0.3, 0.8]: TP 2, FN 1 -> 4/5.
    # 0.01 .. 0.20 tie at 6/7, and the tie goes to the candidate closest to 0.5: 0.20.
    threshold, f1 = tune_threshold(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 1]))
    assert threshold == pytest.approx(0.20)
    assert f1 == pytest.approx(6 / 7)


def _two_segment_example():
    # Segment 0 (labels 0, 1): positives at 0.9, negatives at 0.6.
    # Segment 1 (labels 2, 3): positives at 0.3, negatives at 0.1.
    # Label 4 (segment 2) has no positive.
    probabilities = np.array([
        [0.9, 0.9, 0.3, 0.3, 0.7],
        [0.6, 0.6, 0.1, 0.1, 0.2],
        [0.9, 0.9, 0.3, 0.3, 0.2],
        [0.6, 0.6, 0.1, 0.1, 0.2],
    ])
    targets = np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
    return probabilities, targets, np.array([0, 0, 1, 1, 2])


def test_tune_thresholds_per_segment_hand_worked():
    probabilities, targets, segments = _two_segment_example()
    thresholds = tune_thresholds(probabilities, targets, segments)
    # Segment 0 is perfect on (0.6, 0.9]: closest to 0.5 is 0.61. Segment 1 on (0.1, 0.3]: 0.30.
    assert thresholds["per_segment"] == {"0": pytest.approx(0.61), "1": pytest.approx(0.30)}
    # All labels: (0.2, 0.3] gives TP 8, FP 5 (four 0.6, one 0.7) -> 16/21, the best;
    # (0.1, 0.2] TP 8, FP 8 -> 16/24; (0.7, 0.9] TP 4, FN 4 -> 8/12. Ties 0.21..0.30 -> 0.30.
    assert thresholds["global"] == pytest.approx(0.30)
    assert "2" not in thresholds["per_segment"]


def test_tuned_thresholds_apply_per_segment():
    probabilities, targets, segments = _two_segment_example()
    thresholds = tune_thresholds(probabilities, targets, segments)
    np.testing.assert_allclose(label_thresholds(thresholds, segments), [0.61, 0.61, 0.30, 0.30, 0.30])
    tuned = evaluate_probabilities(probabilities, targets, segments, thresholds)
    # Only label 4's 0.7 is a false positive: TP 8, FP 1 -> 16/17.
    assert tuned["micro_f1"] == pytest.approx(16 / 17)
    assert tuned["segment_0_micro_f1"] == 1.0
    assert tuned["segment_1_micro_f1"] == 1.0


def test_label_thresholds_default_global():
    np.testing.assert_allclose(label_thresholds({}, [0, 1]), [0.5, 0.5])
    np.testing.assert_allclose(label_thresholds({"global": 0.3, "per_segment": {1: 0.7}}, [0, 1]), [0.3, 0.7])


def test_validation_metrics_keys_and_values():
    probabilities, targets, segments = _two_segment_example()
    metrics, thresholds = validation_metrics(probabilities, targets, segments.tolist())
    # At 0.5: the 0.9, 0.6 and 0.7 entries are positive -> TP 4, FP 5, FN 4 -> 8/17.
    assert metrics["val_micro_f1"] == pytest.approx(8 / 17)
    assert metrics["val_micro_f1_tuned"] == pytest.approx(16 / 17)
    assert metrics["val_global_threshold"] == pytest.approx(0.30)
    assert thresholds["global"] == pytest.approx(0.30)
    assert "val_segment_2_micro_f1" in metrics


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def test_dense_targets_and_weights():
    targets, weights = dense_targets([[0, 2], [], [1]], [[1.0, 0.25], [], [0.5]], 3)
    np.testing.assert_array_equal(targets, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 0.25], [1, 1, 1], [1, 0.5, 1]])
    assert targets.dtype == np.float32
    assert weights.dtype == np.float32


def test_dense_targets_rejects_bad_rows():
    with pytest.raises(ValueError, match="outside 0..2"):
        dense_targets([[3]], [[1.0]], 3)
    with pytest.raises(ValueError, match="2 label columns but 1 label weights"):
        dense_targets([[0, 1]], [[1.0]], 3)


def test_dense_label_transform_on_a_batch():
    frame = pd.DataFrame({
        "row_id": [7, 8],
        "input_ids": [np.array([101, 5, 102, 0]), np.array([101, 6, 7, 102])],
        "attention_mask": [np.array([1, 1, 1, 0]), np.array([1, 1, 1, 1])],
        "label_columns": [np.array([1]), np.array([0, 2])],
        "label_weights": [np.array([0.25], np.float32), np.array([1.0, 1.0], np.float32)],
    })
    out = DenseLabelTransform(num_labels=3, tokens_per_document=4)(frame)
    assert list(out.columns) == ["row_id", "input_ids", "attention_mask", "targets", "weights"]
    np.testing.assert_array_equal(np.stack(out["targets"]), [[0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(np.stack(out["weights"]), [[1, 0.25, 1], [1, 1, 1]])
    assert out["input_ids"][0].dtype == np.int32


def test_files_are_a_multiple_of_processes():
    assert files_for(63, 2) == 2
    assert files_for(5000, 2) == 4  # 2048 rows per file: ceil(5000 / 4096) = 2 files per process
    assert files_for(10, 3) == 3


def test_batches_cover_the_largest_shard():
    # 63 rows in 2 files: 32 and 31 rows; the larger shard needs 8 batches of 4.
    assert micro_batches_per_epoch(63, 2, 2, 4, 1) == 8
    # Rounded up to a multiple of the accumulation steps.
    assert micro_batches_per_epoch(63, 2, 2, 4, 3) == 9
    # 4 files of ceil(100 / 4) = 25 rows, 2 files per process: 50 rows, 13 batches of 4.
    assert micro_batches_per_epoch(100, 4, 2, 4, 1) == 13
    with pytest.raises(ValueError, match="multiple of num_proc"):
        micro_batches_per_epoch(100, 3, 2, 4, 1)


def test_cache_dir_url_forms(tmp_path):
    assert cache_dir_url(str(tmp_path)) == f"file://{tmp_path}"
    assert cache_dir_url("file:///shared/cache") == "file:///shared/cache"
    assert cache_dir_url("dbfs:/tmp/cache") == "dbfs:/tmp/cache"
    with pytest.raises(ConfigError, match="training.petastorm_cache_dir is empty"):
        cache_dir_url("  ")


# ---------------------------------------------------------------------------
# Schedule, loss options, checkpoints
# ---------------------------------------------------------------------------


def test_warmup_then_linear_decay():
    factors = [linear_warmup_decay(step, 2, 6) for step in range(7)]
    assert factors == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0])
    assert linear_warmup_decay(0, 0, 4) == 1.0
    assert warmup_steps_for(22, 0.1) == 3


def test_optimizer_skips_decay_on_bias_and_norm():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    optimizer = build_optimizer(model, 1e-3, 0.01)
    decays = [(group["weight_decay"], len(group["params"])) for group in optimizer.param_groups]
    # Decay: the Linear weight and the LayerNorm weight ("1.weight"); no decay: both biases.
    assert decays == [(0.01, 2), (0.0, 2)]


def test_loss_options_are_typed():
    config = load_config(None, ["training.loss=shl", "training.loss_options={lam: 0.3, momentum: 0.9, combine: harmonic}"])
    assert parse_loss_options(config) == {"lam": 0.3, "momentum": 0.9, "combine": "harmonic"}
    config = load_config(None, ["training.loss=cb", "training.loss_options={beta: 0.99}"])
    assert parse_loss_options(config) == {"beta": 0.99}


def test_loss_options_reject_unknown_key():
    config = load_config(None, ["training.loss=bce", "training.loss_options={gamma: 2}"])
    with pytest.raises(ConfigError, match="training.loss_options.gamma is not an option of loss 'bce'"):
        parse_loss_options(config)


def _tiny_training_state(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return {"optimizer": optimizer.state_dict(), "scheduler": {}, "scaler": {}, "loss": {}}


def test_checkpoint_round_trip_and_pruning(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 3)
    metadata = {"labels": ["a", "b", "c"], "segments": [0, 0, 1], "model": {"head": "linear"}, "config": {}}
    for epoch in (1, 2, 3):
        state = checkpoints.TrainState(epochs_completed=epoch, step=5 * epoch, best_metric=0.5, best_epoch=epoch,
                                       history=[{"epoch": epoch, "train_loss": 1.0 / epoch}])
        checkpoints.save_checkpoint(str(tmp_path), model, _tiny_training_state(model), state, metadata, keep=2)

    root = tmp_path / "checkpoints"
    assert sorted(path.name for path in root.iterdir()) == ["epoch-0002", "epoch-0003", "latest"]
    folder = checkpoints.latest_checkpoint_folder(str(tmp_path))
    assert folder == str(root / "epoch-0003")

    loaded = checkpoints.load_checkpoint(folder)
    assert loaded.state.step == 15
    assert loaded.state.history == [{"epoch": 3, "train_loss": pytest.approx(1 / 3)}]
    assert loaded.metadata["labels"] == ["a", "b", "c"]
    assert int(loaded.training_state["optimizer"]["state"][0]["step"]) == 1
    fresh = torch.nn.Linear(2, 3)
    checkpoints.load_weights(fresh, loaded.weights)
    torch.testing.assert_close(fresh.weight, model.weight)


def test_checkpoint_rejects_other_labels(tmp_path):
    model = torch.nn.Linear(2, 3)
    metadata = {"labels": ["a", "b", "c"], "segments": [0, 0, 1], "model": {}, "config": {}}
    checkpoints.save_checkpoint(str(tmp_path), model, _tiny_training_state(model), checkpoints.TrainState(1, 2), metadata)
    loaded = checkpoints.load_checkpoint(checkpoints.latest_checkpoint_folder(str(tmp_path)))
    with pytest.raises(ValueError, match="different labels"):
        checkpoints.check_compatible(loaded, {**metadata, "labels": ["a", "b", "d"]}, str(tmp_path))
    checkpoints.check_compatible(loaded, metadata, str(tmp_path))


def test_no_checkpoint_means_fresh_start(tmp_path):
    assert checkpoints.latest_checkpoint_folder(str(tmp_path)) is None


def test_tracking_uri_defaults_to_lakehouse_file_store(tmp_path):
    config = load_config(None, [f"lakehouse.root={tmp_path}"])
    assert tracking_uri(config) == f"file://{tmp_path}/mlruns"
    config = load_config(None, [f"lakehouse.root={tmp_path}", "training.mlflow_tracking_uri=sqlite:///x.db"])
    assert tracking_uri(config) == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="set training.mlflow_tracking_uri"):
        tracking_uri(load_config(None, ["lakehouse.root=dbfs:/mnt/lake"]))


def test_flatten_nested_params():
    flat = flatten({"training": {"epochs": 3, "loss_options": {}}, "data": {"rows": 42}})
    assert flat == {"training.epochs": "3", "training.loss_options": "{}", "data.rows": "42"}
