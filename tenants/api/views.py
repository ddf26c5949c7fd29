from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import services
from tenants.api import serializers
from tenants.context import TenantContext
from tenants.models import ApiKey, AuditEvent, Membership
from tenants.permissions import PUBLIC
from tenants.scopes import Scope
from tenants.viewsets import TenantScopedViewSet


class TenantView(APIView):
    """The caller's tenant, role and scopes."""

    required_scopes = {"GET": PUBLIC}

    @extend_schema(responses=serializers.TenantSerializer)
    def get(self, request):
        context: TenantContext = request.auth
        tenant = context.tenant
        masked = None
        if context.api_key_id:
            masked = ApiKey.objects.for_tenant(tenant).get(pk=context.api_key_id).masked
        data = {
            "slug": tenant.slug,
            "name": tenant.name,
            "role": context.role,
            "scopes": sorted(context.scopes),
            "api_key": masked,
        }
        return Response(serializers.TenantSerializer(data).data)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Create (the secret is returned once), list (masked) and revoke the tenant's API keys."""

    model = ApiKey
    serializer_class = serializers.ApiKeySerializer
    required_scopes = {"GET": Scope.ADMIN, "POST": Scope.ADMIN, "DELETE": Scope.ADMIN}

    def scope_queryset(self, queryset):
        return queryset.select_related("created_by")

    @extend_schema(request=serializers.ApiKeyCreateSerializer, responses={201: serializers.ApiKeyCreatedSerializer})
    def create(self, request):
        payload = serializers.ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        created = services.api_key_create(
            tenant=context.tenant,
            created_by=request.user if context.user_id else None,
            actor=context.actor,
            **payload.validated_data,
        )
        data = serializers.ApiKeyCreatedSerializer(created.api_key).data
        data["secret"] = created.plaintext
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = services.api_key_revoke(api_key=self.get_object(), actor=self.tenant_context.actor)
        return Response(self.get_serializer(api_key).data)

    @extend_schema(responses=serializers.ApiKeySerializer)
    def destroy(self, request, pk=None):
        """Revokes the key (kept for the audit trail; it never authenticates again)."""
        return self.revoke(request, pk)


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's members. Owners manage everyone; admins manage everyone but owners."""

    model = Membership
    serializer_class = serializers.MembershipSerializer
    required_scopes = {"GET": Scope.ADMIN, "POST": Scope.ADMIN, "PATCH": Scope.ADMIN, "DELETE": Scope.ADMIN}

    def scope_queryset(self, queryset):
        return queryset.select_related("user").order_by("user__email")

    @extend_schema(request=serializers.MembershipCreateSerializer, responses={201: serializers.MembershipSerializer})
    def create(self, request):
        payload = serializers.MembershipCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        membership = services.membership_add(
            tenant=context.tenant, actor_role=context.acting_role, actor=context.actor, **payload.validated_data
        )
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.MembershipUpdateSerializer, responses=serializers.MembershipSerializer)
    def partial_update(self, request, pk=None):
        membership = self.get_object()  # 404 for another tenant's member before anything is validated
        payload = serializers.MembershipUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        context = self.tenant_context
        membership = services.membership_change_role(
            membership=membership,
            role=payload.validated_data["role"],
            actor_role=context.acting_role,
            actor=context.actor,
        )
        return Response(self.get_serializer(membership).data)

    def destroy(self, request, pk=None):
        context = self.tenant_context
        services.membership_remove(membership=self.get_object(), actor_role=context.acting_role, actor=context.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Security-relevant actions in the tenant: keys, members, routing publications."""

    model = AuditEvent
    serializer_class = serializers.AuditEventSerializer
    required_scopes = {"GET": Scope.ADMIN}
