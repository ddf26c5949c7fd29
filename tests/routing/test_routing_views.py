"""The routing page: published table and draft, rule editing, publishing, versions, diff, rollback, charts,
drift flags, and the "Publish to routing" button of the model version page."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.models import Outcome, OutcomeDaily, RouteRule, RouteTableVersion
from routing.services import route_table_publish
from tenants.models import Role
from tests.factories import make_membership
from tests.factories_routing import fresh_routing_cache, make_routable_model_version, make_route_rule, make_routing_task  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, owner, tenant):
    client.force_login(owner)
    return client


def test_page_shows_the_published_table_and_the_draft(web, tenant):
    rule = make_route_rule(tenant, threshold=0.83)
    route_table_publish(tenant_id=tenant.pk, actor="owner@example.com", note="first")
    make_route_rule(tenant, task=make_routing_task(tenant, slug="invoices"))  # unpublished
    response = web.get(reverse("routing"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Published table" in html and "v1" in html and "first" in html
    assert rule.model_version.name in html and "0.830" in html
    assert "Unpublished changes" in html and "invoices" in html
    assert 'id="publish-draft"' in html and "Publish v2" in html
    assert reverse("route_table_rollback", args=[1]) not in html  # the live version offers no rollback


def test_nothing_published_yet(web, tenant):
    html = web.get(reverse("routing")).content.decode()
    assert "Nothing published yet" in html and "version 0" in html


def test_edit_a_rule_then_publish(web, tenant):
    rule = make_route_rule(tenant)
    response = web.post(
        reverse("route_rule_update", args=[rule.pk]),
        {"model_version": rule.model_version_id, "threshold": "0.9", "fallback_model": "gpt-4o-mini",
         "canary_percent": "40", "shadow": "on", "enabled": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.fallback_model, rule.canary_percent, rule.shadow) == (0.9, "gpt-4o-mini", 40, True)
    assert rule.updated_by == "owner@example.com"
    response = web.post(reverse("route_table_publish"), {"note": "tighter"}, follow=True)
    assert "Published v1" in response.content.decode()
    version = RouteTableVersion.objects.for_tenant(tenant).get()
    assert version.note == "tighter" and version.published_by == "owner@example.com"
    assert json.loads(bytes(version.body))["rules"][rule.task.slug]["fallback"] == "gpt-4o-mini"


def test_invalid_rule_edits_are_explained(web, tenant):
    rule = make_route_rule(tenant)
    response = web.post(
        reverse("route_rule_update", args=[rule.pk]),
        {"model_version": rule.model_version_id, "threshold": "1.7", "canary_percent": "100", "enabled": "on"},
        follow=True,
    )
    html = response.content.decode()
    assert "was not changed" in html and "Threshold" in html and "less than or equal to 1" in html
    rule.refresh_from_db()
    assert rule.threshold == 0.8


def test_add_and_remove_a_rule(web, tenant):
    model_version = make_routable_model_version(tenant, threshold=0.66)
    response = web.post(
        reverse("route_rule_create"), {"model_version": model_version.pk, "canary_percent": "100"}, follow=True
    )
    assert "added to the draft" in response.content.decode()
    rule = RouteRule.objects.for_tenant(tenant).get()
    assert rule.threshold == 0.66 and rule.task == model_version.task
    html = web.get(reverse("routing")).content.decode()
    assert f'<option value="{model_version.pk}">' not in html  # the task has its rule: not offered again
    web.post(reverse("route_rule_delete", args=[rule.pk]))
    assert not RouteRule.objects.for_tenant(tenant).exists()


def test_defaults_form(web, tenant):
    web.post(reverse("route_settings_update"), {"default_model": "gpt-4o-mini", "cache_max_age": "10"})
    response = web.post(reverse("route_table_publish"), {}, follow=True)
    assert "Published v1" in response.content.decode()
    table = json.loads(bytes(RouteTableVersion.objects.for_tenant(tenant).get().body))
    assert table["default"]["model"] == "gpt-4o-mini"


def test_version_page_diff_and_rollback(web, tenant):
    rule = make_route_rule(tenant)
    route_table_publish(tenant_id=tenant.pk, actor="a")
    web.post(
        reverse("route_rule_update", args=[rule.pk]),
        {"model_version": rule.model_version_id, "threshold": "0.95", "canary_percent": "100", "enabled": "on"},
    )
    route_table_publish(tenant_id=tenant.pk, actor="a")
    html = web.get(reverse("route_table_version", args=[2])).content.decode()
    assert "Changes from v1" in html and "threshold: 0.8 → 0.95" in html
    html = web.get(reverse("route_table_version", args=[1]) + "?against=0").content.decode()
    assert "the empty table" in html and "added" in html
    assert reverse("route_table_rollback", args=[1]) in html
    response = web.post(reverse("route_table_rollback", args=[1]), follow=True)
    assert "Published v3 with the rules of v1" in response.content.decode()
    latest = RouteTableVersion.objects.for_tenant(tenant).first()
    assert latest.version == 3 and latest.rolled_back_from == 1
    rule.refresh_from_db()
    assert rule.threshold == 0.8


def test_members_read_but_cannot_change_routing(client, tenant):
    member = make_membership(tenant, role=Role.MEMBER)
    client.force_login(member.user)
    rule = make_route_rule(tenant)
    html = client.get(reverse("routing")).content.decode()
    assert rule.task.slug in html and "Save draft rule" not in html
    assert client.post(reverse("route_table_publish")).status_code == 403
    assert not RouteTableVersion.objects.exists()


def test_another_tenants_rule_and_version_are_404(web, tenant, other_tenant):
    foreign_rule = make_route_rule(other_tenant)
    route_table_publish(tenant_id=other_tenant.pk, actor="x")
    foreign_version = make_routable_model_version(other_tenant)
    assert web.post(reverse("route_rule_update", args=[foreign_rule.pk]), {"threshold": "0.1"}).status_code == 404
    assert web.post(reverse("route_rule_delete", args=[foreign_rule.pk])).status_code == 404
    assert web.get(reverse("route_table_version", args=[1])).status_code == 404
    assert web.post(reverse("route_table_rollback", args=[1])).status_code == 404
    assert web.post(reverse("routing_model_version_publish", args=[foreign_version.pk])).status_code == 404
    assert RouteRule.objects.get(pk=foreign_rule.pk).threshold == 0.8


def test_publish_button_publishes_the_model_version(web, tenant):
    model_version = make_routable_model_version(tenant, threshold=0.77)
    response = web.post(reverse("routing_model_version_publish", args=[model_version.pk]), follow=True)
    html = response.content.decode()
    assert f"now routes to {model_version.name} at threshold 0.770" in html
    assert RouteTableVersion.objects.for_tenant(tenant).get().version == 1


def test_publish_button_without_calibrated_threshold(web, tenant):
    model_version = make_routable_model_version(tenant, threshold=None, coverage=None)
    page = f"/training/models/{model_version.pk}/"
    response = web.post(reverse("routing_model_version_publish", args=[model_version.pk]), {"next": page})
    assert response.status_code == 302 and response["Location"] == page  # back to the model version page
    assert not RouteTableVersion.objects.exists()
    response = web.post(reverse("routing_model_version_publish", args=[model_version.pk]), {"threshold": "0.97"})
    assert RouteRule.objects.for_tenant(tenant).get().threshold == 0.97


def test_publish_button_template(rf, owner, tenant):
    from django.template.loader import render_to_string

    from tenants.selectors import tenant_context_for_user

    calibrated = make_routable_model_version(tenant, threshold=0.8)
    uncalibrated = make_routable_model_version(tenant, threshold=None, coverage=None)
    request = rf.get("/training/models/1/")
    context = {"current_tenant": tenant_context_for_user(owner, None), "request": request}
    html = render_to_string("routing/_publish_button.html", {**context, "model_version": calibrated}, request=request)
    assert reverse("routing_model_version_publish", args=[calibrated.pk]) in html
    assert "Publish to routing (threshold 0.800)" in html and 'name="threshold"' not in html
    assert "csrfmiddlewaretoken" in html and 'name="next" value="/training/models/1/"' in html
    html = render_to_string("routing/_publish_button.html", {**context, "model_version": uncalibrated}, request=request)
    assert 'name="threshold"' in html and "required" in html


def test_charts_and_drift_flag(web, tenant):
    rule = make_route_rule(tenant, task=make_routing_task(tenant, slug="tickets"))
    route_table_publish(tenant_id=tenant.pk, actor="a")
    now = timezone.now()
    Outcome.objects.bulk_create(
        Outcome(tenant=tenant, task=rule.task, route="frontier", fell_back=i < 40, confidence=0.5, reported_at=now)
        for i in range(60)
    )
    OutcomeDaily.objects.create(
        tenant=tenant, task=rule.task, day=(now - timedelta(days=1)).date(), requests=60, kept_by_small=20,
        fell_back=40, realised_saving="1.25",
    )  # fmt: skip
    html = web.get(reverse("routing")).content.decode()
    assert 'id="drift-tickets"' in html and "retrain suggested" in html
    assert 'class="chart" data-chart="' in html
    start = html.index('data-chart="', html.index('id="task-tickets"')) + len('data-chart="')
    spec = json.loads(html[start : html.index('"', start)].replace("&quot;", '"'))
    assert spec["type"] == "bar" and len(spec["values"]) == 30 and spec["values"][-2] == 60
