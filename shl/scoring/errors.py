"""Errors of the scoring stage, importable without torch or Spark."""


class VocabularyMismatchError(ValueError):
    """Raised when the tokens table was made with another vocabulary than the model's."""
