"""Tests of the built-in sample generator, on a 2,000-admission sample."""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import logging
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from shl.icd import normalize_code
from shl.icd_dictionary import load_billable_codes, load_titles
from shl.sample import SampleSummary, generate_sample
from shl.sample.vocabulary import (
    COMMON_DIAGNOSES,
    COMMON_PROCEDURES,
    build_vocabulary,
    short_form,
)

N_ADMISSIONS = 2000
DUPLICATE_RATE = 0.03
NOISE_RATE = 0.05


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SampleSummary:
    return generate_sample(
        tmp_path_factory.mktemp("sample"),
        n_admissions=N_ADMISSIONS,
        duplicate_rate=DUPLICATE_RATE,
        noise_rate=NOISE_RATE,
        seed=7,
    )


@pytest.fixture(scope="module")
def tables(sample: SampleSummary) -> dict[str, pd.DataFrame]:
    paths = {
        "notes": sample.discharge_path,
        "diagnoses": sample.diagnoses_path,
        "procedures": sample.procedures_path,
        "d_diagnoses": sample.d_icd_diagnoses_path,
        "d_procedures": sample.d_icd_procedures_path,
        "duplicates": sample.duplicates_path,
        "noise": sample.label_noise_path,
    }
    return {
        name: pd.read_csv(path, dtype=str, keep_default_na=False) for name, path in paths.items()
    }


@pytest.fixture(scope="module")
def lower_texts(tables) -> dict[str, str]:
    notes = tables["notes"]
    return dict(zip(notes["hadm_id"], notes["text"].str.lower()))


@pytest.fixture(scope="module")
def titles(tables) -> dict[str, str]:
    result = dict(zip(tables["d_diagnoses"]["icd_code"], tables["d_diagnoses"]["long_title"]))
    result.update(zip(tables["d_procedures"]["icd_code"], tables["d_procedures"]["long_title"]))
    return result


def _all_files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _has_evidence(title: str, lower_text: str) -> bool:
    return title.lower() in lower_text or short_form(title) in lower_text


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_sample(tmp_path / "a", n_admissions=300, seed=11)
    second = generate_sample(tmp_path / "b", n_admissions=300, seed=11)
    first_files = _all_files(first.output_dir)
    second_files = _all_files(second.output_dir)
    assert len(first_files) == 8
    assert first_files.keys() == second_files.keys()
    for name, content in first_files.items():
        assert content == second_files[name], name


def test_different_seed_gives_different_files(tmp_path):
    first = generate_sample(tmp_path / "a", n_admissions=300, seed=11)
    second = generate_sample(tmp_path / "b", n_admissions=300, seed=12)
    assert first.discharge_path.read_bytes() != second.discharge_path.read_bytes()
    assert first.diagnoses_path.read_bytes() != second.diagnoses_path.read_bytes()


def test_gzip_header_has_no_name_or_time(sample):
    header = sample.discharge_path.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b"
    # FLG byte: no FNAME bit. MTIME bytes 4-7: zero.
    assert header[3] & 0x08 == 0
    assert header[4:8] == b"\x00\x00\x00\x00"


def test_summary_counts_match_rows(sample, tables):
    assert sample.n_admissions == N_ADMISSIONS
    assert sample.n_patients == 800
    assert sample.n_notes == N_ADMISSIONS
    assert len(tables["notes"]) == sample.n_notes
    assert len(tables["diagnoses"]) == sample.n_diagnosis_rows
    assert len(tables["procedures"]) == sample.n_procedure_rows
    assert len(tables["duplicates"]) == sample.n_duplicates
    assert len(tables["noise"]) == sample.n_noisy_labels
    assert len(tables["d_diagnoses"]) == sample.n_diagnosis_codes == 300
    assert len(tables["d_procedures"]) == sample.n_procedure_codes == 50


def test_summary_json_records_parameters(sample):
    summary = json.loads(sample.summary_path.read_text(encoding="utf-8"))
    assert summary["seed"] == 7
    assert summary["parameters"]["n_admissions"] == N_ADMISSIONS
    assert summary["parameters"]["duplicate_rate"] == DUPLICATE_RATE
    assert summary["counts"]["admissions"] == sample.n_admissions
    assert summary["counts"]["patients"] == sample.n_patients
    assert summary["counts"]["diagnosis_rows"] == sample.n_diagnosis_rows
    assert summary["counts"]["procedure_rows"] == sample.n_procedure_rows
    assert summary["counts"]["duplicates"] == sample.n_duplicates
    assert summary["counts"]["noisy_labels"] == sample.n_noisy_labels


def test_ids_follow_mimic_style(tables):
    notes = tables["notes"]
    hadm_ids = sorted(int(value) for value in notes["hadm_id"])
    assert hadm_ids == list(range(20_000_000, 20_000_000 + N_ADMISSIONS))
    subject_ids = sorted({int(value) for value in notes["subject_id"]})
    assert subject_ids == list(range(10_000_000, 10_000_800))
    expected_note_ids = notes["subject_id"] + "-DS-" + notes["note_seq"]
    assert (notes["note_id"] == expected_note_ids).all()
    assert notes["note_id"].is_unique
    assert set(notes["note_type"]) == {"DS"}
    timestamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    assert notes["charttime"].map(lambda value: bool(timestamp.fullmatch(value))).all()
    assert notes["storetime"].map(lambda value: bool(timestamp.fullmatch(value))).all()
    assert (notes["storetime"] > notes["charttime"]).all()
    chartdate = re.compile(r"\d{4}-\d{2}-\d{2}")
    chartdates = tables["procedures"]["chartdate"]
    assert chartdates.map(lambda value: bool(chartdate.fullmatch(value))).all()


def test_every_admission_has_diagnosis(tables):
    diagnoses = tables["diagnoses"]
    assert set(diagnoses["hadm_id"]) == set(tables["notes"]["hadm_id"])
    first_seq = diagnoses.groupby("hadm_id")["seq_num"].apply(lambda values: min(map(int, values)))
    assert (first_seq == 1).all()
    assert not diagnoses.duplicated(["hadm_id", "icd_code"]).any()
    assert not tables["procedures"].duplicated(["hadm_id", "icd_code"]).any()


def test_every_code_has_title(tables):
    diagnosis_titles = set(tables["d_diagnoses"]["icd_code"])
    procedure_titles = set(tables["d_procedures"]["icd_code"])
    assert set(tables["diagnoses"]["icd_code"]) <= diagnosis_titles
    assert set(tables["procedures"]["icd_code"]) <= procedure_titles
    assert (tables["d_diagnoses"]["long_title"].str.len() > 0).all()
    assert set(tables["diagnoses"]["icd_version"]) == {"10"}
    assert set(tables["procedures"]["icd_version"]) == {"10"}


def test_codes_are_real_and_undotted(tables):
    cm_titles = load_titles("icd10cm")
    pcs_titles = load_titles("icd10pcs")
    for raw, title in zip(tables["d_diagnoses"]["icd_code"], tables["d_diagnoses"]["long_title"]):
        assert "." not in raw
        code = normalize_code(raw, "icd10cm")
        assert code in load_billable_codes("icd10cm")
        assert title == cm_titles[code]
    for raw in tables["d_procedures"]["icd_code"]:
        code = normalize_code(raw, "icd10pcs")
        assert code in pcs_titles


def test_code_frequencies_have_long_tail(tables):
    admissions_per_code = tables["diagnoses"].groupby("icd_code")["hadm_id"].nunique()
    top = admissions_per_code.max()
    median = admissions_per_code.median()
    assert admissions_per_code.idxmax() == "I10"
    assert top > 20 * median
    assert (admissions_per_code <= 3).sum() >= 5


def test_duplicates_are_close_to_source(tables, lower_texts):
    duplicates = tables["duplicates"]
    # Binomial count over the 1,999 admissions that can be duplicates: mean 60, standard
    # deviation 7.6. The tolerance is four standard deviations.
    expected = DUPLICATE_RATE * (N_ADMISSIONS - 1)
    tolerance = 4 * math.sqrt(expected * (1 - DUPLICATE_RATE))
    assert abs(len(duplicates) - expected) <= tolerance
    for row in duplicates.itertuples():
        source_words = lower_texts[row.source_hadm_id].split()
        copy_words = lower_texts[row.hadm_id].split()
        ratio = difflib.SequenceMatcher(None, source_words, copy_words, autojunk=False).ratio()
        assert ratio > 0.9, row.note_id
        assert lower_texts[row.hadm_id] != lower_texts[row.source_hadm_id], row.note_id
        assert 1 <= int(row.n_edits) <= 5
        assert int(row.source_hadm_id) < int(row.hadm_id)


def test_duplicates_cross_patients_and_change_labels(tables):
    duplicates = tables["duplicates"]
    subject_of = dict(zip(tables["notes"]["hadm_id"], tables["notes"]["subject_id"]))
    other_patient = sum(
        subject_of[source] != subject
        for source, subject in zip(duplicates["source_hadm_id"], duplicates["subject_id"])
    )
    assert other_patient >= 5
    assert other_patient < len(duplicates)
    changed_share = (duplicates["labels_changed"] == "1").mean()
    assert 0.05 <= changed_share <= 0.4


def test_duplicate_label_sets_follow_truth(tables):
    noisy = set(tables["noise"]["hadm_id"])
    codes = pd.concat([tables["diagnoses"], tables["procedures"]])
    code_sets = codes.groupby("hadm_id")["icd_code"].apply(frozenset).to_dict()
    checked = 0
    for row in tables["duplicates"].itertuples():
        if row.hadm_id in noisy or row.source_hadm_id in noisy:
            continue
        same = code_sets[row.hadm_id] == code_sets[row.source_hadm_id]
        assert same == (row.labels_changed == "0"), row.note_id
        checked += 1
    assert checked >= 40


def test_label_noise_matches_code_files(tables, lower_texts, titles):
    noise = tables["noise"]
    # Binomial count over 2,000 admissions: mean 100, standard deviation 9.7.
    expected = NOISE_RATE * N_ADMISSIONS
    assert abs(len(noise) - expected) <= 4 * math.sqrt(expected * (1 - NOISE_RATE))
    kinds = noise["kind"].value_counts()
    assert set(kinds.index) == {"added", "removed"}
    assert kinds["added"] > kinds["removed"] > 0
    assert set(noise["code_type"]) == {"diagnosis", "procedure"}
    codes = pd.concat([tables["diagnoses"], tables["procedures"]])
    pairs = set(zip(codes["hadm_id"], codes["icd_code"]))
    for row in noise.itertuples():
        evidenced = _has_evidence(titles[row.icd_code], lower_texts[row.hadm_id])
        if row.kind == "added":
            assert (row.hadm_id, row.icd_code) in pairs
            assert not evidenced, (row.hadm_id, row.icd_code)
        else:
            assert (row.hadm_id, row.icd_code) not in pairs
            assert evidenced, (row.hadm_id, row.icd_code)


def test_codes_are_learnable_from_text(tables, lower_texts, titles):
    excluded = set(tables["noise"]["hadm_id"])
    duplicates = tables["duplicates"]
    excluded |= set(duplicates.loc[duplicates["labels_changed"] == "1", "hadm_id"])
    codes = pd.concat([tables["diagnoses"], tables["procedures"]])
    codes = codes[~codes["hadm_id"].isin(excluded)]
    pairs = list(zip(codes["hadm_id"], codes["icd_code"]))
    assert len(pairs) > 12_000
    full_title = sum(titles[code].lower() in lower_texts[hadm] for hadm, code in pairs)
    any_phrase = sum(_has_evidence(titles[code], lower_texts[hadm]) for hadm, code in pairs)
    # Measured with seed 7: 96.9 % of the pairs have the full title and 100 % have the
    # title or its short form.
    assert full_title / len(pairs) >= 0.93
    assert any_phrase / len(pairs) >= 0.995


def test_cooccurrence_groups_appear_together(sample, tables):
    summary = json.loads(sample.summary_path.read_text(encoding="utf-8"))
    groups = summary["cooccurrence_groups"]
    diagnosis_groups = [group for group in groups if group["code_type"] == "diagnosis"]
    grouped_codes = sum(len(group["icd_codes"]) for group in diagnosis_groups)
    assert grouped_codes == 30
    assert all(2 <= len(group["icd_codes"]) <= 3 for group in groups)
    codes = pd.concat([tables["diagnoses"], tables["procedures"]])
    code_sets = codes.groupby("hadm_id")["icd_code"].apply(frozenset).tolist()
    with_member = with_partner = 0
    for group in groups:
        for code in group["icd_codes"]:
            for partner in group["icd_codes"]:
                if partner == code:
                    continue
                sets_with_code = [codes_ for codes_ in code_sets if code in codes_]
                with_member += len(sets_with_code)
                with_partner += sum(partner in codes_ for codes_ in sets_with_code)
    # The partner joins a drawn member with probability 0.8, or is drawn itself.
    assert with_partner / with_member >= 0.75


def test_note_text_round_trips_through_pandas(sample, tables):
    with gzip.open(sample.discharge_path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    notes = tables["notes"]
    assert len(rows) == len(notes)
    for index in (0, 1, 777, len(rows) - 1):
        assert notes["text"].iloc[index] == rows[index]["text"]
        assert notes["note_id"].iloc[index] == rows[index]["note_id"]
    texts = notes["text"]
    assert texts.str.contains("\n").all()
    assert texts.str.contains(",").all()
    assert texts.str.contains('"').sum() > 100
    assert texts.str.startswith("Name:  ___").all()
    assert texts.str.contains("Brief Hospital Course:\n").all()


def test_note_lengths_vary(tables):
    words = tables["notes"]["text"].str.split().str.len()
    assert 150 <= words.min() <= 300
    assert 300 <= words.median() <= 600
    assert (words > 1000).sum() >= 20
    assert words.max() <= 2000


def test_generation_logs_no_note_text(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="shl.sample"):
        summary = generate_sample(tmp_path, n_admissions=50, seed=3)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "50 admissions" in messages[-1]
    assert not any("Hospital Course" in message for message in messages)
    assert summary.n_admissions == 50


def test_small_and_edge_arguments(tmp_path):
    summary = generate_sample(
        tmp_path, n_admissions=5, n_patients=5, n_diagnosis_codes=1, n_procedure_codes=0,
        duplicate_rate=1.0, noise_rate=1.0, seed=0,
    )
    assert summary.n_patients == 5
    assert summary.n_procedure_rows == 0
    assert summary.n_duplicates == 4
    diagnoses = pd.read_csv(summary.diagnoses_path, dtype=str)
    assert set(diagnoses["icd_code"]) == {"I10"}
    assert len(diagnoses) == 5


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"n_admissions": 0}, "n_admissions"),
        ({"n_admissions": 2.5}, "n_admissions"),
        ({"n_admissions": True}, "n_admissions"),
        ({"n_admissions": 10_000_000}, "n_admissions"),
        ({"n_admissions": 10, "n_patients": 11}, "n_patients"),
        ({"n_patients": 0}, "n_patients"),
        ({"n_diagnosis_codes": 0}, "n_diagnosis_codes"),
        ({"n_diagnosis_codes": 10_000_000}, "n_diagnosis_codes"),
        ({"n_procedure_codes": -1}, "n_procedure_codes"),
        ({"n_procedure_codes": 10_000_000}, "n_procedure_codes"),
        ({"duplicate_rate": 1.5}, "duplicate_rate"),
        ({"duplicate_rate": float("nan")}, "duplicate_rate"),
        ({"noise_rate": -0.1}, "noise_rate"),
        ({"noise_rate": "0.1"}, "noise_rate"),
        ({"seed": -1}, "seed"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_invalid_arguments_raise(tmp_path, arguments, name):
    with pytest.raises(ValueError, match=name):
        generate_sample(tmp_path, **arguments)
    assert not (tmp_path / "note").exists()


def test_vocabulary_starts_with_curated_codes():
    vocabulary = build_vocabulary("icd10cm", 400)
    codes = [entry.code for entry in vocabulary]
    assert codes[0] == "I10"
    assert len(set(codes)) == 400
    curated = [code for code in COMMON_DIAGNOSES if code in load_billable_codes("icd10cm")]
    assert codes[: len(curated)] == curated
    assert len(curated) >= 150
    # The first extension codes are siblings of the first curated categories.
    assert codes[len(curated)][:3] in {code[:3] for code in curated}
    assert build_vocabulary("icd10cm", 400) == vocabulary


def test_procedure_vocabulary_is_real():
    vocabulary = build_vocabulary("icd10pcs", 60)
    titles = load_titles("icd10pcs")
    assert len(vocabulary) == 60
    first_curated = next(code for code in COMMON_PROCEDURES if code in titles)
    assert vocabulary[0].code == first_curated
    for entry in vocabulary:
        assert titles[entry.code] == entry.title
        assert entry.icd_code == entry.code


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Acute kidney failure, unspecified", "acute kidney failure"),
        ("Type 2 diabetes mellitus without complications", "type 2 diabetes mellitus"),
        ("Hypokalemia", "hypokalemia"),
        ("Hyperlipidemia, unspecified", "hyperlipidemia, unspecified"),
        ("Resection of Appendix, Percutaneous Endoscopic Approach", "resection of appendix"),
    ],
)
def test_short_form(title, expected):
    assert short_form(title) == expected
