import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import make_api_key, make_tenant, make_user


@pytest.fixture(autouse=True)
def _clear_cache():
    from routing.cache import forget_local
    from tenants.throttling import reset_local_blocks

    cache.clear()
    reset_local_blocks()
    forget_local()  # per-process copies of tables and keys: test databases reuse ids
    yield
    cache.clear()
    reset_local_blocks()
    forget_local()


@pytest.fixture
def api_client():
    return APIClient()


def client_for_key(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def owner(db):
    return make_user("owner@example.com")


@pytest.fixture
def tenant(db, owner):
    return make_tenant("acme", owner=owner)


@pytest.fixture
def other_tenant(db):
    return make_tenant("globex")


@pytest.fixture
def admin_key(tenant):
    return make_api_key(tenant)[1]


@pytest.fixture
def admin_client(admin_key):
    return client_for_key(admin_key)


@pytest.fixture(autouse=True)
def _one_integration_test_at_a_time(request):
    """Integration tests share the broker's queues (and a stolen message would act on another test
    database's row), so test processes take turns with a file lock. `xdist_group` marks say the same, but
    pytest-xdist 3.8 ignores them under pytest 9.2 (pytest-dev/pytest-xdist#1386)."""
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    import fcntl

    from django.conf import settings

    with open(settings.DATA_DIR / "integration-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
