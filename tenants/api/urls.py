from django.urls import path

from tenants.api import views


def register(router) -> list:
    """Add this app's resources to the shared API router; return its plain paths."""
    router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
    router.register("members", views.MembershipViewSet, basename="member")
    router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
    return [path("tenant", views.TenantView.as_view(), name="tenant")]
