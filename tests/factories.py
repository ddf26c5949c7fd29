"""Factories for every model, in one place. `OBJECT_FACTORIES` maps each tenant-owned model served by
the API to a function that makes one for a tenant: the isolation matrix uses it, and fails for a model
that has none, so a new resource cannot skip the cross-tenant check."""

import itertools
from collections.abc import Callable

from tenants import services
from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant

_counter = itertools.count(1)


def make_user(email: str | None = None, password: str = "correct-horse-battery-staple"):
    email = email or f"user{next(_counter)}@example.com"
    user, _ = services.user_get_or_create(email=email, password=password)
    return user


def make_tenant(slug: str | None = None, owner=None) -> Tenant:
    slug = slug or f"tenant-{next(_counter)}"
    return services.tenant_create(slug=slug, name=slug.title(), owner=owner or make_user())


def make_api_key(tenant: Tenant, scopes: list[str] | None = None, **kwargs) -> tuple[ApiKey, str]:
    created = services.api_key_create(tenant=tenant, name=kwargs.pop("name", "test key"), scopes=scopes, **kwargs)
    return created.api_key, created.plaintext


def make_membership(tenant: Tenant, role: str = Role.MEMBER) -> Membership:
    return Membership.objects.create(tenant=tenant, user=make_user(), role=role)


def make_audit_event(tenant: Tenant) -> AuditEvent:
    return AuditEvent.objects.create(tenant=tenant, actor="someone@example.com", action="test.action")


OBJECT_FACTORIES: dict[type, Callable[[Tenant], object]] = {
    ApiKey: lambda tenant: make_api_key(tenant)[0],
    Membership: make_membership,
    AuditEvent: make_audit_event,
}


def register_factory(model: type, factory: Callable[[Tenant], object]) -> None:
    OBJECT_FACTORIES[model] = factory


# Each area keeps its factories in its own module and registers them here on import.
from tests import factories_examples, factories_jobs, factories_routing  # noqa: E402, F401
