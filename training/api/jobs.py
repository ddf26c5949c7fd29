"""REST API for training jobs, model versions and the base-model catalogue. Views translate HTTP only."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.scopes import Scope
from tenants.viewsets import TenantScopedViewSet
from training.models import BaseModel, JobState, ModelVersion, TrainingEvent, TrainingJob
from training.selectors import jobs as selectors
from training.selectors.tasks import task_get
from training.services import jobs as job_services
from training.services import model_versions as version_services

# --- serializers -----------------------------------------------------------------------------------


class ModelVersionRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "name", "version", "threshold", "coverage"]


class TrainingJobSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    progress = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "task",
            "base_model",
            "state",
            "cancel_requested",
            "progress",
            "hyperparameters",
            "target_agreement",
            "train_count",
            "eval_count",
            "loss_curve",
            "metrics",
            "error",
            "attempts",
            "heartbeat_at",
            "created_at",
            "started_at",
            "finished_at",
            "model_version",
        ]
        read_only_fields = fields

    @extend_schema_field(
        inline_serializer(
            "TrainingJobProgress",
            {
                "step": serializers.IntegerField(),
                "total_steps": serializers.IntegerField(),
                "percent": serializers.FloatField(),
                "epoch": serializers.FloatField(),
                "eta_seconds": serializers.FloatField(allow_null=True),
                "examples_per_second": serializers.FloatField(allow_null=True),
            },
        )
    )
    def get_progress(self, job: TrainingJob) -> dict:
        return selectors.training_job_progress(job)

    def get_model_version(self, job: TrainingJob) -> dict | None:
        version = selectors.training_job_model_version(job)
        return ModelVersionRefSerializer(version).data if version else None


class TrainingJobCreateSerializer(serializers.Serializer):
    base_model = serializers.CharField(
        required=False, allow_blank=True, help_text="A catalogue name; default: the first that fits."
    )
    hyperparameters = serializers.DictField(required=False, help_text="Overrides of the base model's defaults.")
    target_agreement = serializers.FloatField(required=False, help_text="Default: the task's target.")


class TrainingEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingEvent
        fields = ["id", "created_at", "level", "message", "data"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    target_agreement = serializers.SerializerMethodField()
    achievable = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    curve = serializers.SerializerMethodField()
    projected_saving = serializers.SerializerMethodField()
    artifact_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "task",
            "job",
            "base_model",
            "hyperparameters",
            "train_count",
            "eval_count",
            "metrics",
            "threshold",
            "coverage",
            "target_agreement",
            "achievable",
            "message",
            "curve",
            "projected_monthly_saving",
            "projected_saving",
            "artifact_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_target_agreement(self, version: ModelVersion) -> float | None:
        return version.calibration.get("target_agreement")

    def get_achievable(self, version: ModelVersion) -> bool:
        return bool(version.calibration.get("achievable"))

    def get_message(self, version: ModelVersion) -> str:
        return version.calibration.get("message", "")

    def get_curve(self, version: ModelVersion) -> list:
        return version.calibration.get("curve", [])

    def get_projected_saving(self, version: ModelVersion) -> dict | None:
        return version.calibration.get("projected_saving")

    def get_artifact_url(self, version: ModelVersion) -> str:
        request = self.context.get("request")
        path = f"/api/v1/model-versions/{version.pk}/artifact"
        return request.build_absolute_uri(path) if request else path


class PredictRequestSerializer(serializers.Serializer):
    inputs = serializers.ListField(child=serializers.CharField(trim_whitespace=False), allow_empty=False)


PredictResponseSerializer = inline_serializer(
    "PredictResponse",
    {
        "model_version": serializers.CharField(),
        "threshold": serializers.FloatField(allow_null=True),
        "results": serializers.ListField(child=serializers.DictField()),
    },
)


class BaseModelSerializer(serializers.ModelSerializer):
    available = serializers.SerializerMethodField()
    default_hyperparameters = serializers.SerializerMethodField()

    class Meta:
        model = BaseModel
        fields = [
            "name",
            "display_name",
            "architecture",
            "task_kinds",
            "source_kind",
            "max_length",
            "needs_gpu",
            "available",
            "default_hyperparameters",
            "notes",
        ]
        read_only_fields = fields

    def get_available(self, base_model: BaseModel) -> bool:
        return selectors.base_model_available(base_model)

    def get_default_hyperparameters(self, base_model: BaseModel) -> dict:
        return selectors.base_model_default_hyperparameters(base_model).to_dict()


# --- views -----------------------------------------------------------------------------------------


@extend_schema(parameters=[OpenApiParameter("task_slug", str, OpenApiParameter.PATH, description="The task's slug.")])
class TaskTrainingJobViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """`/tasks/{task_slug}/training-jobs`: start a fine-tuning job for the task (202), or list its jobs."""

    model = TrainingJob
    serializer_class = TrainingJobSerializer
    required_scopes = {"GET": Scope.TRAINING_READ, "POST": Scope.TRAINING_WRITE}

    def _task(self):
        # The parent first, within the caller's tenant: another tenant's task is a 404 before any validation.
        return task_get(tenant=self.tenant_id, slug=self.kwargs["task_slug"])

    def scope_queryset(self, queryset):
        return queryset.filter(task__slug=self.kwargs["task_slug"]).select_related(
            "task", "base_model", "model_version"
        )

    def list(self, request, *args, **kwargs):
        self._task()
        return super().list(request, *args, **kwargs)

    @extend_schema(request=TrainingJobCreateSerializer, responses={202: TrainingJobSerializer})
    def create(self, request, task_slug=None):
        task = self._task()
        payload = TrainingJobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        job = job_services.training_job_start(
            tenant=context.tenant,
            task=task,
            created_by=request.user if context.user_id else None,
            actor=context.actor,
            **payload.validated_data,
        )
        headers = {"Location": f"/api/v1/training-jobs/{job.pk}"}
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED, headers=headers)


class TrainingJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's training jobs: state, progress (step, total, percent, ETA), loss curve, metrics."""

    model = TrainingJob
    serializer_class = TrainingJobSerializer
    required_scopes = {"GET": Scope.TRAINING_READ, "POST": Scope.TRAINING_WRITE}

    def scope_queryset(self, queryset):
        queryset = queryset.select_related("task", "base_model", "model_version")
        if self.action == "list":
            params = self.request.query_params
            if params.get("task"):
                queryset = queryset.filter(task__slug=params["task"])
            if params.get("state"):
                if params["state"] not in JobState.values:
                    raise exceptions.ValidationError(
                        {"state": f"Unknown state '{params['state']}'; one of: {', '.join(JobState.values)}."}
                    )
                queryset = queryset.filter(state=params["state"])
        return queryset

    @extend_schema(
        parameters=[
            OpenApiParameter("task", str, description="Only this task's jobs (slug)."),
            OpenApiParameter("state", str, enum=JobState.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=TrainingEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        job = self.get_object()
        page = self.paginate_queryset(selectors.training_job_events(job))
        return self.get_paginated_response(TrainingEventSerializer(page, many=True).data)

    @extend_schema(request=None, responses=TrainingJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = job_services.training_job_cancel(job=self.get_object(), actor=self.tenant_context.actor)
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Trained adapters with their evaluation, calibrated threshold, coverage curve and projected saving."""

    model = ModelVersion
    serializer_class = ModelVersionSerializer
    required_scopes = {"GET": Scope.TRAINING_READ}
    # Predicting changes nothing; whoever may read a model's metrics may try it.
    action_scopes = {"predict": Scope.TRAINING_READ}

    def scope_queryset(self, queryset):
        queryset = queryset.select_related("task", "base_model")
        if self.action == "list" and self.request.query_params.get("task"):
            queryset = queryset.filter(task__slug=self.request.query_params["task"])
        return queryset

    @extend_schema(parameters=[OpenApiParameter("task", str, description="Only this task's versions (slug).")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["get"])
    def artifact(self, request, pk=None):
        """A zip of the PEFT adapter folder, streamed as it is built."""
        version = self.get_object()
        try:
            filename, chunks = version_services.model_version_artifact_zip(version)
        except version_services.ArtifactMissing as error:
            # 410, not 404: the model version is the caller's, only its files are gone.
            raise Gone(str(error)) from None
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(request=PredictRequestSerializer, responses=PredictResponseSerializer)
    @action(detail=True, methods=["post"])
    def predict(self, request, pk=None):
        """Answer a few inputs; each answer has a confidence and the route the threshold would choose."""
        version = self.get_object()
        payload = PredictRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            results = version_services.model_version_predict(
                model_version=version, inputs=payload.validated_data["inputs"]
            )
        except version_services.ArtifactMissing as error:
            raise Gone(str(error)) from None
        return Response({"model_version": version.name, "threshold": version.threshold, "results": results})


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "The files of this resource are no longer available."
    default_code = "gone"


class BaseModelListView(APIView):
    """The base-model catalogue (shared by every tenant): what each model trains and its defaults."""

    required_scopes = {"GET": Scope.TRAINING_READ}

    @extend_schema(
        responses=BaseModelSerializer(many=True),
        parameters=[OpenApiParameter("task_kind", str, description="Only models that serve this kind.")],
    )
    def get(self, request):
        kind = request.query_params.get("task_kind")
        models = BaseModel.objects.filter(enabled=True)
        if kind:
            models = selectors.base_models_for_task_kind(kind)
        return Response(BaseModelSerializer(models, many=True).data)
