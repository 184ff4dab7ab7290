"""Chunked transformer coding model, its heads, and save/load helpers."""

from shl.model.coding_model import (
    CodingModel,
    CodingModelConfig,
    LabelAttentionHead,
    LinearHead,
    build_coding_model,
    default_encoder_path,
    load_encoder,
    load_tokenizer,
    tokenize_chunks,
)
from shl.model.io import SavedModelMetadata, load_model, save_model

__all__ = [
    "CodingModel",
    "CodingModelConfig",
    "LabelAttentionHead",
    "LinearHead",
    "SavedModelMetadata",
    "build_coding_model",
    "default_encoder_path",
    "load_encoder",
    "load_model",
    "load_tokenizer",
    "save_model",
    "tokenize_chunks",
]
