"""Helpers for the Databricks notebooks in ``notebooks/``: configuration from widgets."""

from __future__ import annotations

import shlex

from shl.config import Config, load_config

CONFIG_WIDGET = "config"
OVERRIDES_WIDGET = "overrides"


def add_config_widgets(dbutils, default_config: str = "", default_overrides: str = "") -> None:
    """Create the two widgets every notebook reads: a config file and overrides."""
    dbutils.widgets.text(CONFIG_WIDGET, default_config, "Config file (YAML, empty for the defaults)")
    dbutils.widgets.text(OVERRIDES_WIDGET, default_overrides, "Overrides: key=value separated by spaces")


def config_from_widgets(dbutils) -> Config:
    """Load the configuration named by the widgets, with their overrides applied.

    Overrides are split like a shell command line, so a value with spaces can be quoted:
    ``ingest.mimic3_categories='[Discharge summary]'``.
    """
    path = dbutils.widgets.get(CONFIG_WIDGET).strip() or None
    overrides = shlex.split(dbutils.widgets.get(OVERRIDES_WIDGET))
    return load_config(path, overrides)
