"""Reads of route tables, rules and outcomes. Every function takes the tenant explicitly."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from routing.compiler import CompiledBody, compile_table, content_max_age, diff_contents, empty_content
from routing.drift import WINDOW_HOURS, assess_drift
from routing.models import Outcome, OutcomeDaily, RouteRule, RouteTableSettings, RouteTableVersion
from tenants.models import Tenant
from training.models import ModelVersion, Task


def route_rules_for_tenant(tenant_id: int) -> QuerySet[RouteRule]:
    return RouteRule.objects.for_tenant(tenant_id).select_related("task", "model_version", "model_version__base_model")


def task_by_slug(tenant_id: int, slug: str) -> Task | None:
    return Task.objects.for_tenant(tenant_id).filter(slug=slug).first()


def model_version_by_id(tenant_id: int, pk: int) -> ModelVersion | None:
    return ModelVersion.objects.for_tenant(tenant_id).select_related("task", "job", "base_model").filter(pk=pk).first()


def model_versions_routable(tenant_id: int):
    """Model versions that a rule may use: trained by a job that succeeded (newest first)."""
    return (
        ModelVersion.objects.for_tenant(tenant_id)
        .filter(job__state="succeeded")
        .select_related("task", "base_model")
        .order_by("task__slug", "-version")
    )


def route_table_settings(tenant_id: int) -> RouteTableSettings:
    """The tenant's draft defaults (an unsaved default row when none was saved yet)."""
    settings_row = RouteTableSettings.objects.for_tenant(tenant_id).first()
    return settings_row or RouteTableSettings(tenant_id=tenant_id)


def route_table_versions(tenant_id: int) -> QuerySet[RouteTableVersion]:
    return RouteTableVersion.objects.for_tenant(tenant_id).order_by("-version")


def latest_version(tenant_id: int) -> RouteTableVersion | None:
    return route_table_versions(tenant_id).first()


def latest_version_number(tenant_id: int) -> int:
    """The number of the tenant's current published version; 0 when nothing was published."""
    number = route_table_versions(tenant_id).values_list("version", flat=True).first()
    return number or 0


def artifact_reference(model_version: ModelVersion) -> str:
    """Where a tenant's serving stack downloads the adapter (an API path, never a server file path)."""
    return f"/api/v1/model-versions/{model_version.pk}/artifact"


def _percent(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def rule_content(rule: RouteRule) -> dict:
    """A draft rule as it is stored in a version's content (the fallback resolved to a model name)."""
    model_version = rule.model_version
    return {
        "enabled": rule.enabled,
        "model_version": model_version.name,
        "model_version_id": model_version.pk,
        "base_model": model_version.base_model.name,
        "artifact": artifact_reference(model_version),
        "threshold": rule.threshold,
        "fallback": rule.fallback_model or rule.task.frontier_model,
        "canary": _percent(rule.canary_percent),
        "shadow": rule.shadow,
    }


def draft_content(tenant_id: int) -> dict:
    """What publishing now would publish: every draft rule and the draft defaults."""
    settings_row = route_table_settings(tenant_id)
    content = empty_content(default_model=settings_row.default_model, cache_max_age=settings_row.cache_max_age)
    content["rules"] = {rule.task.slug: rule_content(rule) for rule in route_rules_for_tenant(tenant_id)}
    return content


def version_content(tenant_id: int, number: int) -> dict:
    """The content of version `number`; version 0 is the empty table. RouteTableVersion.DoesNotExist else."""
    if number == 0:
        return empty_content()
    return route_table_versions(tenant_id).get(version=number).content


def draft_changes(tenant_id: int) -> dict:
    """The diff from the published table to the draft (what publishing would change)."""
    latest = latest_version(tenant_id)
    return diff_contents(latest.content if latest else empty_content(), draft_content(tenant_id))


def published_table_compiled(tenant_id: int) -> CompiledBody:
    """The latest published version's precompiled bytes, or the version-0 table (no rules, frontier)."""
    latest = route_table_versions(tenant_id).values("version", "body", "etag", "content").first()
    if latest is not None:
        return CompiledBody(
            version=latest["version"],
            body=bytes(latest["body"]),
            etag=latest["etag"],
            max_age=content_max_age(latest["content"]),
        )
    slug = Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
    settings_row = route_table_settings(tenant_id)
    return compile_table(
        content=empty_content(cache_max_age=settings_row.cache_max_age),
        version=0,
        tenant_slug=slug,
        published_at=None,
    )


# --- outcomes, statistics and drift ---------------------------------------------------------------------


def _published_coverages(tenant_id: int, content: dict) -> dict[str, float | None]:
    """Task slug -> coverage of the model version the published table routes it to."""
    ids = {rule["model_version_id"]: task for task, rule in (content.get("rules") or {}).items()}
    coverages = dict(ModelVersion.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).values_list("pk", "coverage"))
    return {task: coverages.get(pk) for pk, task in ids.items()}


def _daily_series(tenant_id: int, *, days: int, today: date) -> dict[int, list[dict]]:
    """Task id -> one row per day (oldest first, days without traffic included as zeros)."""
    first_day = today - timedelta(days=days - 1)
    rows = OutcomeDaily.objects.for_tenant(tenant_id).filter(day__gte=first_day, day__lte=today)
    by_task: dict[int, dict[date, OutcomeDaily]] = {}
    for row in rows:
        by_task.setdefault(row.task_id, {})[row.day] = row
    series = {}
    for task_id, by_day in by_task.items():
        points = []
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            row = by_day.get(day)
            points.append(daily_row(day, row))
        series[task_id] = points
    return series


def daily_row(day: date, row: OutcomeDaily | None) -> dict:
    requests = row.requests if row else 0
    fell_back = row.fell_back if row else 0
    compared = row.shadow_compared if row else 0
    return {
        "day": day.isoformat(),
        "requests": requests,
        "kept_by_small": row.kept_by_small if row else 0,
        "kept_share": (row.kept_by_small / requests) if requests else None,
        "fell_back": fell_back,
        "fallback_rate": (fell_back / requests) if requests else None,
        "shadow_compared": compared,
        "shadow_agreement": (row.shadow_agreed / compared) if compared else None,
        "realised_saving": float(row.realised_saving) if row else 0.0,
    }


def routing_overview(tenant_id: int, *, days: int = 0, now: datetime | None = None) -> list[dict]:
    """Per task of the tenant: draft and published rule, totals over `days` (or 30), drift over the last day.

    With `days` > 0 each task also carries its daily series (for charts).
    """
    now = now or timezone.now()
    latest = latest_version(tenant_id)
    published = (latest.content if latest else empty_content()).get("rules") or {}
    coverages = _published_coverages(tenant_id, latest.content) if latest else {}
    drafts = {rule.task_id: rule for rule in route_rules_for_tenant(tenant_id)}
    since = now - timedelta(hours=WINDOW_HOURS)
    recent = {
        row["task_id"]: row
        for row in Outcome.objects.for_tenant(tenant_id)
        .filter(reported_at__gte=since, shadow=False)
        .values("task_id")
        .annotate(requests=Count("id"), fell_back=Count("id", filter=Q(fell_back=True)))
    }
    total_days = days or 30
    first_day = now.date() - timedelta(days=total_days - 1)
    totals: dict[int, dict] = {}
    for row in OutcomeDaily.objects.for_tenant(tenant_id).filter(day__gte=first_day):
        total = totals.setdefault(
            row.task_id, {"requests": 0, "kept_by_small": 0, "fell_back": 0, "saving": Decimal(0)}
        )
        total["requests"] += row.requests
        total["kept_by_small"] += row.kept_by_small
        total["fell_back"] += row.fell_back
        total["saving"] += row.realised_saving
    series = _daily_series(tenant_id, days=days, today=now.date()) if days else {}
    overview = []
    for task in Task.objects.for_tenant(tenant_id).order_by("slug"):
        draft = drafts.get(task.pk)
        published_rule = published.get(task.slug)
        window = recent.get(task.pk, {"requests": 0, "fell_back": 0})
        drift = assess_drift(
            requests=window["requests"],
            fell_back=window["fell_back"],
            coverage=coverages.get(task.slug) if published_rule and published_rule.get("enabled", True) else None,
        )
        total = totals.get(task.pk, {"requests": 0, "kept_by_small": 0, "fell_back": 0, "saving": Decimal(0)})
        entry = {
            "task": task.slug,
            "task_name": task.name,
            "frontier_model": task.frontier_model,
            "draft_rule_id": draft.pk if draft else None,
            "published": published_rule,
            "in_scope": bool(published_rule and published_rule.get("enabled", True)),
            "totals": {
                "days": total_days,
                "requests": total["requests"],
                "kept_by_small": total["kept_by_small"],
                "fell_back": total["fell_back"],
                "fallback_rate": (total["fell_back"] / total["requests"]) if total["requests"] else None,
                "realised_saving": float(total["saving"]),
            },
            "drift": drift.as_dict(),
            "retrain_suggested": drift.retrain_suggested,
        }
        if days:
            entry["daily"] = series.get(task.pk) or [
                daily_row(now.date() - timedelta(days=days - 1 - offset), None) for offset in range(days)
            ]
        overview.append(entry)
    return overview
