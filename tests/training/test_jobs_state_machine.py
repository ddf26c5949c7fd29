"""The job row as a state machine: transitions, the idempotent claim under redelivery, the tenant quota,
cancellation of queued jobs and the reaper's handling of lost heartbeats. No model is trained here: every
path below ends before the engine would start (the runs themselves are in test_jobs_run.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_tenant
from tests.factories_jobs import make_jobs_task, make_training_job
from training.models import JobState, TrainingEvent, TrainingJob
from training.services import jobs as services

pytestmark = pytest.mark.django_db


def _stale(seconds: float = 3600):
    return timezone.now() - timedelta(seconds=seconds)


def _events(job) -> list[str]:
    return list(TrainingEvent.objects.filter(job=job).values_list("message", flat=True))


@pytest.mark.parametrize(
    ("start", "end", "allowed"),
    [
        (JobState.QUEUED, JobState.RUNNING, True),
        (JobState.QUEUED, JobState.CANCELLED, True),
        (JobState.RUNNING, JobState.EVALUATING, True),
        (JobState.RUNNING, JobState.QUEUED, True),
        (JobState.EVALUATING, JobState.SUCCEEDED, True),
        (JobState.QUEUED, JobState.SUCCEEDED, False),
        (JobState.QUEUED, JobState.EVALUATING, False),
        (JobState.SUCCEEDED, JobState.RUNNING, False),
        (JobState.FAILED, JobState.QUEUED, False),
        (JobState.CANCELLED, JobState.RUNNING, False),
    ],
)
def test_transitions_follow_the_state_machine(tenant, start, end, allowed):
    job = make_training_job(tenant, state=start)
    if allowed:
        services.job_transition(job, end)
        job.refresh_from_db()
        assert job.state == end
        assert (job.finished_at is not None) == (end in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED))
    else:
        with pytest.raises(services.InvalidTransition, match=f"from {start} to {end}"):
            services.job_transition(job, end)
        job.refresh_from_db()
        assert job.state == start


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_a_redelivered_finished_job_is_never_run_again(tenant, state):
    job = make_training_job(tenant, state=state, attempts=1, finished_at=timezone.now())
    before = _events(job)
    for _ in range(2):
        assert services.training_job_run(job_id=job.pk, worker="w2:1") == f"skipped: already {state}"
    job.refresh_from_db()
    assert job.state == state and job.attempts == 1 and _events(job) == before


def test_a_job_running_with_a_fresh_heartbeat_elsewhere_is_left_alone(tenant):
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1, heartbeat_at=timezone.now())
    assert services.training_job_run(job_id=job.pk, worker="w2:1") == "skipped: running on w1:1"
    job.refresh_from_db()
    assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, "w1:1", 1)


def test_a_redelivered_job_whose_worker_died_is_failed_after_its_last_attempt(tenant, settings):
    settings.TRAINING_MAX_ATTEMPTS = 2
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=2, heartbeat_at=_stale())
    assert services.training_job_run(job_id=job.pk, worker="w2:1") == "failed: worker vanished"
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "The worker running this job stopped sending heartbeats" in job.error and "after 2 attempt(s)" in job.error
    assert job.finished_at is not None


def test_an_unknown_job_id_is_reported_missing(db):
    assert services.training_job_run(job_id=987654, worker="w:1") == "missing"


def test_claim_moves_a_queued_job_to_running_once(tenant):
    job = make_training_job(tenant)
    _, outcome = services._claim(job.pk, "w1:1")
    assert outcome == "claimed"
    job.refresh_from_db()
    assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, "w1:1", 1)
    assert job.started_at is not None and job.heartbeat_at is not None
    # The same message delivered again (or to a second worker) while it runs: nothing happens.
    assert services._claim(job.pk, "w2:1") == (None, "skipped: running on w1:1")


def test_a_stale_running_job_is_claimed_again_for_one_more_attempt(tenant, settings):
    settings.TRAINING_MAX_ATTEMPTS = 2
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1, heartbeat_at=_stale(), step=7)
    _, outcome = services._claim(job.pk, "w2:1")
    assert outcome == "claimed"
    job.refresh_from_db()
    assert (job.state, job.worker, job.attempts, job.step) == (JobState.RUNNING, "w2:1", 2, 0)
    assert any("stopped sending heartbeats; running the job again" in m for m in _events(job))


def test_a_cancel_requested_before_the_claim_ends_the_job_cancelled(tenant):
    job = make_training_job(tenant, cancel_requested=True)
    assert services.training_job_run(job_id=job.pk, worker="w1:1") == "cancelled"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.attempts == 0


# --- cancellation through the service ------------------------------------------------------------


def test_cancelling_a_queued_job_cancels_it_at_once(tenant):
    job = make_training_job(tenant)
    job = services.training_job_cancel(job=job, actor="owner@example.com")
    assert job.state == JobState.CANCELLED and job.cancel_requested and job.finished_at is not None
    # Its message may still be in the broker; delivering it does nothing.
    assert services.training_job_run(job_id=job.pk, worker="w1:1") == "skipped: already cancelled"


def test_cancelling_a_running_job_flags_it_for_its_worker(tenant):
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1)
    job = services.training_job_cancel(job=job, actor="owner@example.com")
    assert job.state == JobState.RUNNING and job.cancel_requested
    monitor = services._RunMonitor(job, "w1:1")
    assert monitor.should_stop() and monitor.stop_reason == "cancel"


def test_cancelling_a_finished_job_is_refused(tenant):
    job = make_training_job(tenant, state=JobState.SUCCEEDED)
    with pytest.raises(Exception, match="already succeeded; there is nothing to cancel"):
        services.training_job_cancel(job=job, actor="owner@example.com")


def test_the_cancel_flag_is_read_at_most_every_poll_interval(tenant, settings):
    settings.TRAINING_CANCEL_POLL_SECONDS = 0.5
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1)
    now = [100.0]
    monitor = services._RunMonitor(job, "w1:1", clock=lambda: now[0])
    assert monitor.should_stop() is False  # first poll reads the row
    TrainingJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    now[0] += 0.2
    assert monitor.should_stop() is False  # within 0.5 s of the last read: no query, no stop yet
    now[0] += 0.31
    assert monitor.should_stop() is True and monitor.stop_reason == "cancel"


def test_a_run_that_lost_its_job_to_another_worker_stops(tenant):
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1)
    monitor = services._RunMonitor(job, "w1:1")
    TrainingJob.objects.filter(pk=job.pk).update(worker="w2:1")
    assert monitor.should_stop() and monitor.stop_reason == "superseded"


def test_progress_is_written_throttled_and_the_last_step_moves_to_evaluating(tenant, settings):
    settings.TRAINING_PROGRESS_WRITE_SECONDS = 1.0
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1, eval_count=10)
    now = [0.0]
    monitor = services._RunMonitor(job, "w1:1", clock=lambda: now[0])

    class Progress:
        def __init__(self, step):
            self.step, self.total_steps, self.epoch = step, 3, step / 3
            self.loss, self.examples_per_second, self.eta_seconds = 1.0 / step, 12.5, 3.0 - step

    monitor.on_progress(Progress(1))
    now[0] = 0.5
    monitor.on_progress(Progress(2))  # within the interval: kept in memory only
    job.refresh_from_db()
    assert (job.step, job.total_steps, job.state) == (1, 3, JobState.RUNNING)
    now[0] = 0.6
    monitor.on_progress(Progress(3))  # the last step is always written
    job.refresh_from_db()
    assert (job.step, job.state, job.eta_seconds) == (3, JobState.EVALUATING, None)
    assert job.loss_curve == [[1, 1.0], [2, 0.5], [3, pytest.approx(1 / 3, abs=1e-5)]]
    assert any("evaluating on 10 held-out examples" in m for m in _events(job))


def test_loss_curves_are_thinned_to_a_bounded_size():
    points = [[step, 1.0 / step] for step in range(1, 5001)]
    thinned = services._thin_curve(points, 500)
    assert len(thinned) == 500 and thinned[0] == [1, 1.0] and thinned[-1] == points[-1]


# --- the tenant quota ----------------------------------------------------------------------------


def test_a_job_beyond_the_tenants_quota_waits_and_starts_when_a_slot_frees(tenant, django_capture_on_commit_callbacks):
    assert tenant.max_running_training_jobs == 1
    task = make_jobs_task(tenant)
    first, second = make_training_job(tenant, task=task), make_training_job(tenant, task=task)
    assert services._claim(first.pk, "w1:1")[1] == "claimed"
    assert services._claim(second.pk, "w2:1") == (None, "deferred: tenant quota")
    second.refresh_from_db()
    assert second.state == JobState.QUEUED and second.heartbeat_at is None  # parked
    assert any("Waiting: 1 of this organisation's jobs are running (at most 1 at once)" in m for m in _events(second))
    # Another delivery while parked says nothing new.
    assert services._claim(second.pk, "w2:1") == (None, "deferred: tenant quota")
    assert sum("Waiting" in m for m in _events(second)) == 1

    # While the first runs there is no free slot: nothing is sent.
    assert services.training_jobs_start_waiting(tenant_id=tenant.pk) == []
    first.refresh_from_db()
    services.job_transition(first, JobState.FAILED, error="test")
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.training_jobs_start_waiting(tenant_id=tenant.pk) == [second.pk]
    assert len(callbacks) == 1  # one message for the freed slot
    assert services._claim(second.pk, "w2:1")[1] == "claimed"


def test_the_quota_is_per_tenant(tenant):
    other = make_tenant("initech")
    mine = make_training_job(tenant)
    theirs = make_training_job(other)
    assert services._claim(mine.pk, "w1:1")[1] == "claimed"
    assert services._claim(theirs.pk, "w2:1")[1] == "claimed"


def test_a_larger_quota_runs_that_many_jobs_at_once(tenant):
    tenant.max_running_training_jobs = 2
    tenant.save()
    jobs = [make_training_job(tenant) for _ in range(3)]
    outcomes = [services._claim(job.pk, f"w{i}:1")[1] for i, job in enumerate(jobs)]
    assert outcomes == ["claimed", "claimed", "deferred: tenant quota"]


def test_start_waiting_sends_the_oldest_jobs_and_skips_ones_already_in_the_broker(tenant, settings):
    settings.TRAINING_QUEUED_RESEND_SECONDS = 3600
    tenant.max_running_training_jobs = 2
    tenant.save()
    in_broker = make_training_job(tenant, heartbeat_at=timezone.now())
    parked = make_training_job(tenant, heartbeat_at=None)
    lost = make_training_job(tenant, heartbeat_at=_stale(7200))
    assert services.training_jobs_start_waiting(tenant_id=tenant.pk) == [parked.pk]  # 2 slots: in_broker, parked
    in_broker.refresh_from_db()
    services.job_transition(in_broker, JobState.CANCELLED)
    assert services.training_jobs_start_waiting(tenant_id=tenant.pk) == [lost.pk]


# --- the reaper: lost heartbeats ------------------------------------------------------------------


def test_the_reaper_requeues_a_silent_job_once_then_fails_it(tenant, settings, django_capture_on_commit_callbacks):
    settings.TRAINING_MAX_ATTEMPTS = 2
    settings.TRAINING_HEARTBEAT_TIMEOUT = 120
    job = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1, heartbeat_at=_stale(300))
    with django_capture_on_commit_callbacks() as callbacks:
        report = services.training_jobs_reap()
    assert report == {"requeued": [job.pk], "failed": [], "sent": [job.pk]}
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.state, job.worker) == (JobState.QUEUED, "")
    assert any("stopped sending heartbeats; the job goes back to the queue" in m for m in _events(job))

    # The second attempt starts, then its worker vanishes too.
    assert services._claim(job.pk, "w2:1")[1] == "claimed"
    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=_stale(300))
    assert services.training_jobs_reap() == {"requeued": [], "failed": [job.pk], "sent": []}
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "The worker running this job stopped sending heartbeats" in job.error


def test_the_reaper_leaves_live_and_finished_jobs_alone(tenant, settings):
    settings.TRAINING_HEARTBEAT_TIMEOUT = 120
    live = make_training_job(tenant, state=JobState.RUNNING, worker="w1:1", attempts=1, heartbeat_at=_stale(30))
    done = make_training_job(tenant, state=JobState.SUCCEEDED, heartbeat_at=_stale(9999))
    assert services.training_jobs_reap() == {"requeued": [], "failed": [], "sent": []}
    live.refresh_from_db()
    done.refresh_from_db()
    assert live.state == JobState.RUNNING and done.state == JobState.SUCCEEDED


def test_the_reaper_cancels_a_silent_job_that_was_being_cancelled(tenant):
    job = make_training_job(
        tenant, state=JobState.EVALUATING, worker="w1:1", attempts=1, heartbeat_at=_stale(), cancel_requested=True
    )
    services.training_jobs_reap()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED


def test_the_reaper_sends_parked_jobs_of_tenants_with_a_free_slot(tenant):
    parked = make_training_job(tenant, heartbeat_at=None)
    assert services.training_jobs_reap()["sent"] == [parked.pk]
    parked.refresh_from_db()
    assert parked.heartbeat_at is not None
    assert services.training_jobs_reap()["sent"] == []  # its message is in the broker now
