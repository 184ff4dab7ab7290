"""The long-tail plot of the label statistics job, drawn with matplotlib's Agg backend."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shl.config import Config  # noqa: E402

# Segments are labelled with their size only up to this many, so the labels stay legible.
MAX_ANNOTATED_SEGMENTS = 40


def report_path(config: Config, name: str) -> str | None:
    """Return ``<lakehouse.root>/gold/reports/<name>`` as an absolute local path.

    Returns None when the lakehouse root is a URL such as ``dbfs:/...``, because
    the plot is written with local file APIs.
    """
    root = config.lakehouse.root.rstrip("/")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", root):
        return None
    return os.path.join(os.path.abspath(root), "gold", "reports", name)


def plot_long_tail(
    labels: pd.DataFrame, segments: pd.DataFrame, imbalance: dict, path: Path
) -> Path:
    """Draw the train count of every label by rank, with the frequency bands and segments.

    The upper panel shows count by rank on log axes, each frequency band shaded
    and labelled with its number of labels. The lower panel shows each segment's
    count range as a bar from its min to its max count.

    Parameters
    ----------
    labels : pandas.DataFrame
        One row per label with ``count``, ``rank`` and ``band``.
    segments : pandas.DataFrame
        One row per segment with ``segment_id``, ``band``, ``n_labels``,
        ``min_count`` and ``max_count``.
    imbalance : dict
        Output of ``shl.labels.statistics.summarise_imbalance``, for the title.
    path : Path
        PNG file to write; its folder is created.

    Returns
    -------
    Path
        ``path``.
    """
    ordered = labels.sort_values("rank")
    figure, (curve, ranges) = plt.subplots(
        2, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True
    )
    _draw_curve(curve, ordered, imbalance)
    _draw_segments(ranges, segments)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _band_colour(band: int):
    return plt.get_cmap("tab10")(band % 10)


def _draw_curve(axes, ordered: pd.DataFrame, imbalance: dict) -> None:
    ranks = ordered["rank"].to_numpy()
    counts = ordered["count"].to_numpy()
    bands = ordered["band"].to_numpy()
    axes.plot(
        ranks, counts, color="black", linewidth=1.2, drawstyle="steps-mid", label="train count"
    )

    for band in np.unique(bands):
        in_band = ranks[bands == band]
        first, last = in_band.min(), in_band.max()
        axes.axvspan(first - 0.5, last + 0.5, color=_band_colour(band), alpha=0.12, linewidth=0)
        if band > 0:
            axes.axvline(first - 0.5, color="grey", linestyle="--", linewidth=0.8)
        # The geometric middle of the band, which is the visual middle on a log axis.
        middle = np.sqrt(max(first - 0.5, 0.8) * (last + 0.5))
        axes.text(
            middle, 0.98, f"band {band}\n{len(in_band)} labels",
            transform=axes.get_xaxis_transform(), ha="center", va="top", fontsize=8,
        )

    rare = imbalance["rare_threshold"]
    axes.axhline(rare, color="tab:red", linestyle=":", linewidth=1, label=f"count {rare:g}")

    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(0.8, ranks.max() + 0.5)
    axes.set_ylim(top=counts.max() * 3)
    axes.set_xlabel("rank (1 = most frequent label)")
    axes.set_ylabel("train documents with the label")
    axes.set_title(
        f"Long tail of {imbalance['n_labels']:,} labels in {imbalance['n_documents']:,} train "
        f"documents: Gini {imbalance['gini']:.2f}, the top 10% of codes hold "
        f"{imbalance['top_10pct_share']:.0%} of occurrences",
        fontsize=10,
    )
    axes.legend(loc="lower left", fontsize=8)
    axes.grid(True, which="major", alpha=0.3)


def _draw_segments(axes, segments: pd.DataFrame) -> None:
    ids = segments["segment_id"].to_numpy()
    low = segments["min_count"].to_numpy(dtype=np.float64)
    high = segments["max_count"].to_numpy(dtype=np.float64)
    colours = [_band_colour(band) for band in segments["band"]]
    axes.vlines(ids, low, high, colors=colours, linewidth=6)
    # Markers keep a segment whose labels share one count visible.
    axes.scatter(ids, segments["mean_count"], color=colours, edgecolors="black", s=18, zorder=3)
    mean_marker = Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                         markeredgecolor="black", label="mean count")
    if len(segments) <= MAX_ANNOTATED_SEGMENTS:
        for segment_id, top, size in zip(ids, high, segments["n_labels"]):
            axes.text(segment_id, top * 1.2, str(size), ha="center", va="bottom", fontsize=7)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_yscale("log")
    axes.set_ylim(top=high.max() * 3)
    axes.set_xlabel("segment id (colour: band of the segment, as above)")
    axes.set_ylabel("train count range")
    title = f"{len(segments)} segments: min to max train count of their labels"
    if len(segments) <= MAX_ANNOTATED_SEGMENTS:
        title += ", number of labels above each range"
    axes.set_title(title, fontsize=10)
    axes.legend(handles=[mean_marker], loc="lower left", fontsize=8)
    axes.grid(True, axis="y", which="major", alpha=0.3)
