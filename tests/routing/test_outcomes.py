"""POST /api/v1/routing/outcomes: storage, daily aggregation, feedback examples; drift in /routing/tasks."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from routing.drift import assess_drift
from routing.models import Outcome, OutcomeDaily
from routing.services import route_table_publish
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_routing import fresh_routing_cache, make_routable_model_version, make_route_rule, make_routing_task  # noqa: F401 (autouse fixture)
from training.ingest import assign_split, content_hash
from training.models import Example, ExampleSource

pytestmark = pytest.mark.django_db

URL = "/api/v1/routing/outcomes"
USAGE = {"input_tokens": 1000, "output_tokens": 200}
SAVING_PER_REQUEST = Decimal("0.0045")  # 1000 x 2.50 / 1e6 + 200 x 10.00 / 1e6


@pytest.fixture
def reporter(tenant):
    return client_for_key(make_api_key(tenant, scopes=["routing:read", "examples:write"])[1])


@pytest.fixture
def rule(tenant, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant, task=make_routing_task(tenant, slug="tickets"), threshold=0.8)
    with django_capture_on_commit_callbacks(execute=True):
        route_table_publish(tenant_id=tenant.pk, actor="admin")
    return rule


def small(confidence=0.9, **fields):
    return {"task": "tickets", "route": "small", "confidence": confidence, "fell_back": False, "usage": USAGE, **fields}


def fallback(text, answer, confidence=0.3, **fields):
    return {
        "task": "tickets",
        "route": "frontier",
        "confidence": confidence,
        "fell_back": True,
        "input": text,
        "frontier_output": answer,
        "usage": USAGE,
        **fields,
    }


def test_outcomes_are_stored_and_aggregated_per_task_and_day(tenant, reporter, rule):
    batch = [
        small(),
        small(0.95, latency_ms=12.5),
        small(0.81),
        fallback("my card has not arrived", "card_arrival"),
        fallback("I lost my card", "lost_or_stolen_card", confidence=None),
    ]
    response = reporter.post(URL, {"outcomes": batch}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"], body["errors"]) == (5, 0, [])
    assert Outcome.objects.for_tenant(tenant).count() == 5
    stored = Outcome.objects.for_tenant(tenant).filter(latency_ms=12.5).get()
    assert (stored.route, stored.confidence, stored.fell_back, stored.usage) == ("small", 0.95, False, USAGE)

    daily = OutcomeDaily.objects.for_tenant(tenant).get(task=rule.task, day=timezone.now().date())
    assert (daily.requests, daily.kept_by_small, daily.fell_back) == (5, 3, 2)
    assert daily.realised_saving == 3 * SAVING_PER_REQUEST  # only the answers the small model kept save money

    # A second batch adds to the same day's row.
    reporter.post(URL, {"outcomes": [small(), fallback("top up failed", "top_up_failed")]}, format="json")
    daily.refresh_from_db()
    assert (daily.requests, daily.kept_by_small, daily.fell_back) == (7, 4, 3)
    assert daily.realised_saving == 4 * SAVING_PER_REQUEST


def test_a_small_model_cost_share_reduces_the_saving(tenant, reporter, rule, settings):
    settings.ROUTING_SMALL_MODEL_COST_SHARE = 0.2
    reporter.post(URL, {"outcomes": [small(), small()]}, format="json")
    daily = OutcomeDaily.objects.for_tenant(tenant).get()
    assert daily.realised_saving == 2 * SAVING_PER_REQUEST * Decimal("0.8")


def test_without_usage_the_saving_is_estimated_from_the_text(tenant, reporter, rule):
    """Four characters per token, as the spend dashboard estimates examples logged without usage; a request that
    reports usage is priced by it, one with neither text nor usage saves nothing that can be counted."""
    batch = [
        {"task": "tickets", "route": "small", "confidence": 0.9, "fell_back": False,
         "input": "x" * 4000, "small_output": "y" * 801},  # 1000 and ceil(801 / 4) = 201 tokens
        {"task": "tickets", "route": "small", "confidence": 0.9, "fell_back": False,
         "input": "x" * 4000, "usage": {"output_tokens": 200}},  # the input estimated, the output reported
        {"task": "tickets", "route": "small", "confidence": 0.9, "fell_back": False},
    ]  # fmt: skip
    assert reporter.post(URL, {"outcomes": batch}, format="json").json()["accepted"] == 3
    daily = OutcomeDaily.objects.for_tenant(tenant).get()
    expected = (Decimal(1000) * Decimal("2.50") + Decimal(201) * Decimal("10.00")) / Decimal(1_000_000)
    assert daily.realised_saving == (expected + SAVING_PER_REQUEST).quantize(Decimal("0.000001"))


def test_fallbacks_become_examples_deduplicated_and_validated(tenant, reporter, rule):
    batch = [
        fallback("my card has not arrived", "card_arrival", request_key="r-1"),
        fallback("my card has not arrived", "card_arrival"),  # the same request twice
        fallback("where is my card", "CARD_ARRIVAL"),  # labels are matched ignoring case
        fallback("I want a refund", "refund_request"),  # not a label of the task: counted, not stored
        small(),  # no frontier answer: no example
    ]
    body = reporter.post(URL, {"outcomes": batch}, format="json").json()
    assert body["accepted"] == 5  # every outcome is kept; only its example may be refused
    assert body["examples"]["created"] == 2
    assert body["examples"]["duplicates"] == 1
    assert body["examples"]["invalid"] == 1
    [error] = body["examples"]["errors"]
    assert error["index"] == 3 and error["field"] == "frontier_output" and "refund_request" in error["message"]

    examples = Example.objects.for_tenant(tenant).filter(task=rule.task)
    assert sorted((e.input, e.output) for e in examples) == [
        ("my card has not arrived", "card_arrival"),
        ("where is my card", "card_arrival"),
    ]
    first = examples.get(input="my card has not arrived")
    assert first.source == ExampleSource.FEEDBACK
    assert first.content_hash == content_hash("my card has not arrived", "card_arrival")
    assert first.split == assign_split("my card has not arrived", rule.task.eval_share)
    assert (first.input_tokens, first.output_tokens, first.model) == (1000, 200, "gpt-4o")
    assert first.metadata["fell_back"] is True and first.metadata["request_key"] == "r-1"

    # Reported again later: nothing new.
    again = reporter.post(URL, {"outcomes": batch[:1]}, format="json").json()
    assert again["examples"] == {"created": 0, "duplicates": 1, "invalid": 0, "errors": []}
    assert Example.objects.for_tenant(tenant).count() == 2


def test_invalid_rows_are_reported_by_index_and_the_rest_kept(tenant, reporter, rule):
    batch = [
        small(),
        {**small(), "task": "no-such-task"},
        {**small(), "route": "medium"},
        {**small(), "confidence": 1.2},
        {**small(), "fell_back": "no"},
        {**small(), "usage": {"input_tokens": -3}},
        {**small(), "fellback": True},
        "not an object",
    ]
    response = reporter.post(URL, {"outcomes": batch}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 7)
    by_index = {error["index"]: error for error in body["errors"]}
    assert by_index[1] == {"index": 1, "field": "task", "message": "no task 'no-such-task' in this organisation"}
    assert by_index[2]["field"] == "route" and "'small' or 'frontier'" in by_index[2]["message"]
    assert by_index[3]["field"] == "confidence"
    assert by_index[4]["field"] == "fell_back"
    assert by_index[5]["field"] == "usage" and "non-negative" in by_index[5]["message"]
    assert by_index[6]["field"] == "fellback" and "unknown field" in by_index[6]["message"]
    assert by_index[7]["field"] is None and "JSON object" in by_index[7]["message"]
    assert Outcome.objects.for_tenant(tenant).count() == 1


def test_text_that_cannot_be_stored_or_shown_is_rejected_by_index(tenant, reporter, rule):
    # Found by tests/fuzz: lone surrogates (sent as JSON escapes) crashed the slug lookup and the response, NUL
    # broke PostgreSQL (text and jsonb), and a huge token count overflowed the daily saving: 500s, not row errors.
    batch = [
        small(),
        {**small(), "task": "tick\ud800ets"},
        {**small(), "task": "tickets\x00"},
        {**small(), "input": "where is my card \udc00"},
        {**small(), "usage": {"input_tokens": 10, "note": "\x00"}},
        {**small(), "request_key": ["\ud800"]},
        {**small(), "\ud800": 1},
        {**small(), "usage": {"input_tokens": 10**30, "output_tokens": 1}},
        {**small(), "usage": {"input_tokens": 10_000_001}},
    ]
    # ensure_ascii: the lone surrogates travel as \udXXX escapes, as a client's JSON encoder would send them.
    response = reporter.generic("POST", URL, json.dumps({"outcomes": batch}), content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 8)
    by_index = {error["index"]: error for error in body["errors"]}
    assert by_index[1]["field"] == "task" and "invalid Unicode" in by_index[1]["message"]
    assert by_index[2]["field"] == "task" and "NUL" in by_index[2]["message"]
    assert by_index[3]["field"] == "input" and "invalid Unicode" in by_index[3]["message"]
    assert by_index[4]["field"] == "usage" and "NUL" in by_index[4]["message"]
    assert by_index[5]["field"] == "request_key"
    assert by_index[6]["field"] is None and "field name" in by_index[6]["message"]
    assert by_index[7]["field"] == by_index[8]["field"] == "usage"
    assert "at most 10,000,000" in by_index[8]["message"]
    assert Outcome.objects.for_tenant(tenant).count() == 1


def test_a_batch_with_no_valid_row_is_a_400(tenant, reporter, rule):
    response = reporter.post(URL, {"outcomes": [{**small(), "task": "nope"}]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "No outcome was accepted; outcome 0: no task 'nope' in this organisation."
    assert error["details"]["errors"][0]["field"] == "task"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"outcomes": []}, "1 to 1,000"),
        ({"results": [1]}, '{"outcomes": [...]}'),
        ({"outcomes": "x"}, "1 to 1,000"),
    ],
)
def test_malformed_batches(reporter, payload, words):
    response = reporter.post(URL, payload, format="json")
    assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_at_most_1000_outcomes_per_batch(reporter, rule):
    response = reporter.post(URL, {"outcomes": [small()] * 1001}, format="json")
    assert response.status_code == 400 and "at most 1,000" in response.json()["error"]["message"]
    assert reporter.post(URL, {"outcomes": [small()] * 1000}, format="json").json()["accepted"] == 1000


def test_a_bare_list_is_accepted(reporter, rule):
    assert reporter.post(URL, [small()], format="json").json()["accepted"] == 1


def test_outcomes_need_examples_write(tenant, rule):
    client = client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])
    response = client.post(URL, {"outcomes": [small()]}, format="json")
    assert response.status_code == 403 and "'examples:write'" in response.json()["error"]["message"]


def test_shadow_outcomes_measure_agreement(tenant, reporter, django_capture_on_commit_callbacks):
    task = make_routing_task(tenant, slug="tickets")
    make_route_rule(tenant, task=task, shadow=True)
    with django_capture_on_commit_callbacks(execute=True):
        route_table_publish(tenant_id=tenant.pk, actor="admin")
    shadowed = [
        {"task": "tickets", "route": "frontier", "confidence": 0.9, "fell_back": False,
         "input": "card?", "small_output": "card_arrival", "frontier_output": "card_arrival"},
        {"task": "tickets", "route": "frontier", "confidence": 0.9, "fell_back": False,
         "input": "lost", "small_output": "Card_Arrival ", "frontier_output": "card_arrival"},
        {"task": "tickets", "route": "frontier", "confidence": 0.4, "fell_back": False,
         "input": "top up", "small_output": "card_arrival", "frontier_output": "top_up_failed"},
        {"task": "tickets", "route": "frontier", "confidence": 0.4, "fell_back": False, "input": "no small answer",
         "frontier_output": "top_up_failed"},
    ]  # fmt: skip
    assert reporter.post(URL, {"outcomes": shadowed}, format="json").json()["accepted"] == 4
    daily = OutcomeDaily.objects.for_tenant(tenant).get(task=task)
    assert (daily.requests, daily.kept_by_small, daily.shadow_compared, daily.shadow_agreed) == (4, 0, 3, 2)
    assert daily.realised_saving == 0  # the frontier answered every shadowed request
    assert list(Outcome.objects.for_tenant(tenant).order_by("id").values_list("shadow", "agreed")) == [
        (True, True),
        (True, True),
        (True, False),
        (True, None),
    ]
    assert Example.objects.for_tenant(tenant).filter(source="feedback").count() == 4
    overview = reporter.get("/api/v1/routing/tasks?days=1").json()["results"][0]
    assert overview["daily"][0]["shadow_agreement"] == pytest.approx(2 / 3)


def test_outcomes_are_stored_for_the_callers_tenant_only(tenant, reporter, rule):
    """routing-outcomes takes no id: a report with tenant B's key can never land on tenant A's task."""
    other = make_tenant("globex")
    other_reporter = client_for_key(make_api_key(other, scopes=["examples:write"])[1])
    response = other_reporter.post(URL, {"outcomes": [fallback("my card", "card_arrival")]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["message"] == "no task 'tickets' in this organisation"
    assert not Outcome.objects.exists() and not Example.objects.exists()
    # B's own task with the same slug gets B's outcome; A's aggregates do not move.
    make_routing_task(other, slug="tickets")
    assert other_reporter.post(URL, {"outcomes": [small()]}, format="json").json()["accepted"] == 1
    assert Outcome.objects.for_tenant(other).count() == 1 and Outcome.objects.for_tenant(tenant).count() == 0
    assert not OutcomeDaily.objects.for_tenant(tenant).exists()


# --- drift ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "fell_back", "coverage", "suggested"),
    [
        (100, 45, 0.7, True),  # 45% against 30% predicted: +15 points, above max(10, 3 x 4.6)
        (100, 42, 0.7, False),  # +12 points is within 3 standard errors (13.7 points)
        (1000, 41, 0.7, False),  # 4.1%: far below the 30% predicted
        (1000, 420, 0.7, True),  # +12 points over 1000 requests: far beyond 3 standard errors, above 10
        (49, 49, 0.7, False),  # too few requests to say
        (500, 500, None, False),  # no calibrated prediction
    ],
)
def test_drift_rule(requests, fell_back, coverage, suggested):
    assert assess_drift(requests=requests, fell_back=fell_back, coverage=coverage).retrain_suggested is suggested


def _outcomes(tenant, task, *, total, fell_back, hours_ago=1):
    when = timezone.now() - timedelta(hours=hours_ago)
    Outcome.objects.bulk_create(
        Outcome(tenant=tenant, task=task, route="frontier" if i < fell_back else "small", fell_back=i < fell_back,
                confidence=0.5, reported_at=when)
        for i in range(total)
    )  # fmt: skip


def test_tasks_overview_flags_a_drifting_task(tenant, reporter, rule):
    steady = make_route_rule(tenant, task=make_routing_task(tenant, slug="steady"))
    route_table_publish(tenant_id=tenant.pk, actor="admin")
    _outcomes(tenant, rule.task, total=200, fell_back=110)  # 55% against 30% predicted
    _outcomes(tenant, steady.task, total=200, fell_back=64)  # 32%
    _outcomes(tenant, steady.task, total=500, fell_back=500, hours_ago=30)  # older than the window
    results = {entry["task"]: entry for entry in reporter.get("/api/v1/routing/tasks").json()["results"]}
    drifting = results["tickets"]
    assert drifting["retrain_suggested"] is True
    assert drifting["drift"]["requests"] == 200 and drifting["drift"]["observed_fallback_rate"] == 0.55
    assert drifting["drift"]["predicted_fallback_rate"] == pytest.approx(0.3)
    assert "55%" in drifting["drift"]["reason"] and "30%" in drifting["drift"]["reason"]
    assert results["steady"]["retrain_suggested"] is False and results["steady"]["in_scope"] is True


def test_tasks_overview_daily_series(tenant, reporter, rule):
    reporter.post(URL, {"outcomes": [small(), small(), fallback("x", "card_arrival")]}, format="json")
    entry = reporter.get("/api/v1/routing/tasks?days=7").json()["results"][0]
    assert len(entry["daily"]) == 7 and entry["daily"][0]["requests"] == 0
    today = entry["daily"][-1]
    assert today["day"] == timezone.now().date().isoformat()
    assert (today["requests"], today["kept_by_small"], today["fell_back"]) == (3, 2, 1)
    assert today["fallback_rate"] == pytest.approx(1 / 3)
    assert today["realised_saving"] == pytest.approx(float(2 * SAVING_PER_REQUEST))
    assert entry["totals"]["requests"] == 3
    response = reporter.get("/api/v1/routing/tasks?days=400")
    assert response.status_code == 400 and "days" in response.json()["error"]["details"]


def test_tasks_overview_shows_only_the_callers_tasks(tenant, reporter, rule):
    """routing-tasks takes no id: each key lists its own tenant's tasks and traffic."""
    other = make_tenant("globex")
    make_routable_model_version(other, task=make_routing_task(other, slug="their-task"))
    _outcomes(tenant, rule.task, total=60, fell_back=60)
    other_reader = client_for_key(make_api_key(other, scopes=["routing:read"])[1])
    theirs = other_reader.get("/api/v1/routing/tasks").json()["results"]
    assert [entry["task"] for entry in theirs] == ["their-task"]
    assert theirs[0]["drift"]["requests"] == 0 and theirs[0]["totals"]["requests"] == 0
    assert [entry["task"] for entry in reporter.get("/api/v1/routing/tasks").json()["results"]] == ["tickets"]
