from django.urls import include, path

urlpatterns = [
    path("", include("training.views.examples_urls")),
    path("", include("training.views.jobs_urls")),
]
