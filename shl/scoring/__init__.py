"""Batch scoring of documents with a trained coding model."""
