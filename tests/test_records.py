"""The streaming file readers: records, their lines and the parse failures."""

import gzip

import pytest

from shl.ingest import codiesp
from shl.ingest.records import (
    MALFORMED_CSV,
    NON_UTF8,
    CsvLayout,
    MissingColumnError,
    MissingInputError,
    iter_csv_records,
    read_text_file,
)

LAYOUT = CsvLayout("test notes", ("id", "text"))


def write(path, data: bytes, compress=False):
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_records_keep_their_lines(tmp_path, compress):
    name = "notes.csv.gz" if compress else "notes.csv"
    data = b'ID,extra,TEXT\n1,x,"first\nsecond, line"\n\n2,y,plain\n'
    path = write(tmp_path / name, data, compress)
    records = list(iter_csv_records(path, LAYOUT))
    assert [(r.line, r.line_end) for r in records] == [(2, 3), (5, 5)]
    assert records[0].fields == {"id": "1", "text": "first\nsecond, line"}
    assert records[1].fields == {"id": "2", "text": "plain"}
    assert records[0].reason is None


def test_empty_field_becomes_none(tmp_path):
    path = write(tmp_path / "n.csv", b"id,text\n,hello\n")
    (record,) = iter_csv_records(path, LAYOUT)
    assert record.fields == {"id": None, "text": "hello"}


def test_wrong_field_count_is_malformed(tmp_path):
    path = write(tmp_path / "n.csv", b"id,text\n1,a,b\n2,ok\n")
    records = list(iter_csv_records(path, LAYOUT))
    assert records[0].reason == MALFORMED_CSV
    assert records[0].detail == "expected 2 fields, found 3"
    assert records[0].raw == "1,a,b\n"
    assert records[1].fields == {"id": "2", "text": "ok"}


def test_bad_quoting_is_malformed_and_reading_goes_on(tmp_path):
    path = write(tmp_path / "n.csv", b'id,text\n1,"a"b\n2,ok\n')
    records = list(iter_csv_records(path, LAYOUT))
    assert (records[0].line, records[0].reason) == (2, MALFORMED_CSV)
    assert "CSV syntax error" in records[0].detail
    assert (records[1].line, records[1].fields) == (3, {"id": "2", "text": "ok"})


def test_non_utf8_byte_is_reported_with_line(tmp_path):
    path = write(tmp_path / "n.csv", b'id,text\n1,"caf\xe9\nau lait"\n2,ok\n')
    records = list(iter_csv_records(path, LAYOUT))
    assert records[0].reason == NON_UTF8
    assert (records[0].line, records[0].line_end) == (2, 3)
    # Bytes 0-5 are `1,"caf`, so the invalid byte is at offset 6 of the line.
    assert "line 2 has a byte that is not UTF-8 at offset 6 (0xe9)" in records[0].detail
    assert records[1].fields == {"id": "2", "text": "ok"}


def test_missing_column_names_file_and_layout(tmp_path):
    path = write(tmp_path / "n.csv", b"id,body\n1,x\n")
    with pytest.raises(MissingColumnError, match=r"n.csv: missing column\(s\) text for the test notes layout; found id, body"):
        list(iter_csv_records(path, LAYOUT))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MissingInputError, match="input file not found: .*absent.csv"):
        list(iter_csv_records(tmp_path / "absent.csv", LAYOUT))


def test_headerless_tsv(tmp_path):
    layout = CsvLayout("codes", ("article", "code"), "\t", has_header=False)
    path = write(tmp_path / "c.tsv", b"S1\tr50.9\nS1\ti10\textra\n")
    records = list(iter_csv_records(path, layout))
    assert records[0].fields == {"article": "S1", "code": "r50.9"}
    assert records[1].reason == MALFORMED_CSV


def test_text_file_record(tmp_path):
    path = write(tmp_path / "S1.txt", b"Line one.\nLine two.\n")
    record = read_text_file(path)
    assert (record.line, record.line_end) == (1, 2)
    assert record.fields == {"text": "Line one.\nLine two.\n"}


def test_text_file_non_utf8(tmp_path):
    path = write(tmp_path / "S2.txt", b"ok\nbad \xff byte\n")
    record = read_text_file(path)
    assert record.reason == NON_UTF8
    assert "line 2 has a byte that is not UTF-8 at file offset 7 (0xff)" in record.detail


def test_codiesp_note_staging(tmp_path):
    (frame,) = codiesp.stage_note(str(write(tmp_path / "S9.txt", b"  \n")), "dev", max_note_chars=100)
    row = frame.iloc[0]
    assert row["note_id"] == "S9"
    assert row["hadm_id"] == "S9"
    assert row["source_split"] == "dev"
    assert row["reason"] == "empty_text"
    assert row["raw"] == "  \n"
