"""Fuzz POST /api/v1/tasks/{slug}/examples: any body answers 200 with every row accounted for, or a 4xx
error envelope; the stored rows agree with the counts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import client_for_key
from tests.factories import make_api_key
from tests.factories_examples import make_task
from tests.fuzz import (
    SLOW_EXAMPLES,
    assert_error_envelope,
    assert_examples_fit_their_task,
    assert_not_server_error,
    deeply_nested,
    example_rows,
    fuzz_settings,
    json_bytes,
    json_modes,
    json_values,
    long_values,
    note,
)
from training.models import Example, ExampleSource

pytestmark = pytest.mark.django_db

KINDS = ["classification", "extraction"]


def batches(kind: str) -> st.SearchStrategy:
    """Batches of rows for a task of `kind`, as {"examples": [...]} or a bare array."""
    rows = st.lists(example_rows(kind), min_size=1, max_size=25)
    return st.one_of(rows.map(lambda rows: {"examples": rows}), rows)


kinds_and_batches = st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), batches(kind)))
# Any JSON at all: no "examples", not a list, an empty list, nested junk.
odd_bodies = st.one_of(
    st.fixed_dictionaries({"examples": json_values}),
    st.dictionaries(st.sampled_from(["rows", "example", "data", "Examples"]), json_values, max_size=2),
    json_values,
    deeply_nested.map(lambda deep: {"examples": [{"input": deep, "output": "billing"}]}),
)
# Bodies no JSON parser accepts, or only a lenient one: constants, numbers past the digit limit, truncation.
RAW_BODIES = [
    b"",
    b"{",
    b'{"examples": [{"input": NaN, "output": "billing"}]}',
    b'{"examples": [{"input": "x", "output": "billing", "usage": {"input_tokens": Infinity}}]}',
    b'{"examples": [{"input": "x", "output": "billing"}]',
    b'\xef\xbb\xbf{"examples": [{"input": "x", "output": "billing"}]}',
    b'{"examples": [{"input": "\xff\xfe", "output": "billing"}]}',
    b'[{"input": "\\ud800", "output": "billing"}]',
    b"null",
    b'"examples"',
]
raw_bodies = st.one_of(
    st.sampled_from(RAW_BODIES),
    long_values((b'{"examples": [{"input": "x", "output": "billing", "usage": {"input_tokens": ', b"9", 5000, b"}}]}")),
    st.binary(max_size=64),
)


@pytest.fixture
def tasks(tenant):
    return {
        "classification": make_task(tenant, kind="classification", slug="fuzz-labels"),
        "extraction": make_task(tenant, kind="extraction", slug="fuzz-extract"),
    }


@pytest.fixture
def writer(tenant):
    return client_for_key(make_api_key(tenant, scopes=["examples:read", "examples:write"])[1])


def post(client, task, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", f"/api/v1/tasks/{task.slug}/examples", body, content_type=content_type)


def check_batch(client, task, body: bytes, sent, content_type: str = "application/json") -> None:
    """Post `body`; a 200 accounts for every row and matches the stored rows, anything else is a 4xx envelope."""
    before = Example.objects.filter(task=task).count()
    response = post(client, task, body, content_type)
    assert_not_server_error(response)
    stored = Example.objects.filter(task=task).count() - before
    if response.status_code != 200:
        note(f"refused with {response.status_code} {assert_error_envelope(response)['code']}")
        assert stored == 0, "a refused batch stored rows"
        return
    result = response.json()
    assert set(result) == {"rows", "accepted", "rejected", "duplicates", "errors"}, result
    rows = sent["examples"] if isinstance(sent, dict) else sent
    assert isinstance(rows, list) and result["rows"] == len(rows), (result, rows)
    assert result["accepted"] + result["rejected"] + result["duplicates"] == result["rows"], result
    assert stored == result["accepted"], (stored, result)
    assert len(result["errors"]) == result["rejected"], result
    indexes = [error["row"] for error in result["errors"]]
    assert len(set(indexes)) == len(indexes) and all(0 <= index < len(rows) for index in indexes), result
    assert all(error["message"] and error["code"] for error in result["errors"]), result
    newest = list(Example.objects.filter(task=task).select_related("task").order_by("-id")[:stored])
    assert all(example.source == ExampleSource.API for example in newest)
    assert_examples_fit_their_task(newest)
    note(f"rows accepted: {'some' if stored else 'none'}, rejected: {'some' if result['rejected'] else 'none'}")


def fuzz_json_bodies(client, tasks, kind, body, mode) -> None:
    if mode != "ascii":
        # UTF-8 bodies: lone surrogates make the bytes invalid UTF-8, which is a 400; otherwise the same rows.
        try:
            json_bytes(body, mode).decode("utf-8")
        except UnicodeDecodeError:
            response = post(client, tasks[kind], json_bytes(body, mode))
            assert_error_envelope(response)
            return
    check_batch(client, tasks[kind], json_bytes(body, mode), body)


@fuzz_settings(max_examples=120)
@given(kind_and_body=kinds_and_batches, mode=json_modes)
def test_any_batch_of_rows_is_accounted_for(writer, tasks, kind_and_body, mode):
    kind, body = kind_and_body
    fuzz_json_bodies(writer, tasks, kind, body, mode)


@fuzz_settings(max_examples=60)
@given(kind=st.sampled_from(KINDS), body=odd_bodies, mode=json_modes)
def test_any_json_body_is_accounted_for_or_refused(writer, tasks, kind, body, mode):
    fuzz_json_bodies(writer, tasks, kind, body, mode)


@fuzz_settings(max_examples=40)
@given(
    kind=st.sampled_from(KINDS),
    body=raw_bodies,
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=latin-1", "text/plain", "application/x-www-form-urlencoded"]
    ),
)
def test_malformed_bodies_are_refused_with_the_error_envelope(writer, tasks, kind, body, content_type):
    response = post(writer, tasks[kind], body, content_type)
    assert_not_server_error(response)
    if response.status_code != 200:
        assert_error_envelope(response)
        return
    # The few raw bodies a JSON parser accepts as a batch (a BOM is allowed) must add up as well.
    result = response.json()
    assert result["accepted"] + result["rejected"] + result["duplicates"] == result["rows"], result


def test_a_batch_over_the_row_limit_is_refused_whole(writer, tasks):
    rows = [{"input": f"question {index}", "output": "billing"} for index in range(5001)]
    check_batch(writer, tasks["classification"], json.dumps({"examples": rows}).encode(), {"examples": rows})
    assert not Example.objects.filter(task=tasks["classification"]).exists()


@pytest.mark.slow
@fuzz_settings(max_examples=SLOW_EXAMPLES)
@given(kind_and_body=kinds_and_batches, mode=json_modes)
def test_any_batch_of_rows_long_run(writer, tasks, kind_and_body, mode):
    kind, body = kind_and_body
    fuzz_json_bodies(writer, tasks, kind, body, mode)
