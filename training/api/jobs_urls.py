"""API routes of training jobs and model versions (relative to /api/v1/)."""

from django.urls import path

from training.api import jobs


def register(router) -> list:
    """Register viewsets on the shared router; return plain paths (relative to /api/v1/)."""
    router.register(
        r"tasks/(?P<task_slug>[^/.]+)/training-jobs", jobs.TaskTrainingJobViewSet, basename="task-training-job"
    )
    router.register("training-jobs", jobs.TrainingJobViewSet, basename="training-job")
    router.register("model-versions", jobs.ModelVersionViewSet, basename="model-version")
    return [path("base-models", jobs.BaseModelListView.as_view(), name="base-models")]
