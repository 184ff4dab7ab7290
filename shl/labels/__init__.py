"""Label statistics and label segmentation for the Segmented Harmonic Loss.

Both modules are pure numpy/pandas/scipy code without Spark, so they serve as
the reference that the Spark jobs are compared with.
"""

from shl.labels.segmentation import (
    ASSOCIATION_MEASURES,
    SegmentationResult,
    assign_frequency_bands,
    compute_association,
    segment_labels,
    segment_labels_from_pairs,
    select_conflict_edges,
)
from shl.labels.statistics import (
    LabelStatistics,
    compute_cooccurrence,
    compute_label_counts,
    compute_label_statistics,
    gini_coefficient,
    summarise_imbalance,
    top_share,
)

__all__ = [
    "ASSOCIATION_MEASURES",
    "LabelStatistics",
    "SegmentationResult",
    "assign_frequency_bands",
    "compute_association",
    "compute_cooccurrence",
    "compute_label_counts",
    "compute_label_statistics",
    "gini_coefficient",
    "segment_labels",
    "segment_labels_from_pairs",
    "select_conflict_edges",
    "summarise_imbalance",
    "top_share",
]
