"""The caller's tenant, resolved once per request from an API key or the session's current tenant."""

from dataclasses import dataclass, field
from functools import cached_property

from tenants.models import Role, Tenant
from tenants.scopes import Scope


@dataclass(frozen=True)
class TenantContext:
    """Everything a request may know about who is calling. Never built from the request body."""

    tenant_id: int
    tenant_slug: str
    scopes: frozenset[str]
    role: str | None = None  # the membership role for a signed-in user; None for an API key
    api_key_id: int | None = None
    api_key_prefix: str | None = None
    user_id: int | None = None
    user_email: str | None = field(default=None, compare=False)

    @cached_property
    def tenant(self) -> Tenant:
        return Tenant.objects.get(pk=self.tenant_id)

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        if self.user_email:
            return self.user_email
        return f"api-key {self.api_key_prefix}"

    @property
    def acting_role(self) -> str | None:
        """The role the caller manages members with: its membership's, or admin for a key with the admin scope
        (a key never acts as an owner)."""
        return self.role or (Role.ADMIN if Scope.ADMIN.value in self.scopes else None)

    def has_scope(self, scope: str | None) -> bool:
        return scope is None or scope in self.scopes
