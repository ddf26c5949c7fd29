"""Web UI for tasks, uploads, the dataset, browsing examples and the spend dashboard.
Views translate HTTP; services write and selectors read."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants.forms import add_service_error
from tenants.scopes import Scope
from tenants.views import tenant_required
from training.models import ExampleSource, Split, TaskKind, UploadStatus
from training.selectors import examples as example_selectors
from training.selectors import jobs as job_selectors
from training.selectors import spend as spend_selectors
from training.selectors import tasks as task_selectors
from training.services import examples as example_services
from training.services import tasks as task_services
from training.views.examples_forms import TaskForm, UploadForm

EXAMPLES_PER_PAGE = 50


def _task(request, slug: str):
    return task_selectors.task_get(tenant=request.tenant_context.tenant_id, slug=slug)


def _creator(request):
    return request.user if request.user.is_authenticated else None


@tenant_required(Scope.EXAMPLES_READ)
def task_list(request):
    tasks = task_selectors.tasks_with_counts(request.tenant_context.tenant_id)
    return render(request, "training/tasks/list.html", {"tasks": tasks})


@tenant_required(Scope.EXAMPLES_WRITE)
def task_create(request):
    form = TaskForm(request.POST or None, initial={"kind": TaskKind.CLASSIFICATION})
    if request.method == "POST" and form.is_valid():
        context = request.tenant_context
        try:
            task = task_services.task_create(
                tenant=context.tenant, created_by=_creator(request), actor=context.actor, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Task {task.name} registered. Next: upload examples.")
            return redirect("upload_create", slug=task.slug)
    return render(
        request, "training/tasks/form.html", {"form": form, "prices": task_selectors.frontier_prices(), "task": None}
    )


@tenant_required(Scope.EXAMPLES_WRITE)
def task_edit(request, slug: str):
    task = _task(request, slug)
    form = TaskForm(request.POST or None, initial=TaskForm.initial_for(task), editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            task_services.task_update(task=task, actor=request.tenant_context.actor, **form.cleaned_data)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Task saved.")
            return redirect("task_detail", slug=task.slug)
    return render(
        request, "training/tasks/form.html", {"form": form, "prices": task_selectors.frontier_prices(), "task": task}
    )


@tenant_required(Scope.EXAMPLES_WRITE)
@require_POST
def task_delete(request, slug: str):
    task = _task(request, slug)
    try:
        task_services.task_delete(task=task, actor=request.tenant_context.actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("task_detail", slug=task.slug)
    messages.success(request, f"Task {task.slug} and its examples deleted.")
    return redirect("task_list")


@tenant_required(Scope.EXAMPLES_READ)
def task_detail(request, slug: str):
    task = _task(request, slug)
    statistics = example_selectors.dataset_statistics(task)
    labels = statistics["labels"] or []
    label_chart = {
        "type": "bar",
        "labels": [row["label"] for row in labels],
        "values": [row["total"] for row in labels],
    }
    per_day = statistics["per_day"]
    day_chart = {"type": "bar", "labels": [row["day"] for row in per_day], "values": [row["count"] for row in per_day]}
    return render(
        request,
        "training/tasks/detail.html",
        {
            "task": task,
            "stats": statistics,
            "label_chart": json.dumps(label_chart),
            "day_chart": json.dumps(day_chart),
            "uploads": example_selectors.uploads_for_task(task)[:20],
            "training": job_selectors.task_training_summary(task),
            "readiness_percent": min(
                100, round(100 * statistics["readiness"]["train_examples"] / max(1, statistics["readiness"]["needed"]))
            ),
        },
    )


@tenant_required(Scope.EXAMPLES_WRITE)
def upload_create(request, slug: str):
    """The upload page. With JavaScript the file goes to the API with a progress bar (static/js/upload.js);
    without it, this form posts here and the upload page refreshes itself until the file is processed."""
    task = _task(request, slug)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        context = request.tenant_context
        try:
            upload = example_services.example_upload_create(
                task=task,
                file=form.cleaned_data["file"],
                file_format=form.cleaned_data["format"] or "auto",
                column_mapping=form.column_mapping(),
                created_by=_creator(request),
                actor=context.actor,
            )
        except example_services.UploadTooLarge as error:
            form.add_error("file", str(error))
        except ValidationError as error:
            add_service_error(form, error)
        else:
            return redirect("upload_detail", pk=upload.pk)
    return render(
        request,
        "training/tasks/upload.html",
        {
            "task": task,
            "form": form,
            "max_upload_bytes": int(example_services.ingest_setting("INGEST_MAX_UPLOAD_BYTES")),
        },
    )


def _upload(request, pk: int):
    upload = example_selectors.upload_get(tenant=request.tenant_context.tenant_id, pk=pk)
    if upload is None:
        raise Http404("No such upload.")
    return upload


@tenant_required(Scope.EXAMPLES_READ)
def upload_detail(request, pk: int):
    upload = _upload(request, pk)
    errors = example_selectors.upload_row_errors(upload)
    page = Paginator(errors, 100).get_page(request.GET.get("page"))
    running = upload.status in (UploadStatus.PENDING, UploadStatus.PROCESSING)
    return render(
        request,
        "training/tasks/upload_detail.html",
        {
            "upload": upload,
            "task": upload.task,
            "errors_page": page,
            "running": running,
            "stalled": example_services.upload_is_stalled(upload),
            "progress_percent": round(100 * example_selectors.upload_progress(upload)),
        },
    )


@tenant_required(Scope.EXAMPLES_WRITE)
@require_POST
def upload_resume(request, pk: int):
    upload = _upload(request, pk)
    try:
        example_services.upload_resume(upload=upload, actor=request.tenant_context.actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Upload queued again; it continues after its last committed line.")
    return redirect("upload_detail", pk=upload.pk)


@tenant_required(Scope.EXAMPLES_WRITE)
@require_POST
def upload_reprocess(request, pk: int):
    upload = _upload(request, pk)
    try:
        again = example_services.upload_reprocess(
            upload=upload, actor=request.tenant_context.actor, created_by=_creator(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("upload_detail", pk=upload.pk)
    messages.success(request, f"The file is being read again as upload #{again.pk}.")
    return redirect("upload_detail", pk=again.pk)


@tenant_required(Scope.EXAMPLES_READ)
def example_list(request, slug: str):
    task = _task(request, slug)
    q = request.GET.get("q", "").strip()
    split = request.GET.get("split", "") if request.GET.get("split", "") in Split.values else ""
    source = request.GET.get("source", "") if request.GET.get("source", "") in ExampleSource.values else ""
    upload = request.GET.get("upload", "")
    examples = example_selectors.examples_for_task(
        task, q=q, split=split, source=source, upload_id=int(upload) if upload.isdigit() else None
    )
    page = Paginator(examples, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "training/tasks/examples.html",
        {
            "task": task,
            "page": page,
            "q": q,
            "split": split,
            "source": source,
            "upload": upload if upload.isdigit() else "",
            "splits": Split.choices,
            "sources": ExampleSource.choices,
            "query": query.urlencode(),
        },
    )


@tenant_required(Scope.EXAMPLES_WRITE)
@require_POST
def example_delete(request, slug: str, pk: int):
    task = _task(request, slug)
    example = example_selectors.example_get(tenant=request.tenant_context.tenant_id, pk=pk)
    if example is None or example.task_id != task.pk:
        raise Http404("No such example.")
    example_services.example_delete(example=example, actor=request.tenant_context.actor)
    messages.success(request, "Example deleted.")
    next_url = request.POST.get("next", "")
    if next_url.startswith(f"/tasks/{task.slug}/examples/"):
        return redirect(next_url)
    return redirect("example_list", slug=task.slug)


@tenant_required(Scope.EXAMPLES_READ)
def dashboard(request):
    spend = spend_selectors.spend_by_task(request.tenant_context.tenant_id)
    chart = {
        "type": "bar",
        "labels": [row["task"] for row in spend["ranking"]],
        "values": [row["spend"] for row in spend["ranking"]],
    }
    palette = ["#3451d1", "#1f8a4c", "#c0392b", "#b7791f", "#7d3cc8", "#138496"]
    weekly = {
        "type": "line",
        "xLabel": "week",
        "yMin": 0,
        "series": [
            {
                "label": task["task"],
                "points": [[index, week["spend"]] for index, week in enumerate(task["weeks"])],
                "color": palette[position % len(palette)],
            }
            for position, task in enumerate(spend["tasks"][:6])
        ],
    }
    return render(
        request,
        "training/dashboard.html",
        {"spend": spend, "ranking_chart": json.dumps(chart), "weekly_chart": json.dumps(weekly)},
    )
