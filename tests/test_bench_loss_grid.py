"""Pure parts of the CodiEsp loss experiment: loss specs, results file, aggregation,
tables, run metrics, and training over cached encoder states. No Spark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shl.bench import loss_grid
from shl.bench.cached_training import (
    CachedStatesModel,
    FitSettings,
    encode_chunks,
    fit_and_predict,
    pool_chunks,
    real_chunk_offsets,
)
from shl.bench.loss_grid import LossSpec
from shl.losses import build_loss
from shl.model import CodingModel, CodingModelConfig


def _record(setting: str, loss: str, seed: int, micro: float, seconds: float) -> dict:
    return {
        "key": f"{setting}|{loss}|seed={seed}|{{}}",
        "setting": setting,
        "loss": loss,
        "seed": seed,
        "metrics": {"micro_f1": micro},
        "seconds": seconds,
    }


# -- loss specs ------------------------------------------------------------------------


def test_loss_spec_canonical_text():
    spec = LossSpec.parse("shl:momentum=0.9, base=asl,active_only=false")
    assert spec.text == "shl:active_only=false,base=asl,momentum=0.9"
    assert spec.loss_options == {"active_only": False, "base": "asl", "momentum": 0.9}
    assert LossSpec.parse(spec.text) == spec
    assert LossSpec.parse("bce").text == "bce"


def test_loss_spec_single_segment():
    spec = LossSpec.parse("shl:segments=single,lam=0.5")
    assert spec.single_segment
    assert spec.loss_options == {"lam": 0.5}


@pytest.mark.parametrize(
    "text", ["nope", "bce:gamma=2", "focal:gamma", "bce:segments=single", "shl:segments=two"]
)
def test_loss_spec_rejects_invalid(text):
    with pytest.raises(ValueError):
        LossSpec.parse(text)


def test_run_key_changes_with_hyperparameters():
    spec = LossSpec.parse("shl")
    first = loss_grid.run_key("frozen", spec, 1, {"epochs": 10})
    assert first == 'frozen|shl|seed=1|{"epochs":10}'
    assert loss_grid.run_key("frozen", spec, 1, {"epochs": 11}) != first


# -- results file and resume -----------------------------------------------------------


def test_results_resume_skips_finished(tmp_path):
    path = str(tmp_path / "out" / "results.jsonl")
    assert loss_grid.read_results(path) == {}
    loss_grid.append_result(path, _record("frozen", "bce", 1, 0.5, 10.0))
    loss_grid.append_result(path, _record("frozen", "bce", 2, 0.6, 12.0))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"key": "frozen|bce|seed=3')  # a write cut short by a kill
    finished = loss_grid.read_results(path)
    assert sorted(finished) == ["frozen|bce|seed=1|{}", "frozen|bce|seed=2|{}"]
    keys = [f"frozen|bce|seed={seed}|{{}}" for seed in (1, 2, 3)]
    assert loss_grid.pending(keys, finished) == ["frozen|bce|seed=3|{}"]


# -- aggregation and tables ------------------------------------------------------------


def test_mean_std_sample_deviation():
    # mean 0.2; squared deviations 0.01 + 0 + 0.01 over n - 1 = 2 gives 0.01, std 0.1
    mean, std = loss_grid.mean_std([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2, rel=1e-12)
    assert std == pytest.approx(0.1, rel=1e-12)
    assert loss_grid.mean_std([0.4]) == (0.4, 0.0)
    assert all(np.isnan(value) for value in loss_grid.mean_std([]))


def test_summary_table_formats_rows():
    records = [_record("frozen", "bce", 1, 0.1, 10.0), _record("frozen", "shl", 1, 0.5, 20.0),
               _record("frozen", "bce", 2, 0.3, 14.0)]
    rows = loss_grid.summarise(records, ["micro_f1", "seconds"])
    assert [(row.loss, row.seeds) for row in rows] == [("bce", [1, 2]), ("shl", [1])]
    table = loss_grid.summary_table(rows, [("micro-F1", "micro_f1"), ("seconds", "seconds")])
    # bce: mean 0.2, std sqrt(0.02) = 0.141; seconds mean 12, std sqrt(8) = 2.8
    assert table.splitlines() == [
        "| setting | loss | seeds | micro-F1 | seconds |",
        "|---|---|---:|---:|---:|",
        "| frozen | `bce` | 2 | 0.200 ± 0.141 | 12 ± 3 |",
        "| frozen | `shl` | 1 | 0.500 ± 0.000 | 20 ± 0 |",
    ]


# -- run metrics -----------------------------------------------------------------------


def test_run_metrics_on_hand_example():
    codes = ["A00", "B00", "C00"]
    segments = np.array([0, 0, 1])
    val_targets = np.array([[1, 0, 1], [0, 1, 0]])
    val_probabilities = np.array([[0.9, 0.2, 0.3], [0.1, 0.8, 0.1]])
    test_targets = np.array([[1, 0, 0], [0, 0, 1]])
    test_probabilities = np.array([[0.6, 0.4, 0.2], [0.3, 0.1, 0.35]])
    gold = [{"A00", "Z99"}, {"C00"}]
    metrics = loss_grid.run_metrics(
        val_probabilities, val_targets, test_probabilities, test_targets, segments, codes, gold
    )
    # Document 1 ranks A00 first (hit at rank 1) and misses Z99: AP = 1 / 2.
    # Document 2 ranks C00 first: AP = 1. MAP = 0.75.
    assert metrics["map"] == pytest.approx(0.75, rel=1e-12)
    # At 0.5 only A00 of document 1 is predicted: TP 1, FN 1, micro-F1 = 2 / 3.
    assert metrics["micro_f1_at_0.5"] == pytest.approx(2 / 3, rel=1e-12)
    # On val, segment 0 (A00, B00) scores F1 1 for thresholds 0.21 to 0.80 and segment 1
    # (C00) for 0.11 to 0.30; ties go to the value closest to 0.5, so 0.5 and 0.3. On
    # test that finds A00 (0.6) and C00 (0.35) with no false positive.
    assert metrics["segment_1_micro_f1"] == pytest.approx(1.0, rel=1e-12)
    assert metrics["micro_f1"] == pytest.approx(1.0, rel=1e-12)


def test_ranked_codes_ties_by_column():
    ranked = loss_grid.ranked_codes(np.array([[0.2, 0.5, 0.2]]), ["a", "b", "c"])
    assert ranked == [["b", "a", "c"]]


# -- training over cached states -------------------------------------------------------


def _tiny_bert(seed: int = 0):
    """A randomly initialised 2-layer BERT, built from a config, so nothing is downloaded."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16,
    )
    return BertModel(config)


def _tiny_model(seed: int = 0, labels: int = 3, head: str = "label_attention") -> CodingModel:
    bert = _tiny_bert(seed)
    config = CodingModelConfig(
        num_labels=labels, encoder="tiny", head=head, attention_dim=8, chunk_len=8, max_chunks=3
    )
    return CodingModel(config, bert).eval()


def _tiny_tokens(documents: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    ids = generator.integers(5, 40, size=(documents, 3, 8))
    mask = np.ones_like(ids)
    chunks = generator.integers(1, 4, size=documents)
    for row, count in enumerate(chunks):
        mask[row, count:] = 0
        mask[row, count - 1, generator.integers(2, 9):] = 0  # a short last chunk
    return ids * mask, mask


def test_real_chunk_offsets_keep_one_chunk():
    mask = np.zeros((3, 2, 4), dtype=np.int8)
    mask[0, :, :] = 1
    mask[1, 0, :2] = 1
    assert real_chunk_offsets(mask).tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("top_layers", [0, 1, 2])
def test_cached_forward_matches_full_model(top_layers):
    model = _tiny_model()
    ids, mask = _tiny_tokens(5, seed=1)
    with torch.no_grad():
        full = model(torch.from_numpy(ids), torch.from_numpy(mask))
        states = encode_chunks(model.encoder, ids, mask, (2 - top_layers,))[2 - top_layers]
        cached = CachedStatesModel(model, top_layers).eval()(*states.select(np.arange(5)))
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)


def _fit_tiny(seed: int):
    """Two labels, each marked by its own token id, so a head can learn them."""
    base = _tiny_model(seed=0, labels=2)
    ids, mask = _tiny_tokens(24, seed=2)
    targets = np.zeros((24, 2), dtype=np.float32)
    targets[:, 0] = (ids == 7).any(axis=(1, 2))
    targets[:, 1] = (ids == 9).any(axis=(1, 2))
    states = encode_chunks(base.encoder, ids, mask, (2,))[2]
    torch.manual_seed(seed)
    model = CachedStatesModel(CodingModel(base.config, base.encoder), top_layers=0)
    loss = build_loss("shl", segments=torch.tensor([0, 1]))
    settings = FitSettings(epochs=3, batch_size=4, head_learning_rate=1e-2, patience=0)
    train = (states, torch.from_numpy(targets))
    return fit_and_predict(model, loss, train, train, states, np.array([0, 1]), settings, seed)


def test_fit_is_deterministic_for_a_seed():
    first, second = _fit_tiny(seed=5), _fit_tiny(seed=5)
    assert first.test_probabilities.shape == (24, 2)
    np.testing.assert_array_equal(first.test_probabilities, second.test_probabilities)
    assert first.best_epoch == second.best_epoch
    first_losses = [entry["train_loss"] for entry in first.history]
    assert first_losses == [entry["train_loss"] for entry in second.history]
    other = _fit_tiny(seed=6)
    assert not np.array_equal(first.test_probabilities, other.test_probabilities)


def test_fit_keeps_best_epoch_weights():
    result = _fit_tiny(seed=5)
    scores = [entry["val_micro_f1_tuned"] for entry in result.history]
    assert result.epochs_run == 3
    assert result.best_val_micro_f1 == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    json.dumps(result.history)  # the history goes into the JSON results file


def test_pooled_states_give_same_linear_logits():
    model = _tiny_model(head="linear")
    bert = model.encoder
    ids, mask = _tiny_tokens(5, seed=3)
    mask[4] = 0  # a document without tokens gets the biases
    ids = ids * mask
    with torch.no_grad():
        full = model(torch.from_numpy(ids), torch.from_numpy(mask))
        pooled = pool_chunks(encode_chunks(bert, ids, mask, (2,))[2])
        cached = CachedStatesModel(model, 0).eval()(*pooled.select(np.arange(5)))
    assert pooled.states.shape[1] == 1
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached[4], model.head.output.bias)


def test_paired_difference_over_shared_seeds():
    records = [_record("frozen", "bce", 1, 0.20, 1.0), _record("frozen", "bce", 2, 0.30, 1.0),
               _record("frozen", "bce", 3, 0.25, 1.0), _record("frozen", "shl", 1, 0.25, 1.0),
               _record("frozen", "shl", 2, 0.32, 1.0), _record("top1", "shl", 3, 0.90, 1.0)]
    # Shared seeds 1 and 2: differences 0.05 and 0.02, mean 0.035; their sample standard
    # deviation is 0.03 / sqrt(2), so the standard error is 0.03 / 2 = 0.015.
    mean, error, count = loss_grid.paired_difference(records, "frozen", "shl", "bce", "micro_f1")
    assert count == 2
    assert mean == pytest.approx(0.035, rel=1e-9)
    assert error == pytest.approx(0.015, rel=1e-9)
    table = loss_grid.difference_table(records, "bce", [("micro-F1", "micro_f1")])
    assert table.splitlines()[2] == "| frozen | `shl` | +0.035 ± 0.015 (2) |"
    assert table.splitlines()[3] == "| top1 | `shl` | n/a |"


# -- corpus file and settings ----------------------------------------------------------


def _tiny_corpus():
    from shl.bench.codiesp_corpus import Corpus

    ids, mask = _tiny_tokens(2, seed=4)
    splits = ("train", "val", "test")
    return Corpus(
        labels=["icd10cm:A00", "icd10cm:B00"],
        codes=["A00", "B00"],
        label_counts=np.array([6, 2]),
        segments=np.array([0, 1]),
        doc_ids={split: [f"codiesp:{split}-1", f"codiesp:{split}-2"] for split in splits},
        input_ids={split: ids.astype(np.int32) for split in splits},
        attention_mask={split: mask.astype(np.int8) for split in splits},
        targets={split: np.array([[1, 0], [1, 1]], dtype=np.float32) for split in splits},
        gold_codes={split: [["A00", "Z99"], ["A00", "B00"]] for split in splits},
    )


def test_corpus_file_round_trip(tmp_path):
    from shl.bench.codiesp_corpus import load_corpus, save_corpus

    corpus = _tiny_corpus()
    path = str(tmp_path / "corpus.npz")
    save_corpus(corpus, path)
    loaded = load_corpus(path)
    assert loaded.labels == corpus.labels
    assert loaded.codes == corpus.codes
    assert loaded.doc_ids == corpus.doc_ids
    assert loaded.gold_codes == corpus.gold_codes
    np.testing.assert_array_equal(loaded.segments, corpus.segments)
    np.testing.assert_array_equal(loaded.input_ids["val"], corpus.input_ids["val"])
    np.testing.assert_array_equal(loaded.targets["test"], corpus.targets["test"])


def test_describe_corpus_counts():
    from shl.bench.codiesp_corpus import describe_corpus

    text = describe_corpus(_tiny_corpus())
    # 3 label entries among the 4 gold codes of each split; segment 1 (B00) has 1 test positive.
    assert "- test: 3 of 4 gold diagnosis codes are labels; 0 documents have no label" in text
    assert "| 1 | 1 | 2-2 | 2.0 | 1 |" in text


def test_setting_names_and_prior_bias():
    from shl.bench.codiesp_losses import prior_log_odds, top_layers_of

    assert top_layers_of("frozen") == 0
    assert top_layers_of("top2") == 2
    for name in ("top0", "top7", "full", "topx"):
        with pytest.raises(ValueError):
            top_layers_of(name)
    # Frequencies 4/8 and 1/8: log(1) = 0 and log(1/7).
    bias = prior_log_odds(np.array([4, 1]), 8)
    torch.testing.assert_close(bias, torch.tensor([0.0, float(np.log(1 / 7))]))
