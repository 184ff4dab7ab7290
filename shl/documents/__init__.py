"""The silver layer: documents with their label sets and splits, and their tokens."""
