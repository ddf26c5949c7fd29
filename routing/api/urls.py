from django.conf import settings
from django.urls import path

from routing.api import views


def register(router) -> list:
    """Register viewsets on the shared router; return plain paths (relative to /api/v1/)."""
    router.register("routing/rules", views.RouteRuleViewSet, basename="route-rule")
    router.register("routing/versions", views.RouteTableVersionViewSet, basename="route-table-version")
    # Only the `publish` action: the rest of /model-versions is the training app's viewset.
    router.register("model-versions", views.ModelVersionPublishViewSet, basename="routing-model-version")
    bench = []
    if getattr(settings, "ROUTING_BENCH_VIEW", False):
        # bench/routing.py's baseline, next to the table so that both take the same URL resolution path.
        bench = [path("routing/bench-constant", views.bench_constant, name="routing-bench-constant")]
    return [
        path("routing/table", views.routing_table, name="routing-table"),
        *bench,
        path("routing/decide", views.DecideView.as_view(), name="routing-decide"),
        path("routing/outcomes", views.OutcomesView.as_view(), name="routing-outcomes"),
        path("routing/tasks", views.RoutingTasksView.as_view(), name="routing-tasks"),
        path("routing/settings", views.RoutingSettingsView.as_view(), name="routing-settings"),
        path("routing/draft", views.RoutingDraftView.as_view(), name="routing-draft"),
    ]
