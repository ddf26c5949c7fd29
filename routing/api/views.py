"""Routing API: draft rules, published versions (diff, rollback), publishing a model version, the runtime
table (hot path), decisions for services without the client, outcome reports and per-task statistics."""

import functools
import time

import orjson
from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.errors import error_body
from controlplane.metrics import ROUTING_LATENCY, ROUTING_REQUESTS, BatchedRequestMetrics
from routing import selectors, services
from routing.api import serializers
from routing.cache import published_table, table_key_context
from routing.compiler import diff_contents
from routing.models import RouteRule, RouteTableVersion
from tenants.authentication import authenticate_bearer
from tenants.scopes import Scope
from tenants.viewsets import TenantScopedViewSet
from training.models import ModelVersion

# --- the hot path: GET /api/v1/routing/table --------------------------------------------------------------

_TABLE_SCOPE = Scope.ROUTING_READ.value
_WWW_AUTHENTICATE = 'Bearer realm="api"'


def _error(status_code: int, code: str, message: str, headers: dict | None = None) -> HttpResponse:
    body = orjson.dumps(error_body(status_code=status_code, code=code, message=message))
    return HttpResponse(body, status=status_code, content_type="application/json", headers=headers)


def _throttled(wait: int) -> HttpResponse:
    return _error(429, "throttled", "Too many failed authentication attempts; retry later.", {"Retry-After": str(wait)})


def _etag_listed(header: str, etag: str) -> bool:
    """If-None-Match with several tags, weak ones or `*` (weak comparison, as RFC 9110 asks for GET)."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


_TABLE_METRICS = BatchedRequestMetrics(ROUTING_REQUESTS, ROUTING_LATENCY, endpoint="table")


@csrf_exempt  # a key-authenticated GET; other methods get the JSON 405 below, not the CSRF page
def routing_table(request):
    """Serve the table, counting the request and its latency for /metrics."""
    started = time.perf_counter()
    response = _routing_table(request)
    _TABLE_METRICS.record(response.status_code, time.perf_counter() - started)
    return response


def _routing_table(request):
    """The tenant's published routing table: precompiled JSON bytes, a strong ETag, `Cache-Control: private,
    max-age=N`; `If-None-Match` with the current ETag answers 304 without a body. Needs `routing:read`.

    A plain Django view rather than DRF, because it is the hot path: a warm request makes no database query
    and reads the shared cache (the key's record, the table's current version) at most once a second per
    process (routing/cache.py). Only API keys authenticate here; the scope check and the error envelope are
    the same as everywhere.
    """
    if request.method != "GET" and request.method != "HEAD":
        return _error(405, "method_not_allowed", f'Method "{request.method}" not allowed.', {"Allow": "GET, HEAD"})
    try:  # the API's own key authentication and failure throttling, with this endpoint's key memo
        context = authenticate_bearer(request, resolve=table_key_context)
    except exceptions.Throttled as error:
        return _throttled(int(error.wait))
    except exceptions.AuthenticationFailed as error:
        return _error(401, error.get_codes(), str(error.detail), {"WWW-Authenticate": _WWW_AUTHENTICATE})
    if context is None:
        return _error(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            {"WWW-Authenticate": _WWW_AUTHENTICATE},
        )
    if _TABLE_SCOPE not in context.scopes:
        held = ", ".join(sorted(context.scopes)) or "none"
        return _error(403, "missing_scope", f"This request needs the '{_TABLE_SCOPE}' scope; the caller has: {held}.")
    table = published_table(context.tenant_id)
    etag = table.etag
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None and (if_none_match == etag or _etag_listed(if_none_match, etag)):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(table.body, content_type="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = table.cache_control
    response.headers["Vary"] = "Authorization"
    return response


@functools.cache
def _bench_body() -> bytes:
    """Constant JSON bytes, padded to settings.ROUTING_BENCH_BODY_BYTES (bench/routing.py sets the size of the
    table it benchmarks, so that both answers carry the same number of bytes)."""
    body = b'{"version":0,"rules":{},"default":{"route":"frontier","model":null},"padding":""}'
    return body[:-2] + b"x" * max(0, getattr(settings, "ROUTING_BENCH_BODY_BYTES", 0) - len(body)) + body[-2:]


def bench_constant(request):
    """Constant bytes through the same middleware and URL routing as the table: the ceiling of this stack for
    bench/routing.py (mounted only when settings.ROUTING_BENCH_VIEW is true, never in a deployment)."""
    return HttpResponse(_bench_body(), content_type="application/json")


# --- decisions and outcomes ---------------------------------------------------------------------------------


class DecideView(APIView):
    """Decide one request from the published table, exactly as `routing/client.py` would decide it locally."""

    required_scopes = {"POST": Scope.ROUTING_READ}

    @extend_schema(request=serializers.DecideRequestSerializer, responses=serializers.DecisionSerializer)
    def post(self, request):
        started = time.perf_counter()
        try:
            response = self._decide(request)
        except Exception:
            ROUTING_REQUESTS.labels(endpoint="decide", status="error").inc()
            raise
        ROUTING_LATENCY.labels(endpoint="decide").observe(time.perf_counter() - started)
        ROUTING_REQUESTS.labels(endpoint="decide", status=str(response.status_code)).inc()
        return response

    def _decide(self, request):
        payload = serializers.DecideRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        table = published_table(request.auth.tenant_id)
        try:
            decision = table.decider.decide(data["task"], data["confidence"], data.get("request_key"))
        except ValueError as error:
            raise exceptions.ValidationError({"confidence": [str(error)]}) from None
        return Response(
            {
                "route": decision.route,
                "model": decision.model,
                "threshold": decision.threshold,
                "reason": decision.reason,
                "shadow": decision.shadow,
                "version": table.version,
            }
        )


class OutcomesView(APIView):
    """Report what happened to routed requests, in batches of up to 1,000: `{"outcomes": [...]}`.

    Needs `examples:write`, not a routing scope: outcomes that carry an input and the frontier's answer become
    training examples of their task, so reporting writes examples. Rows are checked one by one; rejected rows
    are listed by index with the reason and the rest are kept (400 only when no row was accepted).
    """

    required_scopes = {"POST": Scope.EXAMPLES_WRITE}

    @extend_schema(request=serializers.OutcomeBatchSerializer, responses=serializers.OutcomeBatchResultSerializer)
    def post(self, request):
        data = request.data
        if isinstance(data, dict):
            if "outcomes" not in data:
                raise exceptions.ValidationError({"outcomes": ['Send {"outcomes": [...]} with 1 to 1,000 outcomes.']})
            data = data["outcomes"]
        result = services.outcomes_record(tenant_id=request.auth.tenant_id, outcomes=data, actor=request.auth.actor)
        if result.accepted == 0:
            first = result.errors[0]
            message = f"No outcome was accepted; outcome {first['index']}: {first['message']}."
            return Response(
                error_body(status_code=400, code="invalid", message=message, details={"errors": result.errors}),
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(result.as_dict())


class RoutingTasksView(APIView):
    """Per task: draft and published rule, traffic totals, and drift over the last 24 h (`retrain_suggested`
    when the fallback rate is clearly above what calibration predicted). `?days=N` adds a daily series."""

    required_scopes = {"GET": Scope.ROUTING_READ}

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="Daily series length, 0-90 (0: none).")],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        raw = request.query_params.get("days", "0")
        if not raw.isdigit() or int(raw) > 90:
            raise exceptions.ValidationError({"days": [f"days must be a whole number from 0 to 90, got {raw!r}."]})
        overview = selectors.routing_overview(request.auth.tenant_id, days=int(raw))
        return Response({"count": len(overview), "results": overview})


class RoutingSettingsView(APIView):
    """The draft table's defaults: the model for tasks not in scope and the callers' cache lifetime."""

    required_scopes = {"GET": Scope.ROUTING_READ, "PATCH": Scope.ROUTING_WRITE}

    @extend_schema(responses=serializers.RouteTableSettingsSerializer)
    def get(self, request):
        row = selectors.route_table_settings(request.auth.tenant_id)
        return Response({"default_model": row.default_model, "cache_max_age": row.cache_max_age})

    @extend_schema(request=serializers.RouteTableSettingsSerializer, responses=serializers.RouteTableSettingsSerializer)
    def patch(self, request):
        payload = serializers.RouteTableSettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        row = services.route_table_settings_update(
            tenant_id=request.auth.tenant_id, actor=request.auth.actor, **payload.validated_data
        )
        return Response({"default_model": row.default_model, "cache_max_age": row.cache_max_age})


class RoutingDraftView(APIView):
    """The draft table (what publishing now would publish) and its changes from the published version."""

    required_scopes = {"GET": Scope.ROUTING_READ}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        tenant_id = request.auth.tenant_id
        return Response(
            {
                "published_version": selectors.latest_version_number(tenant_id),
                "content": selectors.draft_content(tenant_id),
                "changes": selectors.draft_changes(tenant_id),
            }
        )


# --- draft rules, versions, publishing ------------------------------------------------------------------------


def _task_or_error(tenant_id: int, slug: str):
    task = selectors.task_by_slug(tenant_id, slug)
    if task is None:
        raise exceptions.ValidationError({"task": [f"No task '{slug}' in this organisation."]})
    return task


def _model_version_or_error(tenant_id: int, pk: int):
    model_version = selectors.model_version_by_id(tenant_id, pk)
    if model_version is None:
        raise exceptions.ValidationError({"model_version": [f"No model version {pk} in this organisation."]})
    return model_version


class RouteRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The draft rules, one per task. Changes take effect when the draft is published."""

    model = RouteRule
    serializer_class = serializers.RouteRuleSerializer
    required_scopes = {
        "GET": Scope.ROUTING_READ,
        "POST": Scope.ROUTING_WRITE,
        "PATCH": Scope.ROUTING_WRITE,
        "DELETE": Scope.ROUTING_WRITE,
    }

    def scope_queryset(self, queryset):
        return queryset.select_related("task", "model_version", "model_version__base_model")

    @extend_schema(request=serializers.RouteRuleCreateSerializer, responses={201: serializers.RouteRuleSerializer})
    def create(self, request):
        payload = serializers.RouteRuleCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        tenant_id = self.tenant_id
        rule = services.route_rule_create(
            tenant_id=tenant_id,
            task=_task_or_error(tenant_id, data.pop("task")),
            model_version=_model_version_or_error(tenant_id, data.pop("model_version")),
            actor=self.tenant_context.actor,
            **data,
        )
        return Response(self.get_serializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RouteRuleUpdateSerializer, responses=serializers.RouteRuleSerializer)
    def partial_update(self, request, pk=None):
        rule = self.get_object()  # another tenant's rule answers 404 before anything is validated
        payload = serializers.RouteRuleUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        if "model_version" in data:
            data["model_version"] = _model_version_or_error(self.tenant_id, data["model_version"])
        rule = services.route_rule_update(rule=rule, actor=self.tenant_context.actor, **data)
        return Response(self.get_serializer(rule).data)

    def destroy(self, request, pk=None):
        services.route_rule_delete(rule=self.get_object(), actor=self.tenant_context.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RouteTableVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Published table versions, newest first, addressed by number. POST publishes the draft; a version can be
    compared with any other (`diff`) and published again (`rollback`)."""

    model = RouteTableVersion
    serializer_class = serializers.RouteTableVersionSerializer
    lookup_field = "version"
    lookup_value_regex = "[0-9]+"
    required_scopes = {"GET": Scope.ROUTING_READ, "POST": Scope.ROUTING_WRITE}

    def scope_queryset(self, queryset):
        return queryset.order_by("-version")

    def get_serializer_class(self):
        if self.action in ("retrieve", "create", "rollback"):
            return serializers.RouteTableVersionDetailSerializer
        return serializers.RouteTableVersionSerializer

    @extend_schema(
        request=serializers.PublishSerializer, responses={201: serializers.RouteTableVersionDetailSerializer}
    )
    def create(self, request):
        """Publish the draft as the next version."""
        payload = serializers.PublishSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = services.route_table_publish(
            tenant_id=self.tenant_id, actor=self.tenant_context.actor, note=payload.validated_data["note"]
        )
        return Response(self.get_serializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("against", int, description="Version to compare from (default: the previous).")],
        responses=serializers.DiffSerializer,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, version=None):
        """Per task: rules added, removed and changed (field by field) from `against` to this version."""
        target = self.get_object()
        raw = request.query_params.get("against", str(target.version - 1))
        if not raw.isdigit():
            raise exceptions.ValidationError({"against": [f"against must be a version number, got {raw!r}."]})
        try:
            source = selectors.version_content(self.tenant_id, int(raw))
        except RouteTableVersion.DoesNotExist:
            raise exceptions.ValidationError({"against": [f"There is no version {raw} to compare with."]}) from None
        return Response({"source": int(raw), "target": target.version, **diff_contents(source, target.content)})

    @extend_schema(request=None, responses={201: serializers.RouteTableVersionDetailSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, version=None):
        """Publish this version's rules again as a new version, and reset the draft to them."""
        new_version = services.route_table_rollback(version=self.get_object(), actor=self.tenant_context.actor)
        return Response(self.get_serializer(new_version).data, status=status.HTTP_201_CREATED)


class ModelVersionPublishViewSet(TenantScopedViewSet):
    """`POST /model-versions/{id}/publish`: route the model version's task to it and publish. The rest of
    /model-versions belongs to the training app; this viewset adds only this action."""

    model = ModelVersion
    serializer_class = serializers.ModelVersionPublicationSerializer
    action_scopes = {"publish": Scope.ROUTING_WRITE}

    def scope_queryset(self, queryset):
        return queryset.select_related("task", "job", "base_model")

    @extend_schema(
        request=serializers.ModelVersionPublishSerializer,
        responses={
            201: serializers.ModelVersionPublicationSerializer,
            200: serializers.ModelVersionPublicationSerializer,
        },
    )
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Create or update the task's rule with the calibrated threshold (or `threshold`) and publish a new
        table version; 200 with `created: false` when the published table already routes the task so."""
        model_version = self.get_object()
        payload = serializers.ModelVersionPublishSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        publication = services.model_version_publish(
            model_version=model_version, actor=self.tenant_context.actor, **payload.validated_data
        )
        data = serializers.ModelVersionPublicationSerializer(publication).data
        return Response(data, status=status.HTTP_201_CREATED if publication.created else status.HTTP_200_OK)
