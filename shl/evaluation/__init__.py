"""Evaluation of scored documents: metrics overall, per segment and per frequency band."""
