"""Operator views of the training app. Operators edit the price table and the base-model catalogue here;
tenant data is shown for support and is changed through the product (its services), not here."""

from django.contrib import admin

from training.models import (
    BaseModel,
    Example,
    ExampleUpload,
    FrontierModelPrice,
    ModelVersion,
    Task,
    TrainingEvent,
    TrainingJob,
    UploadRowError,
)


@admin.register(FrontierModelPrice)
class FrontierModelPriceAdmin(admin.ModelAdmin):
    """Prefills a new task's prices (USD per million tokens); existing tasks keep theirs."""

    list_display = ["name", "input_per_million", "output_per_million", "notes"]
    search_fields = ["name"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["slug", "tenant", "kind", "frontier_model", "price_input_per_million", "price_output_per_million"]
    list_filter = ["kind"]
    search_fields = ["slug", "name", "tenant__slug"]
    raw_id_fields = ["tenant", "created_by"]
    readonly_fields = ["created_at", "updated_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the product's services; the admin shows them. Deleting one here would skip the
    services (the audit log, an adapter's files on disk), so it is refused too, as in the routing admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExampleUpload)
class ExampleUploadAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant",
        "task",
        "original_name",
        "status",
        "rows_read",
        "accepted",
        "rejected",
        "duplicates",
    ]
    list_filter = ["status"]
    search_fields = ["original_name", "task__slug", "tenant__slug"]
    list_select_related = ["tenant", "task"]


@admin.register(UploadRowError)
class UploadRowErrorAdmin(ReadOnlyAdmin):
    list_display = ["upload", "line", "field", "message"]
    search_fields = ["message"]
    raw_id_fields = ["upload", "tenant"]
    show_full_result_count = False


@admin.register(Example)
class ExampleAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "task", "split", "source", "short_input", "output", "created_at"]
    list_filter = ["split", "source"]
    list_select_related = ["tenant", "task"]
    raw_id_fields = ["tenant", "task", "upload"]
    show_full_result_count = False  # a task holds millions of rows; counting them on each page is slow

    @admin.display(description="input")
    def short_input(self, example: Example) -> str:
        return example.input[:80]


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    """The base-model catalogue: where weights come from and their fine-tuning defaults."""

    list_display = ["name", "display_name", "architecture", "source_kind", "needs_gpu", "enabled"]
    list_filter = ["architecture", "needs_gpu", "enabled"]
    search_fields = ["name", "display_name", "source"]


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "task", "base_model", "state", "step", "total_steps", "created_at"]
    list_filter = ["state"]
    list_select_related = ["tenant", "task", "base_model"]
    search_fields = ["task__slug", "tenant__slug"]


@admin.register(TrainingEvent)
class TrainingEventAdmin(ReadOnlyAdmin):
    list_display = ["job", "created_at", "level", "message"]
    list_filter = ["level"]
    raw_id_fields = ["job", "tenant"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "task", "threshold", "coverage", "created_at"]
    list_select_related = ["tenant", "task"]
    search_fields = ["name", "task__slug", "tenant__slug"]
