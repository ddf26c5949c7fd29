"""Draft rules, publishing, versions, diff, rollback, publishing a model version, audit."""

import json

import pytest

from routing.models import RouteRule, RouteTableVersion
from tenants.models import AuditEvent
from tests.conftest import client_for_key
from tests.factories import make_api_key
from tests.factories_routing import fresh_routing_cache, make_routable_model_version, make_route_rule, make_routing_task  # noqa: F401 (autouse fixture)
from training.models import JobState

pytestmark = pytest.mark.django_db


def _create_rule(client, model_version, **fields):
    body = {"task": model_version.task.slug, "model_version": model_version.pk, **fields}
    return client.post("/api/v1/routing/rules", body, format="json")


def test_rule_takes_the_calibrated_threshold_and_the_frontier_fallback(admin_client, tenant):
    model_version = make_routable_model_version(tenant, threshold=0.83)
    response = _create_rule(admin_client, model_version)
    assert response.status_code == 201, response.content
    rule = response.json()
    assert rule["threshold"] == 0.83 and rule["calibrated_threshold"] == 0.83
    assert rule["fallback_model"] == "" and rule["effective_fallback"] == "gpt-4o"
    assert (rule["canary_percent"], rule["shadow"], rule["enabled"]) == (100.0, False, True)
    assert rule["model_version_name"] == model_version.name and rule["base_model"] == "minilm-l6"
    event = AuditEvent.objects.for_tenant(tenant).get(action="route_rule.changed")
    assert event.target == model_version.task.slug and event.data["created"]["threshold"] == 0.83


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"threshold": 1.5}, "threshold", "from 0 to 1"),
        ({"threshold": -0.1}, "threshold", "from 0 to 1"),
        ({"canary_percent": 101}, "canary_percent", "from 0 to 100"),
        ({"canary_percent": -1}, "canary_percent", "from 0 to 100"),
    ],
)
def test_rule_ranges_are_checked(admin_client, tenant, fields, field, words):
    response = _create_rule(admin_client, make_routable_model_version(tenant), **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["details"] and words in error["message"]


def test_rule_refuses_a_model_version_whose_job_did_not_succeed(admin_client, tenant):
    model_version = make_routable_model_version(tenant, state=JobState.FAILED)
    response = _create_rule(admin_client, model_version)
    assert response.status_code == 400
    assert "failed" in response.json()["error"]["message"] and "succeeded" in response.json()["error"]["message"]


def test_rule_refuses_a_model_version_of_another_task(admin_client, tenant):
    model_version = make_routable_model_version(tenant)
    other_task = make_routing_task(tenant, slug="other")
    response = admin_client.post(
        "/api/v1/routing/rules", {"task": "other", "model_version": model_version.pk}, format="json"
    )
    assert response.status_code == 400
    assert f"trained for task '{model_version.task.slug}', not 'other'" in response.json()["error"]["message"]
    assert not RouteRule.objects.filter(task=other_task).exists()


def test_rule_refuses_another_tenants_model_version_and_task(admin_client, tenant, other_tenant):
    foreign = make_routable_model_version(other_tenant)
    mine = make_routing_task(tenant, slug="mine")
    response = admin_client.post("/api/v1/routing/rules", {"task": "mine", "model_version": foreign.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["model_version"] == [
        f"No model version {foreign.pk} in this organisation."
    ]
    response = admin_client.post(
        "/api/v1/routing/rules", {"task": foreign.task.slug, "model_version": foreign.pk}, format="json"
    )
    assert response.status_code == 400 and "task" in response.json()["error"]["details"]
    assert not RouteRule.objects.filter(task=mine).exists()


def test_rule_without_calibrated_threshold_needs_an_explicit_one(admin_client, tenant):
    model_version = make_routable_model_version(tenant, threshold=None, coverage=None)
    response = _create_rule(admin_client, model_version)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "no calibrated threshold" in message and "explicitly" in message
    assert _create_rule(admin_client, model_version, threshold=0.97).status_code == 201


def test_one_rule_per_task(admin_client, tenant):
    rule = make_route_rule(tenant)
    response = _create_rule(admin_client, make_routable_model_version(tenant, task=rule.task))
    assert response.status_code == 400 and f"(id {rule.pk})" in response.json()["error"]["message"]


def test_rule_update_and_delete_are_audited(admin_client, tenant):
    rule = make_route_rule(tenant)
    response = admin_client.patch(
        f"/api/v1/routing/rules/{rule.pk}", {"threshold": 0.9, "canary_percent": 25, "shadow": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["threshold"], response.json()["canary_percent"], response.json()["shadow"]) == (
        0.9,
        25,
        True,
    )
    changed = AuditEvent.objects.for_tenant(tenant).filter(action="route_rule.changed").first()
    assert changed.data["changes"]["threshold"] == {"from": 0.8, "to": 0.9}
    assert admin_client.delete(f"/api/v1/routing/rules/{rule.pk}").status_code == 204
    assert not RouteRule.objects.filter(pk=rule.pk).exists()
    assert AuditEvent.objects.for_tenant(tenant).filter(action="route_rule.changed", data__has_key="deleted").exists()


def test_reading_needs_routing_read_and_writing_routing_write(tenant):
    rule = make_route_rule(tenant)
    reader = client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])
    assert reader.get("/api/v1/routing/rules").status_code == 200
    response = reader.patch(f"/api/v1/routing/rules/{rule.pk}", {"threshold": 0.5}, format="json")
    assert response.status_code == 403 and "routing:write" in response.json()["error"]["message"]
    assert reader.post("/api/v1/routing/versions", {}, format="json").status_code == 403
    trainer = client_for_key(make_api_key(tenant, scopes=["training:read"])[1])
    assert trainer.get("/api/v1/routing/versions").status_code == 403


def test_publish_creates_numbered_immutable_versions(admin_client, tenant):
    first = make_route_rule(tenant)
    response = admin_client.post("/api/v1/routing/versions", {"note": "first rules"}, format="json")
    assert response.status_code == 201, response.content
    v1 = response.json()
    assert v1["version"] == 1 and v1["note"] == "first rules" and v1["rolled_back_from"] is None
    assert v1["table"]["rules"][first.task.slug]["threshold"] == 0.8
    assert v1["table"]["tenant"] == "acme" and v1["table"]["version"] == 1
    assert v1["etag"].startswith('"') and len(v1["etag"]) == 34

    make_route_rule(tenant)
    v2 = admin_client.post("/api/v1/routing/versions", {}, format="json").json()
    assert v2["version"] == 2 and len(v2["tasks"]) == 2 and v2["etag"] != v1["etag"]
    # The earlier version kept its content and bytes.
    stored = RouteTableVersion.objects.for_tenant(tenant).get(version=1)
    assert list(json.loads(bytes(stored.body))["rules"]) == [first.task.slug]
    listing = admin_client.get("/api/v1/routing/versions").json()["results"]
    assert [row["version"] for row in listing] == [2, 1]
    assert admin_client.get("/api/v1/routing/versions/1").json()["content"]["rules"].keys() == {first.task.slug}
    published = AuditEvent.objects.for_tenant(tenant).filter(action="route_table.published").order_by("id")
    assert [event.target for event in published] == ["v1", "v2"]
    assert published[0].data["changes"]["added"] == [first.task.slug]


def test_publishing_an_unchanged_draft_is_refused(admin_client, tenant):
    make_route_rule(tenant)
    assert admin_client.post("/api/v1/routing/versions", {}, format="json").status_code == 201
    response = admin_client.post("/api/v1/routing/versions", {}, format="json")
    assert response.status_code == 400
    assert (
        response.json()["error"]["message"] == "Nothing to publish: the draft is identical to the published version v1."
    )


def test_version_numbers_are_per_tenant(admin_client, tenant, other_tenant):
    make_route_rule(other_tenant)
    from routing.services import route_table_publish

    route_table_publish(tenant_id=other_tenant.pk, actor="x")
    make_route_rule(tenant)
    assert admin_client.post("/api/v1/routing/versions", {}, format="json").json()["version"] == 1


def test_disabled_rule_stays_in_the_content_but_leaves_the_runtime_table(admin_client, tenant):
    rule = make_route_rule(tenant)
    admin_client.patch(f"/api/v1/routing/rules/{rule.pk}", {"enabled": False}, format="json")
    version = admin_client.post("/api/v1/routing/versions", {}, format="json").json()
    assert version["content"]["rules"][rule.task.slug]["enabled"] is False
    assert version["table"]["rules"] == {}


def test_diff_between_any_two_versions(admin_client, tenant):
    kept = make_route_rule(tenant)
    dropped = make_route_rule(tenant)
    admin_client.post("/api/v1/routing/versions", {}, format="json")  # v1: kept, dropped
    admin_client.patch(f"/api/v1/routing/rules/{kept.pk}", {"threshold": 0.9, "shadow": True}, format="json")
    admin_client.delete(f"/api/v1/routing/rules/{dropped.pk}")
    added = make_route_rule(tenant)
    admin_client.patch("/api/v1/routing/settings", {"default_model": "gpt-4o-mini"}, format="json")
    admin_client.post("/api/v1/routing/versions", {}, format="json")  # v2

    diff = admin_client.get("/api/v1/routing/versions/2/diff").json()  # against the previous by default
    assert (diff["source"], diff["target"]) == (1, 2)
    assert [item["task"] for item in diff["added"]] == [added.task.slug]
    assert [item["task"] for item in diff["removed"]] == [dropped.task.slug]
    assert diff["changed"] == [
        {
            "task": kept.task.slug,
            "fields": {"threshold": {"from": 0.8, "to": 0.9}, "shadow": {"from": False, "to": True}},
        }
    ]
    assert diff["defaults"] == {"default_model": {"from": None, "to": "gpt-4o-mini"}}

    backwards = admin_client.get("/api/v1/routing/versions/1/diff?against=2").json()
    assert [item["task"] for item in backwards["added"]] == [dropped.task.slug]
    from_empty = admin_client.get("/api/v1/routing/versions/1/diff?against=0").json()
    assert {item["task"] for item in from_empty["added"]} == {kept.task.slug, dropped.task.slug}
    response = admin_client.get("/api/v1/routing/versions/1/diff?against=7")
    assert response.status_code == 400 and "no version 7" in response.json()["error"]["message"]


def test_rollback_republishes_an_earlier_version_and_resets_the_draft(admin_client, tenant):
    rule = make_route_rule(tenant)
    v1 = admin_client.post("/api/v1/routing/versions", {}, format="json").json()
    admin_client.patch(f"/api/v1/routing/rules/{rule.pk}", {"threshold": 0.99}, format="json")
    make_route_rule(tenant)
    admin_client.post("/api/v1/routing/versions", {}, format="json")  # v2

    response = admin_client.post("/api/v1/routing/versions/1/rollback")
    assert response.status_code == 201, response.content
    v3 = response.json()
    assert v3["version"] == 3 and v3["rolled_back_from"] == 1 and v3["note"] == "Rollback to v1"
    assert v3["content"] == v1["content"]
    assert v3["table"]["rules"] == v1["table"]["rules"] and v3["table"]["version"] == 3
    # The draft now equals what is live: the second rule is gone, the threshold is back.
    assert list(RouteRule.objects.for_tenant(tenant).values_list("task__slug", "threshold")) == [(rule.task.slug, 0.8)]
    assert admin_client.get("/api/v1/routing/draft").json()["changes"]["changed"] == []
    event = AuditEvent.objects.for_tenant(tenant).get(action="route_table.rolled_back")
    assert event.data["rolled_back_to"] == 1 and event.data["replaced"] == 2 and event.target == "v3"
    # Rolling back to what is already live is refused.
    response = admin_client.post("/api/v1/routing/versions/3/rollback")
    assert response.status_code == 400 and "already the published version" in response.json()["error"]["message"]


def test_publish_a_model_version_creates_the_rule_and_a_version(admin_client, tenant):
    model_version = make_routable_model_version(tenant, threshold=0.87)
    response = admin_client.post(f"/api/v1/model-versions/{model_version.pk}/publish", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["version"]["version"] == 1
    assert body["rule"]["threshold"] == 0.87 and body["rule"]["model_version"] == model_version.pk
    table = RouteTableVersion.objects.for_tenant(tenant).get(version=1)
    rule = json.loads(bytes(table.body))["rules"][model_version.task.slug]
    assert rule == {
        "model_version": model_version.name,
        "model_version_id": model_version.pk,
        "base_model": "minilm-l6",
        "artifact": f"/api/v1/model-versions/{model_version.pk}/artifact",
        "threshold": 0.87,
        "fallback": "gpt-4o",
        "canary": 100,
        "shadow": False,
    }
    # The same again changes nothing: 200, no new version.
    again = admin_client.post(f"/api/v1/model-versions/{model_version.pk}/publish", {}, format="json")
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["version"]["version"] == 1

    newer = make_routable_model_version(tenant, task=model_version.task, threshold=0.75)
    response = admin_client.post(f"/api/v1/model-versions/{newer.pk}/publish", {"canary_percent": 10}, format="json")
    assert response.status_code == 201 and response.json()["version"]["version"] == 2
    assert RouteRule.objects.for_tenant(tenant).get().model_version == newer
    diff = admin_client.get("/api/v1/routing/versions/2/diff").json()
    assert set(diff["changed"][0]["fields"]) == {"model_version", "model_version_id", "artifact", "threshold", "canary"}


def test_publish_refuses_a_model_version_without_calibrated_threshold_unless_given(admin_client, tenant):
    model_version = make_routable_model_version(tenant, threshold=None, coverage=None)
    response = admin_client.post(f"/api/v1/model-versions/{model_version.pk}/publish", {}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "threshold" in error["details"] and "no threshold reaches 95% agreement" in error["message"]
    assert not RouteTableVersion.objects.for_tenant(tenant).exists()
    response = admin_client.post(
        f"/api/v1/model-versions/{model_version.pk}/publish", {"threshold": 0.99}, format="json"
    )
    assert response.status_code == 201 and response.json()["rule"]["threshold"] == 0.99


def test_publish_refuses_a_model_version_whose_training_failed(admin_client, tenant):
    model_version = make_routable_model_version(tenant, state=JobState.RUNNING)
    response = admin_client.post(f"/api/v1/model-versions/{model_version.pk}/publish", {}, format="json")
    assert response.status_code == 400 and "running" in response.json()["error"]["message"]


def test_publish_needs_routing_write(tenant):
    model_version = make_routable_model_version(tenant)
    trainer = client_for_key(make_api_key(tenant, scopes=["training:read", "training:write", "routing:read"])[1])
    response = trainer.post(f"/api/v1/model-versions/{model_version.pk}/publish", {}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"


def test_settings_and_draft_are_per_tenant(tenant, other_tenant):
    """routing-settings and routing-draft take no id: each key sees and changes only its own tenant's."""
    key_a = client_for_key(make_api_key(tenant)[1])
    key_b = client_for_key(make_api_key(other_tenant)[1])
    rule_a = make_route_rule(tenant)
    assert (
        key_a.patch(
            "/api/v1/routing/settings", {"default_model": "a-model", "cache_max_age": 5}, format="json"
        ).status_code
        == 200
    )
    assert key_b.get("/api/v1/routing/settings").json() == {"default_model": "", "cache_max_age": 30}
    assert key_a.get("/api/v1/routing/settings").json() == {"default_model": "a-model", "cache_max_age": 5}
    draft_b = key_b.get("/api/v1/routing/draft").json()
    assert draft_b["content"]["rules"] == {} and draft_b["content"]["default"]["model"] is None
    draft_a = key_a.get("/api/v1/routing/draft").json()
    assert list(draft_a["content"]["rules"]) == [rule_a.task.slug]
    assert draft_a["content"]["default"]["model"] == "a-model" and draft_a["content"]["cache_max_age"] == 5


def test_settings_validation(admin_client):
    response = admin_client.patch("/api/v1/routing/settings", {"cache_max_age": -1}, format="json")
    assert response.status_code == 400 and "cache_max_age" in response.json()["error"]["details"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_publications_get_distinct_consecutive_numbers():
    """Publishing locks the tenant (and its latest version) before numbering: no duplicate, no gap."""
    import threading

    from django.db import connection

    from routing.services import model_version_publish
    from tests.factories import make_tenant

    tenant = make_tenant("racing")
    model_versions = [make_routable_model_version(tenant) for _ in range(4)]
    barrier = threading.Barrier(len(model_versions))
    errors = []

    def publish(model_version):
        try:
            barrier.wait(5)
            model_version_publish(model_version=model_version, actor="racer")
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish, args=(mv,)) for mv in model_versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    numbers = list(RouteTableVersion.objects.for_tenant(tenant).order_by("version").values_list("version", flat=True))
    assert numbers == list(range(1, len(numbers) + 1)) and numbers
    latest = RouteTableVersion.objects.for_tenant(tenant).order_by("-version").first()
    assert set(latest.content["rules"]) == {mv.task.slug for mv in model_versions}
