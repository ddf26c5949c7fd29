from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tenants.models import ApiKey
from tenants.services import api_key_hash
from tests.conftest import client_for_key
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_create_returns_secret_once_and_stores_only_its_hash(admin_client, tenant):
    response = admin_client.post("/api/v1/api-keys/", {"name": "ingest", "scopes": ["examples:write"]}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    prefix, _, random_part = secret.partition("_")
    assert len(random_part) >= 22  # token_urlsafe(32): 256 bits, well over the 128 required
    key = ApiKey.objects.get(pk=response.json()["id"])
    assert key.prefix == prefix and key.scopes == ["examples:write"]
    assert key.secret_hash == api_key_hash(secret)
    # The plaintext is nowhere in the database, in any column of any table row.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_apikey")
        rows = cursor.fetchall()
    assert all(secret not in str(value) and random_part not in str(value) for row in rows for value in row)

    listing = admin_client.get("/api/v1/api-keys/").json()["results"]
    listed = next(item for item in listing if item["id"] == key.pk)
    assert "secret" not in listed
    assert listed["key"] == f"{prefix}_…{secret[-4:]}"
    assert secret not in str(listing)
    assert admin_client.get(f"/api/v1/api-keys/{key.pk}").json().get("secret") is None


def test_new_key_authenticates_as_its_tenant(admin_client, tenant):
    secret = admin_client.post("/api/v1/api-keys/", {"name": "reader", "scopes": ["routing:read"]}, format="json")
    body = client_for_key(secret.json()["secret"]).get("/api/v1/tenant").json()
    assert body["slug"] == "acme" and body["scopes"] == ["routing:read"] and body["role"] is None


@pytest.mark.parametrize(
    ("scopes", "method", "path", "expected"),
    [
        (["routing:read"], "get", "/api/v1/api-keys/", 403),
        (["admin"], "get", "/api/v1/api-keys/", 200),
        (["examples:write"], "post", "/api/v1/api-keys/", 403),
        (["admin"], "post", "/api/v1/api-keys/", 201),
        (["routing:read"], "get", "/api/v1/members/", 403),
        (["admin"], "get", "/api/v1/members/", 200),
        (["routing:read"], "get", "/api/v1/tenant", 200),
    ],
)
def test_scope_enforced_per_method(tenant, scopes, method, path, expected):
    _, secret = make_api_key(tenant, scopes=scopes)
    response = getattr(client_for_key(secret), method)(path, {"name": "x"}, format="json")
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["error"]["code"] == "missing_scope"
        assert "admin" in response.json()["error"]["message"]


def test_revoked_key_gets_401_at_once(admin_client, tenant):
    key, secret = make_api_key(tenant)
    client = client_for_key(secret)
    assert client.get("/api/v1/tenant").status_code == 200  # warms the cache
    assert admin_client.post(f"/api/v1/api-keys/{key.pk}/revoke").status_code == 200
    response = client.get("/api/v1/tenant")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_delete_revokes_and_keeps_the_row(admin_client, tenant):
    key, secret = make_api_key(tenant)
    assert admin_client.delete(f"/api/v1/api-keys/{key.pk}").status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client_for_key(secret).get("/api/v1/tenant").status_code == 401


def test_expired_key_gets_401(tenant):
    key, secret = make_api_key(tenant, expires_at=timezone.now() + timedelta(hours=1))
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_for_key(secret).get("/api/v1/tenant")
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_api_key"


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer nope", "Token abc", "Bearer cp0000000000_" + "A" * 43, "Basic dXNlcjpwYXNz"]
)
def test_bad_credentials_get_401_with_the_error_envelope(api_client, tenant, header):
    response = api_client.get("/api/v1/tenant", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == 401 and error["message"]


def test_no_credentials_get_401(api_client):
    response = api_client.get("/api/v1/tenant")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_key_never_authenticates_as_another_tenant(tenant, other_tenant):
    _, secret_a = make_api_key(tenant)
    _, secret_b = make_api_key(other_tenant)
    assert client_for_key(secret_a).get("/api/v1/tenant").json()["slug"] == "acme"
    assert client_for_key(secret_b).get("/api/v1/tenant").json()["slug"] == "globex"
    # Swapping the prefix of one key onto the other's secret authenticates as nobody.
    forged = secret_b.split("_")[0] + "_" + secret_a.split("_", 1)[1]
    assert client_for_key(forged).get("/api/v1/tenant").status_code == 401


def test_tenant_is_never_read_from_the_request_body(admin_client, tenant, other_tenant):
    response = admin_client.post(
        "/api/v1/api-keys/", {"name": "sneaky", "tenant": other_tenant.pk, "tenant_id": other_tenant.pk}, format="json"
    )
    assert response.status_code == 201
    assert ApiKey.objects.get(pk=response.json()["id"]).tenant_id == tenant.pk


def test_unknown_scope_is_a_clear_400(admin_client):
    response = admin_client.post("/api/v1/api-keys/", {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "scopes" in error["details"]


def test_warm_key_authentication_makes_no_query(tenant, django_assert_num_queries):
    _, secret = make_api_key(tenant)
    from tenants.authentication import authenticate_api_key

    authenticate_api_key(secret)
    with django_assert_num_queries(0):
        context = authenticate_api_key(secret)
    assert context.tenant_id == tenant.pk


def test_create_api_key_command_prints_key_last(tenant, capsys):
    from django.core.management import call_command

    call_command("create_api_key", "acme", "--scope", "routing:read", "--name", "svc")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert client_for_key(last_line).get("/api/v1/tenant").json()["scopes"] == ["routing:read"]


def test_create_api_key_command_defaults_to_all_scopes(tenant, capsys):
    from django.core.management import call_command

    from tenants.scopes import ALL_SCOPES

    call_command("create_api_key", "acme")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert sorted(client_for_key(last_line).get("/api/v1/tenant").json()["scopes"]) == sorted(ALL_SCOPES)
