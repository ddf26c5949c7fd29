"""Reading CSV uploads through a column mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from training.ingest import IngestLimits, RawRecord, RowError, UploadRefused

from .helpers import read_all

MAPPING = {"input": "text", "output": "category"}


def test_mapping_and_quoted_newlines_keep_record_start_lines():
    data = (
        b"text,category\n"
        b'"first line\nsecond line",billing\n'
        b"plain,card\n"
        b'"a ""quoted"" word\r\nacross\r\nthree lines",other\n'
        b"last,card\n"
    )
    records = read_all(data, file_format="csv", column_mapping=MAPPING)
    assert [(r.line, r.input, r.output) for r in records] == [
        (2, "first line\nsecond line", "billing"),
        (4, "plain", "card"),
        (5, 'a "quoted" word\r\nacross\r\nthree lines', "other"),
        (8, "last", "card"),
    ]


def test_optional_columns_and_extra_columns_as_metadata():
    data = (
        b"id,text,category,when,engine,in_tok,out_tok\n"
        b"7,hello,greet,2024-03-01T12:00:00Z,gpt-4o,12,3\n"
        b"8,bye,farewell,,,,\n"
    )
    mapping = MAPPING | {"timestamp": "when", "model": "engine", "input_tokens": "in_tok", "output_tokens": "out_tok"}
    first, second = read_all(data, file_format="csv", column_mapping=mapping)
    assert first.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert (first.model, first.usage_input_tokens, first.usage_output_tokens) == ("gpt-4o", 12, 3)
    assert first.metadata == {"id": "7"}
    assert (second.timestamp, second.model, second.usage_input_tokens) == (None, None, None)


def test_unix_seconds_in_a_csv_column():
    data = b"text,category,ts\nhi,x,1709294400\n"
    record = read_all(data, column_mapping=MAPPING | {"timestamp": "ts"})[0]
    assert record.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_bad_token_count_is_a_row_error():
    data = b"text,category,n\nhi,x,many\n"
    error = read_all(data, column_mapping=MAPPING | {"input_tokens": "n"})[0]
    assert isinstance(error, RowError) and error.field == "usage" and "'many'" in error.message


def test_missing_mapped_columns_refuse_the_upload_naming_the_columns_present():
    with pytest.raises(UploadRefused) as refused:
        read_all(b"text,label\nhi,x\n", file_format="csv", column_mapping=MAPPING)
    assert "'category'" in refused.value.message
    assert "the file's columns are 'text', 'label'" in refused.value.message


def test_header_match_ignores_case_and_spaces():
    records = read_all(b" Text , CATEGORY\nhi,x\n", file_format="csv", column_mapping=MAPPING)
    assert records == [RawRecord(2, "hi", "x")]


def test_default_mapping_uses_input_output_or_prompt_completion():
    assert read_all(b"prompt,completion\nhi,x\n", file_format="csv") == [RawRecord(2, "hi", "x")]


def test_no_mapping_and_no_known_columns_is_refused():
    with pytest.raises(UploadRefused, match="needs a column mapping"):
        read_all(b"text,label\nhi,x\n", file_format="csv")


def test_bom_and_crlf():
    data = b"\xef\xbb\xbftext,category\r\nhi,x\r\nho,y\r\n"
    assert [(r.line, r.input) for r in read_all(data, column_mapping=MAPPING)] == [(2, "hi"), (3, "ho")]


def test_bom_in_a_later_line_is_a_row_error():
    data = b"text,category\nhi,x\n\xef\xbb\xbfho,y\n"
    _good, error = read_all(data, column_mapping=MAPPING)
    assert isinstance(error, RowError) and (error.line, error.code) == (3, "byte_order_mark")


def test_bad_utf8_is_a_row_error_for_that_record_only():
    data = b'text,category\n"caf\xe9\nau lait",x\nfine,y\n'
    error, good = read_all(data, column_mapping=MAPPING)
    assert isinstance(error, RowError) and error.line == 2 and error.code == "invalid_utf8"
    assert error.message == "not valid UTF-8 at byte 5; save the file as UTF-8"
    assert good == RawRecord(4, "fine", "y")


def test_bad_utf8_on_a_continuation_line_says_which_line():
    data = b'text,category\n"ok\nbad \xff",x\n'
    error = read_all(data, column_mapping=MAPPING)[0]
    assert error.line == 2 and error.message.startswith("(in line 3) not valid UTF-8")


def test_wrong_column_count():
    data = b"text,category\nhello, world,x\n"
    error = read_all(data, column_mapping=MAPPING)[0]
    assert isinstance(error, RowError) and error.code == "column_count"
    assert "3 columns but the header has 2" in error.message


def test_blank_rows_are_skipped():
    data = b"text,category\n\n,\nhi,x\n  \n"
    assert [r.line for r in read_all(data, column_mapping=MAPPING)] == [4]


def test_over_long_line():
    data = b"text,category\n" + b"y" * 500 + b",x\nhi,x\n"
    error, good = read_all(data, column_mapping=MAPPING, limits=IngestLimits(max_line_bytes=100))
    assert error.code == "line_too_long" and error.line == 2
    assert good == RawRecord(3, "hi", "x")


def test_empty_value_is_kept_for_validation_to_reject():
    assert read_all(b"text,category\nhi,\n", column_mapping=MAPPING) == [RawRecord(2, "hi", "")]


def test_start_line_skips_records_that_start_before_it():
    data = b'text,category\n"a\nb",x\nc,y\nd,z\n'
    assert [r.input for r in read_all(data, column_mapping=MAPPING, start_line=4)] == ["c", "d"]


def test_unreadable_header_refuses():
    with pytest.raises(UploadRefused, match="header"):
        read_all(b"te\xffxt,category\nhi,x\n", file_format="csv", column_mapping=MAPPING)


def test_empty_file_has_no_records():
    assert read_all(b"", file_format="csv", column_mapping=MAPPING) == []
