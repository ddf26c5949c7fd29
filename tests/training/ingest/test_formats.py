"""Reading uploads: every accepted JSON Lines shape, CSV with a column mapping, and each bad input."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson
import pytest

from training.ingest import IngestLimits, RawRecord, RowError, UploadRefused, detect_format, iter_records

from .helpers import jsonl, one, read_all

# ------------------------------------------------------------------ JSON Lines shapes


def test_input_output_shape():
    record = one(jsonl({"input": "Where is my card?", "output": "card_arrival"}))
    assert record == RawRecord(1, "Where is my card?", "card_arrival")


def test_prompt_completion_shape():
    record = one(jsonl({"prompt": "Translate: chat", "completion": "cat"}))
    assert (record.input, record.output) == ("Translate: chat", "cat")


def test_chat_single_user_message_is_its_content():
    record = one(
        jsonl({"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "greeting"}]})
    )
    assert (record.input, record.output) == ("hello", "greeting")


def test_chat_with_system_and_earlier_turns_renders_roles():
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "b"},
    ]
    record = one(jsonl({"messages": messages}))
    assert record.input == "system: Classify.\nuser: first\nassistant: a\nuser: second"
    assert record.output == "b"


def test_chat_content_parts_are_joined():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
    ]
    record = one(jsonl({"messages": messages}))
    assert (record.input, record.output) == ("part one\npart two", "answer")


def test_chat_image_content_is_rejected():
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "a"},
    ]
    error = one(jsonl({"messages": messages}))
    assert isinstance(error, RowError) and "non-text content (image_url)" in error.message


def test_chat_not_ending_with_assistant_is_missing_output():
    error = one(jsonl({"messages": [{"role": "user", "content": "hi"}]}))
    assert isinstance(error, RowError)
    assert (error.field, error.code) == ("output", "missing_field")
    assert "not the assistant's answer" in error.message


def test_chat_with_only_the_answer_is_missing_input():
    error = one(jsonl({"messages": [{"role": "assistant", "content": "hi"}]}))
    assert isinstance(error, RowError) and error.field == "input"


def test_logged_request_response_pair():
    row = {
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Invoice 42, total 10 EUR"}]},
        "response": {
            "model": "gpt-4o-2024-08-06",
            "choices": [{"message": {"role": "assistant", "content": '{"total": 10}'}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5},
            "created": 1700000000,
        },
    }
    record = one(jsonl(row))
    assert record.input == "Invoice 42, total 10 EUR"
    assert record.output == '{"total": 10}'
    assert record.model == "gpt-4o-2024-08-06"
    assert (record.usage_input_tokens, record.usage_output_tokens) == (12, 5)
    assert record.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_logged_pair_anthropic_style():
    row = {
        "request": {"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]},
        "response": {"content": [{"type": "text", "text": "hello"}], "usage": {"input_tokens": 3, "output_tokens": 1}},
        "model": "claude",
    }
    record = one(jsonl(row))
    assert record.input == "system: Be brief.\nuser: hi"
    assert (record.output, record.model, record.usage_input_tokens, record.usage_output_tokens) == (
        "hello",
        "claude",
        3,
        1,
    )


def test_logged_pair_without_answer_is_missing_output():
    error = one(jsonl({"request": {"prompt": "x"}, "response": {"choices": []}}))
    assert isinstance(error, RowError) and (error.field, error.code) == ("output", "missing_field")


def test_logged_pair_completion_api():
    record = one(jsonl({"request": {"prompt": "2+2="}, "response": {"choices": [{"text": "4"}]}}))
    assert (record.input, record.output) == ("2+2=", "4")


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}, (10, 2)),
        ({"input_tokens": 7, "output_tokens": 3}, (7, 3)),
        ({"total_tokens": 5}, (None, None)),
    ],
)
def test_usage_both_conventions(usage, expected):
    record = one(jsonl({"input": "a", "output": "b", "usage": usage}))
    assert (record.usage_input_tokens, record.usage_output_tokens) == expected


@pytest.mark.parametrize("usage", [{"prompt_tokens": -1}, {"prompt_tokens": "12"}, {"output_tokens": 2**40}, [1, 2]])
def test_bad_usage_is_a_row_error(usage):
    error = one(jsonl({"input": "a", "output": "b", "usage": usage}))
    assert isinstance(error, RowError) and error.field == "usage"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T13:00:00+01:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01 12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (1709294400, datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (1709294400.5, datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps(value, expected):
    assert one(jsonl({"input": "a", "output": "b", "timestamp": value})).timestamp == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        1709294400000,
        -5,
        True,
        {"at": 1},
        "9999-12-31T23:59:59-23:59",  # a valid ISO 8601 text that overflows when converted to UTC
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_timestamp_is_a_row_error(value):
    error = one(jsonl({"input": "a", "output": "b", "timestamp": value}))
    assert isinstance(error, RowError) and error.field == "timestamp"


def test_model_and_metadata():
    record = one(jsonl({"input": "a", "output": "b", "model": "gpt-4o", "metadata": {"ticket": 7}}))
    assert (record.model, record.metadata) == ("gpt-4o", {"ticket": 7})


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"input": "a", "output": "b", "metadata": "x"}, "metadata"),
        ({"input": "a", "output": "b", "metadata": {"k": "a\u0000b"}}, "metadata"),
        ({"input": "a", "output": "b", "model": 5}, "model"),
        ({"input": "a", "output": "b", "model": "m" * 300}, "model"),
    ],
)
def test_bad_optional_fields(row, field):
    error = one(jsonl(row))
    assert isinstance(error, RowError) and error.field == field


def test_object_output_is_kept_as_compact_json():
    record = one(jsonl({"input": "Invoice 42", "output": {"number": 42, "items": [1, 2]}}))
    assert record.output == '{"number":42,"items":[1,2]}'


def test_scalar_output_is_json_text():
    assert one(jsonl({"input": "a", "output": 3})).output == "3"


def test_input_as_message_list():
    record = one(jsonl({"input": [{"role": "user", "content": "hi"}], "output": "x"}))
    assert record.input == "hi"


@pytest.mark.parametrize(
    ("row", "field"),
    [({"input": "only input"}, "output"), ({"output": "only output"}, "input"), ({"prompt": "p"}, "completion")],
)
def test_missing_fields(row, field):
    error = one(jsonl(row))
    assert isinstance(error, RowError)
    assert (error.field, error.code, error.message) == (field, "missing_field", f"missing field '{field}'")


def test_unrecognised_shape_names_the_keys():
    error = one(jsonl({"text": "a", "label": "b"}))
    assert isinstance(error, RowError) and error.code == "unknown_shape"
    assert "'text', 'label'" in error.message


def test_nested_too_deep_output_is_a_row_error():
    deep = b"[" * 400 + b"]" * 400
    error = one(b'{"input": "a", "output": ' + deep + b"}\n")
    assert isinstance(error, RowError) and error.field == "output"


def test_jsonl_with_column_mapping():
    data = jsonl({"text": "hi", "label": "greet", "extra": 1}, {"text": "x"})
    first, second = read_all(data, file_format="jsonl", column_mapping={"input": "text", "output": "label"})
    assert (first.input, first.output, first.metadata) == ("hi", "greet", {"extra": 1})
    assert isinstance(second, RowError) and "missing field 'label' (mapped to output)" in second.message


# ------------------------------------------------------------------ bad lines


def test_bad_utf8_reports_line_and_byte():
    data = jsonl({"input": "a", "output": "b"}) + b'{"input": "caf\xe9", "output": "b"}\n'
    good, error = read_all(data)
    assert isinstance(good, RawRecord)
    assert str(error) == "line 2: not valid UTF-8 at byte 15; save the file as UTF-8"
    assert error.code == "invalid_utf8"


def test_leading_bom_is_stripped():
    assert one(b"\xef\xbb\xbf" + jsonl({"input": "a", "output": "b"})).input == "a"


def test_file_of_only_a_bom_is_empty():
    assert read_all(b"\xef\xbb\xbf") == []


def test_bom_in_the_middle_is_a_row_error():
    data = jsonl({"input": "a", "output": "b"}) + b"\xef\xbb\xbf" + jsonl({"input": "c", "output": "d"})
    _good, error = read_all(data)
    assert isinstance(error, RowError) and error.code == "byte_order_mark" and error.line == 2


def test_bom_inside_a_line_is_a_row_error():
    error = one(jsonl({"input": "a\ufeffb", "output": "b"}))
    assert isinstance(error, RowError) and error.code == "byte_order_mark"
    assert "at byte 12" in error.message


def test_crlf_line_ends():
    data = b'{"input": "a", "output": "b"}\r\n{"input": "c", "output": "d"}\r\n'
    records = read_all(data)
    assert [(r.line, r.input) for r in records] == [(1, "a"), (2, "c")]


def test_last_line_without_newline_is_fine_when_complete():
    assert one(b'{"input": "a", "output": "b"}').output == "b"


def test_truncated_last_line():
    data = jsonl({"input": "a", "output": "b"}) + b'{"input": "c", "outp'
    _good, error = read_all(data)
    assert isinstance(error, RowError) and (error.line, error.code) == (2, "truncated_line")
    assert "may be truncated" in error.message


def test_over_long_line_is_skipped_without_reading_it_whole():
    limits = IngestLimits(max_line_bytes=100)
    long_line = orjson.dumps({"input": "x" * 5_000_000, "output": "b"})
    data = jsonl({"input": "a", "output": "b"}) + long_line + b"\n" + jsonl({"input": "c", "output": "d"})
    reads = []

    class Recording(io.BytesIO):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    records = list(iter_records(Recording(data), limits=limits))
    assert [type(r).__name__ for r in records] == ["RawRecord", "RowError", "RawRecord"]
    assert records[1].line == 2 and records[1].code == "line_too_long"
    assert len(records[1].raw_excerpt) <= 200
    assert records[2].line == 3
    assert all(0 < size <= 1024 * 1024 for size in reads)  # never "read everything"


def test_line_of_exactly_the_limit_is_accepted_with_crlf():
    row = orjson.dumps({"input": "x", "output": "b"})
    limits = IngestLimits(max_line_bytes=len(row))
    assert isinstance(one(row + b"\r\n", limits=limits), RawRecord)
    assert one(row + b" \r\n", limits=limits).code == "line_too_long"


def test_blank_lines_are_skipped_and_lines_are_physical():
    data = b"\n  \n" + jsonl({"input": "a", "output": "b"}) + b"\r\n\t\n" + jsonl({"input": "c", "output": "d"})
    assert [r.line for r in read_all(data)] == [3, 6]


def test_invalid_json():
    error = one(b'{"input": "a", output: "b"}\n')
    assert isinstance(error, RowError) and error.code == "invalid_json"
    assert error.message.startswith("not valid JSON")


@pytest.mark.parametrize(("line", "kind"), [(b"[1, 2]", "an array"), (b"3", "a number"), (b'"s"', "a string")])
def test_non_object_json(line, kind):
    error = one(line + b"\n", file_format="jsonl")
    assert isinstance(error, RowError) and error.code == "not_an_object" and kind in error.message


def test_excerpt_is_bounded():
    error = one(b'{"input": "' + b"x" * 10_000 + b"\n")
    assert len(error.raw_excerpt) <= 200


def test_start_line_skips_earlier_lines():
    data = jsonl(*({"input": str(i), "output": "b"} for i in range(1, 6)))
    assert [r.input for r in read_all(data, start_line=4)] == ["4", "5"]


def test_position_is_exposed():
    data = jsonl({"input": "a", "output": "b"}, {"input": "c", "output": "d"}) + b"\n"
    stream = iter_records(io.BytesIO(data))
    next(stream)
    assert stream.last_line == 1
    list(stream)
    assert stream.last_line == 3
    assert stream.bytes_read == len(data)


def test_text_stream_is_a_programming_error():
    with pytest.raises(TypeError):
        list(iter_records(io.StringIO("{}")))


# ------------------------------------------------------------------ format detection


@pytest.mark.parametrize(
    ("first_bytes", "filename", "expected"),
    [
        (b"", "examples.jsonl", "jsonl"),
        (b"", "examples.ndjson.gz", "jsonl"),
        (b"", "EXAMPLES.CSV", "csv"),
        (b'{"input": 1}', None, "jsonl"),
        (b'\xef\xbb\xbf  {"input": 1}', "upload.bin", "jsonl"),
        (b"text,label\n", None, "csv"),
        (b"", None, "jsonl"),
    ],
)
def test_detect_format(first_bytes, filename, expected):
    assert detect_format(first_bytes, filename) == expected


def test_detect_format_looks_inside_gzip():
    import gzip

    assert detect_format(gzip.compress(b"text,label\n"), None) == "csv"
    assert detect_format(gzip.compress(b'{"a": 1}\n'), "upload") == "jsonl"


def test_auto_format_reads_csv():
    records = read_all(b"input,output\nhello,greet\n")
    assert records == [RawRecord(2, "hello", "greet")]


def test_unknown_mapping_field_is_refused():
    with pytest.raises(UploadRefused, match="unknown fields 'label'"):
        read_all(b"a,b\n", column_mapping={"input": "a", "output": "b", "label": "c"})


def test_mapping_without_output_is_refused():
    with pytest.raises(UploadRefused, match="output"):
        read_all(b"a,b\n", column_mapping={"input": "a"})
