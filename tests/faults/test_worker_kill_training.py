"""`kill -9` of the Celery worker in the middle of a training run: the job must not stay "running".

A real worker process (tests/worker.py) trains a tiny encoder; once the job row says `running` with a step
done, the whole worker process group gets SIGKILL, as the kernel's OOM killer or a lost machine would do it.
Nothing in the dead worker can write a final state, so the heartbeat reaper (`training.jobs_reap`, run here
in the test process through the service it calls) must notice the silence and either queue the job again
for its one retry, which a new worker then finishes, or, with the attempts used up, fail it with the reason.
"""

import os
import signal
import time

import pytest

from controlplane.celery_app import Queue
from tests import factories_jobs
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_jobs import TINY_EVAL, TINY_TRAIN, make_examples, make_jobs_task, make_tiny_encoder_base_model
from tests.worker import celery_worker, wait_for
from training.models import ModelVersion, Split, TrainingEvent, TrainingJob
from training.selectors.jobs import tenant_running_job_count
from training.services.jobs import training_jobs_reap

pytestmark = [pytest.mark.integration, pytest.mark.engine, pytest.mark.xdist_group("integration")]

jobs_tiny_encoder_dir = factories_jobs.jobs_tiny_encoder_dir

HEARTBEAT_SECONDS = 0.5
HEARTBEAT_TIMEOUT = 3
# 24 training examples one at a time for 20 epochs: 480 steps, 8 to 15 s on two CPU cores. Long enough that
# the job is surely mid-run when the worker is killed at its first steps, short enough for the retry to finish.
HYPERPARAMETERS = {"epochs": 20, "batch_size": 1, "learning_rate": 0.01}
TOTAL_STEPS = 480
TERMINAL = ("succeeded", "failed", "cancelled")
NOTHING_REAPED = {"requeued": [], "failed": [], "sent": []}


def _worker_env(artifacts, **settings_values) -> dict:
    env = {
        "ARTIFACT_ROOT": str(artifacts),
        "TRAINING_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "TRAINING_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "TRAINING_PROGRESS_WRITE_SECONDS": "0.2",
    }
    env.update({name: str(value) for name, value in settings_values.items()})
    return env


def _setup(settings, tmp_path, encoder_dir, slug: str):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    tenant = make_tenant(slug)
    client = client_for_key(make_api_key(tenant)[1])
    make_tiny_encoder_base_model(encoder_dir)
    task = make_jobs_task(tenant, slug="tickets")
    make_examples(task, TINY_TRAIN)
    make_examples(task, TINY_EVAL, split=Split.EVAL)
    return tenant, client, task


def _start_job(client, task) -> int:
    """POST the job (with a worker already up: starting one purges the queues)."""
    response = client.post(
        f"/api/v1/tasks/{task.slug}/training-jobs",
        {"base_model": "tiny-encoder", "hyperparameters": HYPERPARAMETERS, "target_agreement": 0.5},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _kill_mid_run(worker, job_id: int) -> TrainingJob:
    """Wait until the worker is training (a step done), SIGKILL its whole process group, return the row."""

    def training():
        job = TrainingJob.objects.get(pk=job_id)
        if job.state in TERMINAL:
            raise AssertionError(f"job {job_id} ended {job.state} before the kill: {job.error}")
        return job if job.state == "running" and job.step > 0 else None

    wait_for(training, timeout=90, interval=0.05, message="the job to be running with a step done")
    os.killpg(worker.pid, signal.SIGKILL)  # the main process and its prefork child: no chance to clean up
    worker.wait(timeout=10)
    time.sleep(0.2)  # a statement the worker sent just before it died has reached the database
    after_kill = TrainingJob.objects.get(pk=job_id)
    time.sleep(HEARTBEAT_SECONDS * 3)
    job = TrainingJob.objects.get(pk=job_id)
    # Nothing writes any more (no heartbeat, no progress), and nothing wrote a final state: the row still
    # claims a run that is half done. Only the silence of the heartbeat tells that its worker is gone.
    assert (job.heartbeat_at, job.step) == (after_kill.heartbeat_at, after_kill.step)
    assert job.state == "running" and job.attempts == 1 and job.worker, (job.state, job.attempts)
    assert 0 < job.step < job.total_steps == TOTAL_STEPS, (job.step, job.total_steps)
    return job


def _reap_until(outcome: str) -> dict:
    """Run the reaper (what `training.jobs_reap` does every minute) until it reports a job under `outcome`."""

    def reaped():
        report = training_jobs_reap()
        return report if report[outcome] else None

    return wait_for(reaped, timeout=HEARTBEAT_TIMEOUT + 15, interval=0.25, message=f"the reaper to report {outcome}")


def _messages(job_id: int) -> list[str]:
    events = TrainingEvent.objects.filter(job_id=job_id).order_by("created_at", "id")
    return list(events.values_list("message", flat=True))


def test_a_killed_training_run_is_requeued_by_the_reaper_and_a_new_worker_finishes_it(
    transactional_db, settings, tmp_path, jobs_tiny_encoder_dir
):
    tenant, client, task = _setup(settings, tmp_path, jobs_tiny_encoder_dir, "kill-train-retry")
    env = _worker_env(settings.ARTIFACT_ROOT)

    with celery_worker(queues=[Queue.TRAINING.value], extra_env=env) as first:
        job_id = _start_job(client, task)
        _kill_mid_run(first, job_id)
    # Within the timeout a silent heartbeat may be a slow database write: the reaper leaves the job alone.
    settings.TRAINING_HEARTBEAT_TIMEOUT = 600
    assert training_jobs_reap() == NOTHING_REAPED
    assert TrainingJob.objects.get(pk=job_id).state == "running"

    # The dead worker's message is gone (the file broker deletes it when fetched) or invisible for hours
    # (Redis' visibility timeout): the job comes back through the reaper, which queues it and sends it again.
    settings.TRAINING_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT
    with celery_worker(queues=[Queue.TRAINING.value], extra_env=env) as second:
        report = _reap_until("requeued")
        assert report == {"requeued": [job_id], "failed": [], "sent": [job_id]}, report

        def finished():
            body = client.get(f"/api/v1/training-jobs/{job_id}").json()
            return body if body["state"] in TERMINAL else None

        body = wait_for(finished, timeout=120, interval=0.5, message="the retried job to finish")
        log = second.log_path.read_text()

    assert body["state"] == "succeeded", (body, log[-3000:])
    assert body["attempts"] == 2 and body["error"] == ""
    assert body["progress"]["step"] == body["progress"]["total_steps"] == TOTAL_STEPS
    # The second attempt trained from the start into its own folder and made exactly one model version.
    version = ModelVersion.objects.get(job_id=job_id)
    assert version.name == "tickets-v1" and version.artifact_path.endswith("/attempt-2")
    assert (settings.ARTIFACT_ROOT / version.artifact_path / "adapter_model.safetensors").is_file()
    assert ModelVersion.objects.filter(task=task).count() == 1
    messages = _messages(job_id)
    assert any("stopped sending heartbeats; the job goes back to the queue" in m for m in messages), messages
    assert [m for m in messages if m.startswith("Started (attempt")] == [
        "Started (attempt 1 of 2).",
        "Started (attempt 2 of 2).",
    ]
    assert tenant_running_job_count(tenant) == 0
    assert training_jobs_reap() == NOTHING_REAPED


def test_a_killed_training_run_with_no_attempts_left_fails_with_the_reason(
    transactional_db, settings, tmp_path, jobs_tiny_encoder_dir
):
    settings.TRAINING_MAX_ATTEMPTS = 1
    settings.TRAINING_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT
    tenant, client, task = _setup(settings, tmp_path, jobs_tiny_encoder_dir, "kill-train-fail")
    env = _worker_env(settings.ARTIFACT_ROOT, TRAINING_MAX_ATTEMPTS=1)

    with celery_worker(queues=[Queue.TRAINING.value], extra_env=env) as worker:
        job_id = _start_job(client, task)
        _kill_mid_run(worker, job_id)
    assert tenant_running_job_count(tenant) == 1  # the dead run still holds the tenant's only slot

    report = _reap_until("failed")
    assert report == {"requeued": [], "failed": [job_id], "sent": []}, report
    body = client.get(f"/api/v1/training-jobs/{job_id}").json()
    assert body["state"] == "failed" and body["attempts"] == 1 and body["finished_at"], body
    assert body["error"].startswith("The worker running this job stopped sending heartbeats"), body["error"]
    assert "after 1 attempt(s); the job is not retried again" in body["error"]
    assert body["progress"]["eta_seconds"] is None
    assert TrainingEvent.objects.filter(job_id=job_id, level="error", message=body["error"]).count() == 1
    assert not ModelVersion.objects.filter(job_id=job_id).exists()
    assert tenant_running_job_count(tenant) == 0  # the slot is free for the tenant's next job
    # Reaping again changes nothing: the failed job stays failed, with its one error event.
    assert training_jobs_reap() == NOTHING_REAPED
    assert TrainingJob.objects.get(pk=job_id).state == "failed"
    assert TrainingEvent.objects.filter(job_id=job_id, level="error").count() == 1
