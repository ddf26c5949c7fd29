"""Writes to route tables, rules and outcomes. Views, the API, tasks and admin call these, never the ORM.

Publishing copies the draft (every RouteRule and the RouteTableSettings) into a new immutable
RouteTableVersion whose runtime bytes and ETag are compiled there and then; the hot-path cache learns of it
after the transaction commits.
"""

from __future__ import annotations

import copy
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from routing import cache as routing_cache
from routing import selectors
from routing.compiler import compile_table, diff_contents, empty_content
from routing.decision import ROUTE_FRONTIER, ROUTE_SMALL
from routing.models import Outcome, OutcomeDaily, RouteRule, RouteTableSettings, RouteTableVersion
from tenants.models import Tenant
from tenants.services import audit_record
from training.ingest import normalise
from training.models import ExampleSource, JobState, ModelVersion, Task, TaskKind
from training.selectors.spend import CHARS_PER_TOKEN
from training.services.examples import examples_ingest_batch

MAX_OUTCOMES_PER_BATCH = 1000
# A reported input or answer longer than this is refused: it is not a request a small model serves, and
# one report must not be able to store megabytes.
MAX_OUTCOME_TEXT_CHARS = 100_000
# Token counts per request, input and output each. The largest context windows today hold ~10 million tokens;
# a larger count is a unit error (characters, bytes) or a sum over many requests, and it would overflow the
# daily saving (a 14-digit decimal) after a few reports.
MAX_OUTCOME_TOKENS = 10_000_000
MAX_CACHE_MAX_AGE = 24 * 3600
OUTCOME_FIELDS = frozenset(
    (
        "task",
        "route",
        "confidence",
        "fell_back",
        "shadow",
        "input",
        "small_output",
        "frontier_output",
        "latency_ms",
        "usage",
        "request_key",
    )
)
_INSERT_BATCH = 500


# --- validation helpers ----------------------------------------------------------------------------------


def _number(value, field_name: str, *, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError({field_name: f"{what} must be a number from {low:g} to {high:g}, got {value!r}."})
    number = float(value)
    if math.isnan(number) or not low <= number <= high:
        raise ValidationError({field_name: f"{what} must be from {low:g} to {high:g}, got {value!r}."})
    return number


def _threshold(value) -> float:
    return _number(value, "threshold", low=0.0, high=1.0, what="The threshold")


def _canary(value) -> float:
    return _number(value, "canary_percent", low=0.0, high=100.0, what="The canary share (percent)")


def _fallback(value: str) -> str:
    value = (value or "").strip()
    if len(value) > 100:
        raise ValidationError({"fallback_model": "The fallback model name is at most 100 characters."})
    return value


def _check_model_version(*, tenant_id: int, task: Task, model_version: ModelVersion) -> None:
    """The model version must be this tenant's, trained for this task, by a job that succeeded."""
    if task.tenant_id != tenant_id:
        raise ValidationError({"task": "No such task in this organisation."})
    if model_version.tenant_id != tenant_id:
        raise ValidationError({"model_version": "No such model version in this organisation."})
    if model_version.task_id != task.pk:
        raise ValidationError(
            {
                "model_version": f"{model_version.name} was trained for task '{model_version.task.slug}', "
                f"not '{task.slug}'; choose a model version of '{task.slug}'."
            }
        )
    state = model_version.job.state
    if state != JobState.SUCCEEDED:
        raise ValidationError(
            {"model_version": f"{model_version.name}'s training job is {state}; only a succeeded job can be routed to."}
        )


def _calibrated_threshold(model_version: ModelVersion, threshold) -> float:
    """An explicit threshold, else the calibrated one; refuses clearly when calibration could not reach it."""
    if threshold is not None:
        return _threshold(threshold)
    if model_version.threshold is None:
        calibration = model_version.calibration or {}
        why = calibration.get("message") or "no threshold reaches the task's target agreement on the eval split"
        raise ValidationError(
            {
                "threshold": f"{model_version.name} has no calibrated threshold ({why}). Give a threshold "
                "explicitly (0 to 1) to publish it anyway."
            }
        )
    return _threshold(model_version.threshold)


def _rule_snapshot(rule: RouteRule) -> dict:
    return {
        "enabled": rule.enabled,
        "model_version": rule.model_version.name,
        "threshold": rule.threshold,
        "fallback_model": rule.fallback_model,
        "canary_percent": rule.canary_percent,
        "shadow": rule.shadow,
    }


def _audit_rule(*, rule: RouteRule, actor: str, before: dict | None, deleted: bool = False) -> None:
    after = None if deleted else _rule_snapshot(rule)
    if before is None:
        data = {"created": after}
    elif deleted:
        data = {"deleted": before}
    else:
        data = {"changes": {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}}
    audit_record(tenant=rule.tenant_id, actor=actor, action="route_rule.changed", target=rule.task.slug, data=data)


# --- draft rules -----------------------------------------------------------------------------------------


@transaction.atomic
def route_rule_create(
    *,
    tenant_id: int,
    task: Task,
    model_version: ModelVersion,
    actor: str,
    threshold: float | None = None,
    fallback_model: str = "",
    canary_percent: float = 100.0,
    shadow: bool = False,
    enabled: bool = True,
) -> RouteRule:
    """Add the draft rule of a task (one per task); the threshold defaults to the calibrated one."""
    _check_model_version(tenant_id=tenant_id, task=task, model_version=model_version)
    existing = RouteRule.objects.for_tenant(tenant_id).filter(task=task).first()
    if existing is not None:
        raise ValidationError(
            {"task": f"Task '{task.slug}' already has a rule (id {existing.pk}); change that rule instead."}
        )
    rule = RouteRule.objects.create(
        tenant_id=tenant_id,
        task=task,
        model_version=model_version,
        threshold=_calibrated_threshold(model_version, threshold),
        fallback_model=_fallback(fallback_model),
        canary_percent=_canary(canary_percent),
        shadow=bool(shadow),
        enabled=bool(enabled),
        updated_by=actor,
    )
    _audit_rule(rule=rule, actor=actor, before=None)
    return rule


@transaction.atomic
def route_rule_update(
    *,
    rule: RouteRule,
    actor: str,
    model_version: ModelVersion | None = None,
    threshold: float | None = None,
    fallback_model: str | None = None,
    canary_percent: float | None = None,
    shadow: bool | None = None,
    enabled: bool | None = None,
) -> RouteRule:
    """Change a draft rule; None leaves a field as it is. A new model version brings its calibrated threshold
    unless a threshold is given."""
    rule = RouteRule.objects.select_for_update().select_related("task", "model_version").get(pk=rule.pk)
    before = _rule_snapshot(rule)
    if model_version is not None and model_version.pk != rule.model_version_id:
        _check_model_version(tenant_id=rule.tenant_id, task=rule.task, model_version=model_version)
        rule.model_version = model_version
        if threshold is None:
            rule.threshold = _calibrated_threshold(model_version, None)
    if threshold is not None:
        rule.threshold = _threshold(threshold)
    if fallback_model is not None:
        rule.fallback_model = _fallback(fallback_model)
    if canary_percent is not None:
        rule.canary_percent = _canary(canary_percent)
    if shadow is not None:
        rule.shadow = bool(shadow)
    if enabled is not None:
        rule.enabled = bool(enabled)
    rule.updated_by = actor
    rule.save()
    if _rule_snapshot(rule) != before:
        _audit_rule(rule=rule, actor=actor, before=before)
    return rule


@transaction.atomic
def route_rule_delete(*, rule: RouteRule, actor: str) -> None:
    """Remove a task's draft rule (the task leaves scope at the next publish)."""
    _audit_rule(rule=rule, actor=actor, before=_rule_snapshot(rule), deleted=True)
    rule.delete()


@transaction.atomic
def route_table_settings_update(
    *, tenant_id: int, actor: str, default_model: str | None = None, cache_max_age: int | None = None
) -> RouteTableSettings:
    """Change the draft defaults: the model for tasks not in scope (blank: each task's own frontier model)
    and how long callers may cache the table."""
    row, _ = RouteTableSettings.objects.select_for_update().get_or_create(tenant_id=tenant_id)
    before = {"default_model": row.default_model, "cache_max_age": row.cache_max_age}
    if default_model is not None:
        default_model = default_model.strip()
        if len(default_model) > 100:
            raise ValidationError({"default_model": "The default model name is at most 100 characters."})
        row.default_model = default_model
    if cache_max_age is not None:
        if isinstance(cache_max_age, bool) or not isinstance(cache_max_age, int):
            raise ValidationError({"cache_max_age": f"cache_max_age must be whole seconds, got {cache_max_age!r}."})
        if not 0 <= cache_max_age <= MAX_CACHE_MAX_AGE:
            raise ValidationError(
                {"cache_max_age": f"cache_max_age must be from 0 to {MAX_CACHE_MAX_AGE} seconds, got {cache_max_age}."}
            )
        row.cache_max_age = cache_max_age
    row.save()
    after = {"default_model": row.default_model, "cache_max_age": row.cache_max_age}
    if after != before:
        audit_record(
            tenant=tenant_id,
            actor=actor,
            action="route_table.settings_changed",
            target="defaults",
            data={k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]},
        )
    return row


# --- publishing ------------------------------------------------------------------------------------------


def _lock_tenant(tenant_id: int) -> tuple[Tenant, RouteTableVersion | None]:
    """Serialise publications per tenant: the tenant row is locked (so the very first publication is
    covered too), then its latest version; the next number is computed under the lock. The unique
    (tenant, version) constraint is the backstop."""
    tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
    latest = RouteTableVersion.objects.for_tenant(tenant_id).select_for_update().order_by("-version").first()
    return tenant, latest


def _create_version(
    *,
    tenant: Tenant,
    latest: RouteTableVersion | None,
    content: dict,
    actor: str,
    note: str,
    rolled_back_from: int | None = None,
) -> RouteTableVersion:
    number = (latest.version if latest else 0) + 1
    published_at = timezone.now()
    compiled = compile_table(content=content, version=number, tenant_slug=tenant.slug, published_at=published_at)
    version = RouteTableVersion.objects.create(
        tenant=tenant,
        version=number,
        content=content,
        body=compiled.body,
        etag=compiled.etag,
        published_by=actor,
        published_at=published_at,
        note=(note or "")[:300],
        rolled_back_from=rolled_back_from,
    )
    tenant_id = tenant.pk
    transaction.on_commit(lambda: routing_cache.table_published(tenant_id, compiled))
    return version


def _is_empty_diff(diff: dict) -> bool:
    return not (diff["added"] or diff["removed"] or diff["changed"] or diff["defaults"])


def _diff_summary(diff: dict) -> dict:
    return {
        "added": [item["task"] for item in diff["added"]],
        "removed": [item["task"] for item in diff["removed"]],
        "changed": {item["task"]: sorted(item["fields"]) for item in diff["changed"]},
        "defaults": sorted(diff["defaults"]),
    }


@transaction.atomic
def route_table_publish(
    *, tenant_id: int, actor: str, note: str = "", allow_unchanged: bool = False
) -> RouteTableVersion:
    """Publish the draft as the next version. Refuses a draft identical to the published table unless
    `allow_unchanged` (then the current version is returned and nothing is created)."""
    return _publish_draft(tenant_id=tenant_id, actor=actor, note=note, allow_unchanged=allow_unchanged)[0]


def _publish_draft(*, tenant_id: int, actor: str, note: str, allow_unchanged: bool) -> tuple[RouteTableVersion, bool]:
    """route_table_publish's work; also says whether a version was created (decided under the tenant's lock)."""
    tenant, latest = _lock_tenant(tenant_id)
    content = selectors.draft_content(tenant_id)
    diff = diff_contents(latest.content if latest else empty_content(), content)
    if _is_empty_diff(diff):
        if allow_unchanged and latest is not None:
            return latest, False
        where = f"the published version v{latest.version}" if latest else "the empty table"
        raise ValidationError(f"Nothing to publish: the draft is identical to {where}.")
    version = _create_version(tenant=tenant, latest=latest, content=content, actor=actor, note=note)
    audit_record(
        tenant=tenant_id,
        actor=actor,
        action="route_table.published",
        target=f"v{version.version}",
        data={"version": version.version, "note": version.note, "changes": _diff_summary(diff)},
    )
    return version, True


@transaction.atomic
def route_table_rollback(*, version: RouteTableVersion, actor: str) -> RouteTableVersion:
    """Publish an earlier version's content again, as a new version (rolled_back_from = that version's
    number), and reset the draft to it so that the next publication starts from what is live."""
    tenant, latest = _lock_tenant(version.tenant_id)
    if latest is not None and latest.version == version.version:
        raise ValidationError(f"v{version.version} is already the published version; choose an earlier one.")
    content = copy.deepcopy(version.content)
    new_version = _create_version(
        tenant=tenant,
        latest=latest,
        content=content,
        actor=actor,
        note=f"Rollback to v{version.version}",
        rolled_back_from=version.version,
    )
    skipped = _restore_draft(tenant_id=tenant.pk, content=content, actor=actor)
    audit_record(
        tenant=tenant.pk,
        actor=actor,
        action="route_table.rolled_back",
        target=f"v{new_version.version}",
        data={
            "version": new_version.version,
            "rolled_back_to": version.version,
            "replaced": latest.version if latest else 0,
            "draft_rules_not_restored": skipped,
        },
    )
    return new_version


def _restore_draft(*, tenant_id: int, content: dict, actor: str) -> list[str]:
    """Make the draft equal `content`; returns the tasks whose rule could not be restored (their task or
    model version was deleted since)."""
    rules = content.get("rules") or {}
    tasks = {task.slug: task for task in Task.objects.for_tenant(tenant_id).filter(slug__in=list(rules))}
    model_versions = ModelVersion.objects.for_tenant(tenant_id).in_bulk(
        [rule["model_version_id"] for rule in rules.values()]
    )
    skipped = []
    kept_task_ids = []
    for slug, rule in rules.items():
        task, model_version = tasks.get(slug), model_versions.get(rule["model_version_id"])
        if task is None or model_version is None:
            skipped.append(slug)
            continue
        fallback = rule.get("fallback") or ""
        RouteRule.objects.update_or_create(
            tenant_id=tenant_id,
            task=task,
            defaults={
                "enabled": rule.get("enabled", True),
                "model_version": model_version,
                "threshold": rule["threshold"],
                "fallback_model": "" if fallback == task.frontier_model else fallback,
                "canary_percent": rule.get("canary", 100),
                "shadow": rule.get("shadow", False),
                "updated_by": actor,
            },
        )
        kept_task_ids.append(task.pk)
    RouteRule.objects.for_tenant(tenant_id).exclude(task_id__in=kept_task_ids).delete()
    default = content.get("default") or {}
    RouteTableSettings.objects.update_or_create(
        tenant_id=tenant_id,
        defaults={
            "default_model": default.get("model") or "",
            "cache_max_age": content.get("cache_max_age", RouteTableSettings._meta.get_field("cache_max_age").default),
        },
    )
    return skipped


@dataclass(frozen=True)
class ModelVersionPublication:
    rule: RouteRule
    version: RouteTableVersion
    created: bool  # False when the table already routed the task exactly so (nothing new was published)


@transaction.atomic
def model_version_publish(
    *,
    model_version: ModelVersion,
    actor: str,
    threshold: float | None = None,
    canary_percent: float | None = None,
    shadow: bool | None = None,
    fallback_model: str | None = None,
    note: str = "",
) -> ModelVersionPublication:
    """Point the task's rule at `model_version` with its calibrated threshold (or the one given), enable it,
    and publish. Refuses a model version whose calibration found no threshold unless one is given."""
    tenant_id = model_version.tenant_id
    task = model_version.task
    _check_model_version(tenant_id=tenant_id, task=task, model_version=model_version)
    chosen_threshold = _calibrated_threshold(model_version, threshold)
    rule = RouteRule.objects.for_tenant(tenant_id).filter(task=task).first()
    if rule is None:
        rule = route_rule_create(
            tenant_id=tenant_id,
            task=task,
            model_version=model_version,
            actor=actor,
            threshold=chosen_threshold,
            fallback_model=fallback_model or "",
            canary_percent=100.0 if canary_percent is None else canary_percent,
            shadow=bool(shadow),
        )
    else:
        rule = route_rule_update(
            rule=rule,
            actor=actor,
            model_version=model_version,
            threshold=chosen_threshold,
            fallback_model=fallback_model,
            canary_percent=canary_percent,
            shadow=shadow,
            enabled=True,
        )
    version, created = _publish_draft(
        tenant_id=tenant_id,
        actor=actor,
        note=note or f"Publish {model_version.name} for {task.slug} at threshold {chosen_threshold:.3f}",
        allow_unchanged=True,
    )
    return ModelVersionPublication(rule=rule, version=version, created=created)


# --- outcomes --------------------------------------------------------------------------------------------


@dataclass
class OutcomeBatchResult:
    """What happened to one batch of reported outcomes; `errors` name each rejected row by index."""

    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    examples_created: int = 0
    examples_duplicate: int = 0
    examples_invalid: int = 0
    example_errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "examples": {
                "created": self.examples_created,
                "duplicates": self.examples_duplicate,
                "invalid": self.examples_invalid,
                "errors": self.example_errors,
            },
        }


class _RowInvalid(Exception):
    def __init__(self, field_name: str | None, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


def _optional_text(item: dict, name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _RowInvalid(name, f"'{name}' must be a string or null, got {type(value).__name__}")
    if len(value) > MAX_OUTCOME_TEXT_CHARS:
        raise _RowInvalid(
            name, f"'{name}' is {len(value):,} characters; at most {MAX_OUTCOME_TEXT_CHARS:,} are accepted"
        )
    if "\x00" in value:
        raise _RowInvalid(name, f"'{name}' contains a NUL character (\\u0000)")
    return value


def _text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (PostgreSQL refuses NUL in text and jsonb) or sent back in a response
    (a lone surrogate, which JSON escapes such as \\ud800 produce, is not valid Unicode); None when it can."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (a lone surrogate such as \\ud800)"
    return None


def _check_storable_text(item: dict) -> None:
    """Refuse an outcome with a string, anywhere in it (keys included), that cannot be stored or shown.

    Runs before any other check, so that no later message repeats such a string back to the caller.
    """
    for name, value in item.items():
        problem = _text_problem(name)
        if problem:
            raise _RowInvalid(None, f"a field name contains {problem}")
        pending = [value]
        while pending:
            value = pending.pop()
            problem = None
            if isinstance(value, str):
                problem = _text_problem(value)
            elif isinstance(value, dict):
                problem = next(filter(None, map(_text_problem, value)), None)
                pending.extend(value.values())
            elif isinstance(value, list):
                pending.extend(value)
            if problem:
                raise _RowInvalid(name, f"'{name}' contains {problem}")


def _usage_tokens(usage: dict) -> tuple[int | None, int | None]:
    """Input and output token counts from `usage` ({input,output}_tokens or OpenAI's prompt/completion)."""
    counts = []
    for names in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = next((usage[name] for name in names if usage.get(name) is not None), None)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OUTCOME_TOKENS
        ):
            raise _RowInvalid(
                "usage",
                f"usage.{names[0]} must be a non-negative whole number of at most {MAX_OUTCOME_TOKENS:,}, got {value!r:.40}",
            )
        counts.append(value)
    return counts[0], counts[1]


@dataclass
class _CleanOutcome:
    index: int
    task: Task
    route: str
    confidence: float | None
    fell_back: bool
    shadow: bool
    input: str
    small_output: str
    frontier_output: str
    latency_ms: float | None
    usage: dict
    input_tokens: int | None
    output_tokens: int | None
    request_key: str | None
    agreed: bool | None = None


def _clean_outcome(index: int, item, tasks: dict[str, Task], published_rules: dict) -> _CleanOutcome:
    if not isinstance(item, dict):
        raise _RowInvalid(None, f"each outcome must be a JSON object, got {type(item).__name__}")
    _check_storable_text(item)
    unknown = sorted(set(item) - OUTCOME_FIELDS)
    if unknown:
        raise _RowInvalid(
            unknown[0], f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(OUTCOME_FIELDS))}"
        )
    slug = item.get("task")
    if not isinstance(slug, str) or not slug:
        raise _RowInvalid("task", "'task' (the task's slug) is required")
    task = tasks.get(slug)
    if task is None:
        raise _RowInvalid("task", f"no task '{slug}' in this organisation")
    route = item.get("route")
    if route not in (ROUTE_SMALL, ROUTE_FRONTIER):
        raise _RowInvalid("route", f"'route' must be 'small' or 'frontier', got {route!r}")
    confidence = item.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
            raise _RowInvalid("confidence", f"'confidence' must be a number from 0 to 1 or null, got {confidence!r}")
        confidence = float(confidence)
    fell_back = item.get("fell_back")
    if not isinstance(fell_back, bool):
        raise _RowInvalid("fell_back", f"'fell_back' must be true or false, got {fell_back!r}")
    shadow = item.get("shadow")
    if shadow is None:
        # Not reported: the published rule of the task says whether it runs in shadow mode.
        shadow = bool((published_rules.get(slug) or {}).get("shadow", False))
    elif not isinstance(shadow, bool):
        raise _RowInvalid("shadow", f"'shadow' must be true, false or absent, got {shadow!r}")
    latency = item.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency < 1e9:
            raise _RowInvalid("latency_ms", f"'latency_ms' must be a non-negative number, got {latency!r}")
        latency = float(latency)
    usage = item.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise _RowInvalid("usage", f"'usage' must be an object of token counts, got {type(usage).__name__}")
    input_tokens, output_tokens = _usage_tokens(usage)
    request_key = item.get("request_key")
    if request_key is not None:
        if isinstance(request_key, bool) or not isinstance(request_key, str | int):
            raise _RowInvalid("request_key", f"'request_key' must be a string, got {type(request_key).__name__}")
        request_key = str(request_key)[:200]
    return _CleanOutcome(
        index=index,
        task=task,
        route=route,
        confidence=confidence,
        fell_back=fell_back,
        shadow=shadow,
        input=_optional_text(item, "input"),
        small_output=_optional_text(item, "small_output"),
        frontier_output=_optional_text(item, "frontier_output"),
        latency_ms=latency,
        usage=usage,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        request_key=request_key,
    )


def outputs_agree(task: Task, small: str, frontier: str) -> bool:
    """Do the small model and the frontier give the same answer? Labels ignore case and spaces; extraction
    compares the parsed JSON; other kinds compare whitespace-normalised text."""
    if task.kind == TaskKind.CLASSIFICATION:
        return small.strip().casefold() == frontier.strip().casefold()
    if task.kind == TaskKind.EXTRACTION:
        try:
            return json.loads(small) == json.loads(frontier)
        except ValueError:
            pass
    return normalise(small) == normalise(frontier)


def _small_model_cost_share() -> Decimal:
    """The small model's cost as a share of the frontier's for the same tokens, subtracted from the saving.
    Defaults to 0 (the saving is the frontier spend avoided); set ROUTING_SMALL_MODEL_COST_SHARE (0 to 1) to
    account for the tenant's own serving cost."""
    share = Decimal(str(getattr(settings, "ROUTING_SMALL_MODEL_COST_SHARE", 0)))
    if not Decimal(0) <= share <= Decimal(1):
        raise ImproperlyConfigured(f"ROUTING_SMALL_MODEL_COST_SHARE must be from 0 to 1, got {share}.")
    return share


def _tokens(reported: int | None, text: str) -> int:
    """Reported tokens, else an estimate from the text at CHARS_PER_TOKEN, as the spend dashboard estimates
    examples logged without usage (0 when neither was sent)."""
    if reported is not None:
        return reported
    return -(-len(text) // CHARS_PER_TOKEN)


def _saving(outcome: _CleanOutcome, share: Decimal) -> Decimal:
    """The frontier spend avoided by one request the small model answered: its reported usage at the task's
    frontier prices, or, without usage, the input and the small model's answer estimated in tokens."""
    if outcome.route != ROUTE_SMALL or outcome.shadow:
        return Decimal(0)
    task = outcome.task
    spend = (
        Decimal(_tokens(outcome.input_tokens, outcome.input)) * task.price_input_per_million
        + Decimal(_tokens(outcome.output_tokens, outcome.small_output)) * task.price_output_per_million
    ) / Decimal(1_000_000)
    return spend * (Decimal(1) - share)


@dataclass
class _DayTotals:
    requests: int = 0
    kept_by_small: int = 0
    fell_back: int = 0
    shadow_compared: int = 0
    shadow_agreed: int = 0
    realised_saving: Decimal = Decimal(0)


def _aggregate_daily(*, tenant_id: int, day: date, outcomes: list[_CleanOutcome]) -> None:
    """Add the batch to the per-task, per-day counters with atomic increments (safe under concurrency)."""
    share = _small_model_cost_share()
    totals: dict[int, _DayTotals] = defaultdict(_DayTotals)
    for outcome in outcomes:
        total = totals[outcome.task.pk]
        total.requests += 1
        total.kept_by_small += outcome.route == ROUTE_SMALL
        total.fell_back += outcome.fell_back
        if outcome.shadow and outcome.agreed is not None:
            total.shadow_compared += 1
            total.shadow_agreed += outcome.agreed
        total.realised_saving += _saving(outcome, share)
    for task_id, total in totals.items():
        row, _ = OutcomeDaily.objects.get_or_create(tenant_id=tenant_id, task_id=task_id, day=day)
        OutcomeDaily.objects.filter(pk=row.pk).update(
            requests=F("requests") + total.requests,
            kept_by_small=F("kept_by_small") + total.kept_by_small,
            fell_back=F("fell_back") + total.fell_back,
            shadow_compared=F("shadow_compared") + total.shadow_compared,
            shadow_agreed=F("shadow_agreed") + total.shadow_agreed,
            realised_saving=F("realised_saving") + total.realised_saving.quantize(Decimal("0.000001")),
        )


def _feedback_examples(
    *,
    outcomes: list[_CleanOutcome],
    published_rules: dict,
    reported_at,
    actor: str,
    result: OutcomeBatchResult,
) -> None:
    """Outcomes with an input and the frontier's answer become examples of their task (source feedback),
    through the examples service's batch ingest: validated like any logged row (an unknown label is counted,
    not stored), deduplicated by content hash, split by the hash of the input."""
    by_task: dict[int, list[_CleanOutcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.input.strip() and outcome.frontier_output.strip():
            by_task[outcome.task.pk].append(outcome)
    timestamp = reported_at.isoformat()
    for candidates in by_task.values():
        task = candidates[0].task
        frontier_model = (published_rules.get(task.slug) or {}).get("fallback") or task.frontier_model
        rows = []
        for outcome in candidates:
            row = {
                "input": outcome.input,
                "output": outcome.frontier_output,
                "model": frontier_model[:100],
                "timestamp": timestamp,
                "metadata": {"route": outcome.route, "fell_back": outcome.fell_back, "confidence": outcome.confidence},
            }
            if outcome.request_key is not None:
                row["metadata"]["request_key"] = outcome.request_key
            usage = {
                name: value
                for name, value in (("input_tokens", outcome.input_tokens), ("output_tokens", outcome.output_tokens))
                if value is not None
            }
            if usage:
                row["usage"] = usage
            rows.append(row)
        try:
            batch = examples_ingest_batch(task=task, rows=rows, actor=actor, source=ExampleSource.FEEDBACK)
        except (ValueError, ValidationError) as error:  # a task definition that accepts no examples
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            result.examples_invalid += len(candidates)
            result.example_errors.extend(
                {"index": o.index, "field": "task", "message": f"task '{task.slug}' accepts no examples: {message}"}
                for o in candidates
            )
            continue
        result.examples_created += batch.accepted
        result.examples_duplicate += batch.duplicates
        result.examples_invalid += batch.rejected
        for error in batch.errors:
            field_name = {"output": "frontier_output"}.get(error["field"], error["field"])
            result.example_errors.append(
                {"index": candidates[error["row"]].index, "field": field_name, "message": error["message"]}
            )


@transaction.atomic
def outcomes_record(*, tenant_id: int, outcomes: list, actor: str) -> OutcomeBatchResult:
    """Store a batch of reported outcomes, add them to the daily aggregates and turn those that carry an
    input and the frontier's answer into examples. Invalid rows are reported by index, the rest kept."""
    if not isinstance(outcomes, list) or not outcomes:
        raise ValidationError({"outcomes": "Send a list of 1 to 1,000 outcomes."})
    if len(outcomes) > MAX_OUTCOMES_PER_BATCH:
        raise ValidationError(
            {
                "outcomes": f"{len(outcomes):,} outcomes in one request; send at most {MAX_OUTCOMES_PER_BATCH:,} per batch."
            }
        )
    # Only slugs that can be valid: others (NUL, lone surrogates) would fail the query itself, and their rows
    # are rejected by _clean_outcome anyway.
    slugs = {
        item["task"]
        for item in outcomes
        if isinstance(item, dict) and isinstance(item.get("task"), str) and not _text_problem(item["task"])
    }
    tasks = {task.slug: task for task in Task.objects.for_tenant(tenant_id).filter(slug__in=slugs)}
    published_rules = routing_cache.published_table(tenant_id).decider.raw.get("rules") or {}
    result = OutcomeBatchResult()
    clean: list[_CleanOutcome] = []
    for index, item in enumerate(outcomes):
        try:
            outcome = _clean_outcome(index, item, tasks, published_rules)
        except _RowInvalid as error:
            result.rejected += 1
            result.errors.append({"index": index, "field": error.field, "message": error.message})
            continue
        if outcome.small_output.strip() and outcome.frontier_output.strip():
            outcome.agreed = outputs_agree(outcome.task, outcome.small_output, outcome.frontier_output)
        clean.append(outcome)
    result.accepted = len(clean)
    if not clean:
        return result
    reported_at = timezone.now()
    Outcome.objects.bulk_create(
        [
            Outcome(
                tenant_id=tenant_id,
                task=o.task,
                route=o.route,
                confidence=o.confidence,
                fell_back=o.fell_back,
                shadow=o.shadow,
                agreed=o.agreed,
                input=o.input,
                small_output=o.small_output,
                frontier_output=o.frontier_output,
                latency_ms=o.latency_ms,
                usage=o.usage,
                reported_at=reported_at,
            )
            for o in clean
        ],
        batch_size=_INSERT_BATCH,
    )
    _aggregate_daily(tenant_id=tenant_id, day=reported_at.date(), outcomes=clean)
    _feedback_examples(
        outcomes=clean, published_rules=published_rules, reported_at=reported_at, actor=actor, result=result
    )
    return result
