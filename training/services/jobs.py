"""Training jobs: start, cancel, run (the body of the Celery task) and reap. The job row is the state machine.

    queued -> running -> evaluating -> succeeded
       |         |            |
       +---------+------------+--> failed | cancelled       (running/evaluating -> queued: requeued after
                                                              the worker vanished, once)

Celery only carries the job id and may deliver it more than once (acks_late + reject_on_worker_lost), so
`training_job_run` first *claims* the job under row locks: a finished job is never run again, a job that
another live worker is running (fresh heartbeat) is left alone, and a job whose worker died is retried
once and then failed with the reason. A per-tenant quota caps concurrently running jobs; a job beyond it
stays queued ("parked") and is sent again when a slot frees (by the job that frees it, or by the reaper).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Avg, Count, Max
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from controlplane import metrics
from controlplane.logging_context import log_context, set_log_tenant
from tenants.models import Tenant
from tenants.services import audit_record
from training.models import (
    TERMINAL_JOB_STATES,
    BaseModel,
    Example,
    JobState,
    ModelVersion,
    Task,
    TrainingEvent,
    TrainingJob,
)
from training.selectors.jobs import (
    ACTIVE_JOB_STATES,
    base_model_available,
    base_model_default_hyperparameters,
    base_model_trains_task_kind,
    base_models_for_task_kind,
    task_examples_for_training,
    task_training_readiness,
    tenant_running_job_count,
    training_setting,
)

if TYPE_CHECKING:
    from training.engine.calibrate import Calibration
    from training.engine.spec import BaseModel as EngineBaseModel
    from training.engine.spec import Hyperparameters

# The engine is imported inside functions: importing any of its modules imports torch (see
# training.selectors.jobs), which only the worker that trains (and a "try it" request) should load.

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.EVALUATING, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}),
    JobState.EVALUATING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
# Loss curves are thinned to about this many points in the row (the full curve would grow with steps).
LOSS_CURVE_MAX_POINTS = 500
# Rough characters per token for examples logged without token counts (OpenAI's rule of thumb for English).
CHARACTERS_PER_TOKEN = 4
SAVING_WINDOW_DAYS = 30

HYPERPARAMETER_BOUNDS: dict[str, tuple[type, float, float]] = {
    "epochs": (float, 0.01, 100),
    "learning_rate": (float, 1e-7, 1.0),
    "lora_r": (int, 1, 256),
    "lora_alpha": (int, 1, 1024),
    "lora_dropout": (float, 0.0, 0.9),
    "batch_size": (int, 1, 512),
    "gradient_accumulation_steps": (int, 1, 256),
    "max_length": (int, 8, 32768),
    "seed": (int, 0, 2**31 - 1),
    "warmup_ratio": (float, 0.0, 0.5),
    "weight_decay": (float, 0.0, 1.0),
}


class InvalidTransition(Exception):
    """A state change the job state machine does not allow."""


def job_transition(job: TrainingJob, new_state: str, **fields: Any) -> TrainingJob:
    """Move `job` (a row locked by the caller) to `new_state` and save it with `fields`; refuses any other move."""
    if new_state not in ALLOWED_TRANSITIONS[job.state]:
        raise InvalidTransition(f"training job {job.pk} cannot go from {job.state} to {new_state}")
    job.state = new_state
    for name, value in fields.items():
        setattr(job, name, value)
    if new_state in TERMINAL_JOB_STATES:
        job.finished_at = timezone.now()
        job.eta_seconds = None
    job.save()
    if new_state in TERMINAL_JOB_STATES:
        seconds = (job.finished_at - job.started_at).total_seconds() if job.started_at else None
        _count_finished_job(new_state, seconds)
    return job


def _count_finished_job(state: str, seconds: float | None) -> None:
    metrics.TRAINING_JOBS.labels(state=state).inc()
    if seconds is not None:
        metrics.TRAINING_JOB_DURATION.labels(state=state).observe(seconds)


def training_event_record(job: TrainingJob, message: str, *, level: str = "info", data: dict | None = None) -> None:
    TrainingEvent.objects.create(tenant_id=job.tenant_id, job=job, level=level, message=message, data=data or {})


def default_worker_name() -> str:
    """host:pid, so that a restarted worker process on the same host is a different worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- start -----------------------------------------------------------------------------------------


def _base_model_for(task: Task, name: str | None) -> BaseModel:
    candidates = base_models_for_task_kind(task.kind)
    usable = [m for m in candidates if base_model_available(m) and base_model_trains_task_kind(m, task.kind)]
    accepted = ", ".join(m.name for m in usable) or "none (ask an operator to add one in the admin)"
    if not name:
        if not usable:
            raise ValidationError({"base_model": f"No base model in the catalogue trains {task.kind} tasks here."})
        return usable[0]
    base_model = BaseModel.objects.filter(name=name, enabled=True).first()
    if base_model is None:
        raise ValidationError({"base_model": f"Unknown base model '{name}'; choose one of: {accepted}."})
    if task.kind not in (base_model.task_kinds or []):
        raise ValidationError(
            {"base_model": f"Base model '{name}' does not serve {task.kind} tasks; choose one of: {accepted}."}
        )
    if not base_model_trains_task_kind(base_model, task.kind):
        raise ValidationError(
            {
                "base_model": f"Base model '{name}' is a {base_model.architecture} model; {task.kind} tasks train "
                f"on {'an encoder' if task.kind == 'classification' else 'a causal LM'} here. Choose one of: {accepted}."
            }
        )
    if not base_model_available(base_model):
        raise ValidationError(
            {
                "base_model": f"Base model '{name}' needs a GPU worker and this deployment has none "
                f"(set TRAINING_GPU_WORKERS once GPU workers consume the training queue). Choose one of: {accepted}."
            }
        )
    return base_model


def training_hyperparameters_resolve(*, base_model: BaseModel, overrides: dict[str, Any] | None) -> Hyperparameters:
    """The base model's defaults with `overrides` on top; every key and value is checked, all errors at once."""
    from training.engine.spec import Hyperparameters

    defaults = base_model_default_hyperparameters(base_model)
    if overrides is not None and not isinstance(overrides, dict):
        raise ValidationError({"hyperparameters": 'Send an object such as {"epochs": 3, "learning_rate": 0.0002}.'})
    overrides = dict(overrides or {})
    errors = []
    unknown = sorted(set(overrides) - set(HYPERPARAMETER_BOUNDS))
    if unknown:
        errors.append(f"unknown: {', '.join(unknown)}; accepted: {', '.join(HYPERPARAMETER_BOUNDS)}")
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in HYPERPARAMETER_BOUNDS or value is None or value == "":
            continue
        kind, low, high = HYPERPARAMETER_BOUNDS[key]
        if key == "max_length" and base_model.max_length:
            high = base_model.max_length
        number = _number(value, kind)
        if number is None or not low <= number <= high:
            kind_name = "an integer" if kind is int else "a number"
            errors.append(f"{key}: must be {kind_name} between {low:g} and {high:g}, got {value!r}")
            continue
        clean[key] = number
    if errors:
        raise ValidationError({"hyperparameters": errors})
    return Hyperparameters.from_dict(clean, defaults=defaults)


def _number(value: Any, kind: type) -> float | int | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


def _target_agreement(value: Any, task: Task) -> float:
    if value is None or value == "":
        return float(task.target_agreement)
    number = _number(value, float)
    if number is None or not 0.5 <= number <= 1.0:
        raise ValidationError({"target_agreement": f"Give a share between 0.5 and 1.0 (e.g. 0.95), got {value!r}."})
    return float(number)


@transaction.atomic
def training_job_start(
    *,
    tenant: Tenant,
    task: Task,
    base_model: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    target_agreement: float | None = None,
    created_by=None,
    actor: str = "system",
) -> TrainingJob:
    """Validate and queue a fine-tuning job for `task` (already resolved within `tenant`); enqueue on commit."""
    if task.tenant_id != tenant.pk:
        raise ValidationError({"task": "The task belongs to another organisation."})
    chosen = _base_model_for(task, base_model)
    resolved = training_hyperparameters_resolve(base_model=chosen, overrides=hyperparameters)
    target = _target_agreement(target_agreement, task)
    readiness = task_training_readiness(task)
    if not readiness.can_train:
        raise ValidationError(
            {
                "examples": f"Task '{task.slug}' {' and '.join(readiness.problems)}. Upload more logged examples "
                f"(about {readiness.recommended} make a good model)."
            }
        )
    job = TrainingJob.objects.create(
        tenant=tenant,
        task=task,
        base_model=chosen,
        hyperparameters=resolved.to_dict(),
        target_agreement=target,
        train_count=readiness.train_count,
        eval_count=readiness.eval_count,
        created_by=created_by,
        heartbeat_at=timezone.now(),  # for a queued job: when its message was handed to the broker
    )
    note = "" if readiness.ready else f" (below the recommended {readiness.recommended}; quality may suffer)"
    training_event_record(
        job,
        f"Queued: {chosen.name} on {readiness.train_count} training and {readiness.eval_count} evaluation "
        f"examples{note}.",
        data={"hyperparameters": resolved.to_dict(), "target_agreement": target},
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="training_job.started",
        target=f"{task.slug} job {job.pk}",
        data={"base_model": chosen.name},
    )
    _enqueue_on_commit(job.pk)
    return job


def _enqueue_on_commit(job_id: int) -> None:
    # Imported here: the task module imports this one.
    from training.tasks.jobs import training_job_run_task

    transaction.on_commit(lambda: training_job_run_task.delay(job_id))


# --- cancel ----------------------------------------------------------------------------------------


@transaction.atomic
def training_job_cancel(*, job: TrainingJob, actor: str) -> TrainingJob:
    """A queued job is cancelled at once; a running one is flagged and its worker stops within one step."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.state in TERMINAL_JOB_STATES:
        raise ValidationError({"state": f"Job {job.pk} has already {job.state}; there is nothing to cancel."})
    if job.state == JobState.QUEUED:
        job_transition(job, JobState.CANCELLED, cancel_requested=True)
        training_event_record(job, f"Cancelled by {actor} before it started.")
    elif not job.cancel_requested:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        training_event_record(job, f"Cancellation requested by {actor}; the worker stops at its next step.")
    audit_record(tenant=job.tenant_id, actor=actor, action="training_job.cancelled", target=f"job {job.pk}")
    return job


# --- run: claim ------------------------------------------------------------------------------------


def _heartbeat_is_fresh(job: TrainingJob, now=None) -> bool:
    now = now or timezone.now()
    timeout = timedelta(seconds=float(training_setting("TRAINING_HEARTBEAT_TIMEOUT")))
    return job.heartbeat_at is not None and now - job.heartbeat_at < timeout


def _fail_vanished(job: TrainingJob) -> None:
    # Worker names (host:pid) go to the operators' log, not into tenant-visible messages.
    logger.warning("training job %s: worker %s went silent after %s attempt(s)", job.pk, job.worker, job.attempts)
    last = job.heartbeat_at.isoformat(timespec="seconds") if job.heartbeat_at else "never"
    reason = (
        f"The worker running this job stopped sending heartbeats (last: {last}), "
        f"after {job.attempts} attempt(s); the job is not retried again. Common causes: the worker ran out of "
        "memory, was killed by the time limit, or its machine went away."
    )
    job_transition(job, JobState.FAILED, error=reason)
    training_event_record(job, reason, level="error")


def _claim(job_id: int, worker: str) -> tuple[TrainingJob | None, str]:
    """Decide under row locks whether this delivery runs the job; returns (job to run or None, outcome)."""
    tenant_id = TrainingJob.objects.filter(pk=job_id).values_list("tenant_id", flat=True).first()
    if tenant_id is None:
        return None, "missing"
    released = False
    with transaction.atomic():
        # Lock order everywhere: tenant row, then job row, so two claimers never deadlock. The tenant lock
        # also serialises the quota count below between workers.
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.state in TERMINAL_JOB_STATES:
            return None, f"skipped: already {job.state}"
        if job.state in ACTIVE_JOB_STATES:
            if _heartbeat_is_fresh(job):
                return None, f"skipped: running on {job.worker}"
            if job.attempts >= int(training_setting("TRAINING_MAX_ATTEMPTS")):
                _fail_vanished(job)
                released = True
                outcome = "failed: worker vanished"
            else:
                training_event_record(
                    job,
                    "The previous run's worker stopped sending heartbeats; running the job again.",
                    level="warning",
                )
                job_transition(job, JobState.QUEUED, worker="")
        if not released:
            if job.cancel_requested:
                job_transition(job, JobState.CANCELLED)
                training_event_record(job, "Cancelled before it started.")
                released = True
                outcome = "cancelled"
            else:
                running = tenant_running_job_count(tenant, exclude_pk=job.pk)
                if running >= tenant.max_running_training_jobs:
                    if job.heartbeat_at is not None:  # first time parked: say why, once
                        training_event_record(
                            job,
                            f"Waiting: {running} of this organisation's jobs are running "
                            f"(at most {tenant.max_running_training_jobs} at once). It starts when one finishes.",
                        )
                    job.heartbeat_at = None  # parked: no message in the broker; the next free slot sends one
                    job.save(update_fields=["heartbeat_at"])
                    return None, "deferred: tenant quota"
                now = timezone.now()
                job_transition(
                    job,
                    JobState.RUNNING,
                    attempts=job.attempts + 1,
                    worker=worker,
                    started_at=job.started_at or now,
                    heartbeat_at=now,
                    step=0,
                    total_steps=0,
                    epoch=0,
                    eta_seconds=None,
                    examples_per_second=None,
                    loss_curve=[],
                    error="",
                )
                logger.info("training job %s: started on %s (attempt %s)", job.pk, worker, job.attempts)
                training_event_record(
                    job,
                    f"Started (attempt {job.attempts} of {training_setting('TRAINING_MAX_ATTEMPTS')}).",
                )
                return job, "claimed"
    if released:
        _release_slot(tenant_id)
    return None, outcome


# --- run: train, evaluate, calibrate ---------------------------------------------------------------


class _Heartbeat:
    """Writes the job's heartbeat from a thread every TRAINING_HEARTBEAT_SECONDS, whatever the run is doing
    (loading a model, a long step, evaluation): only a dead worker goes silent."""

    def __init__(self, job_id: int, worker: str) -> None:
        self.job_id = job_id
        self.worker = worker
        self.interval = float(training_setting("TRAINING_HEARTBEAT_SECONDS"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-job-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    TrainingJob.objects.filter(pk=self.job_id, worker=self.worker, state__in=ACTIVE_JOB_STATES).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("heartbeat of training job %s failed", self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection


def _thin_curve(points: list[list[float]], max_points: int = LOSS_CURVE_MAX_POINTS) -> list[list[float]]:
    if len(points) <= max_points:
        return points
    stride = len(points) / (max_points - 1)
    thinned = [points[int(i * stride)] for i in range(max_points - 1)]
    return [*thinned, points[-1]]


class _RunMonitor:
    """The engine's callbacks: progress writes (throttled) and the cancel/ownership poll (throttled)."""

    def __init__(self, job: TrainingJob, worker: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self.worker = worker
        self.clock = clock
        self.curve: list[list[float]] = []
        self.last_write = float("-inf")
        self.last_poll = float("-inf")
        self.write_interval = float(training_setting("TRAINING_PROGRESS_WRITE_SECONDS"))
        self.poll_interval = float(training_setting("TRAINING_CANCEL_POLL_SECONDS"))
        self.stop_reason: str | None = None

    def on_progress(self, progress) -> None:
        self.curve.append([progress.step, round(float(progress.loss), 6)])
        now = self.clock()
        finished = progress.step >= progress.total_steps
        if not finished and now - self.last_write < self.write_interval:
            return
        self.last_write = now
        fields = {
            "step": progress.step,
            "total_steps": progress.total_steps,
            "epoch": progress.epoch,
            "eta_seconds": progress.eta_seconds,
            "examples_per_second": progress.examples_per_second,
            "loss_curve": _thin_curve(self.curve),
            "heartbeat_at": timezone.now(),
        }
        if finished:
            fields["state"] = JobState.EVALUATING
            fields["eta_seconds"] = None
        updated = TrainingJob.objects.filter(pk=self.job.pk, worker=self.worker, state=JobState.RUNNING).update(
            **fields
        )
        if updated and finished:
            training_event_record(
                self.job,
                f"Training finished after {progress.step} steps ({progress.examples_per_second:.1f} examples/s); "
                f"evaluating on {self.job.eval_count} held-out examples.",
            )

    def should_stop(self) -> bool:
        now = self.clock()
        if now - self.last_poll < self.poll_interval:
            return False
        self.last_poll = now
        row = TrainingJob.objects.filter(pk=self.job.pk).values_list("cancel_requested", "worker", "state").first()
        if row is None:
            self.stop_reason = "deleted"
        elif row[1] != self.worker or row[2] not in ACTIVE_JOB_STATES:
            self.stop_reason = "superseded"  # the reaper handed the job on; this run must not write any more
        elif row[0]:
            self.stop_reason = "cancel"
        return self.stop_reason is not None


def engine_base_model(base_model: BaseModel) -> EngineBaseModel:
    """The catalogue row as the engine's BaseModel; `hub_id` names the upstream model in the adapter config."""
    from training.engine.spec import KNOWN_BASE_MODELS
    from training.engine.spec import BaseModel as EngineBaseModel

    known = KNOWN_BASE_MODELS.get(base_model.name)
    hub_id = base_model.source if base_model.source_kind == BaseModel.SourceKind.HUB else None
    if known is not None and known.source == base_model.source:
        hub_id = known.hub_id
    return EngineBaseModel(
        name=base_model.name,
        source_kind=base_model.source_kind,
        source=base_model.source,
        gguf_file=base_model.gguf_file or None,
        architecture=base_model.architecture,
        target_modules=list(base_model.target_modules or []),
        modules_to_save=list(base_model.modules_to_save or []),
        max_length=base_model.max_length or None,
        hub_id=hub_id,
    )


def artifact_root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def artifact_relative_dir(job: TrainingJob) -> str:
    return f"tenant-{job.tenant_id}/job-{job.pk}/attempt-{job.attempts}"


def _still_ours(job_id: int, worker: str) -> TrainingJob | None:
    """The locked job row if this worker still owns an active run of it (inside a transaction)."""
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.worker != worker or job.state not in ACTIVE_JOB_STATES:
        return None
    return job


def _finish_failed(job_id: int, worker: str, reason: str, details: str = "") -> bool:
    with transaction.atomic():
        job = _still_ours(job_id, worker)
        if job is None:
            return False
        job_transition(job, JobState.FAILED, error=reason)
        training_event_record(job, f"Failed: {reason}", level="error", data={"traceback": details} if details else None)
    return True


def _finish_cancelled(job_id: int, worker: str, artifact_dir: Path) -> bool:
    with transaction.atomic():
        job = _still_ours(job_id, worker)
        if job is None:
            return False
        job_transition(job, JobState.CANCELLED)
        training_event_record(job, f"Cancelled at step {job.step} of {job.total_steps}; no model version was made.")
    shutil.rmtree(artifact_dir, ignore_errors=True)
    return True


def training_job_run(*, job_id: int, worker: str | None = None) -> str:
    """Claim and run one job to a final state (the Celery task's body); returns what happened.

    Idempotent under redelivery: see the module docstring. Errors from the engine end the job `failed`
    with the reason; they are not raised, so Celery does not retry a job that cannot succeed.
    """
    worker = worker or default_worker_name()
    with log_context(job_id=job_id):
        return _training_job_run(job_id, worker)


def _training_job_run(job_id: int, worker: str) -> str:
    job, outcome = _claim(job_id, worker)
    if job is None:
        logger.info("training job %s: %s", job_id, outcome)
        return outcome
    set_log_tenant(job.tenant_id)
    artifact_dir = artifact_root() / artifact_relative_dir(job)
    monitor = _RunMonitor(job, worker)
    try:
        with _Heartbeat(job.pk, worker):
            result = _train(job, artifact_dir, monitor)
            if not result.cancelled:
                outcome = _finish_succeeded(job.pk, worker, result, artifact_dir)
            elif monitor.stop_reason == "cancel":
                _finish_cancelled(job.pk, worker, artifact_dir)
                outcome = "cancelled"
            else:
                shutil.rmtree(artifact_dir, ignore_errors=True)
                outcome = f"abandoned: {monitor.stop_reason}"
    except Exception as error:
        reason = _failure_reason(error)
        logger.exception("training job %s failed", job_id)
        shutil.rmtree(artifact_dir, ignore_errors=True)
        _finish_failed(job.pk, worker, reason, traceback.format_exc(limit=8)[-4000:])
        outcome = f"failed: {reason}"
    _release_slot(job.tenant_id)
    return outcome


def _release_slot(tenant_id: int) -> None:
    """Send the tenant's next waiting job now that a slot is free. Outside the run's error handling: a
    failure here must not touch the finished job; the reaper sends the waiting job within a minute."""
    try:
        training_jobs_start_waiting(tenant_id=tenant_id)
    except Exception:
        logger.exception("could not send the next waiting training job of tenant %s", tenant_id)


def _failure_reason(error: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(error, SoftTimeLimitExceeded):
        return f"the job ran longer than the time limit of {training_setting('TRAINING_SOFT_TIME_LIMIT')} s"
    if isinstance(error, MemoryError):
        return "the worker ran out of memory; lower batch_size or max_length"
    text = str(error).strip() or "no message"
    return f"{type(error).__name__}: {text}"[:2000]


def _train(job: TrainingJob, artifact_dir: Path, monitor: _RunMonitor):
    # The engine imports torch; the web process never reaches this line.
    from training.engine.spec import TrainingSpec
    from training.engine.train import train

    task = job.task
    train_rows, eval_rows = task_examples_for_training(task)
    TrainingJob.objects.filter(pk=job.pk).update(train_count=len(train_rows), eval_count=len(eval_rows))
    job.train_count, job.eval_count = len(train_rows), len(eval_rows)
    shutil.rmtree(artifact_dir, ignore_errors=True)  # a half-written folder of an earlier, dead attempt
    spec = TrainingSpec(
        task_kind=task.kind,
        base_model=engine_base_model(job.base_model),
        output_dir=str(artifact_dir),
        labels=list(task.labels or []) if task.kind == "classification" else [],
        output_schema=task.output_schema or None,
        source_language=task.source_language or None,
        target_language=task.target_language or None,
        hyperparameters=dict(job.hyperparameters or {}),
    )
    training_event_record(
        job, f"Loading {job.base_model.name}; training on {len(train_rows)} examples, evaluating on {len(eval_rows)}."
    )
    return train(spec, train_rows, eval_rows, on_progress=monitor.on_progress, should_stop=monitor.should_stop)


def task_monthly_volume(task: Task) -> dict[str, float]:
    """The task's logged requests over the last 30 days and their average token counts.

    A request's time is its `logged_at`, or when it reached us (`created_at`) where the log had none.
    Token counts come from the logged `usage`; rows without them count len(text) / 4 tokens.
    """
    since = timezone.now() - timedelta(days=SAVING_WINDOW_DAYS)
    rows = (
        Example.objects.for_tenant(task.tenant_id)
        .filter(task=task)
        .annotate(when=Coalesce("logged_at", "created_at"))
        .filter(when__gte=since)
    )
    figures = rows.aggregate(
        requests=Count("id"),
        input_tokens=Avg("input_tokens"),
        output_tokens=Avg("output_tokens"),
        input_chars=Avg(Length("input")),
        output_chars=Avg(Length("output")),
    )
    return {
        "requests": float(figures["requests"] or 0),
        "avg_input_tokens": float(figures["input_tokens"] or (figures["input_chars"] or 0) / CHARACTERS_PER_TOKEN),
        "avg_output_tokens": float(figures["output_tokens"] or (figures["output_chars"] or 0) / CHARACTERS_PER_TOKEN),
    }


def task_projected_saving(task: Task, calibration: Calibration) -> dict[str, Any]:
    """Projected monthly saving of routing at the calibrated threshold (see the engine's formula):

    frontier cost = requests in the last 30 days * (avg input tokens * input price + avg output tokens *
    output price) / 1e6; saving = frontier cost * (coverage - small-model cost share). No threshold, no
    routing: the saving is None.
    """
    from training.engine.calibrate import projected_monthly_saving

    volume = task_monthly_volume(task)
    share = float(training_setting("TRAINING_SMALL_MODEL_COST_SHARE"))
    projection = projected_monthly_saving(
        volume["requests"],
        volume["avg_input_tokens"],
        volume["avg_output_tokens"],
        float(task.price_input_per_million),
        float(task.price_output_per_million),
        calibration.coverage if calibration.achievable else 0.0,
        small_model_cost_share=share,
    )
    return {
        **{key: round(value, 4) for key, value in projection.to_dict().items()},
        **{key: round(value, 2) for key, value in volume.items()},
        "window_days": SAVING_WINDOW_DAYS,
        "small_model_cost_share": share,
        "achievable": calibration.achievable,
    }


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _finish_succeeded(job_id: int, worker: str, result, artifact_dir: Path) -> str:
    from training.engine.artifact import write_artifact_metadata
    from training.engine.calibrate import calibrate_threshold

    job = TrainingJob.objects.select_related("task", "base_model").get(pk=job_id)
    task = job.task
    calibration = calibrate_threshold(
        [prediction.confidence for prediction in result.predictions],
        [bool(prediction.agrees) for prediction in result.predictions],
        target_agreement=job.target_agreement,
        min_coverage=float(training_setting("TRAINING_MIN_USEFUL_COVERAGE")),
    )
    saving = task_projected_saving(task, calibration)
    metrics = dict(result.metrics)
    with transaction.atomic():
        Task.objects.select_for_update().filter(pk=task.pk).first()  # serialises version numbers per task
        job = _still_ours(job_id, worker)
        if job is None:
            shutil.rmtree(artifact_dir, ignore_errors=True)
            return "abandoned: superseded"
        if job.state == JobState.RUNNING:  # the last step's progress write did not land: catch up
            job_transition(job, JobState.EVALUATING)
        if job.cancel_requested:
            job_transition(job, JobState.CANCELLED)
            training_event_record(job, "Cancelled during evaluation; no model version was made.")
            transaction.on_commit(lambda: shutil.rmtree(artifact_dir, ignore_errors=True))
            outcome = "cancelled"
        else:
            version = (ModelVersion.objects.filter(task=task).aggregate(top=Max("version"))["top"] or 0) + 1
            name = f"{task.slug}-v{version}"
            write_artifact_metadata(
                artifact_dir,
                threshold=calibration.threshold,
                calibration={key: value for key, value in calibration.to_dict().items() if key != "curve"},
                task={"slug": task.slug, "name": task.name, "kind": task.kind},
                model_version=name,
                projected_saving=saving,
            )
            model_version = ModelVersion.objects.create(
                tenant_id=job.tenant_id,
                task=task,
                job=job,
                version=version,
                name=name,
                base_model=job.base_model,
                hyperparameters=result.hyperparameters or job.hyperparameters,
                train_count=result.train_count,
                eval_count=result.eval_count,
                metrics=metrics,
                threshold=calibration.threshold,
                coverage=calibration.coverage if calibration.achievable else None,
                calibration={**calibration.to_dict(), "projected_saving": saving},
                projected_monthly_saving=_money(saving["monthly_saving"]) if calibration.achievable else None,
                artifact_path=artifact_relative_dir(job),
            )
            job_transition(
                job,
                JobState.SUCCEEDED,
                metrics=metrics,
                step=result.steps,
                total_steps=result.total_steps,
                train_count=result.train_count,
                eval_count=result.eval_count,
                loss_curve=_thin_curve([[step, round(loss, 6)] for step, loss in result.loss_curve]),
                examples_per_second=result.examples_per_second,
            )
            headline = _headline(task.kind, metrics)
            training_event_record(
                job,
                f"Succeeded: {name}. {headline} {calibration.message}.",
                data={"model_version": model_version.pk, "threshold": calibration.threshold},
            )
            if not calibration.achievable:
                training_event_record(job, f"No threshold published: {calibration.message}.", level="warning")
            outcome = "succeeded"
    return outcome


def _headline(kind: str, metrics: dict[str, Any]) -> str:
    keys = {
        "classification": ("accuracy", "macro_f1"),
        "extraction": ("exact_match", "field_f1", "json_valid_rate"),
        "translation": ("chrf",),
        "generation": ("chrf",),
    }.get(kind, ())
    parts = [f"{key} {metrics[key]:.3f}" for key in keys if isinstance(metrics.get(key), int | float)]
    return (", ".join(parts) + ".") if parts else ""


# --- queue management and the reaper ---------------------------------------------------------------


def training_jobs_start_waiting(*, tenant_id: int) -> list[int]:
    """Send the tenant's oldest waiting jobs to the broker, as many as it has free slots; returns their ids."""
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().filter(pk=tenant_id).first()
        if tenant is None:
            return []
        free = tenant.max_running_training_jobs - tenant_running_job_count(tenant)
        if free <= 0:
            return []
        resend_before = timezone.now() - timedelta(seconds=float(training_setting("TRAINING_QUEUED_RESEND_SECONDS")))
        waiting = list(
            TrainingJob.objects.for_tenant(tenant)
            .filter(state=JobState.QUEUED, cancel_requested=False)
            .order_by("created_at", "id")[:free]
        )
        sent = []
        for job in waiting:
            # A job whose message is still in the broker (heartbeat_at set recently) needs no second one.
            if job.heartbeat_at is not None and job.heartbeat_at >= resend_before:
                continue
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["heartbeat_at"])
            _enqueue_on_commit(job.pk)
            sent.append(job.pk)
        return sent


def training_jobs_reap() -> dict[str, list[int]]:
    """Find runs whose worker went silent: requeue them once, then fail them with the reason. Then send
    waiting jobs of tenants with free slots. Run every minute by celery beat."""
    cutoff = timezone.now() - timedelta(seconds=float(training_setting("TRAINING_HEARTBEAT_TIMEOUT")))
    max_attempts = int(training_setting("TRAINING_MAX_ATTEMPTS"))
    report: dict[str, list[int]] = {"requeued": [], "failed": [], "sent": []}
    stale_ids = list(
        TrainingJob.objects.filter(state__in=ACTIVE_JOB_STATES, heartbeat_at__lt=cutoff).values_list("pk", flat=True)
    ) + list(
        TrainingJob.objects.filter(state__in=ACTIVE_JOB_STATES, heartbeat_at__isnull=True).values_list("pk", flat=True)
    )
    for job_id in stale_ids:
        with transaction.atomic():
            job = TrainingJob.objects.select_for_update().get(pk=job_id)
            if job.state not in ACTIVE_JOB_STATES or _heartbeat_is_fresh(job):
                continue  # it finished or beat while we looked
            if job.cancel_requested:
                job_transition(job, JobState.CANCELLED)
                training_event_record(job, "Cancelled: its worker stopped responding after the cancellation request.")
                report["failed"].append(job.pk)
            elif job.attempts >= max_attempts:
                _fail_vanished(job)
                report["failed"].append(job.pk)
            else:
                training_event_record(
                    job,
                    "Its worker stopped sending heartbeats; the job goes back to the "
                    f"queue for one more attempt (attempt {job.attempts + 1} of {max_attempts}).",
                    level="warning",
                )
                # heartbeat_at None: parked, so training_jobs_start_waiting below sends it.
                job_transition(job, JobState.QUEUED, worker="", heartbeat_at=None, eta_seconds=None)
                report["requeued"].append(job.pk)
    tenant_ids = set(TrainingJob.objects.filter(state=JobState.QUEUED).values_list("tenant_id", flat=True))
    for tenant_id in sorted(tenant_ids):
        report["sent"] += training_jobs_start_waiting(tenant_id=tenant_id)
    return report
