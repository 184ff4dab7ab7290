"""The cleaned training view: train documents after deduplication, with label weights.

Rules, in order:

1. Only train documents are kept.
2. A train document in a cluster that also has val or test members (leakage) is left
   out, with every other train member of that cluster.
3. Of every other cluster only the representative is kept.
4. A cluster whose labels disagree (``label_noise``: the smallest pairwise Jaccard
   index of its members' label sets is below ``noise.min_label_agreement``) follows
   the conflict policy:

   - ``drop``: the whole cluster is left out;
   - ``keep_representative``: the representative keeps its own labels;
   - ``union``: the representative gets the union of the members' labels.

5. Each label's weight comes from ``label_noise`` for that document and label, 1.0
   when the label was not scored. A label that ``union`` adds from other members gets
   the highest weight it has in any member that carries it: 1.0 unless every such
   member's label is flagged as noisy.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shl.config import CONFLICT_POLICIES
from shl.tables import TRAINING_VIEW

TRAIN = "train"


def build_training_view(
    documents: DataFrame, duplicates: DataFrame, label_scores: DataFrame, conflict_policy: str
) -> DataFrame:
    """Build the rows of ``training_view``.

    Parameters
    ----------
    documents : DataFrame
        The ``documents`` table.
    duplicates : DataFrame
        The ``duplicates`` table (columns doc_id, cluster_id, cluster_size,
        is_representative, label_noise, leakage).
    label_scores : DataFrame
        The ``label_noise`` table (columns doc_id, label, weight).
    conflict_policy : str
        ``drop``, ``keep_representative`` or ``union``.

    Returns
    -------
    DataFrame
        The columns of :data:`shl.tables.TRAINING_VIEW`.
    """
    if conflict_policy not in CONFLICT_POLICIES:
        raise ValueError(
            f"invalid noise.conflict_policy {conflict_policy!r}; "
            f"expected one of {', '.join(CONFLICT_POLICIES)}"
        )
    membership = duplicates.select(
        "doc_id", "cluster_id", "cluster_size", "is_representative", "label_noise", "leakage"
    )
    train = documents.where(F.col("split") == TRAIN).join(membership, on="doc_id", how="left")

    in_cluster = F.col("cluster_id").isNotNull()
    dropped_conflict = F.col("label_noise") & F.lit(conflict_policy == "drop")
    kept = ~in_cluster | (~F.col("leakage") & F.col("is_representative") & ~dropped_conflict)
    train = train.where(kept)

    own_weights = label_scores.groupBy("doc_id").agg(_weight_map().alias("own_weights"))
    train = train.join(own_weights, on="doc_id", how="left")

    labels = F.col("labels")
    weight_maps = [F.col("own_weights")]
    if conflict_policy == "union":
        union = _cluster_label_union(documents, duplicates, label_scores)
        train = train.join(union, on="cluster_id", how="left")
        merge = in_cluster & F.col("label_noise") & F.col("union_labels").isNotNull()
        merged = F.array_sort(F.array_union(F.col("labels"), F.col("union_labels")))
        labels = F.when(merge, merged).otherwise(labels)
        weight_maps.append(F.col("union_weights"))

    train = train.withColumn("labels", labels)
    return train.select(
        F.col("doc_id"),
        F.col("source"),
        F.col("subject_id"),
        F.col("hadm_id"),
        F.col("text"),
        F.col("text_sha256"),
        F.col("labels"),
        _label_weights(F.col("labels"), weight_maps).alias("label_weights"),
        F.col("cluster_id"),
        F.coalesce(F.col("cluster_size"), F.lit(1)).cast("int").alias("cluster_size"),
    ).select(*TRAINING_VIEW.columns)


def _weight_map():
    """Aggregate of (label, weight) rows into a map from label to weight."""
    return F.map_from_entries(F.collect_list(F.struct(F.col("label"), F.col("weight"))))


def _label_weights(labels, weight_maps):
    """Weight of each label: from the first map that has it (a null map has none), else 1.0."""
    default = F.lit(1.0).cast("float")
    return F.transform(
        labels,
        lambda label: F.coalesce(*[F.try_element_at(m, label) for m in weight_maps], default),
    )


def _cluster_label_union(
    documents: DataFrame, duplicates: DataFrame, label_scores: DataFrame
) -> DataFrame:
    """Per cluster, the sorted union of its train members' labels and each label's highest weight."""
    members = duplicates.where(F.col("split") == TRAIN).select("cluster_id", "doc_id")
    labelled = members.join(documents.select("doc_id", "labels"), on="doc_id", how="inner").select(
        F.col("cluster_id"), F.col("doc_id"), F.explode(F.col("labels")).alias("label")
    )
    scores = label_scores.select("doc_id", "label", "weight")
    weighted = labelled.join(scores, on=["doc_id", "label"], how="left")
    per_label = weighted.groupBy("cluster_id", "label").agg(
        F.coalesce(F.max("weight"), F.lit(1.0)).cast("float").alias("weight")
    )
    return per_label.groupBy("cluster_id").agg(
        F.array_sort(F.collect_list(F.col("label"))).alias("union_labels"),
        _weight_map().alias("union_weights"),
    )
