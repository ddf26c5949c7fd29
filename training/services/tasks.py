"""Writes to tasks: register, change and delete a tenant's narrow tasks.

A task's definition decides how its examples are validated, so the checks here are the ones the ingest
applies (`training.ingest.TaskRules`), and changes that would make stored examples inconsistent with the
task (another kind, another eval share, dropping a label in use) are refused once examples exist.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.text import slugify
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators as jsonschema_validators

from tenants.models import Tenant
from tenants.services import audit_record
from training.models import Example, FrontierModelPrice, Task, TaskKind

MAX_LABELS = 1000
RESERVED_SLUGS = frozenset({"new"})  # /tasks/new/ is the registration page
MAX_LABEL_CHARS = 200
# A language tag such as en, de, pt-BR, zh-Hant, sr-Latn-RS (BCP 47 shape, not a registry lookup).
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
# The fields each kind owns: giving one of them for another kind is an error, not silently ignored.
_KIND_FIELDS = {
    "labels": TaskKind.CLASSIFICATION,
    "output_schema": TaskKind.EXTRACTION,
    "source_language": TaskKind.TRANSLATION,
    "target_language": TaskKind.TRANSLATION,
}
_EDITABLE = (
    "name", "description", "kind", "labels", "output_schema", "source_language", "target_language",
    "frontier_model", "price_input_per_million", "price_output_per_million", "target_agreement", "eval_share",
)  # fmt: skip


def frontier_price(name: str) -> FrontierModelPrice | None:
    """The operator's price row for a frontier model name (case-insensitive), or None."""
    return FrontierModelPrice.objects.filter(name__iexact=name.strip()).first()


def _clean_labels(labels: Any) -> list[str]:
    if not isinstance(labels, list | tuple) or not labels:
        raise ValidationError({"labels": "A classification task needs a non-empty list of labels."})
    if len(labels) > MAX_LABELS:
        raise ValidationError({"labels": f"At most {MAX_LABELS} labels; got {len(labels)}."})
    cleaned: list[str] = []
    seen: dict[str, str] = {}
    for position, label in enumerate(labels, start=1):
        if not isinstance(label, str) or not label.strip():
            raise ValidationError({"labels": f"Label {position} is empty; every label needs some text."})
        label = label.strip()
        if len(label) > MAX_LABEL_CHARS:
            raise ValidationError({"labels": f"Label {position} is longer than {MAX_LABEL_CHARS} characters."})
        key = label.casefold()
        if key in seen:
            raise ValidationError(
                {"labels": f"Labels {seen[key]!r} and {label!r} are the same after trimming and case folding."}
            )
        seen[key] = label
        cleaned.append(label)
    return cleaned


def _clean_schema(schema: Any) -> dict:
    if not isinstance(schema, dict) or not schema:
        raise ValidationError({"output_schema": "An extraction task needs a JSON Schema (an object) for its output."})
    validator_class = jsonschema_validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema_exceptions.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise ValidationError({"output_schema": f"Not a valid JSON Schema at {where}: {error.message}"}) from None
    if schema.get("type") != "object":
        raise ValidationError(
            {"output_schema": 'The schema must describe a JSON object: give it "type": "object" and its properties.'}
        )
    return schema


def _clean_language(field: str, value: Any) -> str:
    value = (value or "").strip() if isinstance(value, str) else value
    if not value:
        raise ValidationError({field: "A translation task needs a source and a target language (e.g. en, de)."})
    if not isinstance(value, str) or len(value) > 20 or not _LANGUAGE_TAG.match(value):
        raise ValidationError({field: f"{value!r} is not a language tag; use a code such as en, de or pt-BR."})
    return value


def _clean_price(field: str, value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: f"{value!r} is not a number (USD per million tokens)."}) from None
    if not price.is_finite() or price < 0 or price >= Decimal("1000000"):
        raise ValidationError({field: "Give a price from 0 to 999,999 USD per million tokens."})
    return price.quantize(Decimal("0.0001"))


def _fill_prices(values: dict) -> None:
    """Fill missing prices from the operator's table; a clear error when the model is unknown."""
    missing = [
        field for field in ("price_input_per_million", "price_output_per_million") if values.get(field) in (None, "")
    ]
    if not missing:
        return
    row = frontier_price(values["frontier_model"])
    if row is None:
        known = ", ".join(FrontierModelPrice.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError(
            {
                missing[0]: (
                    f"The frontier model {values['frontier_model']!r} is not in the price table "
                    f"(known: {known}); give price_input_per_million and price_output_per_million."
                )
            }
        )
    defaults = {"price_input_per_million": row.input_per_million, "price_output_per_million": row.output_per_million}
    for field in missing:
        values[field] = defaults[field]


def _clean(values: dict, *, given: set[str]) -> dict:
    """Check and normalise a task's full field set; `given` names the fields the caller sent."""
    kind = values.get("kind")
    if kind not in TaskKind.values:
        raise ValidationError({"kind": f"Unknown kind {kind!r}; valid: {', '.join(TaskKind.values)}."})
    name = (values.get("name") or "").strip()
    if not name:
        raise ValidationError({"name": "Give the task a name."})
    values["name"] = name[:200]
    for field, owner_kind in _KIND_FIELDS.items():
        if kind != owner_kind and field in given and values.get(field):
            raise ValidationError({field: f"{field} applies only to {owner_kind} tasks; this task is {kind}."})
    values["labels"] = _clean_labels(values.get("labels")) if kind == TaskKind.CLASSIFICATION else []
    values["output_schema"] = _clean_schema(values.get("output_schema")) if kind == TaskKind.EXTRACTION else {}
    if kind == TaskKind.TRANSLATION:
        values["source_language"] = _clean_language("source_language", values.get("source_language"))
        values["target_language"] = _clean_language("target_language", values.get("target_language"))
        if values["source_language"].casefold() == values["target_language"].casefold():
            raise ValidationError({"target_language": "The target language must differ from the source language."})
    else:
        values["source_language"] = values["target_language"] = ""
    frontier_model = (values.get("frontier_model") or "").strip()
    if not frontier_model:
        raise ValidationError({"frontier_model": "Name the frontier model the task uses today (e.g. gpt-4o)."})
    values["frontier_model"] = frontier_model[:100]
    _fill_prices(values)
    for field in ("price_input_per_million", "price_output_per_million"):
        values[field] = _clean_price(field, values[field])
    target = values.get("target_agreement")
    if not isinstance(target, int | float) or not 0.5 <= float(target) <= 1.0:
        raise ValidationError({"target_agreement": "Give the target agreement as a share from 0.5 to 1 (e.g. 0.95)."})
    eval_share = values.get("eval_share")
    if not isinstance(eval_share, int | float) or not 0.01 <= float(eval_share) <= 0.5:
        raise ValidationError({"eval_share": "Give the held-out share from 0.01 to 0.5 (default 0.1)."})
    values["description"] = values.get("description") or ""
    return values


def _slug_for(tenant_id: int, slug: str, name: str, *, exclude_pk: int | None = None) -> str:
    candidate = slugify(slug or name)[:80].strip("-")
    if not candidate:
        raise ValidationError({"slug": "Use letters, numbers, hyphens or underscores in the slug."})
    if candidate in RESERVED_SLUGS:
        raise ValidationError({"slug": f"{candidate!r} is reserved for a page of the product; choose another slug."})
    taken = Task.objects.for_tenant(tenant_id).filter(slug=candidate)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"slug": f"A task with the slug {candidate!r} exists; choose another slug."})
    return candidate


@transaction.atomic
def task_create(
    *,
    tenant: Tenant,
    name: str,
    kind: str,
    frontier_model: str,
    actor: str,
    slug: str = "",
    description: str = "",
    labels: list[str] | None = None,
    output_schema: dict | None = None,
    source_language: str = "",
    target_language: str = "",
    price_input_per_million: Decimal | float | str | None = None,
    price_output_per_million: Decimal | float | str | None = None,
    target_agreement: float = 0.95,
    eval_share: float = 0.10,
    created_by=None,
) -> Task:
    """Register a task; prices default to the operator's price table for the frontier model."""
    given = {
        field
        for field, value in (
            ("labels", labels),
            ("output_schema", output_schema),
            ("source_language", source_language),
            ("target_language", target_language),
        )
        if value
    }
    values = _clean(
        {
            "name": name,
            "kind": kind,
            "description": description,
            "labels": labels or [],
            "output_schema": output_schema or {},
            "source_language": source_language,
            "target_language": target_language,
            "frontier_model": frontier_model,
            "price_input_per_million": price_input_per_million,
            "price_output_per_million": price_output_per_million,
            "target_agreement": target_agreement,
            "eval_share": eval_share,
        },
        given=given,
    )
    values["slug"] = _slug_for(tenant.pk, slug, values["name"])
    task = Task.objects.create(tenant=tenant, created_by=created_by, **values)
    audit_record(tenant=tenant, actor=actor, action="task.created", target=task.slug, data={"kind": task.kind})
    return task


@transaction.atomic
def task_update(*, task: Task, actor: str, **changes: Any) -> Task:
    """Change a task's definition. Refused once examples exist: another kind, another eval share, or
    removing a label that examples carry (they would no longer be valid for the task)."""
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ValidationError({unknown[0]: f"{unknown[0]} cannot be changed here."})
    task = Task.objects.select_for_update().get(pk=task.pk)
    values = {field: getattr(task, field) for field in _EDITABLE}
    if "frontier_model" in changes and changes["frontier_model"] != task.frontier_model:
        # A new frontier model brings its own prices unless the caller gives them.
        values["price_input_per_million"] = values["price_output_per_million"] = None
    values.update(changes)
    values = _clean(values, given={field for field, value in changes.items() if value})
    examples = Example.objects.for_tenant(task.tenant_id).filter(task=task)
    if examples.exists():
        if values["kind"] != task.kind:
            raise ValidationError(
                {"kind": "The task has examples; its kind cannot change. Register a new task instead."}
            )
        if abs(values["eval_share"] - task.eval_share) > 1e-9:
            raise ValidationError(
                {"eval_share": "The task has examples; changing the eval share would move examples between splits."}
            )
        # Exact comparison: changing a label's case is a removal too, since examples store the label as written.
        removed = [label for label in task.labels if label not in values["labels"]]
        in_use = [label for label in removed if examples.filter(output=label).exists()]
        if in_use:
            count = examples.filter(output__in=in_use).count()
            raise ValidationError(
                {
                    "labels": f"{count:,} examples carry the label(s) {', '.join(map(repr, in_use))}; "
                    "delete those examples before removing or renaming the label."
                }
            )
    changed = [field for field in _EDITABLE if getattr(task, field) != values[field]]
    for field in changed:
        setattr(task, field, values[field])
    if changed:
        task.save(update_fields=[*changed, "updated_at"])
        audit_record(
            tenant=task.tenant_id, actor=actor, action="task.updated", target=task.slug, data={"fields": changed}
        )
    return task


@transaction.atomic
def task_delete(*, task: Task, actor: str) -> None:
    """Delete a task with its examples, uploads and trained versions; refused while a route uses it."""
    slug, tenant_id = task.slug, task.tenant_id
    try:
        task.delete()
    except ProtectedError:
        raise ValidationError(
            {"task": f"The task {slug!r} is used by a routing rule or model version in use; remove that first."}
        ) from None
    audit_record(tenant=tenant_id, actor=actor, action="task.deleted", target=slug)
