"""The Celery task's body (`training_job_run`) run in-process on tiny real models: success with evaluation,
calibration and a model version; cancellation of a running job; failure with the engine's reason; the
heartbeat thread; and the projected-saving arithmetic.

These tests use `transactional_db`: the run writes its heartbeat from a second thread (its own database
connection), which must see committed rows.
"""

import os
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub; it also saves minutes

import pytest
from django.db import connection
from django.utils import timezone

from tests import factories_jobs
from tests.factories import make_tenant
from tests.factories_jobs import (
    TINY_EVAL,
    TINY_TRAIN,
    make_examples,
    make_jobs_task,
    make_model_version,
    make_tiny_causal_lm_base_model,
    make_tiny_encoder_base_model,
    make_training_job,
)
from training.engine.artifact import read_artifact_metadata
from training.engine.calibrate import Calibration
from training.models import JobState, ModelVersion, Split, TrainingEvent, TrainingJob
from training.services import jobs as services

# Session fixtures shared with the other jobs test modules (tiny models are built once).
jobs_tiny_causal_lm_dir = factories_jobs.jobs_tiny_causal_lm_dir
jobs_tiny_encoder_dir = factories_jobs.jobs_tiny_encoder_dir

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"  # per test: xdist workers reuse job ids
    settings.TRAINING_PROGRESS_WRITE_SECONDS = 0
    settings.TRAINING_CANCEL_POLL_SECONDS = 0
    settings.TRAINING_MIN_USEFUL_COVERAGE = 0.1


@pytest.fixture
def tenant_(db):
    return make_tenant("acme-run")


@pytest.fixture
def classification_task(tenant_):
    task = make_jobs_task(tenant_, slug="tickets")
    make_examples(task, TINY_TRAIN, split=Split.TRAIN, input_tokens=1000, output_tokens=10)
    make_examples(task, TINY_EVAL, split=Split.EVAL, input_tokens=1000, output_tokens=10)
    return task


def _events(job):
    return list(TrainingEvent.objects.filter(job=job).values_list("level", "message"))


def test_a_job_trains_evaluates_calibrates_and_makes_a_model_version(
    tenant_, classification_task, jobs_tiny_encoder_dir
):
    base_model = make_tiny_encoder_base_model(jobs_tiny_encoder_dir)
    earlier = make_model_version(
        tenant_, job=make_training_job(tenant_, task=classification_task, state=JobState.SUCCEEDED)
    )
    # Target 0: met at the lowest threshold, whatever the tiny model learned; the curve is what it measured.
    job = make_training_job(
        tenant_,
        task=classification_task,
        base_model=base_model,
        target_agreement=0.0,
        hyperparameters={"epochs": 2, "batch_size": 8, "learning_rate": 0.01, "max_length": 32},
    )
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.error == "" and job.finished_at is not None
    assert (job.step, job.total_steps, job.attempts) == (6, 6, 1)  # 24 examples / 8 per step * 2 epochs
    assert [point[0] for point in job.loss_curve] == [1, 2, 3, 4, 5, 6]
    assert job.examples_per_second > 0 and (job.train_count, job.eval_count) == (24, 12)
    assert set(job.metrics) >= {"accuracy", "macro_f1", "per_label", "agreement_rate", "mean_confidence"}
    assert set(job.metrics["per_label"]) <= {"card_arrival", "top_up"}

    version = ModelVersion.objects.get(job=job)
    assert (version.name, version.version) == ("tickets-v2", earlier.version + 1)
    assert version.metrics == job.metrics and version.base_model == base_model
    assert version.hyperparameters["epochs"] == 2 and version.train_count == 24
    calibration = version.calibration
    assert calibration["achievable"] is True and version.coverage == 1.0
    assert version.threshold == min(point["threshold"] for point in calibration["curve"])
    assert calibration["curve"][0]["coverage"] == 1.0
    # 36 requests logged within 30 days, 1000 input and 10 output tokens at 2.50 / 10.00 per million:
    # 36 * (1000 * 2.5 + 10 * 10) / 1e6 = 0.0936 a month; routing all of it saves 90% (small model 10%).
    saving = calibration["projected_saving"]
    assert saving["requests"] == 36 and saving["frontier_monthly_cost"] == pytest.approx(0.0936)
    assert saving["monthly_saving"] == pytest.approx(0.0936 * 0.9, abs=1e-4)
    assert version.projected_monthly_saving == Decimal("0.08")

    artifact = Path(services.artifact_root()) / version.artifact_path
    names = {path.name for path in artifact.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "label_map.json", "metadata.json", "README.md"} <= names
    metadata = read_artifact_metadata(artifact)
    assert metadata["threshold"] == version.threshold and metadata["model_version"] == "tickets-v2"
    assert metadata["task"] == {"slug": "tickets", "name": "Tickets", "kind": "classification"}
    assert f"Calibrated threshold: {version.threshold}" in (artifact / "README.md").read_text()

    messages = [message for _, message in _events(job)]
    assert messages[0] == "Started (attempt 1 of 2)."
    assert any("evaluating on 12 held-out examples" in m for m in messages)
    assert messages[-1].startswith("Succeeded: tickets-v2. accuracy")

    # The message delivered again after success: nothing runs, nothing changes.
    assert services.training_job_run(job_id=job.pk, worker="test:2") == "skipped: already succeeded"
    assert ModelVersion.objects.filter(job=job).count() == 1


def test_a_target_that_cannot_be_met_publishes_no_threshold(settings, tenant_, jobs_tiny_encoder_dir):
    settings.TRAINING_MIN_USEFUL_COVERAGE = 1.0
    task = make_jobs_task(tenant_, slug="contradictory")
    make_examples(task, TINY_TRAIN)
    # The same input with both labels: no model agrees on both, so 100% agreement at 100% coverage is impossible.
    make_examples(task, [*TINY_EVAL[:5], ("my card has not arrived yet 7", "top_up")], split=Split.EVAL)
    make_examples(task, [("my card has not arrived yet 7", "card_arrival")], split=Split.EVAL)
    job = make_training_job(
        tenant_, task=task, base_model=make_tiny_encoder_base_model(jobs_tiny_encoder_dir), target_agreement=1.0,
        hyperparameters={"epochs": 1, "batch_size": 8, "max_length": 32},
    )  # fmt: skip
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert version.threshold is None and version.coverage is None and version.projected_monthly_saving is None
    assert version.calibration["achievable"] is False
    assert version.calibration["message"].startswith(
        "target 1.00 cannot be met: the best agreement at >= 100% coverage"
    )
    assert any(level == "warning" and "No threshold published" in message for level, message in _events(job))


def test_cancelling_a_running_job_stops_it_within_one_step(tenant_, classification_task, jobs_tiny_encoder_dir):
    job = make_training_job(
        tenant_,
        task=classification_task,
        base_model=make_tiny_encoder_base_model(jobs_tiny_encoder_dir),
        hyperparameters={"epochs": 200, "batch_size": 2, "max_length": 32},  # 2,400 steps: far longer than the test
    )
    seen: dict[str, int] = {}

    def cancel_after_three_steps():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = TrainingJob.objects.filter(pk=job.pk).values("step", "state").first()
            if row["step"] >= 3:
                services.training_job_cancel(job=job, actor="test")
                seen["step_at_cancel"] = TrainingJob.objects.values_list("step", flat=True).get(pk=job.pk)
                return
            time.sleep(0.01)

    def run_and_close():
        try:
            cancel_after_three_steps()
        finally:
            connection.close()  # this thread's own connection

    canceller = threading.Thread(target=run_and_close)
    canceller.start()
    try:
        outcome = services.training_job_run(job_id=job.pk, worker="test:1")
    finally:
        canceller.join()
    assert outcome == "cancelled"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.cancel_requested
    assert job.total_steps == 2400 and job.step <= seen["step_at_cancel"] + 1
    assert not ModelVersion.objects.filter(job=job).exists()
    assert not (Path(services.artifact_root()) / services.artifact_relative_dir(job)).exists()
    assert any("Cancelled at step" in message for _, message in _events(job))


def test_an_engine_error_fails_the_job_with_the_reason(tenant_, classification_task, tmp_path):
    missing = make_tiny_encoder_base_model(tmp_path / "no-such-model", name="missing-model")
    job = make_training_job(tenant_, task=classification_task, base_model=missing)
    outcome = services.training_job_run(job_id=job.pk, worker="test:1")
    job.refresh_from_db()
    assert job.state == JobState.FAILED and outcome == f"failed: {job.error}"
    assert job.error.startswith("FileNotFoundError: base model folder") and "no-such-model does not exist" in job.error
    level, message = _events(job)[-1]
    assert level == "error" and message == f"Failed: {job.error}"
    assert "Traceback" in TrainingEvent.objects.filter(job=job).last().data["traceback"]


def test_a_label_outside_the_tasks_label_set_fails_with_the_line(tenant_, jobs_tiny_encoder_dir):
    task = make_jobs_task(tenant_, slug="labels", labels=["card_arrival", "top_up"])
    make_examples(task, [*TINY_TRAIN, ("refund please", "refund")])
    make_examples(task, TINY_EVAL, split=Split.EVAL)
    job = make_training_job(tenant_, task=task, base_model=make_tiny_encoder_base_model(jobs_tiny_encoder_dir))
    services.training_job_run(job_id=job.pk, worker="test:1")
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "label 'refund' is not in the task's label set" in job.error


def test_a_failed_job_frees_the_slot_for_the_next_waiting_job(tenant_, classification_task, tmp_path, monkeypatch):
    missing = make_tiny_encoder_base_model(tmp_path / "absent", name="absent-model")
    failing = make_training_job(tenant_, task=classification_task, base_model=missing)
    waiting = make_training_job(tenant_, task=classification_task, base_model=missing, heartbeat_at=None)
    sent = []
    # Keep the message out of the broker (the integration test's): record what would be sent on commit.
    monkeypatch.setattr(services.transaction, "on_commit", lambda func, using=None, robust=False: sent.append(func))
    services.training_job_run(job_id=failing.pk, worker="test:1")
    waiting.refresh_from_db()
    assert len(sent) == 1 and waiting.heartbeat_at is not None  # the waiting job's message was sent
    assert waiting.state == JobState.QUEUED


def test_an_extraction_job_trains_a_causal_lm(tenant_, jobs_tiny_causal_lm_dir):
    task = make_jobs_task(tenant_, slug="bookings", kind="extraction", output_schema={"type": "object"})
    rows = [(f"book a table in paris for {n} people", f'{{"city": "paris", "people": {n}}}') for n in range(2, 26)]
    make_examples(task, rows)
    make_examples(
        task,
        [(f"book a table in paris for {n} people", f'{{"city": "paris", "people": {n}}}') for n in range(30, 34)],
        split=Split.EVAL,
    )
    job = make_training_job(
        tenant_, task=task, base_model=make_tiny_causal_lm_base_model(jobs_tiny_causal_lm_dir), target_agreement=0.0,
        hyperparameters={"epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 1, "max_length": 64},
    )  # fmt: skip
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert set(version.metrics) >= {"json_valid_rate", "field_f1", "exact_match", "agreement_rate", "mean_confidence"}
    assert version.metrics["count"] == 4
    metadata = read_artifact_metadata(Path(services.artifact_root()) / version.artifact_path)
    assert metadata["task_kind"] == "extraction" and "JSON" in metadata["instruction"]


def test_the_heartbeat_thread_beats_while_the_run_owns_the_job(tenant_, settings):
    settings.TRAINING_HEARTBEAT_SECONDS = 0.05
    old = timezone.now() - timedelta(hours=1)
    job = make_training_job(tenant_, state=JobState.RUNNING, worker="test:1", attempts=1, heartbeat_at=old)
    stolen = make_training_job(tenant_, state=JobState.RUNNING, worker="other:1", attempts=1, heartbeat_at=old)
    with services._Heartbeat(job.pk, "test:1"), services._Heartbeat(stolen.pk, "test:1"):
        time.sleep(0.4)
    job.refresh_from_db()
    stolen.refresh_from_db()
    assert timezone.now() - job.heartbeat_at < timedelta(seconds=5)
    assert stolen.heartbeat_at == old  # another worker's job: never touched


def test_projected_saving_counts_the_last_30_days_and_estimates_missing_tokens(tenant_):
    task = make_jobs_task(tenant_, slug="volume", price_input_per_million="3.00", price_output_per_million="15.00")
    recent = timezone.now() - timedelta(days=3)
    make_examples(task, [(f"in {i}", "out") for i in range(40)], logged_at=recent, input_tokens=500, output_tokens=100)
    make_examples(task, [(f"old {i}", "out") for i in range(25)], logged_at=timezone.now() - timedelta(days=45))
    volume = services.task_monthly_volume(task)
    assert volume == {"requests": 40.0, "avg_input_tokens": 500.0, "avg_output_tokens": 100.0}
    calibration = Calibration(0.8, 0.6, 0.96, True, "ok", 0.95, 0.1)
    saving = services.task_projected_saving(task, calibration)
    frontier = 40 * (500 * 3.0 + 100 * 15.0) / 1e6
    assert saving["frontier_monthly_cost"] == pytest.approx(frontier)
    assert saving["monthly_saving"] == pytest.approx(frontier * (0.6 - 0.1), abs=1e-4)

    unlogged = make_jobs_task(tenant_, slug="no-usage")
    make_examples(unlogged, [("x" * 400, "y" * 40)])  # no token counts: 400 / 4 and 40 / 4 tokens
    assert services.task_monthly_volume(unlogged) == {
        "requests": 1.0,
        "avg_input_tokens": 100.0,
        "avg_output_tokens": 10.0,
    }


def test_the_catalogues_modules_to_save_are_trained_and_saved_with_the_adapter(
    tenant_, classification_task, jobs_tiny_encoder_dir
):
    """A catalogue row's modules_to_save reach the engine: the pooler is trained in full and shipped in the
    adapter (MiniLM's catalogue row lists it, as the engine's own entry and the benchmark do)."""
    import json

    from safetensors import safe_open

    base_model = make_tiny_encoder_base_model(jobs_tiny_encoder_dir, name="tiny-encoder-pooler")
    base_model.modules_to_save = ["pooler"]
    base_model.save()
    job = make_training_job(
        tenant_,
        task=classification_task,
        base_model=base_model,
        target_agreement=0.0,
        hyperparameters={"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "max_length": 32},
    )
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"

    artifact = Path(services.artifact_root()) / ModelVersion.objects.get(job=job).artifact_path
    config = json.loads((artifact / "adapter_config.json").read_text())
    assert {"classifier", "pooler"} <= set(config["modules_to_save"])
    with safe_open(str(artifact / "adapter_model.safetensors"), "pt") as weights:
        names = weights.keys()  # a safetensors handle, not a dict: it is not iterable itself
    assert any(".pooler." in name for name in names)
