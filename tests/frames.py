"""DataFrame comparison for tests: schema and rows, duplicates included."""

from __future__ import annotations

from pyspark.sql import DataFrame


def assert_frames_equal(actual: DataFrame, expected: DataFrame) -> None:
    """Assert equal schemas and equal rows as multisets, in any order.

    ``exceptAll`` both ways keeps duplicate rows, which a set comparison would miss.
    """
    assert actual.schema == expected.schema, f"schemas differ:\n{actual.schema}\n{expected.schema}"
    missing = expected.exceptAll(actual).limit(5).collect()
    extra = actual.exceptAll(expected).limit(5).collect()
    assert not missing, f"rows expected but not found (first 5): {missing}"
    assert not extra, f"rows found but not expected (first 5): {extra}"
