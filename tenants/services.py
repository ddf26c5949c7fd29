"""Writes to tenants, memberships and API keys. Views, commands and admin call these, never the ORM."""

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant
from tenants.scopes import ALL_SCOPES

User = get_user_model()

API_KEY_PREFIX_LETTERS = "cp"
API_KEY_CACHE_PREFIX = "apikey:"


def api_key_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_key_cache_key(secret_hash: str) -> str:
    return API_KEY_CACHE_PREFIX + secret_hash


def audit_record(*, tenant: Tenant | int, actor: str, action: str, target: str = "", data: dict | None = None) -> None:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    AuditEvent.objects.create(tenant_id=tenant_id, actor=actor, action=action, target=target, data=data or {})


def user_get_or_create(*, email: str, password: str | None = None) -> tuple["User", bool]:
    """Users sign in with their email; the username is the lower-cased email."""
    email = User.objects.normalize_email(email).lower()
    user, created = User.objects.get_or_create(username=email, defaults={"email": email})
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user, created


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner) -> Tenant:
    slug = slugify(slug)
    if not slug:
        raise ValidationError({"slug": "Use letters, numbers, hyphens or underscores."})
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The organisation slug '{slug}' is taken; choose another."})
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    audit_record(tenant=tenant, actor=owner.email, action="tenant.created", target=slug)
    return tenant


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    plaintext: str  # shown to the caller once; never stored


def _validate_scopes(scopes: list[str] | None) -> list[str]:
    if not scopes:
        return list(ALL_SCOPES)
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope(s) {', '.join(unknown)}; valid: {', '.join(ALL_SCOPES)}."})
    return sorted(set(scopes), key=ALL_SCOPES.index)


@transaction.atomic
def api_key_create(
    *, tenant: Tenant, name: str, scopes: list[str] | None = None, created_by=None, expires_at=None, actor: str = ""
) -> CreatedApiKey:
    """Create a key `<prefix>_<secret>`; the secret carries 256 random bits."""
    scopes = _validate_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    prefix = API_KEY_PREFIX_LETTERS + secrets.token_hex(5)
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name or "API key",
        scopes=scopes,
        prefix=prefix,
        secret_hash=api_key_hash(plaintext),
        last_four=plaintext[-4:],
        created_by=created_by,
        expires_at=expires_at,
    )
    audit_record(
        tenant=tenant,
        actor=actor or (created_by.email if created_by else "system"),
        action="api_key.created",
        target=api_key.masked,
        data={"name": api_key.name, "scopes": scopes},
    )
    return CreatedApiKey(api_key=api_key, plaintext=plaintext)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: str) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(tenant=api_key.tenant_id, actor=actor, action="api_key.revoked", target=api_key.masked)
    # Drop the cached authentication in the shared cache now and again after commit: a request that
    # re-cached the key between the two would otherwise keep it alive for up to API_KEY_CACHE_SECONDS.
    cache_key = api_key_cache_key(api_key.secret_hash)
    cache.delete(cache_key)
    transaction.on_commit(lambda: cache.delete(cache_key))
    return api_key


def _owner_count(tenant_id: int) -> int:
    return Membership.objects.for_tenant(tenant_id).filter(role=Role.OWNER).count()


def _check_role_change_allowed(*, actor_role: str, old_role: str | None, new_role: str | None) -> None:
    """Owners manage everyone; admins manage admins, members and viewers, but never owners."""
    if actor_role == Role.OWNER:
        return
    if actor_role != Role.ADMIN:
        raise PermissionError("Only owners and admins manage members.")
    if Role.OWNER in (old_role, new_role):
        raise PermissionError("Only an owner can grant, change or remove the owner role.")


@transaction.atomic
def membership_add(*, tenant: Tenant, email: str, role: str, actor_role: str | None, actor: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role '{role}'; valid: {', '.join(Role.values)}."})
    _check_role_change_allowed(actor_role=actor_role, old_role=None, new_role=role)
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(username=email).first()
    if user is None:
        raise ValidationError({"email": f"No account uses {email}; ask them to sign up first, then add them."})
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise ValidationError({"email": f"{email} is already a member of {tenant.slug}."})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit_record(tenant=tenant, actor=actor, action="member.added", target=email, data={"role": role})
    return membership


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor_role: str | None, actor: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role '{role}'; valid: {', '.join(Role.values)}."})
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _check_role_change_allowed(actor_role=actor_role, old_role=membership.role, new_role=role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(membership.tenant_id) == 1:
        raise ValidationError({"role": "This is the last owner; make someone else owner first."})
    old_role = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        tenant=membership.tenant_id,
        actor=actor,
        action="member.role_changed",
        target=membership.user.email,
        data={"from": old_role, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor_role: str | None, actor: str) -> None:
    _check_role_change_allowed(actor_role=actor_role, old_role=membership.role, new_role=None)
    if membership.role == Role.OWNER and _owner_count(membership.tenant_id) == 1:
        raise ValidationError({"role": "This is the last owner; a tenant must keep at least one owner."})
    audit_record(tenant=membership.tenant_id, actor=actor, action="member.removed", target=membership.user.email)
    membership.delete()
