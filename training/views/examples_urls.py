"""UI routes for tasks, uploads, examples and the spend dashboard."""

from django.urls import path

from training.views import examples

urlpatterns = [
    path("dashboard/", examples.dashboard, name="dashboard"),
    path("tasks/", examples.task_list, name="task_list"),
    path("tasks/new/", examples.task_create, name="task_create"),
    path("tasks/<slug:slug>/", examples.task_detail, name="task_detail"),
    path("tasks/<slug:slug>/edit/", examples.task_edit, name="task_edit"),
    path("tasks/<slug:slug>/delete/", examples.task_delete, name="task_delete"),
    path("tasks/<slug:slug>/upload/", examples.upload_create, name="upload_create"),
    path("tasks/<slug:slug>/examples/", examples.example_list, name="example_list"),
    path("tasks/<slug:slug>/examples/<int:pk>/delete/", examples.example_delete, name="example_delete"),
    path("uploads/<int:pk>/", examples.upload_detail, name="upload_detail"),
    path("uploads/<int:pk>/resume/", examples.upload_resume, name="upload_resume"),
    path("uploads/<int:pk>/reprocess/", examples.upload_reprocess, name="upload_reprocess"),
]
