"""Forms of the routing page. They check types and ranges; the services check everything else."""

from collections import defaultdict

from django import forms

from routing import selectors


def _choice(version, *, with_task: bool) -> tuple[str, str]:
    threshold = "no calibrated threshold" if version.threshold is None else f"threshold {version.threshold:.3f}"
    label = f"{version.name} ({threshold})"
    return str(version.pk), f"{version.task.slug}: {label}" if with_task else label


def _model_version_choices(tenant_id: int, task_id: int | None = None) -> list[tuple[str, str]]:
    versions = selectors.model_versions_routable(tenant_id)
    if task_id is not None:
        versions = versions.filter(task_id=task_id)
    else:  # a new rule: only tasks without one (a task has at most one rule)
        versions = versions.exclude(task__route_rules__isnull=False)
    return [_choice(version, with_task=task_id is None) for version in versions]


def model_version_choices_by_task(tenant_id: int) -> dict[int, list[tuple[str, str]]]:
    """Every task's routable model versions in one query, for a page with one rule form per task."""
    grouped = defaultdict(list)
    for version in selectors.model_versions_routable(tenant_id):
        grouped[version.task_id].append(_choice(version, with_task=False))
    return grouped


class RouteRuleForm(forms.Form):
    """Edit one task's draft rule."""

    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Confidence at or above it keeps the small model."
    )
    fallback_model = forms.CharField(
        max_length=100, required=False, label="Fallback model", help_text="Blank: the task's frontier model."
    )
    canary_percent = forms.FloatField(
        min_value=0.0, max_value=100.0, label="Canary %", help_text="Share of the task's traffic in scope."
    )
    shadow = forms.BooleanField(required=False, help_text="The small model runs, the frontier answers.")
    enabled = forms.BooleanField(required=False)

    def __init__(self, *args, tenant_id: int, task_id: int, choices: list[tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = (
            choices if choices is not None else _model_version_choices(tenant_id, task_id)
        )


class RouteRuleCreateForm(forms.Form):
    """Put a task that has no rule yet in scope: a model version of it (its task is the rule's task)."""

    model_version = forms.TypedChoiceField(coerce=int, label="Model version")
    threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, required=False, help_text="Blank: the model version's calibrated threshold."
    )
    canary_percent = forms.FloatField(min_value=0.0, max_value=100.0, initial=100, label="Canary %")
    shadow = forms.BooleanField(required=False)

    def __init__(self, *args, tenant_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = _model_version_choices(tenant_id)


class RouteTableSettingsForm(forms.Form):
    default_model = forms.CharField(
        max_length=100,
        required=False,
        label="Default model",
        help_text="For tasks not in scope; blank: each task's frontier model.",
    )
    cache_max_age = forms.IntegerField(
        min_value=0, max_value=86400, label="Cache max-age (s)", help_text="How long services may cache the table."
    )


class PublishForm(forms.Form):
    note = forms.CharField(max_length=300, required=False, help_text="What changed and why (optional).")


class ModelVersionPublishForm(forms.Form):
    threshold = forms.FloatField(min_value=0.0, max_value=1.0, required=False)
    next = forms.CharField(required=False)
