"""Fuzz POST /api/v1/tasks/{slug}/uploads and the ingest the worker runs on the stored file.

Any file and any multipart fields answer 202 or a 4xx error envelope. A 202 upload, processed by the
ingest task's service (in-process, as the worker would), ends succeeded, stopped or failed with a message
(never "an internal error"), its counters add up (accepted + rejected + duplicates == rows read), the
stored examples and error rows match them, and its page and error reports are served.
"""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import client_for_key
from tests.factories import make_api_key
from tests.factories_examples import make_task
from tests.fuzz import (
    LABELS,
    SLOW_EXAMPLES,
    VALID_OUTPUTS,
    assert_error_envelope,
    assert_examples_fit_their_task,
    assert_not_server_error,
    example_rows,
    fuzz_settings,
    json_bytes,
    json_modes,
    json_values,
    long_values,
    note,
    numbers,
    plausible_rows,
    texts,
)
from training.ingest.formats import MAPPABLE_FIELDS
from training.models import Example, ExampleSource, ExampleUpload, UploadRowError, UploadStatus
from training.services.examples import ERRORS_PREVIEW_SIZE, upload_process

pytestmark = pytest.mark.django_db

KINDS = ["classification", "extraction"]

# ---------------------------------------------------------------------------------------------- JSON Lines

JUNK_LINES = [
    b"",
    b"   ",
    b"NaN",
    b"[1, 2]",
    b'"just a string"',
    b'{"input": NaN, "output": "billing"}',
    b'{"input": 1e999, "output": "billing"}',
    b'{"input": "\\ud800", "output": "billing"}',
    b'{"input": "a\\u0000b", "output": "billing"}',
    b'{"input": "x", "output": "billing", "metadata": {"k": "\\u0000"}}',
    b'{"input": "x", "output": "billing"',
    b'\xef\xbb\xbf{"input": "x", "output": "billing"}',
    b'{"input": "\xff\xfe", "output": "billing"}',
    b'{"input": "\xed\xa0\x80", "output": "billing"}',
    b'{"input": "x", "output": "billing"}\r',
    b'{"input": "x", "input": "y", "output": "billing"}',
]

long_junk_lines = long_values(
    (b'{"input": "x", "output": "billing", "usage": {"input_tokens": ', b"9", 5000, b"}}"),
    (b"", b"[", 300, b"]" * 300),
    (b'{"input": ', b"[" * 300 + b"]" * 300, 1, b', "output": "billing"}'),
    (b'{"input": "', b"long ", 30_000, b'", "output": "billing"}'),
)


def jsonl_files(kind: str) -> st.SearchStrategy:
    """JSON Lines files for a task of `kind`. Half are tidy (rows the task accepts but perhaps for their
    optional fields, one per line); the others mix rows of any shape, junk lines, CRLF, blank lines, a BOM."""
    tidy = st.lists(plausible_rows(kind).map(lambda row: json_bytes(row, "ascii") + b"\n"), min_size=1, max_size=20)
    row = st.tuples(example_rows(kind), json_modes).map(lambda pair: json_bytes(*pair))
    line = st.one_of(row, row, row, row, st.sampled_from(JUNK_LINES), long_junk_lines, st.binary(max_size=48))
    messy = st.builds(
        lambda lines, separator, bom, end: (b"\xef\xbb\xbf" if bom else b"") + separator.join(lines) + end,
        st.lists(line, min_size=1, max_size=20),
        st.sampled_from([b"\n", b"\n", b"\r\n", b"\n\n"]),
        st.booleans(),
        st.sampled_from([b"\n", b"", b"\r\n"]),
    )
    return st.one_of(tidy.map(b"".join), messy)


# ---------------------------------------------------------------------------------------------- CSV

COLUMN_NAMES = ["input", "output", "prompt", "completion", "text", "category", "Input", " OUTPUT ", "", "metadata"]
column_names = st.one_of(st.sampled_from([*COLUMN_NAMES, *MAPPABLE_FIELDS[2:]]), texts)
cells = st.one_of(
    st.sampled_from([*LABELS, " Refund ", "refnd", '{"name": "Ann", "amount": 3}', "", "1735689600", "12"]),
    st.text(max_size=30),
    texts,
    numbers.map(str),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
)
input_cells = st.one_of(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), cells)


def output_cells(kind: str) -> st.SearchStrategy:
    valid = VALID_OUTPUTS[kind]
    if kind == "extraction":
        valid = valid.map(lambda value: json.dumps(value, ensure_ascii=False))
    return st.one_of(valid, valid, cells)


# Input and output columns as exports name them; the first two pairs are found without a mapping.
CSV_COLUMN_PAIRS = [("input", "output"), ("Prompt", " completion "), ("text", "category"), (" Text", "CATEGORY")]


@st.composite
def csv_files(draw, kind: str) -> tuple[bytes, list[str], dict[str, str] | None]:
    """A CSV file, its header and the mapping that fits it (None: the file has no such columns).

    Most files look like an export: an input and an output column among other columns. Two in three of
    those are tidy (UTF-8, quoted by a CSV writer, every row the header's width); the others, and the files
    with any header at all, have rows of any width, hand-made quoting and other encodings.
    """
    tidy = draw(st.sampled_from([True, True, False]))
    if draw(st.sampled_from([True, True, True, False])):
        header = draw(st.lists(column_names, max_size=3))
        text_at = draw(st.integers(0, len(header)))
        input_name, output_name = draw(st.sampled_from(CSV_COLUMN_PAIRS))
        header.insert(text_at, input_name)
        category_at = draw(st.integers(0, len(header)))
        header.insert(category_at, output_name)
        text_at += category_at <= text_at
        column_cells = [cells] * len(header)
        column_cells[text_at], column_cells[category_at] = input_cells, output_cells(kind)
        fitting_rows = st.tuples(*column_cells).map(list)
        any_rows = fitting_rows if tidy else st.one_of(fitting_rows, fitting_rows, st.lists(cells, max_size=6))
        fitting = {"input": header[text_at], "output": header[category_at]}
    else:
        tidy = False
        header = draw(st.lists(column_names, max_size=5))
        width = len(header)
        any_rows = st.one_of(st.lists(cells, min_size=width, max_size=width), st.lists(cells, max_size=6))
        fitting = None
    rows = draw(st.lists(any_rows, min_size=tidy, max_size=15))
    quoting = csv.QUOTE_MINIMAL
    if not tidy:
        quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, "by hand"]))
    text = io.StringIO()
    if quoting == "by hand":  # stray quotes and commas inside values break the columns
        for row in [header, *rows]:
            text.write(",".join(row) + draw(st.sampled_from(["\n", "\r\n", "\r"])))
    else:
        writer = csv.writer(text, quoting=quoting)
        for row in [header, *rows]:
            writer.writerow(row)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"] if tidy else ["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    errors = "surrogatepass" if encoding.startswith("utf-8") else "replace"
    return text.getvalue().encode(encoding, errors), header, fitting


def mapping_values(header: list[str]):
    """Column names from the header (any case and spacing), and names the file does not have."""
    names = st.one_of(st.sampled_from(header), column_names) if header else column_names
    return st.one_of(names, names.map(str.upper), names.map(lambda name: f"  {name} "), st.none(), json_values)


@st.composite
def column_mappings(draw, header: list[str], fitting: dict[str, str] | None):
    """The multipart `column_mapping` field: absent, the fitting mapping (maybe with extra fields), any
    mapping (fields the file lacks, unknown fields, values of any type), or JSON that is no mapping, or not JSON."""
    choice = draw(st.sampled_from(["absent", "fitting", "fitting", "fitting", "any", "json", "text"]))
    if choice == "absent" or (choice == "fitting" and fitting is None):
        return None
    if choice == "fitting":
        extra = draw(st.dictionaries(st.sampled_from(MAPPABLE_FIELDS[2:]), mapping_values(header), max_size=2))
        return form_safe(json.dumps({**extra, **fitting}, ensure_ascii=draw(st.booleans())))
    if choice == "any":
        fields = st.one_of(st.sampled_from(MAPPABLE_FIELDS), st.sampled_from(MAPPABLE_FIELDS), texts)
        mapping = draw(st.dictionaries(fields, mapping_values(header), max_size=4))
        return form_safe(json.dumps(mapping, ensure_ascii=draw(st.booleans())))
    if choice == "json":
        return json.dumps(draw(json_values))
    return form_safe(
        draw(st.one_of(st.sampled_from(["{input: text}", "{", "", "null", "[]", '{"input": "text",}']), texts))
    )


def form_safe(text: str) -> str:
    """A form field must be encodable: lone surrogates travel as JSON escapes (\\udXXX) instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


# ---------------------------------------------------------------------------------------------- uploads

FILE_NAMES = [
    "examples",
    "logs.json",
    "data.txt",
    "***",
    "$$$.csv",
    "..",
    ".jsonl",
    "name with spaces.csv",
    "semi;colon.jsonl",
]
odd_formats = st.one_of(st.sampled_from(["AUTO", " csv ", "json", "xml", "", "\x00"]), texts.map(form_safe))


def compressed(content: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(content)
    if how == "truncated gzip":
        return gzip.compress(content)[: max(2, len(content) // 2)]
    if how == "two gzip members":
        return gzip.compress(content) + gzip.compress(content)
    if how == "junk after gzip":
        return gzip.compress(content) + b"junk"
    return content


@st.composite
def upload_requests(draw) -> dict:
    """What one upload POST sends: the file's bytes and name, `format` and `column_mapping` (None: absent).

    Five in six send the fields a client would send for the file (so that the file itself gets read), the
    others any format and any mapping.
    """
    task = draw(st.sampled_from(KINDS))
    kind = draw(st.sampled_from(["jsonl", "jsonl", "csv", "csv", "bytes"]))
    header: list[str] = []
    fitting: dict[str, str] | None = None
    if kind == "jsonl":
        content = draw(jsonl_files(task))
        fitting = {"input": "input", "output": "output"}  # the keys of most rows: the mapping changes nothing
    elif kind == "csv":
        content, header, fitting = draw(csv_files(task))
    else:
        content = draw(st.binary(max_size=200))
    compression = draw(
        st.sampled_from(["plain"] * 8 + ["gzip"] * 3 + ["truncated gzip", "two gzip members", "junk after gzip"])
    )
    natural_name = ("examples.csv" if kind == "csv" else "examples.jsonl") + (".gz" if compression != "plain" else "")
    name = draw(
        st.one_of(
            st.just(natural_name),
            st.just(natural_name),
            st.sampled_from(FILE_NAMES),
            long_values(("", "a", 300, ".csv"), ("", "\u00e9", 200, ".jsonl"), ("", "\U0001f600", 70, ".csv")),
            st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40),
        )
    )
    if draw(st.sampled_from([True] * 5 + [False])):  # the fields a client would send with this file
        file_format = draw(st.sampled_from([None, "auto", "csv" if kind == "csv" else "jsonl"]))
        # A CSV file needs a mapping unless its columns are named input/output or prompt/completion.
        needs_mapping = kind == "csv" and fitting is not None and fitting["input"].strip().lower() == "text"
        mapping = None
        if fitting is not None and (needs_mapping or draw(st.booleans())):
            mapping = json.dumps(fitting)
    else:
        file_format = draw(st.one_of(st.none(), st.sampled_from(["auto", "jsonl", "csv"]), odd_formats))
        mapping = draw(column_mappings(header, fitting))
    return {
        "task": task,
        "content": compressed(content, compression),
        "name": name,
        "format": file_format,
        "column_mapping": mapping,
        # Small limits so that long lines and several batches per file are exercised by small files.
        "line_limit": draw(st.sampled_from([1024 * 1024] * 5 + [64, 300])),
        "batch_size": draw(st.sampled_from([2000, 3, 1])),
    }


class NamedFile(io.BytesIO):
    """File content with any name, sent as is (Django's own file classes refuse names such as '..')."""

    def __init__(self, content: bytes, name: str) -> None:
        super().__init__(content)
        self.name = name


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def tasks(tenant):
    return {
        "classification": make_task(tenant, kind="classification", slug="fuzz-labels"),
        "extraction": make_task(tenant, kind="extraction", slug="fuzz-extract"),
    }


@pytest.fixture
def uploader(tenant):
    return client_for_key(make_api_key(tenant, scopes=["examples:read", "examples:write"])[1])


def check_upload(client, tasks, sent: dict) -> None:
    task = tasks[sent["task"]]
    payload = {"file": NamedFile(sent["content"], sent["name"])}
    for name in ("format", "column_mapping"):
        if sent[name] is not None:
            payload[name] = sent[name]
    response = client.post(f"/api/v1/tasks/{task.slug}/uploads", payload, format="multipart")
    assert_not_server_error(response)
    if response.status_code != 202:
        note(f"refused with {response.status_code} {assert_error_envelope(response)['code']}")
        return
    upload_id = response.json()["id"]
    with override_settings(INGEST_MAX_LINE_BYTES=sent["line_limit"], INGEST_BATCH_SIZE=sent["batch_size"]):
        outcome = upload_process(upload_id=upload_id)  # what the Celery task runs
    assert outcome.retry_in is None
    check_processed(client, ExampleUpload.objects.get(pk=upload_id))


def check_processed(client, upload: ExampleUpload) -> None:
    """The finished upload's counters add up and agree with the stored rows, the API and the reports."""
    assert upload.status in (UploadStatus.SUCCEEDED, UploadStatus.STOPPED, UploadStatus.FAILED), upload.status
    note(f"upload {upload.status}")
    note(f"rows accepted: {'some' if upload.accepted else 'none'}, rejected: {'some' if upload.rejected else 'none'}")
    assert upload.message, "a finished upload says what happened"
    assert "internal error" not in upload.message, upload.message
    assert upload.accepted + upload.rejected + upload.duplicates == upload.rows_read, (
        upload.accepted,
        upload.rejected,
        upload.duplicates,
        upload.rows_read,
    )
    stored = list(Example.objects.filter(upload=upload).select_related("task"))
    assert len(stored) == upload.accepted
    assert all(example.source == ExampleSource.UPLOAD for example in stored)
    assert_examples_fit_their_task(stored)
    assert UploadRowError.objects.filter(upload=upload).count() == upload.rejected
    assert len(upload.errors_preview) == min(upload.rejected, ERRORS_PREVIEW_SIZE)
    if upload.status == UploadStatus.SUCCEEDED:
        assert upload.rows_read > 0

    page = client.get(f"/api/v1/uploads/{upload.pk}")
    assert page.status_code == 200, page.content
    shown = page.json()
    assert (shown["rows_read"], shown["accepted"], shown["rejected"], shown["duplicates"]) == (
        upload.rows_read,
        upload.accepted,
        upload.rejected,
        upload.duplicates,
    )
    report = client.get(f"/api/v1/uploads/{upload.pk}/errors", {"format": "jsonl"})
    assert report.status_code == 200
    lines = b"".join(report.streaming_content).splitlines()
    assert len(lines) == upload.rejected
    assert all(json.loads(line)["message"] for line in lines)
    report = client.get(f"/api/v1/uploads/{upload.pk}/errors", {"format": "csv"})
    assert report.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode("utf-8"), newline="")))
    assert len(rows) == upload.rejected + 1  # the header


@fuzz_settings(max_examples=150)
@given(sent=upload_requests())
def test_any_upload_is_accounted_for_or_refused(uploader, tasks, sent):
    check_upload(uploader, tasks, sent)


@fuzz_settings(max_examples=40)
@given(
    fields=st.dictionaries(
        st.sampled_from(["file", "format", "column_mapping", "files", "task"]),
        texts.map(form_safe),
        max_size=4,
    )
)
def test_uploads_without_a_file_or_with_odd_fields_are_refused(uploader, tasks, fields):
    response = uploader.post(f"/api/v1/tasks/{tasks['classification'].slug}/uploads", fields, format="multipart")
    assert_error_envelope(response)
    assert not ExampleUpload.objects.exists()


@pytest.mark.slow
@fuzz_settings(max_examples=SLOW_EXAMPLES)
@given(sent=upload_requests())
def test_any_upload_long_run(uploader, tasks, sent):
    check_upload(uploader, tasks, sent)
