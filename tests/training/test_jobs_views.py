"""The training UI: the start form (defaults, estimate, refusals), the job page with its live-progress hooks
and cancel button, the model version page (metrics, per-label table, chart, download, try it) and the
task page's training panel."""

import html
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests import factories_jobs
from tests.factories import make_membership, make_tenant
from tests.factories_jobs import (
    TINY_EVAL,
    TINY_TRAIN,
    make_base_model,
    make_examples,
    make_jobs_task,
    make_model_version,
    make_training_job,
)
from training.engine import default_hyperparameters
from training.models import JobState, Split, TrainingJob
from training.services import jobs as services

# Session fixtures shared with the other jobs test modules (tiny models are built once).
jobs_tiny_classifier_artifact = factories_jobs.jobs_tiny_classifier_artifact
jobs_tiny_encoder_dir = factories_jobs.jobs_tiny_encoder_dir

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, owner, tenant):
    client.force_login(owner)
    return client


@pytest.fixture
def task(tenant):
    make_base_model("minilm-l6", default_hyperparameters={})
    task = make_jobs_task(tenant, slug="tickets")
    make_examples(task, TINY_TRAIN)
    make_examples(task, TINY_EVAL, split=Split.EVAL)
    return task


def _chart(page: str, canvas_id: str) -> dict:
    match = re.search(rf'id="{canvas_id}" data-chart="([^"]*)"', page)
    assert match, f"no chart {canvas_id}"
    return json.loads(html.unescape(match.group(1)))


def test_the_start_form_shows_readiness_defaults_and_an_estimate(browser, task, settings):
    settings.TRAINING_RECOMMENDED_EXAMPLES = 500
    page = browser.get("/tasks/tickets/train/").content.decode()
    assert "below the readiness bar" in page and "About 500 training examples make a good" in page
    assert '<option value="minilm-l6"' in page
    defaults = json.loads(re.search(r'id="base-model-defaults" type="application/json">(.*?)</script>', page).group(1))
    minilm = next(option for option in defaults if option["name"] == "minilm-l6")
    epochs = default_hyperparameters("encoder").epochs
    assert minilm["defaults"]["epochs"] == epochs and minilm["defaults"]["max_length"] == 64
    # 24 examples * epochs / 60 examples/s of training, plus the 15 s allowance.
    assert minilm["estimate"] == {
        "seconds": round(24 * epochs / 60.0 + 15),
        "examples_per_second": 60.0,
        "measured": False,
        "text": "under a minute",
    }
    assert 'value="0.95"' in page  # the task's target agreement
    assert f'placeholder="{epochs}"' in page and 'placeholder="0.001"' in page  # defaults, without JavaScript


def test_the_estimate_uses_measured_throughput_once_a_job_has_run(browser, task, tenant):
    base_model = make_base_model("minilm-l6")
    for rate in (2.0, 4.0, 100.0):
        make_training_job(tenant, task=task, base_model=base_model, state=JobState.SUCCEEDED, examples_per_second=rate)
    page = browser.get("/tasks/tickets/train/").content.decode()
    defaults = json.loads(re.search(r'id="base-model-defaults" type="application/json">(.*?)</script>', page).group(1))
    estimate = next(option for option in defaults if option["name"] == "minilm-l6")["estimate"]
    assert estimate["measured"] is True and estimate["examples_per_second"] == 4.0  # the median
    epochs = default_hyperparameters("encoder").epochs
    training_seconds = 24 * epochs / 4.0
    assert estimate["seconds"] == round(training_seconds + max(15.0, 0.2 * training_seconds))


def test_starting_from_the_form_queues_a_job_and_opens_its_page(browser, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = browser.post(
            "/tasks/tickets/train/", {"base_model": "minilm-l6", "epochs": "4", "lora_r": "", "target_agreement": "0.9"}
        )
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/jobs/{job.pk}/"
    assert job.hyperparameters["epochs"] == 4 and job.hyperparameters["lora_r"] == 16 and job.target_agreement == 0.9
    assert len(callbacks) == 1


def test_the_form_puts_service_errors_on_the_field_they_concern(browser, task):
    response = browser.post(
        "/tasks/tickets/train/", {"base_model": "minilm-l6", "max_length": "512", "target_agreement": "0.95"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["max_length"] == ["must be an integer between 8 and 64, got 512"]
    assert not TrainingJob.objects.exists()


def test_the_form_refuses_a_task_with_too_few_examples(browser, tenant, settings):
    settings.TRAINING_MIN_EXAMPLES = 20
    make_base_model("minilm-l6")
    small = make_jobs_task(tenant, slug="small")
    make_examples(small, TINY_TRAIN[:5])
    page = browser.get("/tasks/small/train/").content.decode()
    assert "has 5 training examples, needs at least 20" in page and "disabled" in page
    response = browser.post("/tasks/small/train/", {"base_model": "minilm-l6", "target_agreement": "0.95"})
    assert "has 5 training examples, needs at least 20" in response.content.decode()


def test_another_tenants_task_and_jobs_are_404_and_viewers_cannot_train(client, tenant, task):
    job = make_training_job(tenant, task=task)
    version = make_model_version(tenant)
    outsider = make_membership(make_tenant("initech"), role="owner").user
    client.force_login(outsider)
    for url in (
        "/tasks/tickets/train/",
        f"/training/jobs/{job.pk}/",
        f"/training/models/{version.pk}/",
        f"/training/models/{version.pk}/artifact/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/training/jobs/{job.pk}/cancel/").status_code == 404
    job.refresh_from_db()
    assert not job.cancel_requested

    viewer = make_membership(tenant, role="viewer").user
    client.force_login(viewer)
    assert client.get("/tasks/tickets/train/").status_code == 403
    assert client.get(f"/training/jobs/{job.pk}/").status_code == 200


def test_the_job_page_has_progress_loss_chart_events_and_cancel(browser, tenant, task):
    job = make_training_job(
        tenant, task=task, state=JobState.RUNNING, worker="w:1", attempts=1, step=5, total_steps=20,
        eta_seconds=12.0, loss_curve=[[1, 2.0], [5, 1.5]],
    )  # fmt: skip
    services.training_event_record(job, "Started (attempt 1 of 2).")
    page = browser.get(f"/training/jobs/{job.pk}/").content.decode()
    assert 'style="width: 25.0%"' in page and 'data-finished="false"' in page
    assert f'data-job-url="/api/v1/training-jobs/{job.pk}"' in page and "js/jobs.js" in page
    assert _chart(page, "job-loss-chart")["series"][0]["points"] == [[1, 2.0], [5, 1.5]]
    assert "Started (attempt 1 of 2)." in page
    assert f'action="/training/jobs/{job.pk}/cancel/"' in page

    response = browser.post(f"/training/jobs/{job.pk}/cancel/", follow=True)
    assert "the worker stops at its next training step" in response.content.decode()
    job.refresh_from_db()
    assert job.cancel_requested


def test_cancelling_a_queued_job_from_its_page(browser, tenant, task):
    job = make_training_job(tenant, task=task)
    response = browser.post(f"/training/jobs/{job.pk}/cancel/", follow=True)
    assert f"Job {job.pk} cancelled." in response.content.decode()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    page = browser.get(f"/training/jobs/{job.pk}/").content.decode()
    assert 'data-finished="true"' in page and "job-cancel-form" not in page


def test_the_training_page_lists_jobs_and_model_versions(browser, tenant):
    version = make_model_version(tenant)
    queued = make_training_job(tenant)
    page = browser.get("/training/").content.decode()
    assert f"/training/models/{version.pk}/" in page and f"/training/jobs/{queued.pk}/" in page


def test_the_model_version_page(browser, tenant):
    version = make_model_version(
        tenant,
        metrics={
            "accuracy": 0.9,
            "macro_f1": 0.85,
            "agreement_rate": 0.9,
            "per_label": {"top_up": {"precision": 1.0, "recall": 0.8, "f1": 0.889, "support": 5}},
        },
    )
    page = browser.get(f"/training/models/{version.pk}/").content.decode()
    assert version.name in page and "0.8000" in page and "keeps 70% of traffic" in page
    assert "12.50" in page  # projected saving
    assert re.search(r"<td>top_up</td><td>1.000</td><td>0.800</td><td>0.889</td><td>5</td>", page)
    chart = _chart(page, "coverage-chart")
    assert chart["marker"] == {"x": 0.8, "label": "threshold 0.800"}
    assert [label["label"] for label in chart["series"]] == ["coverage", "agreement"]
    assert f'href="/training/models/{version.pk}/artifact/"' in page

    download = browser.get(f"/training/models/{version.pk}/artifact/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"


def test_an_unmet_target_is_said_plainly(browser, tenant):
    version = make_model_version(
        tenant,
        threshold=None,
        coverage=None,
        projected_monthly_saving=None,
        calibration={
            "achievable": False,
            "message": "target 0.95 cannot be met: the best agreement at >= 10% coverage is 0.71",
            "curve": [],
        },
    )
    page = browser.get(f"/training/models/{version.pk}/").content.decode()
    assert (
        "target not met" in page
        and "target 0.95 cannot be met: the best agreement at &gt;= 10% coverage is 0.71" in page
    )


@pytest.mark.engine
def test_try_it_on_the_model_version_page(browser, tenant, settings, jobs_tiny_classifier_artifact):
    settings.ARTIFACT_ROOT = jobs_tiny_classifier_artifact["root"]
    version = make_model_version(tenant, artifact_path=jobs_tiny_classifier_artifact["relative"], threshold=0.0)
    response = browser.post(f"/training/models/{version.pk}/", {"inputs": "my card has not arrived yet 100\n\nhello"})
    assert response.status_code == 200
    results = response.context["results"]
    assert [row["input"] for row in results] == ["my card has not arrived yet 100", "hello"]
    assert all(row["route"] == "small" and 0 <= row["confidence"] <= 1 for row in results)
    assert 'id="try-results"' in response.content.decode()


def test_the_task_page_shows_the_training_panel(browser, tenant, task):
    version = make_model_version(tenant, job=make_training_job(tenant, task=task, state=JobState.SUCCEEDED))
    page = browser.get("/tasks/tickets/").content.decode()
    assert 'id="training-panel"' in page and 'href="/tasks/tickets/train/"' in page
    assert f"/training/models/{version.pk}/" in page and "1 model version" in page
