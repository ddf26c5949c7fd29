"""Property tests: whatever the bytes, ingest either refuses the upload or accounts for every row."""

from __future__ import annotations

import csv
import gzip
import io

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from training.ingest import IngestLimits, RowError, TaskRules, UploadRefused, ingest_stream, iter_records

from .helpers import FakeStore

GZIP_MAGIC = b"\x1f\x8b"

RULES = [
    TaskRules(kind="classification", labels=("a", "b", "Card Lost")),
    TaskRules(kind="extraction", output_schema={"type": "object", "required": ["x"]}),
    TaskRules(kind="generation", max_input_chars=50),
]
LIMITS = IngestLimits(max_line_bytes=300)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(
    [
        "input",
        "output",
        "prompt",
        "completion",
        "messages",
        "request",
        "response",
        "usage",
        "model",
        "timestamp",
        "metadata",
        "role",
        "content",
        "choices",
        "message",
    ]
)
rows = st.dictionaries(keys, json_values | st.sampled_from(["a", "b", "card lost", '{"x": 1}']), max_size=5)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": json_values}),
    max_size=4,
)
chat_rows = st.fixed_dictionaries({"messages": messages})
json_lines = st.lists(
    st.one_of(rows.map(orjson.dumps), chat_rows.map(orjson.dumps), st.binary(max_size=40), st.just(b"")),
    max_size=30,
).map(lambda lines: b"\n".join(lines))
csv_text = st.text(alphabet=st.sampled_from([*list('ab ,"\r\n\t\ufeffé'), "\x00"]), max_size=12)
csv_files = st.lists(st.lists(csv_text, min_size=0, max_size=4), max_size=25)


def check_invariant(data: bytes, rules: TaskRules, **options) -> None:
    """Run ingest; only UploadRefused may escape, and every row read is accounted for, once."""
    store = FakeStore()
    try:
        summary = ingest_stream(
            io.BytesIO(data), rules=rules, limits=LIMITS, batch_size=4, **store.callbacks(), **options
        )
    except UploadRefused:
        return
    assert summary.accepted + summary.rejected + summary.duplicates == summary.rows_read
    assert store.totals.rows_read == summary.rows_read
    assert (store.totals.accepted, store.totals.rejected) == (len(store.rows), len(store.errors))
    assert all(error.line >= 1 and len(error.raw_excerpt) <= 200 for error in store.errors)
    assert all(isinstance(error, RowError) and error.message for error in store.errors)
    lines = [row.line for row in store.rows] + [error.line for error in store.errors]
    assert len(lines) == len(set(lines))


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from(RULES), st.sampled_from(["auto", "jsonl", "csv"]))
def test_random_bytes(data, rules, file_format):
    check_invariant(data, rules, file_format=file_format, column_mapping=None)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(RULES))
def test_random_gzip(data, rules):
    check_invariant(gzip.compress(data), rules)


@SETTINGS
@given(json_lines, st.sampled_from(RULES), st.booleans())
def test_random_json_lines(data, rules, compress):
    check_invariant(gzip.compress(data) if compress else data, rules, file_format="jsonl")


@SETTINGS
@given(csv_files, st.sampled_from(RULES), st.booleans())
def test_random_csv(table, rules, default_mapping):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["input", "output", "ts", "n"])
    writer.writerows(table)
    data = buffer.getvalue().encode("utf-8")
    mapping = (
        None if default_mapping else {"input": "input", "output": "output", "timestamp": "ts", "input_tokens": "n"}
    )
    check_invariant(data, rules, file_format="csv", column_mapping=mapping)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_raw_csv(data):
    check_invariant(b"input,output\n" + data, RULES[0], file_format="csv")


@SETTINGS
@given(json_lines, st.integers(min_value=1, max_value=6))
def test_resume_from_any_checkpoint_matches_one_pass(data, crash_on):
    assume(not data.startswith(GZIP_MAGIC))
    rules = RULES[0]
    one_pass = FakeStore()
    ingest_stream(io.BytesIO(data), rules=rules, file_format="jsonl", batch_size=3, **one_pass.callbacks())
    crashed = FakeStore(fail_on_batch=crash_on)
    try:
        ingest_stream(io.BytesIO(data), rules=rules, file_format="jsonl", batch_size=3, **crashed.callbacks())
    except ConnectionError:
        ingest_stream(
            io.BytesIO(data),
            rules=rules,
            file_format="jsonl",
            batch_size=3,
            start_line=crashed.checkpoint + 1,
            **crashed.callbacks(),
        )
    assert crashed.totals.rows_read == one_pass.totals.rows_read
    assert (crashed.totals.accepted, crashed.totals.rejected, crashed.totals.duplicates) == (
        one_pass.totals.accepted,
        one_pass.totals.rejected,
        one_pass.totals.duplicates,
    )


@SETTINGS
@given(json_lines)
def test_records_come_in_line_order(data):
    assume(not data.startswith(GZIP_MAGIC))
    lines = [record.line for record in iter_records(io.BytesIO(data), file_format="jsonl", limits=LIMITS)]
    assert lines == sorted(set(lines))
