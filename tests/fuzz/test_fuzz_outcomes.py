"""Fuzz POST /api/v1/routing/outcomes: any body answers 200 with every outcome accepted or rejected by index,
or a 4xx error envelope; the stored outcomes, daily aggregates and feedback examples agree with the counts."""

from __future__ import annotations

import json

import pytest
from django.db.models import Sum
from hypothesis import given
from hypothesis import strategies as st

from routing.models import Outcome, OutcomeDaily
from routing.services import route_table_publish
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import EXTRACTION_SCHEMA
from tests.factories_routing import LABELS, fresh_routing_cache, make_route_rule, make_routing_task  # noqa: F401
from tests.fuzz import (
    SLOW_EXAMPLES,
    assert_error_envelope,
    assert_examples_fit_their_task,
    assert_not_server_error,
    fresh_inputs,
    fuzz_settings,
    json_bytes,
    json_modes,
    json_values,
    long_values,
    note,
    numbers,
    outputs,
    scalars,
    texts,
    usages,
)
from training.models import Example, ExampleSource

pytestmark = pytest.mark.django_db

URL = "/api/v1/routing/outcomes"
SLUGS = ["fuzz-labels", "fuzz-extract"]
FOREIGN_SLUG = "foreign-task"  # another tenant's task: must be "no such task" here
ODD_SLUGS = [FOREIGN_SLUG, "", "FUZZ-LABELS", " fuzz-labels", "fuzz-labels\x00", "fuzz\ud800", "missing"]
FIELDS = [
    "task", "route", "confidence", "fell_back", "shadow", "input", "small_output", "frontier_output", "latency_ms",
    "usage", "request_key",
]  # fmt: skip

answers = st.one_of(
    st.sampled_from(LABELS),
    st.sampled_from(LABELS).map(str.upper),
    st.fixed_dictionaries({"name": st.text(max_size=10), "amount": st.integers(-1000, 1000)}).map(json.dumps),
    st.text(max_size=30),
)
plausible_outcomes = st.fixed_dictionaries(
    {
        "task": st.sampled_from(SLUGS),
        "route": st.sampled_from(["small", "frontier"]),
        "confidence": st.one_of(st.floats(0, 1), st.none()),
        "fell_back": st.booleans(),
    },
    optional={
        "shadow": st.one_of(st.booleans(), st.none()),
        "input": fresh_inputs,
        "small_output": answers,
        "frontier_output": answers,
        "latency_ms": st.floats(0, 1e6),
        "usage": usages,
        "request_key": st.one_of(st.text(max_size=20), st.integers(0, 10**6)),
    },
)
# Outcomes that carry the request and the frontier's answer: these become feedback examples.
feedback_outcomes = st.builds(
    lambda outcome, text, answer: {**outcome, "input": text, "frontier_output": answer},
    plausible_outcomes,
    fresh_inputs,
    answers,
)
any_values = {
    "task": st.one_of(st.sampled_from(SLUGS + ODD_SLUGS), texts, json_values),
    "route": st.one_of(st.sampled_from(["small", "frontier", "Small", "frontier "]), scalars),
    "confidence": st.one_of(numbers, scalars),
    "fell_back": scalars,
    "shadow": scalars,
    "input": st.one_of(texts, json_values, long_values(("", "x", 100_001, ""))),
    "small_output": st.one_of(answers, outputs),
    "frontier_output": st.one_of(answers, outputs),
    "latency_ms": st.one_of(numbers, scalars),
    "usage": usages,
    "request_key": st.one_of(texts, numbers, json_values),
}
any_outcomes = st.one_of(
    st.fixed_dictionaries({}, optional=any_values),
    # A plausible outcome with one field of any value, so that each field's check is reached often.
    st.sampled_from(FIELDS).flatmap(
        lambda name: st.tuples(plausible_outcomes, any_values[name]).map(lambda pair: {**pair[0], name: pair[1]})
    ),
    st.dictionaries(st.one_of(st.sampled_from([*FIELDS, "Task", "confidence ", "examples"]), texts), json_values),
    json_values,
)
outcome_lists = st.lists(
    st.one_of(plausible_outcomes, feedback_outcomes, feedback_outcomes, any_outcomes), min_size=1, max_size=25
)
# Batches of outcomes, as {"outcomes": [...]} or a bare array.
batches = st.one_of(outcome_lists.map(lambda outcomes: {"outcomes": outcomes}), outcome_lists)
# Any JSON at all: no "outcomes", not a list, an empty list, nested junk.
odd_bodies = st.one_of(
    st.fixed_dictionaries({"outcomes": json_values}),
    st.dictionaries(st.sampled_from(["outcome", "data", "Outcomes"]), json_values, max_size=2),
    json_values,
)
RAW_BODIES = [
    b"",
    b"{",
    b'{"outcomes": [{"task": "fuzz-labels", "route": "small", "confidence": NaN, "fell_back": false}]}',
    b'{"outcomes": [{"task": "fuzz-labels", "route": "small", "confidence": 0.5, "fell_back": false,'
    b' "latency_ms": Infinity}]}',
    b'{"outcomes": [{"task": "fuzz-labels", "route": "small", "confidence": 0.5, "fell_back": false}]',
    b'{"outcomes": [{"task": "fuzz-\xff", "route": "small", "confidence": 0.5, "fell_back": false}]}',
    b"null",
]


@pytest.fixture
def tasks(tenant, django_capture_on_commit_callbacks):
    labels = make_routing_task(tenant, slug="fuzz-labels")
    extract = make_routing_task(tenant, slug="fuzz-extract", kind="extraction", output_schema=EXTRACTION_SCHEMA)
    make_routing_task(make_tenant("foreign"), slug=FOREIGN_SLUG)
    # A published rule in shadow mode for one task: outcomes without `shadow` take it from the rule.
    make_route_rule(tenant, task=labels, shadow=True)
    with django_capture_on_commit_callbacks(execute=True):
        route_table_publish(tenant_id=tenant.pk, actor="fuzz")
    return [labels, extract]


@pytest.fixture
def reporter(tenant):
    return client_for_key(make_api_key(tenant, scopes=["routing:read", "examples:write"])[1])


def stored(tenant) -> tuple[int, int, int]:
    """Outcomes, aggregated requests and feedback examples stored for the tenant."""
    requests = OutcomeDaily.objects.filter(tenant=tenant).aggregate(total=Sum("requests"))["total"] or 0
    feedback = Example.objects.filter(tenant=tenant, source=ExampleSource.FEEDBACK).count()
    return Outcome.objects.filter(tenant=tenant).count(), requests, feedback


def is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_outcomes(client, tenant, body: bytes, sent, content_type: str = "application/json") -> None:
    """Post `body`; a 200 accounts for every outcome and every feedback example, anything else is a 4xx."""
    before = stored(tenant)
    response = client.generic("POST", URL, body, content_type=content_type)
    assert_not_server_error(response)
    after = stored(tenant)
    outcomes_added, requests_added, examples_added = (now - then for now, then in zip(after, before, strict=True))
    if response.status_code != 200:
        error = assert_error_envelope(response)
        note(f"refused with {response.status_code} {error['code']}")
        assert (outcomes_added, requests_added, examples_added) == (0, 0, 0), "a refused batch stored rows"
        rows = sent.get("outcomes") if isinstance(sent, dict) else sent
        if error["code"] == "invalid" and "errors" in error.get("details", {}) and isinstance(rows, list):
            assert len(error["details"]["errors"]) == len(rows), error  # every outcome was rejected, by index
        return
    result = response.json()
    assert set(result) == {"accepted", "rejected", "errors", "examples"}, result
    rows = sent["outcomes"] if isinstance(sent, dict) else sent
    assert isinstance(rows, list)
    assert result["accepted"] >= 1 and result["accepted"] + result["rejected"] == len(rows), result
    rejected = [error["index"] for error in result["errors"]]
    assert len(rejected) == result["rejected"] == len(set(rejected)), result
    assert all(
        0 <= index < len(rows) and error["message"] for index, error in zip(rejected, result["errors"], strict=True)
    ), result
    assert outcomes_added == requests_added == result["accepted"], (outcomes_added, requests_added, result)

    kept = [row for index, row in enumerate(rows) if index not in set(rejected)]
    candidates = sum(1 for row in kept if is_text(row.get("input")) and is_text(row.get("frontier_output")))
    examples = result["examples"]
    assert examples["created"] + examples["duplicates"] + examples["invalid"] == candidates, (examples, candidates)
    assert examples_added == examples["created"], (examples_added, examples)
    feedback = Example.objects.filter(tenant=tenant, source=ExampleSource.FEEDBACK).select_related("task")
    assert_examples_fit_their_task(feedback.order_by("-id")[: examples["created"]])
    assert len(examples["errors"]) == examples["invalid"], examples
    assert not Outcome.objects.filter(task__slug=FOREIGN_SLUG).exists(), "an outcome reached another tenant's task"
    note(f"outcomes accepted: {'all' if not result['rejected'] else 'some'}")
    note(f"feedback examples created: {examples['created'] > 0}, invalid: {examples['invalid'] > 0}")


def fuzz_body(client, tenant, body, mode) -> None:
    raw = json_bytes(body, mode)
    if mode != "ascii":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # a lone surrogate written as UTF-8: not valid UTF-8, so not JSON
            assert_error_envelope(client.generic("POST", URL, raw, content_type="application/json"))
            return
    check_outcomes(client, tenant, raw, body)


@fuzz_settings(max_examples=120)
@given(body=batches, mode=json_modes)
def test_any_outcome_batch_is_accounted_for_or_refused(reporter, tenant, tasks, body, mode):
    fuzz_body(reporter, tenant, body, mode)


@fuzz_settings(max_examples=60)
@given(body=odd_bodies, mode=json_modes)
def test_any_json_body_is_accounted_for_or_refused(reporter, tenant, tasks, body, mode):
    fuzz_body(reporter, tenant, body, mode)


@fuzz_settings(max_examples=40)
@given(
    body=st.one_of(
        st.sampled_from(RAW_BODIES),
        long_values((b'{"outcomes": [{"task": "fuzz-labels", "confidence": 1', b"0", 5000, b"}]}")),
        st.binary(max_size=64),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
)
def test_malformed_outcome_bodies_are_refused_with_the_error_envelope(reporter, tenant, tasks, body, content_type):
    before = stored(tenant)
    response = reporter.generic("POST", URL, body, content_type=content_type)
    assert_error_envelope(response)
    assert stored(tenant) == before


def test_a_batch_over_the_limit_is_refused_whole(reporter, tenant, tasks):
    rows = [{"task": "fuzz-labels", "route": "small", "confidence": 0.9, "fell_back": False}] * 1001
    check_outcomes(reporter, tenant, json.dumps({"outcomes": rows}).encode(), {"outcomes": rows})
    assert not Outcome.objects.exists()


@pytest.mark.slow
@fuzz_settings(max_examples=SLOW_EXAMPLES)
@given(body=st.one_of(batches, batches, batches, odd_bodies), mode=json_modes)
def test_any_outcome_batch_long_run(reporter, tenant, tasks, body, mode):
    fuzz_body(reporter, tenant, body, mode)
