"""Reads of tasks and the frontier price table. Every tenant-owned read takes the tenant explicitly."""

from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from tenants.models import Tenant
from training.models import Example, ExampleUpload, FrontierModelPrice, Task


def tasks_for_tenant(tenant: Tenant | int) -> QuerySet[Task]:
    return Task.objects.for_tenant(tenant).order_by("slug")


def tasks_with_counts(tenant: Tenant | int) -> QuerySet[Task]:
    """The tenant's tasks with `example_count`, `upload_count` and `last_upload_at` (for the task list)."""
    # Correlated subqueries, not joins: joining examples and uploads would multiply their rows.
    examples = Example.objects.filter(task=OuterRef("pk")).order_by().values("task").annotate(n=Count("*"))
    uploads = ExampleUpload.objects.filter(task=OuterRef("pk")).order_by().values("task")
    return tasks_for_tenant(tenant).annotate(
        example_count=Coalesce(Subquery(examples.values("n"), output_field=IntegerField()), Value(0)),
        upload_count=Coalesce(
            Subquery(uploads.annotate(n=Count("*")).values("n"), output_field=IntegerField()), Value(0)
        ),
        last_upload_at=Subquery(uploads.annotate(last=Max("created_at")).values("last")),
    )


def task_get(*, tenant: Tenant | int, slug: str) -> Task:
    """The tenant's task with this slug; Http404 for an unknown slug or another tenant's task."""
    task = tasks_for_tenant(tenant).filter(slug=slug).first()
    if task is None:
        raise Http404("No such task.")
    return task


def frontier_prices() -> QuerySet[FrontierModelPrice]:
    return FrontierModelPrice.objects.order_by("name")
