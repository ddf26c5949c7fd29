"""POST /api/v1/routing/decide: the shared decision code over the cached published table."""

import hashlib

import pytest

from routing.decision import CompiledTable
from routing.services import route_table_publish
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_routing import fresh_routing_cache, make_route_rule  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db


def reference_bucket(task: str, request_key: str) -> int:
    """The contract's canary formula, written out independently of the implementation."""
    return int.from_bytes(hashlib.blake2b(f"{task}:{request_key}".encode(), digest_size=8).digest(), "big") % 10000


@pytest.fixture
def reader(tenant):
    return client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])


def publish(tenant, captured):
    with captured(execute=True):
        return route_table_publish(tenant_id=tenant.pk, actor="admin")


def decide(client, task, confidence, request_key=None):
    body = {"task": task, "confidence": confidence}
    if request_key is not None:
        body["request_key"] = request_key
    response = client.post("/api/v1/routing/decide", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_threshold_decides_between_small_and_frontier(tenant, reader, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant, threshold=0.83)
    publish(tenant, django_capture_on_commit_callbacks)
    slug, name = rule.task.slug, rule.model_version.name
    assert decide(reader, slug, 0.9) == {
        "route": "small", "model": name, "threshold": 0.83, "reason": "above_threshold", "shadow": False, "version": 1,
    }  # fmt: skip
    assert decide(reader, slug, 0.83)["route"] == "small"  # at the threshold keeps the small model
    below = decide(reader, slug, 0.5)
    assert (below["route"], below["model"], below["reason"]) == ("frontier", "gpt-4o", "below_threshold")
    assert decide(reader, slug, None)["reason"] == "below_threshold"
    other = decide(reader, "not-a-task", 0.99)
    assert (other["route"], other["model"], other["threshold"], other["reason"]) == (
        "frontier",
        None,
        None,
        "not_in_scope",
    )


def test_nothing_published_sends_everything_to_the_frontier(tenant, reader):
    make_route_rule(tenant)  # a draft rule is not live until published
    result = decide(reader, "anything", 1.0)
    assert (result["route"], result["reason"], result["version"]) == ("frontier", "not_in_scope", 0)


def test_canary_through_the_endpoint_matches_the_contract(tenant, reader, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant, canary_percent=30)
    publish(tenant, django_capture_on_commit_callbacks)
    slug = rule.task.slug
    kept = 0
    for i in range(200):
        key = f"user-{i}"
        result = decide(reader, slug, 0.99, key)
        in_canary = reference_bucket(slug, key) < 3000
        assert result["reason"] == ("above_threshold" if in_canary else "canary_excluded"), key
        assert decide(reader, slug, 0.99, key)["route"] == result["route"]  # sticky per key
        kept += in_canary
    assert 30 < kept < 90  # about 30% of 200


def test_shadow_mode_answers_with_the_frontier(tenant, reader, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant, shadow=True)
    publish(tenant, django_capture_on_commit_callbacks)
    for confidence in (0.99, 0.1):
        result = decide(reader, rule.task.slug, confidence, "k")
        assert (result["route"], result["model"], result["reason"], result["shadow"]) == (
            "frontier",
            "gpt-4o",
            "shadow",
            True,
        )


def test_server_and_client_decide_identically(tenant, reader, django_capture_on_commit_callbacks):
    live = make_route_rule(tenant, threshold=0.7, canary_percent=60)
    shadow = make_route_rule(tenant, threshold=0.5, shadow=True, canary_percent=80)
    version = publish(tenant, django_capture_on_commit_callbacks)
    import json

    client_table = CompiledTable.from_table(json.loads(bytes(version.body)))
    for i in range(60):
        for slug in (live.task.slug, shadow.task.slug, "unknown"):
            confidence = (i % 10) / 10
            server = decide(reader, slug, confidence, f"r{i}")
            local = client_table.decide(slug, confidence, f"r{i}")
            assert (server["route"], server["model"], server["threshold"], server["reason"], server["shadow"]) == tuple(
                local
            )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "t", "confidence": 1.5}, "confidence"),
        ({"task": "t", "confidence": "high"}, "confidence"),
        ({"confidence": 0.5}, "task"),
        ({"task": "t"}, "confidence"),
    ],
)
def test_bad_requests_say_which_field(reader, body, field):
    response = reader.post("/api/v1/routing/decide", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["details"]


def test_decide_needs_routing_read(tenant):
    client = client_for_key(make_api_key(tenant, scopes=["examples:write"])[1])
    response = client.post("/api/v1/routing/decide", {"task": "t", "confidence": 0.5}, format="json")
    assert response.status_code == 403


def test_a_warm_decide_makes_no_query(tenant, reader, django_assert_num_queries, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    decide(reader, rule.task.slug, 0.9)
    with django_assert_num_queries(0):
        decide(reader, rule.task.slug, 0.9)


def test_decide_uses_only_the_callers_table(tenant, reader, django_capture_on_commit_callbacks):
    """routing-decide takes no id: tenant B's key decides by B's table, never A's rule for the same slug."""
    rule = make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    other = make_tenant("globex")
    other_reader = client_for_key(make_api_key(other, scopes=["routing:read"])[1])
    result = decide(other_reader, rule.task.slug, 0.99)
    assert (result["route"], result["reason"], result["version"]) == ("frontier", "not_in_scope", 0)
    assert decide(reader, rule.task.slug, 0.99)["route"] == "small"
