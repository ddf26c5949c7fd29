"""PostgreSQL stopped under API traffic: requests fail fast with 503 and recover when it is back.

Runs a private PostgreSQL cluster and a real gunicorn against it, so stopping the database touches
nothing else in the suite."""

import os
import tempfile

import pytest

from tests.processes import free_port, http, manage, private_postgres, web_server

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


@pytest.fixture(scope="module")
def stack():
    with private_postgres() as cluster:
        data_dir = tempfile.mkdtemp(prefix="cp-fault-")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.local",
            "DEBUG": "False",
            "DATABASE_URL": cluster.url,
            "DATA_DIR": data_dir,
            "CACHE_URL": f"filecache://{data_dir}/cache",
            "CELERY_BROKER_URL": "filesystem://",
        }
        env.pop("PYTEST_XDIST_WORKER", None)
        manage(env, "migrate", "--noinput")
        manage(env, "create_tenant", "faulty", "--owner", "ops@example.com")
        key = manage(env, "create_api_key", "faulty").strip().splitlines()[-1]
        with web_server(env, free_port()) as base:
            yield cluster, base, key


def test_requests_fail_fast_with_503_and_recover(stack):
    cluster, base, key = stack
    auth = {"Authorization": f"Bearer {key}"}
    status, _, body, _ = http("GET", f"{base}/api/v1/tenant", headers=auth)
    assert status == 200, body

    cluster.stop()
    try:
        for path in ("/api/v1/tenant", "/api/v1/api-keys/"):
            status, headers, body, seconds = http("GET", f"{base}{path}", headers=auth)
            assert status == 503, (path, status, body[:300])
            assert headers.get("Retry-After") == "5"
            assert seconds < 5, f"{path} took {seconds:.1f}s to fail"
        status, _, body, _ = http("GET", f"{base}/api/v1/tenant", headers=auth)
        assert b"database_unavailable" in body
        status, _, body, _ = http("GET", f"{base}/healthz")
        assert status == 503 and b'"database": {"ok": false' in body
    finally:
        cluster.start()

    status, _, body, _ = http("GET", f"{base}/api/v1/tenant", headers=auth)
    assert status == 200, body
