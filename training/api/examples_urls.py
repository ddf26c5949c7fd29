"""API routes of the tasks and examples area (relative to /api/v1/)."""

from django.urls import path

from training.api.examples import ExampleViewSet, SpendView, UploadViewSet
from training.api.tasks import TaskViewSet


def register(router) -> list:
    """Register viewsets on the shared router; return plain paths (relative to /api/v1/)."""
    router.register("tasks", TaskViewSet, basename="task")
    router.register("uploads", UploadViewSet, basename="upload")
    router.register("examples", ExampleViewSet, basename="example")
    return [path("spend", SpendView.as_view(), name="spend")]
