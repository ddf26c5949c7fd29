"""API for examples: JSON batches, file uploads and their error reports, browsing and deleting
examples, dataset statistics and spend by task. Views translate HTTP; services write, selectors read."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.scopes import Scope
from tenants.viewsets import TenantScopedViewSet
from training.models import Example, ExampleSource, ExampleUpload, Split
from training.selectors import examples as example_selectors
from training.selectors import spend as spend_selectors
from training.services import examples as example_services

# ---------------------------------------------------------------------------------------------- serializers


class ExampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Example
        fields = [
            "id", "split", "source", "input", "output", "content_hash", "input_tokens", "output_tokens", "model",
            "logged_at", "metadata", "upload", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ExampleBatchSerializer(serializers.Serializer):
    examples = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Rows in any JSON Lines shape: {input, output}, {prompt, completion}, {messages}, "
        "{request, response}; optional usage, model, timestamp, metadata.",
    )


class BatchErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="0-based index of the row in the batch.")
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = BatchErrorSerializer(many=True)


class UploadSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    format = serializers.CharField(source="file_format", read_only=True)
    progress = serializers.SerializerMethodField(help_text="Share of the file's bytes processed, 0 to 1.")
    stalled = serializers.SerializerMethodField(help_text="Processing, but the worker has not reported lately.")
    errors = serializers.JSONField(source="errors_preview", read_only=True, help_text="The first 100 rejected rows.")
    errors_url = serializers.SerializerMethodField()

    class Meta:
        model = ExampleUpload
        fields = [
            "id", "task", "original_name", "size_bytes", "format", "column_mapping", "status", "rows_read",
            "accepted", "rejected", "duplicates", "bytes_processed", "progress", "last_line", "message", "attempts",
            "stalled", "created_at", "started_at", "finished_at", "errors", "errors_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_progress(self, upload) -> float:
        return example_selectors.upload_progress(upload)

    def get_stalled(self, upload) -> bool:
        return example_services.upload_is_stalled(upload)

    def get_errors_url(self, upload) -> str:
        return f"/api/v1/uploads/{upload.pk}/errors"


class UploadCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSON Lines or CSV, optionally gzip-compressed.")
    format = serializers.ChoiceField(choices=example_services.UPLOAD_FORMATS, default="auto", required=False)
    column_mapping = serializers.JSONField(
        required=False,
        help_text='Field -> column (CSV) or key (JSONL), e.g. {"input": "text", "output": "category"}. '
        "Fields: input, output, timestamp, model, input_tokens, output_tokens.",
    )


class UploadReprocessSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=example_services.UPLOAD_FORMATS, required=False)
    column_mapping = serializers.JSONField(required=False)


# ---------------------------------------------------------------------------------------------- helpers


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "file_too_large"
    default_detail = "The file is too large."


def check_upload_size_header(request) -> None:
    """Refuse an over-size upload from its Content-Length before the body is read, where possible."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    # The multipart envelope adds a little; the file itself is checked again once received.
    try:
        example_services.upload_size_check(max(0, length - 64 * 1024))
    except example_services.UploadTooLarge as error:
        raise PayloadTooLarge(str(error)) from None


def create_upload(request, task) -> Response:
    check_upload_size_header(request)
    payload = UploadCreateSerializer(data=request.data)
    payload.is_valid(raise_exception=True)
    context = request.auth
    try:
        upload = example_services.example_upload_create(
            task=task,
            file=payload.validated_data["file"],
            file_format=payload.validated_data.get("format", "auto"),
            column_mapping=payload.validated_data.get("column_mapping"),
            created_by=request.user if context.user_id else None,
            actor=context.actor,
        )
    except example_services.UploadTooLarge as error:
        raise PayloadTooLarge(str(error)) from None
    return Response(UploadSerializer(upload).data, status=status.HTTP_202_ACCEPTED)


def ingest_batch(request, task) -> Response:
    body = request.data
    rows = body.get("examples") if isinstance(body, dict) else body
    if isinstance(body, dict) and "examples" not in body:
        raise exceptions.ValidationError({"examples": 'Send {"examples": [...]} or a JSON array of rows.'})
    result = example_services.examples_ingest_batch(task=task, rows=rows, actor=request.auth.actor)
    return Response(BatchResultSerializer(result).data)


def list_examples(view, request, task) -> Response:
    params = request.query_params
    split, source = params.get("split", ""), params.get("source", "")
    if split and split not in Split.values:
        raise exceptions.ValidationError({"split": f"Unknown split {split!r}; use {' or '.join(Split.values)}."})
    if source and source not in ExampleSource.values:
        raise exceptions.ValidationError(
            {"source": f"Unknown source {source!r}; use {', '.join(ExampleSource.values)}."}
        )
    upload = params.get("upload", "")
    if upload and not upload.isdigit():
        raise exceptions.ValidationError({"upload": "Give an upload id (a number)."})
    examples = example_selectors.examples_for_task(
        task, q=params.get("q", "").strip(), split=split, source=source, upload_id=int(upload) if upload else None
    )
    page = view.paginate_queryset(examples)
    return view.get_paginated_response(ExampleSerializer(page, many=True).data)


EXAMPLE_LIST_PARAMETERS = [
    OpenApiParameter("q", str, description="Text search in input and output."),
    OpenApiParameter("split", str, enum=Split.values),
    OpenApiParameter("source", str, enum=ExampleSource.values),
    OpenApiParameter("upload", int, description="Only the examples added by this upload."),
]


# ---------------------------------------------------------------------------------------------- report renderers


class _ReportRenderer(BaseRenderer):
    """Lets `?format=csv|jsonl` pass content negotiation; errors on these routes are still JSON."""

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, accepted_media_type, renderer_context)


class CsvReportRenderer(_ReportRenderer):
    media_type = "text/csv"
    format = "csv"


class JsonlReportRenderer(_ReportRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


# ---------------------------------------------------------------------------------------------- viewsets


class UploadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Uploaded files of examples: status, counts, progress, the first 100 errors; the full error report."""

    model = ExampleUpload
    serializer_class = UploadSerializer
    required_scopes = {"GET": Scope.EXAMPLES_READ, "POST": Scope.EXAMPLES_WRITE}

    def scope_queryset(self, queryset):
        queryset = queryset.select_related("task").order_by("-created_at", "-id")
        if self.action == "list" and self.request.query_params.get("task"):
            queryset = queryset.filter(task__slug=self.request.query_params["task"])
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"], description="Default csv.")],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvReportRenderer, JsonlReportRenderer])
    def errors(self, request, pk=None):
        """Every rejected row (line, field, message, excerpt), streamed; CSV cells are spreadsheet-safe."""
        upload = self.get_object()
        report_format = request.query_params.get("format", "csv")
        if report_format not in ("csv", "jsonl"):
            raise exceptions.ValidationError({"format": "Use format=csv or format=jsonl."})
        content_type = "text/csv; charset=utf-8" if report_format == "csv" else "application/x-ndjson"
        response = StreamingHttpResponse(
            example_selectors.error_report_chunks(upload, report_format), content_type=content_type
        )
        response["Content-Disposition"] = f'attachment; filename="upload-{upload.pk}-errors.{report_format}"'
        return response

    @extend_schema(request=None, responses={202: UploadSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed or stalled upload again; it continues after its last committed line."""
        upload = example_services.upload_resume(upload=self.get_object(), actor=self.tenant_context.actor)
        return Response(UploadSerializer(upload).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=UploadReprocessSerializer, responses={202: UploadSerializer})
    @action(detail=True, methods=["post"])
    def reprocess(self, request, pk=None):
        """Read the kept original file again as a new upload, optionally with another format or mapping."""
        upload = self.get_object()
        payload = UploadReprocessSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        again = example_services.upload_reprocess(
            upload=upload,
            file_format=payload.validated_data.get("format"),
            column_mapping=payload.validated_data.get("column_mapping"),
            created_by=request.user if context.user_id else None,
            actor=context.actor,
        )
        return Response(UploadSerializer(again).data, status=status.HTTP_202_ACCEPTED)


class ExampleViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet):
    """One stored example; list a task's examples at /tasks/{slug}/examples."""

    model = Example
    serializer_class = ExampleSerializer
    required_scopes = {"GET": Scope.EXAMPLES_READ, "DELETE": Scope.EXAMPLES_WRITE}

    def perform_destroy(self, instance):
        example_services.example_delete(example=instance, actor=self.tenant_context.actor)


class SpendView(APIView):
    """Spend per task per ISO week at the frontier model's prices, and the specialisation ranking."""

    required_scopes = {"GET": Scope.EXAMPLES_READ}

    @extend_schema(
        parameters=[OpenApiParameter("weeks", int, description="Weeks to show, the current one included (1-104).")],
        responses=inline_serializer("Spend", {"tasks": serializers.ListField(), "ranking": serializers.ListField()}),
    )
    def get(self, request):
        weeks = request.query_params.get("weeks", str(spend_selectors.DEFAULT_WEEKS))
        if not weeks.isdigit() or not 1 <= int(weeks) <= spend_selectors.MAX_WEEKS:
            raise exceptions.ValidationError(
                {"weeks": f"Give a number of weeks from 1 to {spend_selectors.MAX_WEEKS}."}
            )
        # The tenant comes from the caller's key or session, never from the request.
        return Response(spend_selectors.spend_by_task(request.auth.tenant_id, weeks=int(weeks)))
