"""Web UI for routing: the published table and the draft, rule editing, publishing, versions with diff and
rollback, per-task charts and drift flags. Views translate HTTP; services write."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from routing import selectors, services
from routing.compiler import diff_contents
from routing.forms import (
    ModelVersionPublishForm,
    PublishForm,
    RouteRuleCreateForm,
    RouteRuleForm,
    RouteTableSettingsForm,
    model_version_choices_by_task,
)
from routing.models import RouteTableVersion
from tenants.scopes import Scope
from tenants.views import tenant_required


def _error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            f"{'' if field == '__all__' else field.replace('_', ' ').capitalize() + ': '}{message}"
            for field, errors in error.message_dict.items()
            for message in errors
        )
    return " ".join(error.messages)


def _form_errors(form) -> str:
    parts = []
    for field, errors in form.errors.items():
        text = " ".join(errors)
        parts.append(text if field == "__all__" else f"{form[field].label}: {text}")
    return " ".join(parts)


def _chart(label: str, daily: list[dict], key: str, *, scale: float = 1.0, color: str | None = None) -> str:
    spec = {
        "type": "bar",
        "labels": [row["day"][5:] for row in daily],
        "values": [round((row[key] or 0) * scale, 6) for row in daily],
        "label": label,
    }
    if color:
        spec["color"] = color
    return json.dumps(spec)


def _rule_form(rule, tenant_id: int, data=None, choices=None) -> RouteRuleForm:
    return RouteRuleForm(
        data,
        tenant_id=tenant_id,
        choices=choices,
        task_id=rule.task_id,
        auto_id=f"rule{rule.pk}_%s",
        initial={
            "model_version": rule.model_version_id,
            "threshold": rule.threshold,
            "fallback_model": rule.fallback_model,
            "canary_percent": rule.canary_percent,
            "shadow": rule.shadow,
            "enabled": rule.enabled,
        },
    )


@tenant_required(Scope.ROUTING_READ)
def routing_page(request):
    context = request.tenant_context
    tenant_id = context.tenant_id
    latest = selectors.latest_version(tenant_id)
    overview = selectors.routing_overview(tenant_id, days=30)
    for entry in overview:
        daily = entry["daily"]
        entry["charts"] = {
            "traffic": _chart("requests", daily, "requests"),
            "fallback": _chart("fallback rate %", daily, "fallback_rate", scale=100, color="#c0392b"),
            "saving": _chart("saving", daily, "realised_saving", color="#1f8a4c"),
        }
        entry["has_traffic"] = any(row["requests"] for row in daily)
    settings_row = selectors.route_table_settings(tenant_id)
    rules = list(selectors.route_rules_for_tenant(tenant_id))
    choices = model_version_choices_by_task(tenant_id)
    return render(
        request,
        "routing/routing.html",
        {
            "can_write": context.has_scope(Scope.ROUTING_WRITE),
            "latest": latest,
            "published_table": json.loads(bytes(latest.body)) if latest else None,
            "rule_forms": [(rule, _rule_form(rule, tenant_id, choices=choices[rule.task_id])) for rule in rules],
            "create_form": RouteRuleCreateForm(tenant_id=tenant_id),
            "settings_form": RouteTableSettingsForm(
                initial={"default_model": settings_row.default_model, "cache_max_age": settings_row.cache_max_age}
            ),
            "publish_form": PublishForm(),
            "changes": selectors.draft_changes(tenant_id),
            "versions": selectors.route_table_versions(tenant_id)[:50],
            "overview": overview,
            "drifting": [entry for entry in overview if entry["retrain_suggested"]],
        },
    )


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_rule_create(request):
    context = request.tenant_context
    form = RouteRuleCreateForm(request.POST, tenant_id=context.tenant_id)
    if not form.is_valid():
        messages.error(request, f"The rule was not added. {_form_errors(form)}")
        return redirect("routing")
    data = form.cleaned_data
    model_version = selectors.model_version_by_id(context.tenant_id, data["model_version"])
    if model_version is None:
        raise Http404("No such model version.")
    try:
        rule = services.route_rule_create(
            tenant_id=context.tenant_id,
            task=model_version.task,
            model_version=model_version,
            actor=context.actor,
            threshold=data["threshold"],
            canary_percent=data["canary_percent"],
            shadow=data["shadow"],
        )
    except ValidationError as error:
        messages.error(request, f"The rule was not added. {_error_text(error)}")
    else:
        messages.success(request, f"Rule for {rule.task.slug} added to the draft. Publish to make it live.")
    return redirect("routing")


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_rule_update(request, rule_id: int):
    context = request.tenant_context
    rule = get_object_or_404(selectors.route_rules_for_tenant(context.tenant_id), pk=rule_id)
    form = _rule_form(rule, context.tenant_id, data=request.POST)
    if not form.is_valid():
        messages.error(request, f"The rule for {rule.task.slug} was not changed. {_form_errors(form)}")
        return redirect("routing")
    data = form.cleaned_data
    model_version = selectors.model_version_by_id(context.tenant_id, data["model_version"])
    if model_version is None:
        raise Http404("No such model version.")
    try:
        services.route_rule_update(
            rule=rule,
            actor=context.actor,
            model_version=model_version,
            threshold=data["threshold"],
            fallback_model=data["fallback_model"],
            canary_percent=data["canary_percent"],
            shadow=data["shadow"],
            enabled=data["enabled"],
        )
    except ValidationError as error:
        messages.error(request, f"The rule for {rule.task.slug} was not changed. {_error_text(error)}")
    else:
        messages.success(request, f"Draft rule for {rule.task.slug} saved. Publish to make it live.")
    return redirect("routing")


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_rule_delete(request, rule_id: int):
    context = request.tenant_context
    rule = get_object_or_404(selectors.route_rules_for_tenant(context.tenant_id), pk=rule_id)
    slug = rule.task.slug
    services.route_rule_delete(rule=rule, actor=context.actor)
    messages.success(request, f"Rule for {slug} removed from the draft. Publish to take the task out of scope.")
    return redirect("routing")


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_settings_update(request):
    context = request.tenant_context
    form = RouteTableSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"The defaults were not changed. {_form_errors(form)}")
        return redirect("routing")
    try:
        services.route_table_settings_update(tenant_id=context.tenant_id, actor=context.actor, **form.cleaned_data)
    except ValidationError as error:
        messages.error(request, f"The defaults were not changed. {_error_text(error)}")
    else:
        messages.success(request, "Draft defaults saved. Publish to make them live.")
    return redirect("routing")


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_table_publish(request):
    context = request.tenant_context
    form = PublishForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        version = services.route_table_publish(tenant_id=context.tenant_id, actor=context.actor, note=note)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, f"Published v{version.version}. Services pick it up at their next refresh.")
    return redirect("routing")


@tenant_required(Scope.ROUTING_READ)
def route_table_version(request, version: int):
    tenant_id = request.tenant_context.tenant_id
    target = get_object_or_404(selectors.route_table_versions(tenant_id), version=version)
    raw = request.GET.get("against", str(version - 1))
    against = int(raw) if raw.isdigit() else version - 1
    try:
        source = selectors.version_content(tenant_id, against)
    except RouteTableVersion.DoesNotExist:
        messages.error(request, f"There is no version {against} to compare with; showing the previous one.")
        against = version - 1
        source = selectors.version_content(tenant_id, against)
    latest_number = selectors.latest_version_number(tenant_id)
    return render(
        request,
        "routing/version.html",
        {
            "version": target,
            "table_json": json.dumps(json.loads(bytes(target.body)), indent=2),
            "against": against,
            "diff": diff_contents(source, target.content),
            "other_versions": selectors.route_table_versions(tenant_id).exclude(version=version)[:100],
            "is_latest": target.version == latest_number,
            "can_write": request.tenant_context.has_scope(Scope.ROUTING_WRITE),
        },
    )


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def route_table_rollback(request, version: int):
    context = request.tenant_context
    target = get_object_or_404(selectors.route_table_versions(context.tenant_id), version=version)
    try:
        new_version = services.route_table_rollback(version=target, actor=context.actor)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(
            request, f"Published v{new_version.version} with the rules of v{version}; the draft now matches it."
        )
    return redirect("routing")


@tenant_required(Scope.ROUTING_WRITE)
@require_POST
def model_version_publish(request, pk: int):
    """The "Publish to routing" button of the model version page."""
    context = request.tenant_context
    model_version = selectors.model_version_by_id(context.tenant_id, pk)
    if model_version is None:
        raise Http404("No such model version.")
    form = ModelVersionPublishForm(request.POST)
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = ""
    if not form.is_valid():
        messages.error(request, f"Not published. {_form_errors(form)}")
        return redirect(back or "routing")
    try:
        publication = services.model_version_publish(
            model_version=model_version, actor=context.actor, threshold=form.cleaned_data["threshold"]
        )
    except ValidationError as error:
        messages.error(request, f"{model_version.name} was not published. {_error_text(error)}")
        return redirect(back or "routing")
    if publication.created:
        messages.success(
            request,
            f"Published v{publication.version.version}: {model_version.task.slug} now routes to {model_version.name} "
            f"at threshold {publication.rule.threshold:.3f}.",
        )
    else:
        messages.info(request, f"v{publication.version.version} already routes {model_version.task.slug} this way.")
    return redirect("routing")
