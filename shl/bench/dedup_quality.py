"""Measure near-duplicate and label-noise detection on the built-in sample, whose flaws are known.

Run ``python -m shl.bench.dedup_quality --workdir /tmp/dedup_quality``. The script
generates the sample (``sample`` settings of the default config, 2,000 admissions),
runs ingest, tokenize and dedup-noise into a lakehouse under the work folder, and
compares the gold tables with ``truth/duplicates.csv.gz`` and
``truth/label_noise.csv.gz``. It prints markdown tables:

- duplicate detection at the configured threshold. A detected pair is true when both
  documents are in the same truth cluster (the connected components of the truth's
  (note, source) pairs), which includes the (note, source) pairs themselves. Recall is
  the share of truth (note, source) pairs whose documents share a detected cluster.
  The strict recall counts only the truth pairs that the LSH join itself returned;
- precision and recall of all pairs above other thresholds, from exact cosines of the
  stored vectors, with raw vectors and with the corpus mean vector removed;
- label-noise detection of the ``added`` label errors: AUROC of the negated z-score
  against every other scored (document, label) pair, and recall and precision at
  several z thresholds.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from shl.bench.loss_speed import machine_description
from shl.config import Config, load_config
from shl.icd import normalize_code

logger = logging.getLogger(__name__)

THRESHOLDS = (0.95, 0.96, 0.97, 0.98, 0.99)
Z_THRESHOLDS = (-2.0, -2.5, -3.0, -4.0)


def run_pipeline(config: Config) -> dict[str, float]:
    """Run ingest, tokenize and dedup-noise, and return the seconds of each stage."""
    from shl.documents.job import run_tokenize
    from shl.ingest.job import run_ingest
    from shl.noise.job import run_dedup_noise
    from shl.spark import get_spark

    spark = get_spark(config.spark)
    seconds = {}
    stages = (("ingest", run_ingest), ("tokenize", run_tokenize), ("dedup-noise", run_dedup_noise))
    for name, stage in stages:
        started = time.monotonic()
        result = stage(config, spark)
        seconds[name] = time.monotonic() - started
        if name == "dedup-noise":
            for step, value in result.seconds_by_step.items():
                seconds[f"dedup-noise {step}"] = value
    return seconds


def truth_clusters(duplicates: pd.DataFrame, source: str) -> dict[str, str]:
    """Map each doc_id in a truth (note, source) pair to its truth cluster's smallest doc_id."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for hadm_id, source_hadm_id in zip(duplicates["hadm_id"], duplicates["source_hadm_id"]):
        first, second = find(f"{source}:{hadm_id}"), find(f"{source}:{source_hadm_id}")
        if first != second:
            parent[max(first, second)] = min(first, second)
    return {node: find(node) for node in list(parent)}


def pair_precision_recall(
    detected: set[tuple[str, str]], truth_pairs: set[tuple[str, str]], cluster_of: dict[str, str],
    detected_cluster_of: dict[str, str],
) -> dict[str, float]:
    """Pair-level precision, recall through detected clusters, and strict recall."""
    def same(clusters: dict[str, str], a: str, b: str) -> bool:
        return a in clusters and clusters.get(a) == clusters.get(b)

    true_detected = sum(1 for a, b in detected if same(cluster_of, a, b))
    found = sum(1 for a, b in truth_pairs if same(detected_cluster_of, a, b))
    strict = sum(1 for pair in truth_pairs if pair in detected)
    return {
        "detected pairs": len(detected),
        "true detected pairs": true_detected,
        "precision": true_detected / len(detected) if detected else float("nan"),
        "truth pairs": len(truth_pairs),
        "recall": found / len(truth_pairs) if truth_pairs else float("nan"),
        "strict recall": strict / len(truth_pairs) if truth_pairs else float("nan"),
    }


def threshold_sweep(
    doc_ids: list[str], vectors: np.ndarray, truth_pairs: set[tuple[str, str]], cluster_of: dict[str, str]
) -> tuple[list[dict], list[dict]]:
    """Exact all-pairs precision and recall per threshold, for raw and mean-centred vectors.

    Also returns, per kind of vector, the lowest cosine of a truth pair and the highest
    cosine of two documents from different truth clusters.
    """
    rows, margins = [], []
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    upper = np.triu_indices(len(doc_ids), k=1)
    position = {doc_id: index for index, doc_id in enumerate(doc_ids)}
    truth_index = [(position[a], position[b]) for a, b in truth_pairs]
    same_cluster = np.array([
        doc_ids[i] in cluster_of and cluster_of.get(doc_ids[i]) == cluster_of.get(doc_ids[j])
        for i, j in zip(*upper)
    ])
    for name, matrix in (("raw", vectors), ("mean removed", centred)):
        full = matrix @ matrix.T  # shape (documents, documents)
        cosines = full[upper]  # shape (pairs,)
        margins.append({
            "vectors": name,
            "lowest truth-pair cosine": float(min(full[i, j] for i, j in truth_index)),
            "highest cosine across truth clusters": float(cosines[~same_cluster].max()),
            "median cosine across truth clusters": float(np.median(cosines[~same_cluster])),
        })
        for tau in THRESHOLDS:
            keep = cosines >= tau
            detected = {
                tuple(sorted((doc_ids[i], doc_ids[j]))) for i, j in zip(upper[0][keep], upper[1][keep])
            }
            # With all pairs above tau, the detected cluster of a pair is the pair itself.
            stats = pair_precision_recall(detected, truth_pairs, cluster_of, {})
            stats["recall"] = stats["strict recall"]
            rows.append({"vectors": name, "threshold": tau, **stats})
    return rows, margins


def duplicate_quality(
    spark, config: Config, truth_dir: Path
) -> tuple[dict, list[dict], list[dict], dict]:
    from shl import delta, tables

    source = config.source_name
    truth = pd.read_csv(truth_dir / "duplicates.csv.gz")
    documents = delta.read_table(spark, tables.DOCUMENTS, config).select("doc_id").toPandas()
    present = set(documents["doc_id"])
    cluster_of = truth_clusters(truth, source)
    truth_pairs = {
        tuple(sorted((f"{source}:{a}", f"{source}:{b}")))
        for a, b in zip(truth["hadm_id"], truth["source_hadm_id"])
        if f"{source}:{a}" in present and f"{source}:{b}" in present
    }
    pairs = delta.read_table(spark, tables.DUPLICATE_PAIRS, config).toPandas()
    detected = set(zip(pairs["doc_id_a"], pairs["doc_id_b"]))
    members = delta.read_table(spark, tables.DUPLICATES, config).toPandas()
    detected_cluster_of = dict(zip(members["doc_id"], members["cluster_id"]))
    at_default = pair_precision_recall(detected, truth_pairs, cluster_of, detected_cluster_of)
    at_default["missing documents"] = len(truth) * 2 - sum(
        f"{source}:{h}" in present for h in list(truth["hadm_id"]) + list(truth["source_hadm_id"])
    )

    embeddings = delta.read_table(spark, tables.EMBEDDINGS, config).select("doc_id", "vector")
    embeddings = embeddings.toPandas()
    vectors = np.stack([np.asarray(vector, dtype=np.float32) for vector in embeddings["vector"]])
    doc_ids = embeddings["doc_id"].tolist()
    sweep, margins = threshold_sweep(doc_ids, vectors, truth_pairs, cluster_of)
    clusters = {
        "clusters": members["cluster_id"].nunique(),
        "clustered documents": len(members),
        "leakage clusters": members.loc[members["leakage"], "cluster_id"].nunique(),
        "label-conflict clusters": members.loc[members["label_noise"], "cluster_id"].nunique(),
        "truth clusters": len(set(cluster_of.values())),
    }
    return at_default, sweep, margins, clusters


def label_noise_quality(spark, config: Config, truth_dir: Path) -> tuple[dict, list[dict]]:
    from shl import delta, tables

    source = config.source_name
    truth = pd.read_csv(truth_dir / "label_noise.csv.gz")
    added = truth[truth["kind"] == "added"]
    systems = {"diagnosis": "icd10cm", "procedure": "icd10pcs"}
    added_keys = {
        (f"{source}:{hadm_id}", f"{systems[kind]}:{normalize_code(str(code), systems[kind])}")
        for hadm_id, code, kind in zip(added["hadm_id"], added["icd_code"], added["code_type"])
    }
    scores = delta.read_table(spark, tables.LABEL_NOISE, config).toPandas()
    scores["added"] = [key in added_keys for key in zip(scores["doc_id"], scores["label"])]
    z = scores["z_score"].fillna(0.0).to_numpy()
    auroc = float(roc_auc_score(scores["added"], -z)) if scores["added"].any() else float("nan")
    summary = {
        "added label errors in truth": len(added_keys),
        "added errors in documents (label space kept them)": int(scores["added"].sum()),
        "scored (document, label) pairs": len(scores),
        "AUROC of -z": auroc,
        "added errors with z = 0": int(((z == 0) & scores["added"]).sum()),
    }
    sweep = []
    for threshold in Z_THRESHOLDS:
        flagged = z < threshold
        true_flagged = int((flagged & scores["added"]).sum())
        sweep.append({
            "z threshold": threshold,
            "flagged": int(flagged.sum()),
            "added errors flagged": true_flagged,
            "recall": true_flagged / max(1, int(scores["added"].sum())),
            "precision": true_flagged / max(1, int(flagged.sum())),
        })
    return summary, sweep


def markdown_table(rows: list[dict]) -> str:
    """Format a list of dicts with the same keys as a markdown table."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            f"{value:.3f}" if isinstance(value, float) else str(value) for value in row.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="folder for the sample and the lakehouse")
    parser.add_argument("--admissions", type=int, default=2000, help="admissions in the sample (default 2000)")
    parser.add_argument(
        "--evaluate-only", action="store_true",
        help="evaluate the tables already in --workdir without running the stages",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="further config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workdir = Path(arguments.workdir)
    config = load_config(
        None,
        [
            f"source.path={workdir / 'sample'}",
            f"lakehouse.root={workdir / 'lakehouse'}",
            f"sample.n_admissions={arguments.admissions}",
            f"sample.n_patients={max(1, round(arguments.admissions / 2.5))}",
            *arguments.overrides,
        ],
    )
    seconds = {} if arguments.evaluate_only else run_pipeline(config)
    from shl.spark import get_spark

    spark = get_spark(config.spark)
    truth_dir = workdir / "sample" / "truth"
    at_default, sweep, margins, clusters = duplicate_quality(spark, config, truth_dir)
    noise_summary, noise_sweep = label_noise_quality(spark, config, truth_dir)

    print(f"Machine: {machine_description()}")
    print(f"Sample: {arguments.admissions} admissions; noise settings {config.noise}")
    if seconds:
        stage_rows = [{"stage": stage, "seconds": value} for stage, value in seconds.items()]
        print("\nStage seconds:\n" + markdown_table(stage_rows))
    print(f"\nDuplicates at threshold {config.noise.duplicate_threshold}:\n" + markdown_table([at_default]))
    print("\nClusters:\n" + markdown_table([clusters]))
    print("\nCosine margins, exact:\n" + markdown_table(margins))
    print("\nExact all-pairs sweep:\n" + markdown_table(sweep))
    print("\nLabel noise, added errors:\n" + markdown_table([noise_summary]))
    print("\nLabel noise by z threshold:\n" + markdown_table(noise_sweep))


if __name__ == "__main__":
    main()
