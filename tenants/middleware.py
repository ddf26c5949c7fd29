from django.utils.functional import SimpleLazyObject

from tenants.authentication import SESSION_TENANT_KEY
from tenants.selectors import tenant_context_for_user


class CurrentTenantMiddleware:
    """Gives web views `request.tenant_context`: the signed-in user's current tenant (or None)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant_context = SimpleLazyObject(
            lambda: tenant_context_for_user(request.user, request.session.get(SESSION_TENANT_KEY))
        )
        return self.get_response(request)
