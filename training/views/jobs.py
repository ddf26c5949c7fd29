"""Web UI for training: start a job, watch it, read and try the model version it made. Views translate HTTP;
services write, selectors read."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants.scopes import Scope
from tenants.views import tenant_required
from training.models import TERMINAL_JOB_STATES
from training.selectors import jobs as selectors
from training.selectors.tasks import task_get
from training.services import jobs as job_services
from training.services import model_versions as version_services

HYPERPARAMETER_FIELDS = (
    "epochs",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "batch_size",
    "gradient_accumulation_steps",
    "max_length",
)


class TrainingJobForm(forms.Form):
    """Base model, optional hyperparameter overrides (blank = the base model's default) and the target."""

    base_model = forms.ChoiceField(label="Base model")
    epochs = forms.FloatField(required=False, min_value=0.01)
    learning_rate = forms.FloatField(required=False, min_value=0)
    lora_r = forms.IntegerField(required=False, min_value=1, label="LoRA r")
    lora_alpha = forms.IntegerField(required=False, min_value=1, label="LoRA alpha")
    lora_dropout = forms.FloatField(required=False, min_value=0, label="LoRA dropout")
    batch_size = forms.IntegerField(required=False, min_value=1)
    gradient_accumulation_steps = forms.IntegerField(required=False, min_value=1)
    max_length = forms.IntegerField(required=False, min_value=8, label="Max length (tokens)")
    target_agreement = forms.FloatField(
        min_value=0.5, max_value=1.0, help_text="Share of kept answers that must agree with the frontier model."
    )

    def __init__(self, *args, base_models, defaults: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = [(m.name, m.display_name or m.name) for m in base_models]
        # The first base model's defaults as placeholders (jobs.js swaps them when another is chosen).
        for name, value in (defaults or {}).items():
            self.fields[name].widget.attrs["placeholder"] = value

    def hyperparameters(self) -> dict:
        return {
            name: self.cleaned_data[name] for name in HYPERPARAMETER_FIELDS if self.cleaned_data.get(name) is not None
        }


def _add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put the service's errors on the form, on the field they name where there is one."""
    for key, messages_ in error.message_dict.items() if hasattr(error, "error_dict") else [(None, error.messages)]:
        for message in messages_:
            field, _, rest = message.partition(": ")
            if key == "hyperparameters" and field in form.fields:
                form.add_error(field, rest)
            else:
                form.add_error(key if key in form.fields else None, message)


def _duration(seconds: float) -> str:
    """90 -> "about 2 min"; under a minute -> "under a minute"; hours above 90 minutes."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes <= 90:
        return f"about {minutes} min"
    return f"about {seconds / 3600:.1f} h"


def _base_model_options(task) -> tuple[list, list]:
    """(usable, unavailable): catalogue entries for the task's kind, with defaults and a time estimate."""
    readiness = selectors.task_training_readiness(task)
    usable, unavailable = [], []
    for base_model in selectors.base_models_for_task_kind(task.kind):
        defaults = selectors.base_model_default_hyperparameters(base_model)
        entry = {
            "name": base_model.name,
            "display_name": base_model.display_name or base_model.name,
            "needs_gpu": base_model.needs_gpu,
            "notes": base_model.notes,
            "defaults": {name: getattr(defaults, name) for name in HYPERPARAMETER_FIELDS},
            "estimate": selectors.training_time_estimate(
                base_model=base_model, train_count=readiness.train_count, epochs=defaults.epochs
            ),
        }
        entry["estimate"]["text"] = _duration(entry["estimate"]["seconds"])
        if not selectors.base_model_trains_task_kind(base_model, task.kind):
            entry["reason"] = f"{base_model.architecture} models do not train {task.kind} tasks yet"
            unavailable.append(entry)
        elif not selectors.base_model_available(base_model):
            entry["reason"] = "needs a GPU worker; this deployment has none"
            unavailable.append(entry)
        else:
            usable.append((base_model, entry))
    return usable, unavailable


@tenant_required(Scope.TRAINING_WRITE)
def training_job_new(request, slug: str):
    context = request.tenant_context
    task = task_get(tenant=context.tenant_id, slug=slug)
    usable, unavailable = _base_model_options(task)
    form = TrainingJobForm(
        request.POST or None,
        base_models=[model for model, _ in usable],
        defaults=usable[0][1]["defaults"] if usable else None,
        initial={"target_agreement": task.target_agreement},
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = job_services.training_job_start(
                tenant=context.tenant,
                task=task,
                base_model=form.cleaned_data["base_model"],
                hyperparameters=form.hyperparameters(),
                target_agreement=form.cleaned_data["target_agreement"],
                created_by=request.user,
                actor=context.actor,
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            messages.success(request, f"Training job {job.pk} queued.")
            return redirect("training_job_detail", pk=job.pk)
    return render(
        request,
        "training/jobs/new.html",
        {
            "task": task,
            "form": form,
            "options": [entry for _, entry in usable],
            "unavailable": unavailable,
            "readiness": selectors.task_training_readiness(task),
        },
    )


@tenant_required(Scope.TRAINING_READ)
def training_job_list(request):
    tenant_id = request.tenant_context.tenant_id
    return render(
        request,
        "training/jobs/list.html",
        {
            "jobs": selectors.training_jobs_for_tenant(tenant_id)[:100],
            "model_versions": selectors.model_versions_for_tenant(tenant_id)[:100],
        },
    )


@tenant_required(Scope.TRAINING_READ)
def training_job_detail(request, pk: int):
    job = selectors.training_job_for_tenant(tenant=request.tenant_context.tenant_id, pk=pk)
    return render(
        request,
        "training/jobs/detail.html",
        {
            "job": job,
            "progress": selectors.training_job_progress(job),
            "events": selectors.training_job_events(job),
            "model_version": selectors.training_job_model_version(job),
            "finished": job.state in TERMINAL_JOB_STATES,
            # Escaped by the template into a data-chart attribute; the browser unescapes it back to JSON.
            "loss_chart": json.dumps(
                {"type": "line", "series": [{"label": "loss", "points": job.loss_curve}], "xLabel": "step"}
            ),
        },
    )


@tenant_required(Scope.TRAINING_WRITE)
@require_POST
def training_job_cancel(request, pk: int):
    context = request.tenant_context
    job = selectors.training_job_for_tenant(tenant=context.tenant_id, pk=pk)
    try:
        job = job_services.training_job_cancel(job=job, actor=context.actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        if job.state in TERMINAL_JOB_STATES:
            messages.success(request, f"Job {job.pk} cancelled.")
        else:
            messages.success(request, f"Cancelling job {job.pk}: the worker stops at its next training step.")
    return redirect("training_job_detail", pk=pk)


class TryItForm(forms.Form):
    inputs = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One input per line (at most 16).",
        strip=False,
    )

    def input_list(self) -> list[str]:
        return [line for line in self.cleaned_data["inputs"].splitlines() if line.strip()]


def _coverage_chart(model_version) -> dict:
    curve = model_version.calibration.get("curve") or []
    marker = None
    if model_version.threshold is not None:
        marker = {"x": model_version.threshold, "label": f"threshold {model_version.threshold:.3f}"}
    return {
        "type": "line",
        "series": [
            {"label": "coverage", "points": [[p["threshold"], p["coverage"]] for p in curve]},
            {"label": "agreement", "points": [[p["threshold"], p["agreement"]] for p in curve]},
        ],
        "xLabel": "confidence threshold",
        "yMin": 0,
        "yMax": 1,
        "marker": marker,
    }


@tenant_required(Scope.TRAINING_READ)
def model_version_detail(request, pk: int):
    model_version = selectors.model_version_for_tenant(tenant=request.tenant_context.tenant_id, pk=pk)
    form = TryItForm(request.POST or None)
    results = None
    if request.method == "POST" and form.is_valid():
        try:
            results = version_services.model_version_predict(model_version=model_version, inputs=form.input_list())
        except ValidationError as error:
            form.add_error("inputs", error.messages)
        except version_services.ArtifactMissing as error:
            form.add_error(None, str(error))
    metrics = model_version.metrics or {}
    per_label = sorted((metrics.get("per_label") or {}).items())
    return render(
        request,
        "training/jobs/model_version.html",
        {
            "model_version": model_version,
            "headline": [(k, v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)],
            "per_label": per_label,
            "saving": model_version.calibration.get("projected_saving") or {},
            "calibration": model_version.calibration,
            "coverage_chart": json.dumps(_coverage_chart(model_version)),
            "form": form,
            "results": results,
        },
    )


@tenant_required(Scope.TRAINING_READ)
def model_version_artifact(request, pk: int):
    model_version = selectors.model_version_for_tenant(tenant=request.tenant_context.tenant_id, pk=pk)
    try:
        filename, chunks = version_services.model_version_artifact_zip(model_version)
    except version_services.ArtifactMissing as error:
        raise Http404(str(error)) from None
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
