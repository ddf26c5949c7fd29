"""The one base for tenant-owned API resources.

Subclasses may not override `get_queryset`, `get_object` or `get_permissions`: the tenant filter and
the scope check are applied here, from the request's authenticated context (an API key or the
signed-in user's current tenant), never from the request body. Subclasses narrow rows through
`scope_queryset`. Another tenant's object is simply not in the queryset, so it answers 404.
"""

from rest_framework import viewsets
from rest_framework.exceptions import NotAuthenticated

from tenants.context import TenantContext

_SEALED = ("get_queryset", "get_object", "get_permissions")


class TenantScopedMixin:
    model = None  # the tenant-owned model served
    required_scopes: dict[str, str] = {}
    action_scopes: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); tenant-scoped views narrow rows with scope_queryset()."
                )

    @property
    def tenant_context(self) -> TenantContext:
        context = self.request.auth
        if not isinstance(context, TenantContext):
            raise NotAuthenticated()
        return context

    @property
    def tenant_id(self) -> int:
        return self.tenant_context.tenant_id

    def scope_queryset(self, queryset):
        """Hook: narrow (filter, select_related, order) the tenant's rows. Never widen."""
        return queryset

    def get_queryset(self):
        queryset = self.model._default_manager.all().for_tenant(self.tenant_id)
        return self.scope_queryset(queryset)


class TenantScopedViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """Base for every tenant-owned resource under /api/v1/."""

    lookup_value_regex = "[^/]+"
