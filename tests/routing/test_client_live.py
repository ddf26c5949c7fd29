"""routing/client.py against a live Django server: first fetch, 304 refresh, background refresh, the server
going down (the last good table keeps serving), never loaded (frontier default), outcome reports."""

import socket
import time

import pytest
from django.test.testcases import LiveServerThread, _StaticFilesHandler

from routing.client import RoutingClient
from routing.models import Outcome, OutcomeDaily
from routing.services import route_rule_update, route_table_publish
from tests.factories import make_api_key, make_tenant
from tests.factories_routing import fresh_routing_cache, make_route_rule, make_routing_task  # noqa: F401 (autouse fixture)
from training.models import Example

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tenant_key(transactional_db):
    tenant = make_tenant("acme")
    key = make_api_key(tenant, scopes=["routing:read", "examples:write"])[1]
    return tenant, key


@pytest.fixture
def published(tenant_key):
    tenant, _ = tenant_key
    rule = make_route_rule(tenant, task=make_routing_task(tenant, slug="tickets"), threshold=0.8)
    version = route_table_publish(tenant_id=tenant.pk, actor="admin")  # committed: the cache learns at once
    return rule, version


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


def test_first_fetch_then_304_then_a_new_version(live_server, tenant_key, published):
    tenant, key = tenant_key
    rule, version = published
    client = RoutingClient(live_server.url, key, start=False)
    try:
        assert client.refresh(raise_on_error=True) is True
        assert client.table_version == 1 and client.etag == version.etag
        decision = client.decide("tickets", 0.9, "req-1")
        assert (decision.route, decision.model, decision.threshold) == ("small", rule.model_version.name, 0.8)
        assert client.decide("tickets", 0.5).route == "frontier"
        assert client.decide("not-in-scope", 0.99).reason == "not_in_scope"

        assert client.refresh(raise_on_error=True) is False  # If-None-Match -> 304
        assert client.stats["not_modified"] == 1 and client.stats["fetches"] == 2

        route_rule_update(rule=rule, actor="admin", threshold=0.95)
        route_table_publish(tenant_id=tenant.pk, actor="admin")
        assert client.refresh(raise_on_error=True) is True
        assert client.table_version == 2 and client.decide("tickets", 0.9).route == "frontier"
    finally:
        client.close(timeout=1)


def test_background_refresh_picks_up_a_publication(live_server, tenant_key, published):
    tenant, key = tenant_key
    rule, _ = published
    with RoutingClient(live_server.url, key, refresh_seconds=0.2) as client:
        assert client.table_version == 1  # start() loads the table synchronously
        route_rule_update(rule=rule, actor="admin", shadow=True)
        route_table_publish(tenant_id=tenant.pk, actor="admin")
        assert wait_for(lambda: client.table_version == 2)
        assert client.decide("tickets", 0.99).reason == "shadow"


def test_server_down_keeps_serving_the_last_good_table(tenant_key, published):
    _, key = tenant_key
    server = LiveServerThread("localhost", _StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    assert server.error is None
    client = RoutingClient(f"http://localhost:{server.port}", key, start=False, timeout=2)
    try:
        assert client.refresh(raise_on_error=True) is True
        server.terminate()  # the control plane goes away
        server.join(5)
        assert client.refresh() is False
        assert client.last_error and client.stats["errors"] == 1
        decision = client.decide("tickets", 0.9)
        assert (decision.route, decision.reason) == ("small", "above_threshold")
        assert client.table_version == 1
    finally:
        client.close(timeout=0)


def test_never_loaded_routes_everything_to_the_frontier(tenant_key):
    _, key = tenant_key
    with RoutingClient(closed_port_url(), key, timeout=1) as client:  # start() tries once and fails quietly
        assert client.table_version is None and client.last_error
        decision = client.decide("tickets", 0.99, "k")
        assert (decision.route, decision.reason, decision.model) == ("frontier", "no_table", None)


def test_reports_reach_the_server_and_become_examples(live_server, tenant_key, published):
    tenant, key = tenant_key
    client = RoutingClient(live_server.url, key, report_interval=0.1)
    try:
        decision = client.decide("tickets", 0.3, "req-9")
        assert decision.route == "frontier"
        client.report("tickets", decision.route, 0.3, fell_back=True, input="my card never came",
                      frontier_output="card_arrival", usage={"input_tokens": 20, "output_tokens": 2}, request_key="req-9")  # fmt: skip
        client.report("tickets", "small", 0.92, fell_back=False, usage={"input_tokens": 20, "output_tokens": 2})
        assert client.flush(timeout=5)
        assert client.stats["reports_sent"] == 2
    finally:
        client.close(timeout=2)
    assert Outcome.objects.for_tenant(tenant).count() == 2
    daily = OutcomeDaily.objects.for_tenant(tenant).get()
    assert (daily.requests, daily.kept_by_small, daily.fell_back) == (2, 1, 1)
    example = Example.objects.for_tenant(tenant).get()
    assert (example.input, example.output, example.source) == ("my card never came", "card_arrival", "feedback")


def test_a_client_with_another_tenants_key_sees_only_its_table(live_server, tenant_key, published):
    other = make_tenant("globex")
    other_key = make_api_key(other, scopes=["routing:read"])[1]
    client = RoutingClient(live_server.url, other_key, start=False)
    try:
        assert client.refresh(raise_on_error=True) is True
        assert client.table_version == 0 and client.table["tenant"] == "globex"
        assert client.decide("tickets", 0.99).reason == "not_in_scope"
    finally:
        client.close(timeout=0)
