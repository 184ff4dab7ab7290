"""Cleaning of note text before it becomes a document."""

from __future__ import annotations

import re

# MIMIC de-identification placeholders such as "[**2151-7-16**]" or "[**Hospital1 18**]".
_DEID_BRACKETS = re.compile(r"\[\*\*|\*\*\]")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def clean_text(text: str | None) -> str:
    """Normalise a note's text: de-identification brackets removed, whitespace collapsed.

    The placeholder's content is kept ("[**2151-7-16**]" becomes "2151-7-16"). Runs of
    spaces and tabs become one space, runs of blank lines one blank line, and Windows
    line endings become newlines. Returns "" for None.
    """
    if text is None:
        return ""
    cleaned = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _DEID_BRACKETS.sub("", cleaned)
    cleaned = _SPACES.sub(" ", cleaned)
    cleaned = "\n".join(line.strip() for line in cleaned.split("\n"))
    cleaned = _BLANK_LINES.sub("\n\n", cleaned)
    return cleaned.strip()
