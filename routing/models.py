"""Route tables: a per-tenant draft of rules, immutable published versions, and reported outcomes."""

from django.db import models
from django.utils import timezone

from tenants.models import TenantOwned
from training.models import ModelVersion, Task


class RouteRule(TenantOwned):
    """The draft rule for one task. Publishing copies every draft rule into a new immutable version."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="route_rules")
    enabled = models.BooleanField(default=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="route_rules")
    threshold = models.FloatField()
    fallback_model = models.CharField(max_length=100, blank=True, help_text="Defaults to the task's frontier model.")
    canary_percent = models.FloatField(default=100.0)
    shadow = models.BooleanField(default=False)
    updated_by = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["task__slug"]
        constraints = [models.UniqueConstraint(fields=["tenant", "task"], name="route_rule_unique_task_per_tenant")]


class RouteTableSettings(TenantOwned):
    """The draft table's defaults: where a task that is not in scope goes."""

    default_model = models.CharField(max_length=100, blank=True, help_text="Frontier model for tasks not in scope.")
    cache_max_age = models.PositiveIntegerField(default=30)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="route_settings_one_per_tenant")]


class RouteTableVersion(TenantOwned):
    """An immutable published table. `body` and `etag` are compiled once, at publish time."""

    version = models.PositiveIntegerField()
    content = models.JSONField()
    body = models.BinaryField()
    etag = models.CharField(max_length=80)
    published_by = models.CharField(max_length=200)
    published_at = models.DateTimeField(default=timezone.now, editable=False)
    note = models.CharField(max_length=300, blank=True)
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["tenant", "version"], name="route_version_unique_per_tenant")]

    def __str__(self) -> str:
        return f"v{self.version}"


class Outcome(TenantOwned):
    """One routed request as a tenant's service reported it."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="outcomes")
    route = models.CharField(max_length=10)
    confidence = models.FloatField(null=True, blank=True)
    fell_back = models.BooleanField(default=False)
    shadow = models.BooleanField(default=False)
    agreed = models.BooleanField(null=True, blank=True, help_text="Small and frontier answers agree (when both known).")
    input = models.TextField(blank=True)
    small_output = models.TextField(blank=True)
    frontier_output = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    reported_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-reported_at", "-id"]
        indexes = [models.Index(fields=["tenant", "task", "reported_at"])]


class OutcomeDaily(TenantOwned):
    """Outcomes aggregated per task and day."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    kept_by_small = models.PositiveIntegerField(default=0)
    fell_back = models.PositiveIntegerField(default=0)
    shadow_compared = models.PositiveIntegerField(default=0)
    shadow_agreed = models.PositiveIntegerField(default=0)
    realised_saving = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["tenant", "task", "day"], name="outcome_daily_unique")]
