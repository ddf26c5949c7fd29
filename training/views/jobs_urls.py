"""UI routes for training jobs and model versions."""

from django.urls import path

from training.views import jobs

urlpatterns = [
    path("tasks/<slug:slug>/train/", jobs.training_job_new, name="training_job_new"),
    path("training/", jobs.training_job_list, name="training_job_list"),
    path("training/jobs/<int:pk>/", jobs.training_job_detail, name="training_job_detail"),
    path("training/jobs/<int:pk>/cancel/", jobs.training_job_cancel, name="training_job_cancel"),
    path("training/models/<int:pk>/", jobs.model_version_detail, name="model_version_detail"),
    path("training/models/<int:pk>/artifact/", jobs.model_version_artifact, name="model_version_artifact"),
]
