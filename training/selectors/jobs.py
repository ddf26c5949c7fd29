"""Reads for training jobs, model versions and the base-model catalogue. Every tenant-owned read takes
the tenant explicitly; nothing here writes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import Http404

from tenants.models import Tenant
from training.models import (
    BaseModel,
    Example,
    JobState,
    ModelVersion,
    Split,
    Task,
    TrainingEvent,
    TrainingJob,
)

if TYPE_CHECKING:
    from training.engine.spec import Hyperparameters

# The engine is imported inside the functions that need it: `import training.engine.<anything>` runs the
# package's __init__, which imports torch, and the web process must not pay that (seconds, ~250 MB) to
# serve a page or an API route that never trains or predicts.

# Jobs that hold one of the tenant's concurrent-run slots.
ACTIVE_JOB_STATES = (JobState.RUNNING, JobState.EVALUATING)

# Every training setting with its default, in one place (the README lists them). Read through
# `training_setting()` so tests can override any of them with `settings.TRAINING_...`.
TRAINING_SETTING_DEFAULTS: dict[str, Any] = {
    # The hard floor below which a job is refused; a model trained on fewer examples says little.
    "TRAINING_MIN_EXAMPLES": 20,
    # Evaluation and calibration need held-out answers; fewer than this makes the threshold noise.
    "TRAINING_MIN_EVAL_EXAMPLES": 10,
    # The product's readiness bar (DESIGN.md: 500-2,000 logged requests); shown, not enforced.
    "TRAINING_RECOMMENDED_EXAMPLES": 500,
    # Whether this deployment has GPU workers on the training queue; GPU-only base models need them.
    "TRAINING_GPU_WORKERS": False,
    "TRAINING_SOFT_TIME_LIMIT": 6 * 3600,
    "TRAINING_HARD_TIME_LIMIT": 6 * 3600 + 300,
    # A running job's worker writes a heartbeat this often, from a thread, whatever phase it is in.
    "TRAINING_HEARTBEAT_SECONDS": 10,
    # No heartbeat for this long means the worker died (OOM kill, lost machine): reap the job. Several
    # heartbeat intervals, so that a slow database write or a GC pause is not taken for a death.
    "TRAINING_HEARTBEAT_TIMEOUT": 120,
    # Runs per job: the first plus one retry after a worker vanished; then the job fails with the reason.
    "TRAINING_MAX_ATTEMPTS": 2,
    # The cancel flag is read at most this often (one cheap indexed read), and at every training step.
    "TRAINING_CANCEL_POLL_SECONDS": 0.5,
    # Progress (step, ETA, loss curve) is written at most this often, and always at the last step.
    "TRAINING_PROGRESS_WRITE_SECONDS": 1.0,
    # A queued job whose broker message is older than this is sent again by the reaper (a broker that
    # lost its messages on restart); duplicates are harmless, the claim is idempotent.
    "TRAINING_QUEUED_RESEND_SECONDS": 3600,
    # Below this coverage a threshold keeps too little traffic to pay for the small model: not published.
    "TRAINING_MIN_USEFUL_COVERAGE": 0.10,
    # The small model's cost per request as a share of the frontier's (engine default, DESIGN.md).
    "TRAINING_SMALL_MODEL_COST_SHARE": 0.1,
    "TRAINING_PREDICT_MAX_INPUTS": 16,
    "TRAINING_PREDICT_MAX_CHARS": 10_000,
    # Run-time estimate when no job has measured a base model yet: training examples per second on
    # 2 CPU cores at the architecture's default settings (bench/train_classification.py for the encoder;
    # SmolLM2-135M SFT at 256 tokens for the causal LM). Jobs measure the real figure; later estimates
    # use the median of the last measured runs of that base model.
    "TRAINING_ESTIMATE_EXAMPLES_PER_SECOND": {"encoder": 60.0, "causal-lm": 2.0},
}


def training_setting(name: str) -> Any:
    """The value of a TRAINING_* setting, or its documented default."""
    return getattr(settings, name, TRAINING_SETTING_DEFAULTS[name])


# --- tasks and examples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingReadiness:
    """How many examples a task has for training, against the hard minimum and the readiness bar."""

    train_count: int
    eval_count: int
    min_train: int
    min_eval: int
    recommended: int

    @property
    def can_train(self) -> bool:
        return self.train_count >= self.min_train and self.eval_count >= self.min_eval

    @property
    def ready(self) -> bool:
        return self.can_train and self.train_count >= self.recommended

    @property
    def problems(self) -> list[str]:
        problems = []
        if self.train_count < self.min_train:
            problems.append(f"has {self.train_count} training examples, needs at least {self.min_train}")
        if self.eval_count < self.min_eval:
            problems.append(f"has {self.eval_count} evaluation examples, needs at least {self.min_eval}")
        return problems


def task_training_readiness(task: Task) -> TrainingReadiness:
    counts = dict(
        Example.objects.for_tenant(task.tenant_id)
        .filter(task=task)
        .values_list("split")
        .annotate(n=Count("id"))
        .values_list("split", "n")
    )
    return TrainingReadiness(
        train_count=counts.get(Split.TRAIN, 0),
        eval_count=counts.get(Split.EVAL, 0),
        min_train=int(training_setting("TRAINING_MIN_EXAMPLES")),
        min_eval=int(training_setting("TRAINING_MIN_EVAL_EXAMPLES")),
        recommended=int(training_setting("TRAINING_RECOMMENDED_EXAMPLES")),
    )


def task_examples_for_training(task: Task) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, eval) rows `{input, output}` in a stable order (by id), for the engine."""
    train: list[dict[str, str]] = []
    evaluation: list[dict[str, str]] = []
    rows = (
        Example.objects.for_tenant(task.tenant_id)
        .filter(task=task)
        .order_by("id")
        .values_list("split", "input", "output")
        .iterator(chunk_size=2000)
    )
    for split, text, output in rows:
        (evaluation if split == Split.EVAL else train).append({"input": text, "output": output})
    return train, evaluation


# --- the base-model catalogue ----------------------------------------------------------------------


def base_models_for_task_kind(task_kind: str) -> list[BaseModel]:
    """Enabled catalogue entries that serve `task_kind`, CPU models first. (The catalogue is a few rows;
    filtering the JSON list in Python works on every database, SQLite has no JSON `contains`.)"""
    return [model for model in BaseModel.objects.filter(enabled=True) if task_kind in (model.task_kinds or [])]


def base_model_available(base_model: BaseModel) -> bool:
    """A GPU-only model trains only where the deployment says it has GPU workers."""
    return not base_model.needs_gpu or bool(training_setting("TRAINING_GPU_WORKERS"))


def base_model_trains_task_kind(base_model: BaseModel, task_kind: str) -> bool:
    """The engine trains classification as an encoder with a head, every other kind as causal-LM SFT."""
    from training.engine.spec import architecture_for_task

    return base_model.architecture == architecture_for_task(task_kind)


def base_model_default_hyperparameters(base_model: BaseModel) -> Hyperparameters:
    """The engine's per-architecture defaults, with the base model's max length and catalogue overrides."""
    from training.engine.spec import Hyperparameters, default_hyperparameters

    defaults = default_hyperparameters(base_model.architecture)
    if base_model.max_length:
        defaults.max_length = int(base_model.max_length)
    overrides = dict(base_model.default_hyperparameters or {})
    return Hyperparameters.from_dict(overrides, defaults=defaults) if overrides else defaults


def measured_examples_per_second(base_model: BaseModel) -> float | None:
    """Median training throughput of the last successful runs on this base model (any tenant)."""
    values = list(
        TrainingJob.objects.filter(base_model=base_model, state=JobState.SUCCEEDED, examples_per_second__gt=0)
        .order_by("-finished_at")
        .values_list("examples_per_second", flat=True)[:5]
    )
    return statistics.median(values) if values else None


def training_time_estimate(*, base_model: BaseModel, train_count: int, epochs: float) -> dict[str, Any]:
    """Estimated run time: train_count * epochs / examples-per-second, plus a fixed allowance for loading
    the model and evaluating (20% of the training time, at least 15 s)."""
    measured = measured_examples_per_second(base_model)
    table = training_setting("TRAINING_ESTIMATE_EXAMPLES_PER_SECOND")
    rate = measured or float(table.get(base_model.architecture, 2.0))
    training_seconds = train_count * max(epochs, 0) / rate if rate > 0 else 0.0
    return {
        "seconds": round(training_seconds + max(15.0, 0.2 * training_seconds)),
        "examples_per_second": round(rate, 2),
        "measured": measured is not None,
    }


# --- jobs and model versions -----------------------------------------------------------------------


def training_jobs_for_tenant(tenant: Tenant | int) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.for_tenant(tenant).select_related("task", "base_model", "model_version")


def training_job_for_tenant(*, tenant: Tenant | int, pk: int) -> TrainingJob:
    job = training_jobs_for_tenant(tenant).filter(pk=pk).first()
    if job is None:
        raise Http404("No such training job.")
    return job


def training_job_events(job: TrainingJob) -> QuerySet[TrainingEvent]:
    return TrainingEvent.objects.for_tenant(job.tenant_id).filter(job=job).order_by("created_at", "id")


def training_job_progress(job: TrainingJob) -> dict[str, Any]:
    """Step, total, percent and ETA as the API and the job page show them."""
    if job.state == JobState.SUCCEEDED:
        percent = 100.0
    elif job.total_steps:
        percent = round(100.0 * min(job.step, job.total_steps) / job.total_steps, 1)
    else:
        percent = 0.0
    return {
        "step": job.step,
        "total_steps": job.total_steps,
        "percent": percent,
        "epoch": round(job.epoch, 3),
        "eta_seconds": None if job.eta_seconds is None else round(job.eta_seconds, 1),
        "examples_per_second": None if job.examples_per_second is None else round(job.examples_per_second, 2),
    }


def training_job_model_version(job: TrainingJob) -> ModelVersion | None:
    try:
        return job.model_version
    except ModelVersion.DoesNotExist:
        return None


def model_versions_for_tenant(tenant: Tenant | int) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.for_tenant(tenant).select_related("task", "base_model", "job")


def model_version_for_tenant(*, tenant: Tenant | int, pk: int) -> ModelVersion:
    version = model_versions_for_tenant(tenant).filter(pk=pk).first()
    if version is None:
        raise Http404("No such model version.")
    return version


def tenant_running_job_count(tenant: Tenant | int, *, exclude_pk: int | None = None) -> int:
    queryset = TrainingJob.objects.for_tenant(tenant).filter(state__in=ACTIVE_JOB_STATES)
    if exclude_pk is not None:
        queryset = queryset.exclude(pk=exclude_pk)
    return queryset.count()


def task_training_summary(task: Task) -> dict[str, Any]:
    """For the task page's training panel: counts, the latest jobs and model versions (four queries)."""
    jobs = training_jobs_for_tenant(task.tenant_id).filter(task=task)
    versions = model_versions_for_tenant(task.tenant_id).filter(task=task)
    return {
        "job_count": jobs.count(),
        "jobs": list(jobs[:5]),
        "model_version_count": versions.count(),
        "model_versions": list(versions[:10]),
    }
