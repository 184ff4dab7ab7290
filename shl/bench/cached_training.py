"""Train the top of a :class:`~shl.model.CodingModel` over cached encoder states, in process.

Recomputing the lower, frozen encoder layers for every batch is what makes fine-tuning
slow on a CPU. Here those layers run once: :func:`encode_chunks` keeps the hidden
states that enter the first trained layer, and :class:`CachedStatesModel` runs only
the top ``top_layers`` transformer layers of the encoder (none when the encoder is
frozen) and the coding head. With the same weights, its logits equal those of the
full model up to floating-point rounding (see ``tests/test_bench_loss_grid.py``).

Only the real chunks of a document are stored and encoded. The model's heads mask
padding chunks, so leaving them out does not change the logits.

:func:`fit_and_predict` is a single-process version of the training job's loop. It
uses AdamW with the job's no-decay rule, linear warm-up and decay, and gradient
clipping. After each epoch it tunes thresholds per segment on the validation split,
and it stops early on the tuned validation micro-F1. The best epoch's weights make
the predictions.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from shl.model import CodingModel
from shl.training.metrics import evaluate_probabilities, tune_thresholds
from shl.training.optim import build_optimizer, build_scheduler, warmup_steps_for

logger = logging.getLogger(__name__)


@dataclass
class CachedStates:
    """Hidden states of the real chunks of a list of documents, concatenated in document order.

    Attributes
    ----------
    states : Tensor
        float32, shape (chunks, chunk_len, hidden): the states that enter the first
        trained encoder layer (or the head, when no layer is trained).
    mask : Tensor
        bool, shape (chunks, chunk_len): True for real tokens.
    offsets : numpy.ndarray
        int64, shape (documents + 1,): document i owns chunks ``offsets[i]:offsets[i + 1]``.
    """

    states: Tensor
    mask: Tensor
    offsets: np.ndarray

    def __post_init__(self) -> None:
        chunks = int(self.offsets[-1]) if len(self.offsets) else 0
        if self.states.shape[0] != chunks or self.mask.shape != self.states.shape[:2]:
            raise ValueError(
                f"states shape {tuple(self.states.shape)} and mask shape {tuple(self.mask.shape)} "
                f"do not match the {chunks} chunks of the offsets"
            )
        if np.any(np.diff(self.offsets) < 1):
            raise ValueError("every document needs at least one chunk; check the offsets")

    @property
    def documents(self) -> int:
        return len(self.offsets) - 1

    def select(self, rows: np.ndarray) -> tuple[Tensor, Tensor, list[int]]:
        """Return the states, the mask and the chunk count of each document in ``rows``."""
        pieces = [np.arange(self.offsets[row], self.offsets[row + 1]) for row in rows]
        index = torch.from_numpy(np.concatenate(pieces))
        counts = [len(piece) for piece in pieces]
        return self.states[index], self.mask[index], counts


def real_chunk_offsets(attention_mask: np.ndarray) -> np.ndarray:
    """Return chunk offsets (documents + 1,) counting the chunks with a real token.

    ``attention_mask`` has shape (documents, chunks, chunk_len). Padding chunks must
    come after the real ones, which is how the tokenize stage writes them. A document
    without any real token keeps one chunk, so that it still gets logits.
    """
    counts = np.maximum(attention_mask.any(axis=2).sum(axis=1), 1)
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def pool_chunks(data: CachedStates) -> CachedStates:
    """Replace each chunk's token states by their masked mean, as one token per chunk.

    The linear head pools a chunk by the masked mean of its token states, and the mean
    of one token is that token. So over a frozen encoder (no trained layer) the linear
    head gives the same logits on pooled states, with 1/chunk_len of the memory
    traffic per epoch. The label-attention head needs every token and cannot use it.
    """
    mask = data.mask.unsqueeze(-1).to(data.states.dtype)  # (chunks, chunk_len, 1)
    means = (data.states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (chunks, hidden)
    has_token = data.mask.any(1, keepdim=True)  # (chunks, 1); False only for an empty document
    return CachedStates(means.unsqueeze(1).contiguous(), has_token, data.offsets)


@torch.no_grad()
def encode_chunks(
    encoder: nn.Module,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    layers: tuple[int, ...],
    batch_chunks: int = 32,
) -> dict[int, CachedStates]:
    """Run a Hugging Face BERT-family encoder once over the real chunks and keep hidden states.

    Parameters
    ----------
    encoder : nn.Module
        The encoder, called with ``output_hidden_states=True``; it is put in eval mode.
    input_ids, attention_mask : numpy.ndarray
        Shape (documents, chunks, chunk_len).
    layers : tuple of int
        Indexes into ``hidden_states``: 0 is the embedding output, ``i`` the output of
        transformer layer ``i``. Keeping index ``L - k`` (L layers) lets
        :class:`CachedStatesModel` train the top ``k`` layers.
    batch_chunks : int
        Chunks per encoder call.

    Returns
    -------
    dict
        One :class:`CachedStates` per requested index. Padding tokens have state 0.
    """
    offsets = real_chunk_offsets(attention_mask)
    real = attention_mask.any(axis=2)
    real[np.arange(real.shape[0]), 0] = True  # the one chunk kept for an empty document
    flat_ids = torch.from_numpy(input_ids[real].astype(np.int64))  # (chunks, chunk_len)
    flat_mask = torch.from_numpy(attention_mask[real].astype(np.int64))
    encoder.eval()
    states_by_layer: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, flat_ids.shape[0], batch_chunks):
        ids = flat_ids[start:start + batch_chunks]
        mask = flat_mask[start:start + batch_chunks]
        output = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        for layer in layers:
            states = output.hidden_states[layer]
            states_by_layer[layer].append(states.masked_fill(~mask.bool().unsqueeze(-1), 0.0))
    token_mask = flat_mask.bool()
    return {
        layer: CachedStates(torch.cat(parts).contiguous(), token_mask, offsets)
        for layer, parts in states_by_layer.items()
    }


class CachedStatesModel(nn.Module):
    """The top ``top_layers`` encoder layers and the head of a :class:`CodingModel`.

    The layers and the head are the model's own modules (shared, not copied), so the
    caller decides whether to pass a copy. The input is the hidden state that enters
    the first of those layers, for the real chunks of a batch of documents.

    Parameters
    ----------
    model : CodingModel
        A model whose encoder is a Hugging Face BERT-family model with
        ``encoder.encoder.layer``.
    top_layers : int
        Trained transformer layers, 0 for a frozen encoder.
    """

    def __init__(self, model: CodingModel, top_layers: int) -> None:
        super().__init__()
        blocks = list(model.encoder.encoder.layer)
        if isinstance(top_layers, bool) or not 0 <= top_layers <= len(blocks):
            raise ValueError(f"invalid top_layers {top_layers!r}: expected 0 to {len(blocks)}")
        self.layers = nn.ModuleList(blocks[len(blocks) - top_layers:] if top_layers else [])
        self.head = model.head
        self.head_kind = model.config.head
        self.encoder_config = model.encoder.config

    def forward(self, states: Tensor, mask: Tensor, chunk_counts: list[int]) -> Tensor:
        """Return logits (documents, labels) from states (chunks, chunk_len, hidden).

        ``chunk_counts[i]`` consecutive chunks belong to document i; ``mask`` (chunks,
        chunk_len) is True for real tokens.
        """
        hidden = states
        if len(self.layers):
            from transformers.masking_utils import create_bidirectional_mask

            attention = create_bidirectional_mask(
                config=self.encoder_config, inputs_embeds=hidden, attention_mask=mask.long()
            )
            for layer in self.layers:
                hidden = layer(hidden, attention)
        hidden = hidden.masked_fill(~mask.unsqueeze(-1), 0.0)

        # (chunks, chunk_len, hidden) -> (documents, max_chunks, chunk_len, hidden), padded
        # with zero states and masks; the heads ignore padding chunks.
        per_document = torch.split(hidden, chunk_counts)
        masks = torch.split(mask, chunk_counts)
        padded = nn.utils.rnn.pad_sequence(list(per_document), batch_first=True)
        padded_mask = nn.utils.rnn.pad_sequence(list(masks), batch_first=True)
        documents, chunks, chunk_len, width = padded.shape
        if self.head_kind == "label_attention":
            return self.head(
                padded.reshape(documents, chunks * chunk_len, width),
                padded_mask.reshape(documents, chunks * chunk_len),
            )
        return self.head(padded, padded_mask)


@dataclass
class FitSettings:
    """Optimisation settings of :func:`fit_and_predict`.

    The defaults follow ``training`` in ``conf/local.yaml`` where that has the setting
    (batch size 8, weight decay 0.01, 10% warm-up, gradient norm 1.0), with a larger
    learning rate for the freshly initialised head.
    """

    epochs: int = 10
    batch_size: int = 8
    head_learning_rate: float = 1e-3
    encoder_learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 3  # epochs without a better tuned validation micro-F1; 0 never stops

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid {name} {value!r}: expected an integer >= 1")
        if self.patience < 0:
            raise ValueError(f"invalid patience {self.patience!r}: expected an integer >= 0")


@dataclass
class FitResult:
    """Predictions of the best epoch, and how training went."""

    val_probabilities: np.ndarray  # (val documents, labels)
    test_probabilities: np.ndarray  # (test documents, labels)
    best_epoch: int
    best_val_micro_f1: float
    epochs_run: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def predict(model: CachedStatesModel, data: CachedStates, batch_size: int) -> np.ndarray:
    """Return sigmoid probabilities (documents, labels) in eval mode."""
    model.eval()
    outputs = []
    for start in range(0, data.documents, batch_size):
        rows = np.arange(start, min(start + batch_size, data.documents))
        states, mask, counts = data.select(rows)
        outputs.append(torch.sigmoid(model(states, mask, counts).float()).numpy())
    return np.concatenate(outputs).astype(np.float64)


def _optimizer(model: CachedStatesModel, settings: FitSettings) -> torch.optim.Optimizer:
    """AdamW with one learning rate for the head and one for the encoder layers."""
    decay = settings.weight_decay
    groups = list(build_optimizer(model.head, settings.head_learning_rate, decay).param_groups)
    if len(model.layers):
        groups += build_optimizer(model.layers, settings.encoder_learning_rate, decay).param_groups
    return torch.optim.AdamW([{"params": group["params"], "lr": group["lr"],
                               "weight_decay": group["weight_decay"]} for group in groups])


def _tuned_micro_f1(probabilities: np.ndarray, targets: np.ndarray, segments: np.ndarray) -> float:
    thresholds = tune_thresholds(probabilities, targets, segments)
    return evaluate_probabilities(probabilities, targets, segments, thresholds)["micro_f1"]


def fit_and_predict(
    model: CachedStatesModel,
    loss_fn: nn.Module,
    train: tuple[CachedStates, Tensor],
    val: tuple[CachedStates, Tensor],
    test: CachedStates,
    segments: np.ndarray,
    settings: FitSettings,
    seed: int,
) -> FitResult:
    """Train ``model`` with ``loss_fn`` and return the best epoch's val and test probabilities.

    Parameters
    ----------
    model : CachedStatesModel
        Trained in place. On return it has the weights of the best epoch.
    loss_fn : nn.Module
        Called as ``loss_fn(logits, targets)`` with float32 tensors (batch, labels).
    train, val : tuple of (CachedStates, Tensor)
        States and float32 targets (documents, labels).
    test : CachedStates
        States of the evaluation documents.
    segments : numpy.ndarray
        Segment id of every label, for the thresholds tuned after each epoch.
    settings : FitSettings
    seed : int
        Seeds the batch order and dropout. The caller seeds the head's initialisation.

    Returns
    -------
    FitResult
    """
    train_states, train_targets = train
    val_states, val_targets = val
    val_truth = val_targets.numpy()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    batches_per_epoch = -(-train_states.documents // settings.batch_size)
    total_steps = batches_per_epoch * settings.epochs
    optimizer = _optimizer(model, settings)
    warmup_steps = warmup_steps_for(total_steps, settings.warmup_ratio)
    scheduler = build_scheduler(optimizer, warmup_steps, total_steps)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]

    best_score, best_epoch, best_state = -1.0, 0, None
    history: list[dict[str, float]] = []
    train_seconds = 0.0
    for epoch in range(1, settings.epochs + 1):
        started = time.monotonic()
        model.train()
        loss_fn.train()
        order = torch.randperm(train_states.documents, generator=generator).numpy()
        loss_sum = 0.0
        for start in range(0, len(order), settings.batch_size):
            rows = order[start:start + settings.batch_size]
            states, mask, counts = train_states.select(rows)
            logits = model(states, mask, counts)
            loss = loss_fn(logits.float(), train_targets[torch.from_numpy(rows)])
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            loss_sum += float(loss.detach())
        train_seconds += time.monotonic() - started

        val_probabilities = predict(model, val_states, settings.batch_size)
        score = _tuned_micro_f1(val_probabilities, val_truth, segments)
        history.append({"epoch": epoch, "train_loss": loss_sum / batches_per_epoch,
                        "val_micro_f1_tuned": score, "seconds": time.monotonic() - started})
        logger.info("epoch %d: train loss %.4f, val micro-F1 (tuned) %.4f, %.1f s",
                    epoch, history[-1]["train_loss"], score, history[-1]["seconds"])
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif settings.patience and epoch - best_epoch >= settings.patience:
            logger.info("stopping early after epoch %d; best epoch %d", epoch, best_epoch)
            break

    model.load_state_dict(best_state)
    return FitResult(
        val_probabilities=predict(model, val_states, settings.batch_size),
        test_probabilities=predict(model, test, settings.batch_size),
        best_epoch=best_epoch,
        best_val_micro_f1=best_score,
        epochs_run=len(history),
        train_seconds=train_seconds,
        history=history,
    )
