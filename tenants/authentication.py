"""API authentication: `Authorization: Bearer <key>` or a signed-in session, each resolving a tenant.

A warm API-key lookup touches only the cache: the key's hash maps to its tenant and scopes for
API_KEY_CACHE_SECONDS, so a revoked key stops working within that time (at once where the shared
cache entry is deleted by the revocation).
"""

from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from tenants.context import TenantContext
from tenants.models import ApiKey
from tenants.selectors import tenant_context_for_user
from tenants.services import api_key_cache_key, api_key_hash
from tenants.throttling import any_blocked, auth_failure_subjects, blocked_for, record_failure

SESSION_TENANT_KEY = "current_tenant_id"


class ApiKeyUser(AnonymousUser):
    """The request.user of an API-key request: not a person, but authenticated."""

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return "api-key"


def _cached_key_record(secret_hash: str) -> dict | None:
    cache_key = api_key_cache_key(secret_hash)
    record = cache.get(cache_key)
    if record is not None:
        return record
    api_key = ApiKey.objects.filter(secret_hash=secret_hash).select_related("tenant").first()
    if api_key is None:
        return None  # unknown keys are not cached: a stream of random keys must not fill the cache
    now = timezone.now()
    record = {
        "key_id": api_key.pk,
        "prefix": api_key.prefix,
        "tenant_id": api_key.tenant_id,
        "tenant_slug": api_key.tenant.slug,
        "scopes": tuple(api_key.scopes),
        "expires_at": api_key.expires_at.timestamp() if api_key.expires_at else None,
        "revoked": api_key.revoked_at is not None,
    }
    cache.set(cache_key, record, settings.API_KEY_CACHE_SECONDS)
    if not record["revoked"]:
        # Written at most once per cache period, so the hot path stays free of writes.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return record


def authenticate_api_key(plaintext: str) -> TenantContext:
    """Resolve a key to its tenant context, or raise AuthenticationFailed (401)."""
    record = _cached_key_record(api_key_hash(plaintext))
    if record is None:
        raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
    if record["revoked"]:
        raise exceptions.AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    expires_at = record["expires_at"]
    if expires_at is not None and expires_at <= datetime.now().timestamp():
        raise exceptions.AuthenticationFailed("This API key has expired.", code="expired_api_key")
    return TenantContext(
        tenant_id=record["tenant_id"],
        tenant_slug=record["tenant_slug"],
        scopes=frozenset(record["scopes"]),
        api_key_id=record["key_id"],
        api_key_prefix=record["prefix"],
    )


def authenticate_bearer(
    request, resolve: Callable[[str], TenantContext] = authenticate_api_key
) -> TenantContext | None:
    """Authenticate `Authorization: Bearer <key>` with failure throttling; None when there is no header.

    `resolve` turns the key into a context (the routing table's hot path passes its per-process memo). Raises
    AuthenticationFailed (401) for a bad key and Throttled (429) for a caller that failed too often.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    parts = header.split()
    key = parts[1] if len(parts) == 2 else ""
    if any_blocked():  # the subjects are built only while some block is in force in this process
        wait = blocked_for(auth_failure_subjects(request, key))
        if wait:
            raise exceptions.Throttled(wait, detail="Too many failed authentication attempts; retry later.")
    try:
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; expected 'Authorization: Bearer <api key>'.",
                code="malformed_authorization",
            )
        return resolve(key)
    except exceptions.AuthenticationFailed:
        wait = record_failure(auth_failure_subjects(request, key))
        if wait:
            raise exceptions.Throttled(wait, detail="Too many failed authentication attempts; retry later.") from None
        raise


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        context = authenticate_bearer(request)
        return None if context is None else (ApiKeyUser(), context)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class TenantSessionAuthentication(authentication.SessionAuthentication):
    """A signed-in user working in their current tenant (CSRF enforced, as for any session)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        context = tenant_context_for_user(user, request._request.session.get(SESSION_TENANT_KEY))
        return user, context
