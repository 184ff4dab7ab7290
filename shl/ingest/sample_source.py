"""The built-in sample as an ingestion source: generated once, reused while unchanged."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from shl.config import Config

logger = logging.getLogger(__name__)

# Written after a complete generation, with the settings that made the files.
MARKER_FILE = "_shl_sample_settings.json"


def ensure_sample(config: Config) -> Path:
    """Generate the built-in sample into ``source.path`` unless it is there already.

    The files are reused when the folder contains a complete sample made with the same
    ``sample`` settings; otherwise they are written again. Generation is
    deterministic for a seed, so a reused folder equals a fresh one.

    Returns
    -------
    Path
        The sample folder.
    """
    from shl.sample.generator import generate_sample

    folder = Path(config.source.path)
    settings = dataclasses.asdict(config.sample)
    marker = folder / MARKER_FILE
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings:
        logger.info("Reusing the built-in sample in %s (%d admissions)", folder, config.sample.n_admissions)
        return folder

    logger.info("Generating the built-in sample in %s with %s", folder, settings)
    marker.unlink(missing_ok=True)
    generate_sample(folder, **settings)
    marker.write_text(json.dumps(settings, sort_keys=True), encoding="utf-8")
    return folder


def run_sample(config: Config, spark=None) -> Path:
    """Run the ``sample`` stage: :func:`ensure_sample`, which needs no Spark session."""
    return ensure_sample(config)
