"""Celery tasks for example ingestion (queue: ingest)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from controlplane.celery_app import Queue
from controlplane.logging_context import log_context
from training.services import examples as example_services

__all__ = ["ingest_upload", "ingest_uploads_fail_stalled"]

STALLED_SWEEP_INTERVAL_SECONDS = 300.0


# acks_late + reject_on_worker_lost: a worker that dies mid-file (OOM kill, lost machine, deploy) leaves
# the message to be delivered again instead of losing it. The redelivered run resumes after the upload's
# checkpoint, and the lease in the upload row keeps two runs from writing at once: while the previous
# run's heartbeat is fresh the new one retries later (it may just be the same message delivered twice).
# Database connection errors are retried with backoff; every other failure is recorded in the upload row
# by the service (status failed, counts exact up to the checkpoint), and retrying would not change it.
# The time limits are read when the worker imports this module.
@shared_task(
    bind=True,
    name="training.ingest_upload",
    queue=Queue.INGEST.value,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=40,  # lease waits included: 40 x the 120 s stale time covers a long duplicate run
    soft_time_limit=int(example_services.ingest_setting("INGEST_SOFT_TIME_LIMIT")),
    time_limit=int(example_services.ingest_setting("INGEST_HARD_TIME_LIMIT")),
    ignore_result=True,
)
def ingest_upload(self, upload_id: int) -> str | None:
    with log_context(upload_id=upload_id):
        outcome = example_services.upload_process(upload_id=upload_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(
    name="training.ingest_uploads_fail_stalled",
    queue=Queue.INGEST.value,
    ignore_result=True,
    expires=STALLED_SWEEP_INTERVAL_SECONDS,
)
def ingest_uploads_fail_stalled() -> int:
    """Mark uploads whose worker vanished (and whose message was lost) as failed, so they can be resumed."""
    return example_services.uploads_fail_stalled()
