"""API for tasks, addressed by slug within the tenant, with their examples, uploads and dataset."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from tenants.scopes import Scope
from tenants.viewsets import TenantScopedViewSet
from training.api import examples as example_api
from training.models import Task, TaskKind
from training.selectors import examples as example_selectors
from training.services import tasks as task_services


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "id", "slug", "name", "description", "kind", "labels", "output_schema", "source_language",
            "target_language", "frontier_model", "price_input_per_million", "price_output_per_million",
            "target_agreement", "eval_share", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class TaskWriteSerializer(serializers.Serializer):
    """Types only; what each kind needs is checked by the service (one set of rules for API and UI)."""

    slug = serializers.CharField(max_length=80, required=False, allow_blank=True, help_text="Default: from the name.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=TaskKind.choices)
    labels = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="Classification: the label set.",
    )
    output_schema = serializers.JSONField(required=False, help_text="Extraction: a JSON Schema of the output object.")
    source_language = serializers.CharField(max_length=20, required=False, allow_blank=True)
    target_language = serializers.CharField(max_length=20, required=False, allow_blank=True)
    frontier_model = serializers.CharField(max_length=100)
    price_input_per_million = serializers.DecimalField(
        max_digits=10, decimal_places=4, required=False, allow_null=True, help_text="Default: the price table."
    )
    price_output_per_million = serializers.DecimalField(
        max_digits=10, decimal_places=4, required=False, allow_null=True, help_text="Default: the price table."
    )
    target_agreement = serializers.FloatField(required=False, help_text="Default 0.95.")
    eval_share = serializers.FloatField(required=False, help_text="Share of inputs held out; default 0.1.")


class TaskViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """The tenant's narrow tasks. Reads need `examples:read`; changes need `examples:write`."""

    model = Task
    serializer_class = TaskSerializer
    lookup_field = "slug"
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    required_scopes = {
        "GET": Scope.EXAMPLES_READ,
        "POST": Scope.EXAMPLES_WRITE,
        "PUT": Scope.EXAMPLES_WRITE,
        "PATCH": Scope.EXAMPLES_WRITE,
        "DELETE": Scope.EXAMPLES_WRITE,
    }

    @extend_schema(request=TaskWriteSerializer, responses={201: TaskSerializer})
    def create(self, request):
        payload = TaskWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        task = task_services.task_create(
            tenant=context.tenant,
            created_by=request.user if context.user_id else None,
            actor=context.actor,
            **payload.validated_data,
        )
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)

    def _update(self, request, *, partial: bool) -> Response:
        task = self.get_object()  # 404 for another tenant's task before anything is validated
        payload = TaskWriteSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if changes.pop("slug", task.slug) not in ("", task.slug):
            raise serializers.ValidationError({"slug": "A task's slug cannot change: clients address it by slug."})
        task = task_services.task_update(task=task, actor=self.tenant_context.actor, **changes)
        return Response(TaskSerializer(task).data)

    @extend_schema(request=TaskWriteSerializer, responses=TaskSerializer)
    def update(self, request, slug=None):
        return self._update(request, partial=False)

    @extend_schema(request=TaskWriteSerializer, responses=TaskSerializer)
    def partial_update(self, request, slug=None):
        return self._update(request, partial=True)

    def destroy(self, request, slug=None):
        """Deletes the task with its examples and uploads."""
        task_services.task_delete(task=self.get_object(), actor=self.tenant_context.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        parameters=example_api.EXAMPLE_LIST_PARAMETERS,
        responses=example_api.ExampleSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"], request=example_api.ExampleBatchSerializer, responses=example_api.BatchResultSerializer
    )
    @action(detail=True, methods=["get", "post"])
    def examples(self, request, slug=None):
        """GET: the task's examples (search with q, filter by split, source, upload).
        POST: a JSON batch of up to 5,000 rows; answers the counts and each rejected row's index and reason."""
        task = self.get_object()
        if request.method == "POST":
            return example_api.ingest_batch(request, task)
        return example_api.list_examples(self, request, task)

    @extend_schema(methods=["GET"], responses=example_api.UploadSerializer(many=True))
    @extend_schema(
        methods=["POST"], request={"multipart/form-data": example_api.UploadCreateSerializer},
        responses={202: example_api.UploadSerializer},
    )  # fmt: skip
    @action(detail=True, methods=["get", "post"])
    def uploads(self, request, slug=None):
        """GET: the task's uploads. POST: upload a file (multipart `file`, optional `format`,
        `column_mapping`); answers 202 with the upload, processed on the ingest queue."""
        task = self.get_object()
        if request.method == "POST":
            return example_api.create_upload(request, task)
        page = self.paginate_queryset(example_selectors.uploads_for_task(task))
        return self.get_paginated_response(example_api.UploadSerializer(page, many=True).data)

    @extend_schema(responses=inline_serializer("DatasetStatistics", {"total": serializers.IntegerField()}))
    @action(detail=True, methods=["get"])
    def dataset(self, request, slug=None):
        """Counts per split and source, label distribution, length percentiles, examples per day, readiness."""
        return Response(example_selectors.dataset_statistics(self.get_object()))
