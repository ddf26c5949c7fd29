"""Cross-tenant isolation, generated from the URL resolver.

Every route under /api/v1/ is enumerated. Routes served by a tenant-scoped viewset get an object of
tenant A from `tests.factories.OBJECT_FACTORIES`; tenant B's key (holding every scope) must get 404 on
every method of A's object routes, and A's rows must never appear in B's lists. Routes that are not
object routes must be listed in NON_OBJECT_ROUTES with the test that covers them. A new route in
neither place fails `test_every_api_route_is_covered`, so new endpoints are covered by construction.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tenants.viewsets import TenantScopedMixin
from tests.conftest import client_for_key
from tests.factories import OBJECT_FACTORIES, make_api_key, make_tenant
from tests.isolation_routes import NON_OBJECT_ROUTES as EXTRA_NON_OBJECT_ROUTES

# Route name -> where its isolation is shown (these routes take no object id from the URL).
NON_OBJECT_ROUTES = {
    "tenant": "tests/tenants/test_api_keys.py::test_a_key_never_authenticates_as_another_tenant",
}
NON_OBJECT_ROUTES.update(EXTRA_NON_OBJECT_ROUTES)


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def api_routes() -> list[dict]:
    routes = []
    for pattern, entry in _walk(get_resolver().url_patterns):
        if not pattern.startswith("api/v1/"):
            continue
        view_class = getattr(entry.callback, "cls", None)
        actions = getattr(entry.callback, "actions", None) or {}
        methods = [m.upper() for m in actions] if actions else []
        if not methods and view_class is not None:
            methods = [m.upper() for m in view_class.http_method_names if hasattr(view_class, m) and m != "options"]
        routes.append(
            {
                "name": entry.name,
                "pattern": pattern,
                "kwargs": sorted(entry.pattern.regex.groupindex),
                "view_class": view_class,
                "methods": [m for m in methods if m not in ("HEAD", "OPTIONS")],
            }
        )
    return routes


def _scoped(route) -> bool:
    return route["view_class"] is not None and issubclass(route["view_class"], TenantScopedMixin)


def _value_for(obj, kwarg: str):
    """URL kwarg -> attribute of the object: `pk`, `slug`, or a path such as `task_slug` -> obj.task.slug."""
    current = obj
    if hasattr(current, kwarg):
        return getattr(current, kwarg)
    for part in kwarg.split("_"):
        current = getattr(current, part)
    return current


ROUTES = api_routes()
OBJECT_ROUTES = [r for r in ROUTES if _scoped(r) and r["kwargs"]]
LIST_ROUTES = [r for r in ROUTES if _scoped(r) and not r["kwargs"] and "GET" in r["methods"]]


def test_every_api_route_is_covered():
    assert ROUTES, "no /api/v1/ routes found"
    uncovered = [r["pattern"] for r in ROUTES if not _scoped(r) and r["name"] not in NON_OBJECT_ROUTES]
    assert not uncovered, (
        "These API routes are neither tenant-scoped viewsets nor listed in NON_OBJECT_ROUTES with their "
        f"isolation test: {uncovered}"
    )
    missing_factories = {r["view_class"].model.__name__ for r in ROUTES if _scoped(r)} - {
        model.__name__ for model in OBJECT_FACTORIES
    }
    assert not missing_factories, f"add factories to tests/factories.py OBJECT_FACTORIES for: {missing_factories}"


@pytest.fixture
def two_tenants(db):
    tenant_a, tenant_b = make_tenant("tenant-a"), make_tenant("tenant-b")
    return tenant_a, make_api_key(tenant_a)[1], tenant_b, make_api_key(tenant_b)[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("route", "method"),
    [(r, m) for r in OBJECT_ROUTES for m in r["methods"]],
    ids=lambda value: value["name"] if isinstance(value, dict) else value,
)
def test_other_tenants_object_answers_404(two_tenants, route, method):
    tenant_a, key_a, _, key_b = two_tenants
    model = route["view_class"].model
    obj = OBJECT_FACTORIES[model](tenant_a)
    url = reverse(route["name"], kwargs={k: _value_for(obj, k) for k in route["kwargs"]})
    response = getattr(client_for_key(key_b), method.lower())(url, {}, format="json")
    assert response.status_code == 404, f"{method} {url} as tenant B answered {response.status_code}"
    assert response.json()["error"]["code"] == "not_found"
    assert model._default_manager.filter(pk=obj.pk).exists(), "tenant B changed tenant A's object"
    if method == "GET":
        # The check can fail: the same request as tenant A finds the object.
        assert client_for_key(key_a).get(url).status_code != 404


@pytest.mark.django_db
@pytest.mark.parametrize("route", LIST_ROUTES, ids=lambda r: r["name"])
def test_lists_never_show_another_tenants_rows(two_tenants, route):
    tenant_a, key_a, tenant_b, key_b = two_tenants
    model = route["view_class"].model
    obj_a = OBJECT_FACTORIES[model](tenant_a)
    OBJECT_FACTORIES[model](tenant_b)
    url = reverse(route["name"])

    def ids(key):
        response = client_for_key(key).get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        return {row["id"] for row in (body["results"] if isinstance(body, dict) else body)}

    assert obj_a.pk in ids(key_a)
    assert obj_a.pk not in ids(key_b)
