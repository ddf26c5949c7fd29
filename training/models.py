"""Tasks, the logged examples that teach them, training jobs and the model versions they produce."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tenants.models import TenantOwned


class TaskKind(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    EXTRACTION = "extraction", "Extraction (JSON)"
    TRANSLATION = "translation", "Translation"
    GENERATION = "generation", "Generation (free text)"


class FrontierModelPrice(models.Model):
    """Operator-editable price table used to prefill a task's frontier prices (USD per million tokens)."""

    name = models.CharField(max_length=100, unique=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    notes = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Task(TenantOwned):
    """A narrow task a tenant sends to a frontier model today, addressed by slug within the tenant."""

    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=TaskKind.choices)
    labels = models.JSONField(default=list, blank=True, help_text="Classification: the label set.")
    output_schema = models.JSONField(default=dict, blank=True, help_text="Extraction: JSON Schema of the output.")
    source_language = models.CharField(max_length=20, blank=True)
    target_language = models.CharField(max_length=20, blank=True)
    frontier_model = models.CharField(max_length=100)
    price_input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    price_output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    target_agreement = models.FloatField(default=0.95)
    eval_share = models.FloatField(default=0.10, help_text="Share of inputs held out for evaluation.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="task_unique_slug_per_tenant")]

    def __str__(self) -> str:
        return self.slug


class UploadStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    STOPPED = "stopped", "Stopped early"
    FAILED = "failed", "Failed"


def upload_path(upload: "ExampleUpload", filename: str) -> str:
    return f"uploads/{upload.tenant_id}/{uuid.uuid4().hex}/{filename}"


class ExampleUpload(TenantOwned):
    """One uploaded file of logged traffic; the original is kept so it can be reprocessed.

    Invariant, after every committed batch: accepted + rejected + duplicates == rows_read.
    `last_line` is the checkpoint a resumed worker starts after.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to=upload_path, max_length=300)
    original_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    file_format = models.CharField(max_length=10, default="auto")
    column_mapping = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=UploadStatus.choices, default=UploadStatus.PENDING)
    rows_read = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    bytes_processed = models.BigIntegerField(default=0)
    last_line = models.BigIntegerField(default=0)
    errors_preview = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.original_name})"


class UploadRowError(TenantOwned):
    """One rejected row of an upload, for the full error report."""

    upload = models.ForeignKey(ExampleUpload, on_delete=models.CASCADE, related_name="row_errors")
    line = models.BigIntegerField()
    field = models.CharField(max_length=100, blank=True)
    message = models.TextField()
    raw_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["upload", "line", "id"]
        indexes = [models.Index(fields=["upload", "line"])]


class ExampleSource(models.TextChoices):
    UPLOAD = "upload", "File upload"
    API = "api", "API batch"
    FEEDBACK = "feedback", "Routing feedback"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    EVAL = "eval", "Eval"


class Example(TenantOwned):
    """One logged request and the frontier model's answer; unique per task by content hash."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="examples")
    upload = models.ForeignKey(ExampleUpload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, choices=ExampleSource.choices)
    split = models.CharField(max_length=5, choices=Split.choices)
    input = models.TextField()
    output = models.TextField()
    content_hash = models.CharField(max_length=64)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    model = models.CharField(max_length=100, blank=True)
    logged_at = models.DateTimeField(null=True, blank=True, help_text="When the request was logged, if known.")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["task", "content_hash"], name="example_unique_content_per_task")]
        indexes = [models.Index(fields=["task", "split"]), models.Index(fields=["task", "logged_at"])]

    def __str__(self) -> str:
        return f"{self.task_id}:{self.content_hash[:12]}"


class BaseModel(models.Model):
    """The base-model catalogue (operator-editable): where weights come from and how to fine-tune them."""

    class SourceKind(models.TextChoices):
        PACKAGE = "package", "Installed pip package carrying the weights"
        PATH = "path", "Local path"
        HUB = "hub", "Hub id (needs hub access)"

    class Architecture(models.TextChoices):
        ENCODER = "encoder", "Encoder + classification head"
        CAUSAL_LM = "causal-lm", "Causal language model"

    name = models.SlugField(max_length=80, unique=True)
    display_name = models.CharField(max_length=200)
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    source = models.CharField(max_length=300, help_text="Package import name, path or hub id.")
    gguf_file = models.CharField(max_length=200, blank=True)
    architecture = models.CharField(max_length=12, choices=Architecture.choices)
    task_kinds = models.JSONField(default=list)
    target_modules = models.JSONField(default=list, help_text="Module names that get LoRA adapters.")
    modules_to_save = models.JSONField(
        default=list,
        blank=True,
        help_text="Modules trained in full and saved with the adapter, besides the classification head (which "
        'always is): ["pooler"] for sentence encoders such as MiniLM, whose pooler was trained for similarity.',
    )
    max_length = models.PositiveIntegerField(default=128)
    needs_gpu = models.BooleanField(default=False)
    default_hyperparameters = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["needs_gpu", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.modules_to_save is None:  # the admin's emptied box
            self.modules_to_save = []
        errors = {}
        for field in ("target_modules", "modules_to_save"):
            value = getattr(self, field)
            if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
                errors[field] = 'A JSON list of module names, e.g. ["query", "value"].'
        if not errors.get("target_modules") and not self.target_modules:
            errors["target_modules"] = "Name at least one module to adapt."
        if errors:
            raise ValidationError(errors)


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    EVALUATING = "evaluating", "Evaluating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class TrainingJob(TenantOwned):
    """A fine-tuning run. Its row is the state machine; Celery only carries the id."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="training_jobs")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    hyperparameters = models.JSONField(default=dict)
    target_agreement = models.FloatField()
    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    examples_per_second = models.FloatField(null=True, blank=True)
    loss_curve = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    train_count = models.PositiveIntegerField(default=0)
    eval_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "state"])]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.state})"


class TrainingEvent(TenantOwned):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]


class ModelVersion(TenantOwned):
    """A trained adapter for a task: `<task>-v<N>`, with its evaluation and calibrated threshold."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="model_versions")
    job = models.OneToOneField(TrainingJob, on_delete=models.PROTECT, related_name="model_version")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=120)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    hyperparameters = models.JSONField(default=dict)
    train_count = models.PositiveIntegerField(default=0)
    eval_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict)
    threshold = models.FloatField(null=True, blank=True, help_text="None when the target cannot be met.")
    coverage = models.FloatField(null=True, blank=True)
    calibration = models.JSONField(default=dict, help_text="Curve, achievability and message.")
    projected_monthly_saving = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    artifact_path = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["task", "version"], name="model_version_unique_per_task")]

    def __str__(self) -> str:
        return self.name
