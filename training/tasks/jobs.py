"""Celery tasks for training jobs (queue: training) and their reaper (queue: default)."""

from celery import shared_task

from controlplane.celery_app import Queue
from training.selectors.jobs import training_setting
from training.services import jobs as job_services

__all__ = ["training_job_run_task", "training_jobs_reap"]

REAP_INTERVAL_SECONDS = 60.0


# acks_late + reject_on_worker_lost: a worker that dies mid-run (OOM kill, lost machine) leaves the message
# to be delivered again rather than lost; the service's claim makes that redelivery safe (a finished job is
# never rerun, a live run is left alone, a dead run is retried once). No Celery retries: a job that failed
# in the engine fails for a reason a retry would not change, and the row says which.
# The time limits are read when the worker imports this module.
@shared_task(
    name="training.job_run",
    queue=Queue.TRAINING.value,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=int(training_setting("TRAINING_SOFT_TIME_LIMIT")),
    time_limit=int(training_setting("TRAINING_HARD_TIME_LIMIT")),
    ignore_result=True,
)
def training_job_run_task(job_id: int) -> str:
    return job_services.training_job_run(job_id=job_id)


# Cheap and idempotent (row locks, state checks), so a run that overlaps the next minute's is harmless.
@shared_task(name="training.jobs_reap", queue=Queue.DEFAULT.value, ignore_result=True, expires=REAP_INTERVAL_SECONDS)
def training_jobs_reap() -> dict:
    return job_services.training_jobs_reap()
