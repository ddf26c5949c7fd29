from rest_framework import serializers

from tenants.models import ApiKey, AuditEvent, Membership, Role
from tenants.scopes import ALL_SCOPES


class TenantSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField(allow_null=True, help_text="Your role when signed in; null for an API key.")
    scopes = serializers.ListField(child=serializers.CharField())
    api_key = serializers.CharField(allow_null=True, help_text="The masked key used, if any.")


class ApiKeySerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="masked", read_only=True, help_text="Prefix and last four characters.")
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "key", "prefix", "last_four", "scopes", "created_by", "created_at",
            "last_used_at", "expires_at", "revoked_at", "active",
        ]  # fmt: skip
        read_only_fields = fields

    def get_active(self, api_key: ApiKey) -> bool:
        return api_key.is_active()


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, help_text="All scopes when omitted."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="The full key. Shown once: store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = ["id", "email", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "target", "data"]
        read_only_fields = fields
