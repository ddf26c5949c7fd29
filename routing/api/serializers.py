from rest_framework import serializers

from routing.models import RouteRule, RouteTableVersion


class RouteRuleSerializer(serializers.ModelSerializer):
    """A task's draft rule; publishing copies the draft into a new table version."""

    task = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    task_name = serializers.CharField(source="task.name", read_only=True)
    model_version_name = serializers.CharField(source="model_version.name", read_only=True)
    base_model = serializers.CharField(source="model_version.base_model.name", read_only=True)
    calibrated_threshold = serializers.FloatField(source="model_version.threshold", read_only=True, allow_null=True)
    effective_fallback = serializers.SerializerMethodField(
        help_text="The fallback model, the task's frontier model when blank."
    )

    class Meta:
        model = RouteRule
        fields = [
            "id", "task", "task_name", "enabled", "model_version", "model_version_name", "base_model", "threshold",
            "calibrated_threshold", "fallback_model", "effective_fallback", "canary_percent", "shadow",
            "updated_by", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_effective_fallback(self, rule: RouteRule) -> str:
        return rule.fallback_model or rule.task.frontier_model


class RouteRuleCreateSerializer(serializers.Serializer):
    task = serializers.SlugField(max_length=80, help_text="The task's slug.")
    model_version = serializers.IntegerField(help_text="Id of a model version of that task whose training succeeded.")
    threshold = serializers.FloatField(
        required=False, allow_null=True, help_text="0 to 1; the model version's calibrated threshold when omitted."
    )
    fallback_model = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    canary_percent = serializers.FloatField(required=False, default=100.0, help_text="0 to 100.")
    shadow = serializers.BooleanField(required=False, default=False)
    enabled = serializers.BooleanField(required=False, default=True)


class RouteRuleUpdateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(required=False)
    threshold = serializers.FloatField(required=False)
    fallback_model = serializers.CharField(required=False, allow_blank=True, max_length=100)
    canary_percent = serializers.FloatField(required=False)
    shadow = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)


class RouteTableVersionSerializer(serializers.ModelSerializer):
    tasks = serializers.SerializerMethodField(help_text="Task slugs with a rule in this version.")

    class Meta:
        model = RouteTableVersion
        fields = ["id", "version", "published_by", "published_at", "note", "rolled_back_from", "etag", "tasks"]
        read_only_fields = fields

    def get_tasks(self, version: RouteTableVersion) -> list[str]:
        return sorted((version.content or {}).get("rules") or {})


class RouteTableVersionDetailSerializer(RouteTableVersionSerializer):
    table = serializers.SerializerMethodField(help_text="The runtime table exactly as GET /routing/table serves it.")

    class Meta(RouteTableVersionSerializer.Meta):
        fields = [*RouteTableVersionSerializer.Meta.fields, "content", "table"]
        read_only_fields = fields

    def get_table(self, version: RouteTableVersion) -> dict:
        import json

        return json.loads(bytes(version.body))


class PublishSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class ModelVersionPublishSerializer(serializers.Serializer):
    threshold = serializers.FloatField(
        required=False, allow_null=True, help_text="Overrides the calibrated threshold (required when there is none)."
    )
    canary_percent = serializers.FloatField(required=False, allow_null=True)
    shadow = serializers.BooleanField(required=False, allow_null=True)
    fallback_model = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=100)
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class ModelVersionPublicationSerializer(serializers.Serializer):
    created = serializers.BooleanField(help_text="False when the table already routed the task exactly so.")
    rule = RouteRuleSerializer()
    version = RouteTableVersionSerializer()


class DiffSerializer(serializers.Serializer):
    source = serializers.IntegerField(help_text="The version compared from (0: the empty table).")
    target = serializers.IntegerField(help_text="The version compared to.")
    added = serializers.ListField(child=serializers.DictField())
    removed = serializers.ListField(child=serializers.DictField())
    changed = serializers.ListField(child=serializers.DictField())
    defaults = serializers.DictField()


class DecideRequestSerializer(serializers.Serializer):
    task = serializers.CharField(max_length=80)
    confidence = serializers.FloatField(
        allow_null=True, min_value=0.0, max_value=1.0, help_text="The small model's confidence; null when unknown."
    )
    request_key = serializers.CharField(
        required=False, allow_null=True, max_length=200, help_text="Hashed for the canary: same key, same side."
    )


class DecisionSerializer(serializers.Serializer):
    route = serializers.ChoiceField(choices=["small", "frontier"])
    model = serializers.CharField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    reason = serializers.CharField()
    shadow = serializers.BooleanField(help_text="Also run the small model and report both answers.")
    version = serializers.IntegerField(help_text="The published table version decided by.")


class RouteTableSettingsSerializer(serializers.Serializer):
    default_model = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Blank: each task's own frontier model."
    )
    cache_max_age = serializers.IntegerField(required=False, min_value=0, max_value=86400)


class OutcomeSerializer(serializers.Serializer):
    """One reported outcome (documentation of the shape; rows are validated one by one by the service)."""

    task = serializers.CharField()
    route = serializers.ChoiceField(choices=["small", "frontier"])
    confidence = serializers.FloatField(allow_null=True)
    fell_back = serializers.BooleanField()
    shadow = serializers.BooleanField(required=False, help_text="Defaults to the published rule's shadow mode.")
    input = serializers.CharField(required=False, allow_null=True)
    small_output = serializers.CharField(required=False, allow_null=True)
    frontier_output = serializers.CharField(required=False, allow_null=True)
    latency_ms = serializers.FloatField(required=False, allow_null=True)
    usage = serializers.DictField(required=False, allow_null=True)
    request_key = serializers.CharField(required=False, allow_null=True)


class OutcomeBatchSerializer(serializers.Serializer):
    outcomes = OutcomeSerializer(many=True)


class OutcomeBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField(), help_text="{index, field, message} per rejected row.")
    examples = serializers.DictField(help_text="{created, duplicates, invalid, errors}: outcomes turned into examples.")
