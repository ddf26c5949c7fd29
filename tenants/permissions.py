"""Scope checks: every API view declares the scope each HTTP method needs, and undeclared means denied."""

from rest_framework import exceptions, permissions

from controlplane.logging_context import set_log_tenant
from tenants.context import TenantContext

PUBLIC = "public"  # a method open to any authenticated caller with a tenant


def required_scope(view, method: str) -> str | None:
    """The scope a view needs for `method`; raises if the view forgot to declare one (fail closed)."""
    action_scopes = getattr(view, "action_scopes", None) or {}
    action = getattr(view, "action", None)
    if action and action in action_scopes:
        return action_scopes[action]
    scopes = getattr(view, "required_scopes", None)
    if scopes is None or method not in scopes:
        if method in ("HEAD", "OPTIONS") and scopes and "GET" in scopes:
            return scopes["GET"]
        raise exceptions.PermissionDenied(f"{method} is not allowed on this endpoint.")
    return scopes[method]


class HasTenantScope(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        context = request.auth
        if not isinstance(context, TenantContext):
            if request.user and request.user.is_authenticated:
                raise exceptions.PermissionDenied(
                    "You are not a member of any organisation yet; create one first.", code="no_tenant"
                )
            raise exceptions.NotAuthenticated()
        set_log_tenant(context.tenant_id)
        scope = required_scope(view, request.method)
        if scope == PUBLIC or context.has_scope(scope):
            return True
        raise exceptions.PermissionDenied(
            f"This request needs the '{scope}' scope; the caller has: {', '.join(sorted(context.scopes)) or 'none'}.",
            code="missing_scope",
        )
