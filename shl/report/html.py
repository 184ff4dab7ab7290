"""The run report as one self-contained HTML page (images are PNG files beside it).

Pure string building: every value is escaped, so codes and paths cannot break the page.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0 1.5em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


@dataclass
class Table:
    """A titled table: a header row and body rows of already formatted cells."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    note: str = ""


@dataclass
class ReportPage:
    """Everything the page shows, in order."""

    title: str
    facts: Mapping[str, object]
    tables: list[Table] = field(default_factory=list)
    # (title, file name relative to the page, caption)
    images: list[tuple[str, str, str]] = field(default_factory=list)
    versions_read: Mapping[str, int] = field(default_factory=dict)
    config_yaml: str = ""


def format_value(value: object) -> str:
    """Format a cell: floats with 4 decimals, whole numbers with thousands separators."""
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(cell))}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    note = f"<p>{html.escape(table.note)}</p>" if table.note else ""
    return f"<h2>{html.escape(table.title)}</h2>{note}<table><tr>{head}</tr>{body}</table>"


def render(page: ReportPage) -> str:
    """Return the HTML text of the report page."""
    facts = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(format_value(value))}</td></tr>"
        for key, value in page.facts.items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(page.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
        f"<table>{facts}</table>",
    ]
    parts.extend(_table(table) for table in page.tables)
    for title, file_name, caption in page.images:
        parts.append(
            f"<h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p>"
            f'<img src="{html.escape(file_name, quote=True)}" alt="{html.escape(title, quote=True)}">'
        )
    versions = Table("Table versions read", ("table", "Delta version"), sorted(page.versions_read.items()))
    parts.append(_table(versions))
    parts.append(f"<h2>Configuration</h2><pre>{html.escape(page.config_yaml)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
