"""Reads of tenants, memberships and keys. Every tenant-owned read takes the tenant explicitly."""

from django.db.models import QuerySet

from tenants.context import TenantContext
from tenants.models import ApiKey, AuditEvent, Membership, Tenant
from tenants.scopes import ROLE_SCOPES


def memberships_for_user(user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name")


def tenant_context_for_user(user, preferred_tenant_id: int | None) -> TenantContext | None:
    """The signed-in user's current tenant: the one chosen in the session, else their first."""
    if not user.is_authenticated:
        return None
    memberships = memberships_for_user(user)
    membership = None
    if preferred_tenant_id is not None:
        membership = memberships.filter(tenant_id=preferred_tenant_id).first()
    if membership is None:
        membership = memberships.first()
    if membership is None:
        return None
    return TenantContext(
        tenant_id=membership.tenant_id,
        tenant_slug=membership.tenant.slug,
        scopes=ROLE_SCOPES[membership.role],
        role=membership.role,
        user_id=user.pk,
        user_email=user.email,
    )


def api_keys_for_tenant(tenant: Tenant | int) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_tenant(tenant).select_related("created_by")


def members_for_tenant(tenant: Tenant | int) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user")


def audit_events_for_tenant(tenant: Tenant | int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.for_tenant(tenant)
