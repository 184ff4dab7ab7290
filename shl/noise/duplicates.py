"""Near-duplicate documents: LSH similarity join, connected components and cluster summaries.

Two documents are near-duplicates when the cosine of their unit-norm vectors is at
least ``tau``, which for unit vectors is a Euclidean distance of at most
``sqrt(2 - 2 * tau)``. Candidate pairs come from Spark ML's
:class:`~pyspark.ml.feature.BucketedRandomProjectionLSH`; every candidate's cosine is
then computed exactly, so the pairs are exact and only recall depends on the hashing.

The job compares vectors after removing the corpus mean vector (and normalising
again). Notes written from the same template share a large common component: on the
built-in sample, unrelated notes reach a raw cosine of 0.97, while near-duplicates stay
above 0.98 either way. Without the common component, unrelated notes fall near 0 and
the threshold separates them (docs/BENCHMARKS.md has the numbers).

A cluster is a connected component of the pair graph, found in Spark by min-label
propagation. Its id is its smallest doc_id.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

LSH_SEED = 13
# Slack on the distance threshold and the cosine filter, for float32 rounding: an
# exact copy can have a cosine of 0.99999994 with itself.
COSINE_TOLERANCE = 1e-6
MAX_COMPONENT_ITERATIONS = 64
# Decimals kept of the corpus mean vector. Spark sums partitions in any order, and
# rounding the mean keeps those last-bit differences out of the cosines, so a re-run
# writes the same values.
MEAN_DECIMALS = 6
TRAIN = "train"


# ---------------------------------------------------------------- pure functions


def cosine_distance_threshold(tau: float) -> float:
    """Return the Euclidean distance of two unit vectors whose cosine is ``tau``."""
    if not -1.0 <= tau <= 1.0:
        raise ValueError(f"cosine threshold must be in [-1, 1], got {tau}")
    return math.sqrt(max(0.0, 2.0 - 2.0 * tau))


def jaccard(first: Sequence[str], second: Sequence[str]) -> float:
    """Return the Jaccard index of two label sets; two empty sets agree fully (1.0)."""
    a, b = set(first), set(second)
    union = a | b
    if not union:
        return 1.0
    return len(a & b) / len(union)


def label_agreement(label_sets: Sequence[Sequence[str]]) -> float:
    """Return the smallest pairwise Jaccard index of a cluster's label sets.

    A cluster of one member agrees fully (1.0). The minimum, rather than the mean,
    makes one member with different labels lower the agreement of a large cluster.
    """
    if len(label_sets) < 2:
        return 1.0
    return min(jaccard(a, b) for a, b in itertools.combinations(label_sets, 2))


def choose_representative(doc_ids: Sequence[str], splits: Sequence[str]) -> str:
    """Return the train member with the smallest doc_id, or the smallest doc_id overall."""
    if not doc_ids:
        raise ValueError("a cluster needs at least one member")
    train = [doc_id for doc_id, split in zip(doc_ids, splits) if split == TRAIN]
    return min(train) if train else min(doc_ids)


def spans_splits(splits: Sequence[str]) -> bool:
    """Return whether a cluster has members in train and in another split (leakage)."""
    present = set(splits)
    return TRAIN in present and len(present) > 1


def summarize_cluster(members: pd.DataFrame, min_label_agreement: float) -> pd.DataFrame:
    """Return one row per member of one cluster with the cluster's summary columns.

    Parameters
    ----------
    members : DataFrame
        Columns cluster_id, doc_id, split, labels and max_cosine, one row per member.
    min_label_agreement : float
        Clusters whose :func:`label_agreement` is below this are flagged as label noise.
    """
    doc_ids = members["doc_id"].tolist()
    splits = members["split"].tolist()
    representative = choose_representative(doc_ids, splits)
    agreement = label_agreement([list(labels) for labels in members["labels"]])
    return pd.DataFrame(
        {
            "cluster_id": members["cluster_id"].to_numpy(),
            "doc_id": doc_ids,
            "split": splits,
            "cluster_size": len(doc_ids),
            "representative_doc_id": representative,
            "is_representative": [doc_id == representative for doc_id in doc_ids],
            "label_agreement": agreement,
            "label_noise": agreement < min_label_agreement,
            "leakage": spans_splits(splits),
            "max_cosine": members["max_cosine"].astype(float).to_numpy(),
        }
    )


SUMMARY_SCHEMA = (
    "cluster_id string, doc_id string, split string, cluster_size int, "
    "representative_doc_id string, is_representative boolean, label_agreement double, "
    "label_noise boolean, leakage boolean, max_cosine double"
)


# ---------------------------------------------------------------- similarity join


def remove_mean(vectors: DataFrame) -> DataFrame:
    """Subtract the mean vector of all rows from each vector and L2-normalise the result.

    Parameters
    ----------
    vectors : DataFrame
        Columns doc_id and vector (array<float>), at least one row.

    Returns
    -------
    DataFrame
        Columns doc_id and vector (array<float>); a vector equal to the mean becomes zero.
    """
    mean_column = Summarizer.mean(array_to_vector(F.col("vector"))).alias("mean")
    mean = np.round(vectors.select(mean_column).first()["mean"].toArray(), MEAN_DECIMALS)
    literal = F.array(*[F.lit(float(value)) for value in mean])
    difference = F.zip_with(F.col("vector"), literal, lambda x, m: x.cast("double") - m)
    centred = vectors.select(F.col("doc_id"), difference.alias("centred"))
    zero = F.lit(0.0).cast("double")
    norm = F.sqrt(F.aggregate(F.col("centred"), zero, lambda total, x: total + x * x))
    scaled = F.when(norm > 0, F.transform(F.col("centred"), lambda x: x / norm))
    scaled = scaled.otherwise(F.col("centred"))
    return centred.select(F.col("doc_id"), scaled.cast("array<float>").alias("vector"))


def _dot(left: str, right: str):
    products = F.zip_with(
        F.col(left), F.col(right), lambda x, y: x.cast("double") * y.cast("double")
    )
    return F.aggregate(products, F.lit(0.0).cast("double"), lambda total, value: total + value)


def similar_pairs(
    vectors: DataFrame,
    tau: float,
    bucket_length: float,
    num_hash_tables: int,
    band_width: int = 1,
) -> DataFrame:
    """Find the pairs of documents whose vectors have a cosine of at least ``tau``.

    Parameters
    ----------
    vectors : DataFrame
        Columns doc_id (unique) and vector (array<float> of unit norm).
    tau : float
        Cosine threshold.
    bucket_length : float
        Width of a hash bucket on one random projection (Spark's ``bucketLength``).
    num_hash_tables : int
        OR-amplification: a pair is a candidate when it shares a bucket in any table.
    band_width : int
        AND-amplification. With 1, the join is Spark's ``approxSimilarityJoin``.
        With k > 1, each of the ``num_hash_tables`` tables is a band of k projections
        and a pair is a candidate in a band only when all k buckets match.

    Returns
    -------
    DataFrame
        Columns doc_id_a < doc_id_b and cosine (double), one row per pair.
    """
    if band_width < 1 or num_hash_tables < 1:
        raise ValueError(
            f"band_width and num_hash_tables must be at least 1, got {band_width} and {num_hash_tables}"
        )
    features = vectors.select(
        F.col("doc_id"), F.col("vector"), array_to_vector(F.col("vector")).alias("features")
    )
    lsh = BucketedRandomProjectionLSH(
        inputCol="features",
        outputCol="hashes",
        bucketLength=bucket_length,
        numHashTables=num_hash_tables * band_width,
        seed=LSH_SEED,
    )
    model = lsh.fit(features)
    if band_width == 1:
        distance = cosine_distance_threshold(tau) + COSINE_TOLERANCE
        joined = model.approxSimilarityJoin(features, features, distance, distCol="distance")
        candidates = joined.select(
            F.col("datasetA.doc_id").alias("doc_id_a"), F.col("datasetB.doc_id").alias("doc_id_b")
        ).where(F.col("doc_id_a") < F.col("doc_id_b"))
    else:
        candidates = _banded_candidates(model.transform(features), band_width, num_hash_tables)
    return _exact_pairs(candidates, vectors, tau)


def _banded_candidates(hashed: DataFrame, band_width: int, bands: int) -> DataFrame:
    """Pairs that share all ``band_width`` buckets of at least one of ``bands`` bands."""
    # shape (band_width * bands,): the hashes are one vector of length 1 per projection.
    buckets = F.transform(F.col("hashes"), lambda bucket: vector_to_array(bucket)[0])
    band_keys = F.transform(
        F.sequence(F.lit(0), F.lit(bands - 1)),
        lambda band: F.xxhash64(F.slice(buckets, band * band_width + 1, F.lit(band_width))),
    )
    keyed = hashed.select(F.col("doc_id"), F.posexplode(band_keys).alias("band", "band_key"))
    left = keyed.select(F.col("doc_id").alias("doc_id_a"), F.col("band"), F.col("band_key"))
    right = keyed.select(F.col("doc_id").alias("doc_id_b"), F.col("band"), F.col("band_key"))
    # An xxhash64 collision of two different bucket lists only adds a candidate,
    # which the exact cosine filter then rejects.
    return (
        left.join(right, on=["band", "band_key"], how="inner")
        .where(F.col("doc_id_a") < F.col("doc_id_b"))
        .select(F.col("doc_id_a"), F.col("doc_id_b"))
        .distinct()
    )


def _exact_pairs(candidates: DataFrame, vectors: DataFrame, tau: float) -> DataFrame:
    left = vectors.select(F.col("doc_id").alias("doc_id_a"), F.col("vector").alias("vector_a"))
    right = vectors.select(F.col("doc_id").alias("doc_id_b"), F.col("vector").alias("vector_b"))
    scored = (
        candidates.join(left, on="doc_id_a", how="inner")
        .join(right, on="doc_id_b", how="inner")
        .select(F.col("doc_id_a"), F.col("doc_id_b"), _dot("vector_a", "vector_b").alias("cosine"))
    )
    kept = scored.where(F.col("cosine") >= tau - COSINE_TOLERANCE)
    return kept.select("doc_id_a", "doc_id_b", "cosine")


# ---------------------------------------------------------------- connected components


def _truncate_lineage(frame: DataFrame) -> DataFrame:
    """Materialise a frame and cut its plan, so the propagation loop's plan stays small."""
    context = frame.sparkSession.sparkContext
    if context.getCheckpointDir():
        return frame.checkpoint(eager=True)
    return frame.localCheckpoint(eager=True)


def connected_components(
    pairs: DataFrame, max_iterations: int = MAX_COMPONENT_ITERATIONS
) -> DataFrame:
    """Label every document of a pair with the smallest doc_id of its connected component.

    Each round sets a node's label to the smallest label among itself and its
    neighbours, then to the label of its label (pointer jumping), which makes long
    chains converge in about log2(length) rounds. Labels only decrease and stay inside
    the component, so the fixed point is the component's smallest doc_id. Every round
    is checkpointed, so the plan does not grow with the rounds.

    Parameters
    ----------
    pairs : DataFrame
        Columns doc_id_a and doc_id_b, the edges of the graph.

    Returns
    -------
    DataFrame
        Columns doc_id and cluster_id.

    Raises
    ------
    RuntimeError
        If the labels still change after ``max_iterations`` rounds.
    """
    edges = pairs.select(F.col("doc_id_a").alias("node"), F.col("doc_id_b").alias("neighbour"))
    reversed_edges = edges.select(F.col("neighbour").alias("node"), F.col("node").alias("neighbour"))
    links = _truncate_lineage(edges.unionByName(reversed_edges))
    nodes = links.select(F.col("node")).distinct()
    labels = _truncate_lineage(nodes.select(F.col("node"), F.col("node").alias("label")))

    for iteration in range(1, max_iterations + 1):
        updated = _truncate_lineage(_propagate(links, labels))
        changed = (
            updated.alias("new")
            .join(labels.alias("old"), on="node", how="inner")
            .where(F.col("new.label") != F.col("old.label"))
            .count()
        )
        labels = updated
        logger.debug("Connected components round %d: %d labels changed", iteration, changed)
        if changed == 0:
            logger.info("Connected components converged after %d rounds", iteration)
            return labels.select(F.col("node").alias("doc_id"), F.col("label").alias("cluster_id"))
    raise RuntimeError(
        f"connected components did not converge in {max_iterations} rounds; the duplicate graph "
        f"may contain very long chains, so raise noise.duplicate_threshold or pass a larger "
        f"max_iterations"
    )


def _propagate(links: DataFrame, labels: DataFrame) -> DataFrame:
    by_neighbour = labels.select(F.col("node").alias("neighbour"), F.col("label"))
    neighbour_labels = (
        links.join(by_neighbour, on="neighbour", how="inner")
        .groupBy("node")
        .agg(F.min("label").alias("neighbour_label"))
    )
    lowered = labels.join(neighbour_labels, on="node", how="left").select(
        F.col("node"), _smaller_label("neighbour_label").alias("label")
    )
    jumped = lowered.alias("own").join(
        lowered.select(F.col("node").alias("target"), F.col("label").alias("target_label")),
        on=F.col("own.label") == F.col("target"),
        how="left",
    )
    return jumped.select(F.col("node"), _smaller_label("target_label").alias("label"))


def _smaller_label(other: str):
    """Return the smaller of ``label`` and the ``other`` column, or ``label`` when ``other`` is null."""
    return F.least(F.col("label"), F.coalesce(F.col(other), F.col("label")))


# ---------------------------------------------------------------- cluster summaries


def cluster_members(
    pairs: DataFrame, components: DataFrame, documents: DataFrame, min_label_agreement: float
) -> DataFrame:
    """Summarise every cluster, one row per member, in the columns of ``duplicates``.

    Parameters
    ----------
    pairs : DataFrame
        Columns doc_id_a, doc_id_b and cosine.
    components : DataFrame
        Columns doc_id and cluster_id from :func:`connected_components`.
    documents : DataFrame
        Columns doc_id, split and labels.
    """
    both_ends = pairs.select(F.col("doc_id_a").alias("doc_id"), F.col("cosine")).unionByName(
        pairs.select(F.col("doc_id_b").alias("doc_id"), F.col("cosine"))
    )
    best = both_ends.groupBy("doc_id").agg(F.max("cosine").alias("max_cosine"))
    members = (
        components.join(best, on="doc_id", how="inner")
        .join(documents.select("doc_id", "split", "labels"), on="doc_id", how="inner")
        .select("cluster_id", "doc_id", "split", "labels", "max_cosine")
    )
    return members.groupBy("cluster_id").applyInPandas(
        lambda frame: summarize_cluster(frame, min_label_agreement), schema=SUMMARY_SCHEMA
    )
