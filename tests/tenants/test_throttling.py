import pytest
from django.test import Client, override_settings

from tests.conftest import client_for_key
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@override_settings(AUTH_FAILURE_LIMIT_PER_ADDRESS=5, AUTH_FAILURE_LIMIT_PER_PREFIX=100)
def test_failed_keys_from_one_address_are_throttled_with_retry_after(api_client, tenant):
    statuses = [
        api_client.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer cpbad{i:07d}_guess").status_code for i in range(7)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    response = api_client.get("/api/v1/tenant", HTTP_AUTHORIZATION="Bearer cpbad_again")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "throttled"
    # Blocked addresses are refused before the key is checked, even a valid one.
    _, secret = make_api_key(tenant)
    assert client_for_key(secret).get("/api/v1/tenant").status_code == 429
    # Another address is unaffected.
    assert client_for_key(secret).get("/api/v1/tenant", REMOTE_ADDR="10.9.9.9").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT_PER_ADDRESS=1000, AUTH_FAILURE_LIMIT_PER_PREFIX=3)
def test_failed_guesses_at_one_prefix_are_throttled_across_addresses(api_client, tenant):
    key, _ = make_api_key(tenant)
    statuses = [
        api_client.get(
            "/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer {key.prefix}_wrong{i}", REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


@override_settings(AUTH_FAILURE_LIMIT_PER_ADDRESS=3)
def test_failed_logins_are_throttled(owner):
    client = Client()
    statuses = [client.post("/login/", {"username": owner.email, "password": "wrong"}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = client.post("/login/", {"username": owner.email, "password": "correct-horse-battery-staple"})
    assert response.status_code == 429 and response["Retry-After"]


def test_expired_blocks_are_dropped_even_for_callers_that_never_return(monkeypatch):
    """The hot path skips the throttling check while no block is in force; an ended block of an address that
    never comes back must not keep that check on for good."""
    from tenants import throttling

    now = [1000.0]
    monkeypatch.setattr(throttling, "_monotonic", lambda: now[0])
    throttling._local_blocks.update({"ip:10.0.0.1": 1030.0, "ip:10.0.0.2": 1060.0})
    assert throttling.any_blocked()
    assert throttling.blocked_for(["ip:10.0.0.1"]) == 31
    now[0] = 1045.0  # the first block has ended, the second has not
    assert throttling.blocked_for(["ip:10.0.0.3"]) is None and throttling.any_blocked()
    assert set(throttling._local_blocks) == {"ip:10.0.0.2"}
    now[0] = 1061.0  # a request from a third address is enough to drop the second block
    assert throttling.blocked_for(["ip:10.0.0.3"]) is None
    assert not throttling.any_blocked()
