from tenants.navigation import nav_items
from tenants.selectors import memberships_for_user


def current_tenant(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context = getattr(request, "tenant_context", None)
    return {
        "current_tenant": context if context else None,
        "user_memberships": memberships_for_user(user),
        "app_nav": nav_items(),
    }
