"""The evaluation plots of the run report, drawn with matplotlib's Agg backend.

Each function takes plain arrays or frames and writes one PNG, so it can be tested
and reused without Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110


def cooccurrence_matrix(
    labels: Sequence[str], counts: Sequence[int], pairs: pd.DataFrame
) -> np.ndarray:
    """Return the matrix of P(column label | row label) among ``labels``.

    Parameters
    ----------
    labels : sequence of str
        The labels of the rows and columns, in plot order.
    counts : sequence of int
        Train documents of each label, parallel to ``labels``.
    pairs : pandas.DataFrame
        Rows ``code_a``, ``code_b``, ``n_ab`` of pairs that share a train document.

    Returns
    -------
    numpy.ndarray
        Shape (labels, labels); entry (i, j) is n_ij / n_i, the diagonal is 1 and a
        label with count 0 has a row of zeros.
    """
    position = {label: index for index, label in enumerate(labels)}
    n = len(labels)
    shared = np.zeros((n, n), dtype=np.float64)
    for code_a, code_b, n_ab in pairs[["code_a", "code_b", "n_ab"]].itertuples(index=False):
        if code_a in position and code_b in position:
            i, j = position[code_a], position[code_b]
            shared[i, j] = shared[j, i] = n_ab
    totals = np.asarray(counts, dtype=np.float64)
    np.fill_diagonal(shared, totals)
    return np.divide(shared, totals[:, None], out=np.zeros_like(shared), where=totals[:, None] > 0)


def plot_cooccurrence(
    matrix: np.ndarray, labels: Sequence[str], segments: Sequence[int], path: Path
) -> Path:
    """Draw P(column | row) of the top labels, with lines between segments.

    The labels are expected in segment order, so each block on the diagonal is one
    segment. Strong entries off the blocks are co-occurring codes that the
    segmentation kept apart.
    """
    n = len(labels)
    size = min(14.0, 3.0 + 0.28 * n)
    figure, axes = plt.subplots(figsize=(size, size * 0.85), constrained_layout=True)
    image = axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="P(column label | row label) in train")
    segments = np.asarray(segments)
    for boundary in np.flatnonzero(np.diff(segments)) + 0.5:
        axes.axhline(boundary, color="white", linewidth=0.8)
        axes.axvline(boundary, color="white", linewidth=0.8)
    axes.set_xticks(range(n))
    axes.set_yticks(range(n))
    names = [f"{label} (s{segment})" for label, segment in zip(labels, segments)]
    axes.set_xticklabels(names, rotation=90, fontsize=7)
    axes.set_yticklabels(names, fontsize=7)
    axes.set_title(f"Co-occurrence of the {n} most frequent labels, grouped by segment", fontsize=10)
    return _save(figure, path)


def plot_segment_f1(table: pd.DataFrame, path: Path) -> Path:
    """Draw the macro-F1 of each segment as grouped bars, one colour per model.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows ``model`` (a display name such as ``shl 3f2a1c0e``), ``segment`` and
        ``macro_f1``.
    """
    models = list(dict.fromkeys(table["model"]))
    segments = sorted(table["segment"].unique())
    width = 0.8 / max(len(models), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.5 * len(segments) * max(len(models), 1) + 2), 4.5),
                                constrained_layout=True)
    for index, model in enumerate(models):
        rows = table[table["model"] == model].set_index("segment")["macro_f1"]
        values = [float(rows.get(segment, np.nan)) for segment in segments]
        axes.bar(np.arange(len(segments)) + (index - (len(models) - 1) / 2) * width, values, width, label=model)
    axes.set_xticks(range(len(segments)))
    axes.set_xticklabels([str(segment) for segment in segments])
    axes.set_xlabel("segment (0 = most frequent labels)")
    axes.set_ylabel("macro-F1 with the model's thresholds")
    axes.set_ylim(0, 1)
    axes.set_title("Per-segment macro-F1 of each evaluated model (loss, model version)", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)


def plot_pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Draw micro precision-recall curves, one line per named curve (overall, segments)."""
    figure, axes = plt.subplots(figsize=(6.5, 5), constrained_layout=True)
    for name, (precision, recall) in curves.items():
        if precision.size:
            axes.plot(recall, precision, linewidth=2.0 if name == "overall" else 1.0, label=name)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title("Micro precision-recall curves on the evaluated split", fontsize=10)
    axes.legend(fontsize=7, loc="upper right")
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
