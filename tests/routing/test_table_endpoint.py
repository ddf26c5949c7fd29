"""GET /api/v1/routing/table: precompiled bytes, strong ETag, 304, zero queries when warm, invalidation."""

import json
import time

import pytest
from django.test import Client

from routing import cache as routing_cache
from routing.services import route_table_publish, route_table_rollback
from tests.factories import make_api_key, make_tenant
from tests.factories_routing import fresh_routing_cache, make_route_rule  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db

URL = "/api/v1/routing/table"


def get_table(key: str, etag: str | None = None):
    """A plain Django test client: the endpoint is a plain Django view, and nothing else is in the way."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if etag is not None:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return Client().get(URL, **headers)


@pytest.fixture
def reader_key(tenant):
    return make_api_key(tenant, scopes=["routing:read"])[1]


def publish(tenant, captured, actor="admin@example.com"):
    """Publish the draft and run the after-commit callbacks (the cache invalidation) as a commit would."""
    with captured(execute=True):
        return route_table_publish(tenant_id=tenant.pk, actor=actor)


def test_before_anything_is_published_the_table_is_version_zero(tenant, reader_key):
    response = get_table(reader_key)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "version": 0,
        "tenant": "acme",
        "published_at": None,
        "default": {"route": "frontier", "model": None},
        "rules": {},
    }
    assert response["Cache-Control"] == "private, max-age=30"


def test_serves_the_precompiled_bytes_with_a_strong_etag(tenant, reader_key, django_capture_on_commit_callbacks):
    rule = make_route_rule(tenant, threshold=0.83, canary_percent=50)
    version = publish(tenant, django_capture_on_commit_callbacks)
    response = get_table(reader_key)
    assert response.status_code == 200
    assert response.content == bytes(version.body)  # exactly the bytes compiled at publish time
    assert response["ETag"] == version.etag and not response["ETag"].startswith("W/")
    assert response["Cache-Control"] == "private, max-age=30" and response["Vary"] == "Authorization"
    table = response.json()
    assert table["version"] == 1 and table["tenant"] == "acme" and table["published_at"].endswith("Z")
    assert table["rules"][rule.task.slug]["threshold"] == 0.83 and table["rules"][rule.task.slug]["canary"] == 50
    assert b" " not in response.content  # compact JSON


def test_if_none_match_answers_304_without_a_body(tenant, reader_key, django_capture_on_commit_callbacks):
    make_route_rule(tenant)
    version = publish(tenant, django_capture_on_commit_callbacks)
    response = get_table(reader_key, etag=version.etag)
    assert response.status_code == 304 and response.content == b""
    assert response["ETag"] == version.etag and response["Cache-Control"] == "private, max-age=30"
    # A list of tags, a weak form of the same tag and `*` match too (weak comparison, RFC 9110).
    assert get_table(reader_key, etag=f'"stale", {version.etag}').status_code == 304
    assert get_table(reader_key, etag=f"W/{version.etag}").status_code == 304
    assert get_table(reader_key, etag="*").status_code == 304
    stale = get_table(reader_key, etag='"0123456789abcdef0123456789abcdef"')
    assert stale.status_code == 200 and stale.content == bytes(version.body)


def test_a_warm_request_makes_zero_database_queries(
    tenant, reader_key, django_assert_num_queries, django_capture_on_commit_callbacks
):
    make_route_rule(tenant)
    version = publish(tenant, django_capture_on_commit_callbacks)
    routing_cache.forget_local()
    assert get_table(reader_key).status_code == 200  # cold: the key and the table are loaded once
    with django_assert_num_queries(0):
        response = get_table(reader_key)
        not_modified = get_table(reader_key, etag=version.etag)
    assert response.status_code == 200 and not_modified.status_code == 304


def test_a_fresh_process_is_warm_from_the_shared_cache(
    tenant, reader_key, django_assert_num_queries, django_capture_on_commit_callbacks
):
    make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    get_table(reader_key)
    routing_cache.forget_local()  # another web process: nothing local, the shared cache is warm
    with django_assert_num_queries(0):
        assert get_table(reader_key).json()["version"] == 1


def test_publish_invalidates_at_once(tenant, reader_key, django_capture_on_commit_callbacks):
    make_route_rule(tenant)
    v1 = publish(tenant, django_capture_on_commit_callbacks)
    assert get_table(reader_key, etag=v1.etag).status_code == 304
    make_route_rule(tenant)
    v2 = publish(tenant, django_capture_on_commit_callbacks)
    response = get_table(reader_key, etag=v1.etag)
    assert response.status_code == 200 and response.json()["version"] == 2 and response["ETag"] == v2.etag
    with django_capture_on_commit_callbacks(execute=True):
        v3 = route_table_rollback(version=v1, actor="admin")
    response = get_table(reader_key, etag=v2.etag)
    assert response.status_code == 200 and response["ETag"] == v3.etag
    assert response.json()["rules"] == json.loads(bytes(v1.body))["rules"]


def test_other_processes_follow_a_publication_within_the_recheck_interval(
    tenant, reader_key, django_capture_on_commit_callbacks
):
    """Each process compares its local copy with the shared current version once per recheck interval."""
    make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    get_table(reader_key)
    old_local = routing_cache._local[tenant.pk]
    make_route_rule(tenant)
    v2 = publish(tenant, django_capture_on_commit_callbacks)
    assert get_table(reader_key)["ETag"] == v2.etag  # the publishing process serves it at once
    routing_cache._local[tenant.pk] = old_local  # another process, which checked v1 a moment ago
    old_local.checked_until = time.monotonic() + 60
    assert get_table(reader_key).json()["version"] == 1  # within its interval it serves its copy
    old_local.checked_until = time.monotonic() - 0.001  # the interval has passed
    response = get_table(reader_key)
    assert response.json()["version"] == 2 and response["ETag"] == v2.etag


def test_with_a_zero_interval_every_request_checks_the_version(
    tenant, reader_key, settings, django_capture_on_commit_callbacks
):
    settings.ROUTING_TABLE_RECHECK_SECONDS = 0
    make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    get_table(reader_key)
    old_local = routing_cache._local[tenant.pk]
    make_route_rule(tenant)
    publish(tenant, django_capture_on_commit_callbacks)
    routing_cache._local[tenant.pk] = old_local
    old_local.checked_until = time.monotonic() + 60  # ignored: no interval
    assert get_table(reader_key).json()["version"] == 2


def test_the_cache_heals_when_the_shared_entry_is_lost(tenant, reader_key, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    make_route_rule(tenant)
    version = publish(tenant, django_capture_on_commit_callbacks)
    cache.clear()  # e.g. Redis restarted
    routing_cache.forget_local()
    response = get_table(reader_key)
    assert response["ETag"] == version.etag and response.content == bytes(version.body)


def test_revoking_the_key_takes_effect_at_once(tenant, reader_key, admin_client):
    from tenants.models import ApiKey
    from tenants.services import api_key_hash

    assert get_table(reader_key).status_code == 200  # the key is now cached, in the shared cache and locally
    key = ApiKey.objects.get(secret_hash=api_key_hash(reader_key))
    assert admin_client.post(f"/api/v1/api-keys/{key.pk}/revoke").status_code == 200
    response = get_table(reader_key)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "status": 401,
        "code": "revoked_api_key",
        "message": "This API key has been revoked.",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def revoke_in_another_process(secret: str) -> None:
    """What api_key_revoke does, seen from a process that did not run it: the row changes and the shared
    cache entry goes, but no signal reaches this process."""
    from django.core.cache import cache
    from django.utils import timezone

    from tenants.models import ApiKey
    from tenants.services import api_key_cache_key, api_key_hash

    ApiKey.objects.filter(secret_hash=api_key_hash(secret)).update(revoked_at=timezone.now())
    cache.delete(api_key_cache_key(api_key_hash(secret)))


def test_a_revocation_in_another_process_takes_effect_within_the_memo_interval(tenant, reader_key):
    from tenants.services import api_key_hash

    assert get_table(reader_key).status_code == 200
    revoke_in_another_process(reader_key)
    assert get_table(reader_key).status_code == 200  # trusted for up to ROUTING_KEY_MEMO_SECONDS (1 s)
    valid_until, context = routing_cache._key_memo[api_key_hash(reader_key)]
    assert valid_until - time.monotonic() <= 1.0
    routing_cache._key_memo[api_key_hash(reader_key)] = (time.monotonic() - 0.001, context)  # a second later
    assert get_table(reader_key).status_code == 401


def test_without_the_memo_a_revocation_anywhere_takes_effect_at_once(tenant, reader_key, settings):
    settings.ROUTING_KEY_MEMO_SECONDS = 0
    assert get_table(reader_key).status_code == 200
    revoke_in_another_process(reader_key)
    assert get_table(reader_key).status_code == 401


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "not_authenticated"), ("Token abc", "malformed_authorization"), ("Bearer nope", "invalid_api_key")],
)
def test_bad_credentials_get_401_in_the_error_envelope(tenant, header, code):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get(URL, **extra)
    assert response.status_code == 401 and response.json()["error"]["code"] == code


def test_the_scope_is_checked(tenant):
    key = make_api_key(tenant, scopes=["examples:write"])[1]
    response = get_table(key)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "missing_scope" and "'routing:read'" in error["message"]


def test_other_methods_get_405(reader_key):
    response = Client().post(URL, HTTP_AUTHORIZATION=f"Bearer {reader_key}")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_cache_max_age_comes_from_the_published_settings(
    tenant, reader_key, admin_client, django_capture_on_commit_callbacks
):
    make_route_rule(tenant)
    admin_client.patch("/api/v1/routing/settings", {"cache_max_age": 5}, format="json")
    publish(tenant, django_capture_on_commit_callbacks)
    assert get_table(reader_key)["Cache-Control"] == "private, max-age=5"


def test_a_key_never_reads_another_tenants_table_or_etag(tenant, reader_key, django_capture_on_commit_callbacks):
    """routing-table takes no id: the table is the key's tenant's, and another tenant's ETag never matches."""
    other = make_tenant("globex")
    other_key = make_api_key(other, scopes=["routing:read"])[1]
    rule = make_route_rule(tenant)
    mine = publish(tenant, django_capture_on_commit_callbacks)
    make_route_rule(other)
    theirs = publish(other, django_capture_on_commit_callbacks)

    response = get_table(other_key)
    assert response.json()["tenant"] == "globex" and rule.task.slug not in response.json()["rules"]
    assert response["ETag"] == theirs.etag != mine.etag
    # Sending tenant A's ETag with B's key is not a 304: B learns nothing about A's table.
    response = get_table(other_key, etag=mine.etag)
    assert response.status_code == 200 and response.content == bytes(theirs.body)
    assert get_table(reader_key).json()["tenant"] == "acme"
    # Same version number, same rules shape: still different ETags (the body names the tenant).
    fresh_a, fresh_b = make_tenant("initech"), make_tenant("umbrella")
    etag_a = get_table(make_api_key(fresh_a, scopes=["routing:read"])[1])["ETag"]
    etag_b = get_table(make_api_key(fresh_b, scopes=["routing:read"])[1])["ETag"]
    assert etag_a != etag_b


@pytest.mark.django_db
def test_table_endpoint_throttles_failed_keys_and_counts_requests(client, settings):
    from controlplane.metrics import ROUTING_REQUESTS, BatchedRequestMetrics

    settings.AUTH_FAILURE_LIMIT_PER_ADDRESS = 3
    statuses = [
        client.get("/api/v1/routing/table", HTTP_AUTHORIZATION=f"Bearer cpnope{i}_guess").status_code for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    response = client.get("/api/v1/routing/table", HTTP_AUTHORIZATION="Bearer cpnope_again")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "throttled"
    BatchedRequestMetrics.flush_all()  # what a /metrics scrape does first
    assert ROUTING_REQUESTS.labels(endpoint="table", status="429")._value.get() >= 3


def test_the_benchmark_baseline_answers_valid_json_of_the_requested_size(settings):
    import json

    from routing.api.views import _bench_body

    for size in (0, 1109, 5000):
        settings.ROUTING_BENCH_BODY_BYTES = size
        _bench_body.cache_clear()
        body = _bench_body()
        assert len(body) == max(size, 81) and json.loads(body)["default"] == {"route": "frontier", "model": None}
    _bench_body.cache_clear()
