from django.urls import path

from routing import views

urlpatterns = [
    path("routing/", views.routing_page, name="routing"),
    path("routing/rules/new/", views.route_rule_create, name="route_rule_create"),
    path("routing/rules/<int:rule_id>/", views.route_rule_update, name="route_rule_update"),
    path("routing/rules/<int:rule_id>/delete/", views.route_rule_delete, name="route_rule_delete"),
    path("routing/settings/", views.route_settings_update, name="route_settings_update"),
    path("routing/publish/", views.route_table_publish, name="route_table_publish"),
    path("routing/versions/<int:version>/", views.route_table_version, name="route_table_version"),
    path("routing/versions/<int:version>/rollback/", views.route_table_rollback, name="route_table_rollback"),
    path(
        "routing/model-versions/<int:pk>/publish/",
        views.model_version_publish,
        name="routing_model_version_publish",
    ),
]
