"""Operators' view of routing. Published versions are immutable and outcomes are reports: both read-only.
Draft rules are edited through the product (its services validate and audit every change), so the admin
only shows them."""

from django.contrib import admin

from routing.models import Outcome, OutcomeDaily, RouteRule, RouteTableSettings, RouteTableVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RouteRule)
class RouteRuleAdmin(ReadOnlyAdmin):
    list_display = ["task", "tenant", "enabled", "model_version", "threshold", "canary_percent", "shadow", "updated_at"]
    list_filter = ["enabled", "shadow", "tenant"]
    search_fields = ["task__slug", "tenant__slug"]


@admin.register(RouteTableSettings)
class RouteTableSettingsAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "default_model", "cache_max_age"]


@admin.register(RouteTableVersion)
class RouteTableVersionAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "version", "published_by", "published_at", "rolled_back_from", "note"]
    list_filter = ["tenant"]
    search_fields = ["tenant__slug", "note", "published_by"]
    exclude = ["body"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # history is the audit trail of what was live


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ["reported_at", "tenant", "task", "route", "confidence", "fell_back", "shadow", "agreed"]
    list_filter = ["route", "fell_back", "shadow", "tenant"]
    date_hierarchy = "reported_at"


@admin.register(OutcomeDaily)
class OutcomeDailyAdmin(ReadOnlyAdmin):
    list_display = ["day", "tenant", "task", "requests", "kept_by_small", "fell_back", "realised_saving"]
    list_filter = ["tenant"]
    date_hierarchy = "day"
