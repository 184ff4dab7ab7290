"""Shared fixtures: one local Spark session with Delta for the whole test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shl.config import Config, LakehouseSettings, SparkSettings, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CODIESP_DIR = REPO_ROOT.parent / "shared" / "data" / "codiesp"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from shl.spark import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_spark(
        SparkSettings(master="local[2]", shuffle_partitions=2, driver_memory="2g", warehouse_dir=str(warehouse))
    )
    yield session
    session.stop()


@pytest.fixture
def make_config(tmp_path):
    """Build a config whose lakehouse is a fresh folder of this test."""

    def build(overrides: list[str] | None = None, path: str | None = None) -> Config:
        base = [f"lakehouse.root={tmp_path / 'lakehouse'}", "spark.shuffle_partitions=2"]
        return load_config(path, base + list(overrides or []))

    return build
