from django.conf import settings
from django.db import models
from django.utils import timezone


class Tenant(models.Model):
    """An organisation: every piece of customer data belongs to exactly one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    max_running_training_jobs = models.PositiveSmallIntegerField(
        default=1, help_text="How many of this tenant's training jobs may run at once; the rest wait queued."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class TenantOwnedQuerySet(models.QuerySet):
    def for_tenant(self, tenant: "Tenant | int") -> "TenantOwnedQuerySet":
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)


class TenantOwned(models.Model):
    """Base for every tenant-owned model: a non-null tenant and a queryset that filters by it.

    Reads in views go through `TenantScopedViewSet` or selectors that call `for_tenant`; the isolation
    test enumerates every API route and proves another tenant's rows answer 404.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        abstract = True


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Membership(TenantOwned):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["tenant", "user__email"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id} as {self.role}"


class ApiKey(TenantOwned):
    """A tenant's API key. Only the SHA-256 of the secret is stored; the plaintext is shown once."""

    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the key, shown in lists.")
    secret_hash = models.CharField(max_length=64, unique=True)
    last_four = models.CharField(max_length=4)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}_…{self.last_four} ({self.name})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}_…{self.last_four}"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditEvent(TenantOwned):
    """Who did what, when: security-relevant actions, visible to the tenant's admins."""

    actor = models.CharField(max_length=200, help_text="User email or API key prefix.")
    action = models.CharField(max_length=50)
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"
