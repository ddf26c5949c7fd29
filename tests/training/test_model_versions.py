"""Model versions over the API: reading, the streamed artifact zip, and "try it" predictions with the route
the threshold chooses (on a real tiny artifact trained by the engine)."""

import io
import os
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests import factories_jobs
from tests.conftest import client_for_key
from tests.factories import make_api_key
from tests.factories_jobs import (
    make_jobs_task,
    make_model_version,
    make_training_job,
)
from training.models import JobState

# Session fixtures shared with the other jobs test modules (tiny models are built once).
jobs_tiny_classifier_artifact = factories_jobs.jobs_tiny_classifier_artifact
jobs_tiny_encoder_dir = factories_jobs.jobs_tiny_encoder_dir

pytestmark = pytest.mark.django_db


def _zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_a_model_version_shows_metrics_threshold_curve_and_saving(admin_client, tenant):
    version = make_model_version(tenant)
    body = admin_client.get(f"/api/v1/model-versions/{version.pk}").json()
    assert body["name"] == version.name and body["task"] == version.task.slug and body["job"] == version.job_id
    assert body["metrics"]["accuracy"] == 0.9 and body["threshold"] == 0.8 and body["coverage"] == 0.7
    assert body["target_agreement"] == 0.95 and body["achievable"] is True
    assert body["curve"][1] == {"threshold": 0.8, "coverage": 0.7, "agreement": 0.96}
    assert body["projected_monthly_saving"] == "12.50"
    assert body["artifact_url"] == f"http://testserver/api/v1/model-versions/{version.pk}/artifact"
    # The job points back at it.
    job = admin_client.get(f"/api/v1/training-jobs/{version.job_id}").json()
    assert job["model_version"] == {
        "id": version.pk,
        "name": version.name,
        "version": 1,
        "threshold": 0.8,
        "coverage": 0.7,
    }


def test_model_versions_list_filters_by_task(admin_client, tenant):
    first = make_model_version(tenant)
    second = make_model_version(tenant)
    ids = {row["id"] for row in admin_client.get("/api/v1/model-versions/").json()["results"]}
    assert ids == {first.pk, second.pk}
    only = admin_client.get(f"/api/v1/model-versions/?task={first.task.slug}").json()["results"]
    assert [row["id"] for row in only] == [first.pk]


def test_the_artifact_is_a_streamed_zip_of_the_adapter_folder(admin_client, tenant):
    version = make_model_version(tenant)
    response = admin_client.get(f"/api/v1/model-versions/{version.pk}/artifact")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{version.name}.zip"'
    archive = _zip(response)
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        f"{version.name}/{name}"
        for name in (
            "README.md",
            "adapter_config.json",
            "adapter_model.safetensors",
            "label_map.json",
            "metadata.json",
            "tokenizer.json",
        )
    )
    assert archive.read(f"{version.name}/adapter_model.safetensors") == b"\0" * 256
    assert archive.getinfo(f"{version.name}/adapter_model.safetensors").compress_type == zipfile.ZIP_STORED


def test_a_missing_artifact_answers_410_with_the_reason(admin_client, tenant, settings, tmp_path):
    version = make_model_version(tenant)
    settings.ARTIFACT_ROOT = tmp_path  # the files are on another volume
    response = admin_client.get(f"/api/v1/model-versions/{version.pk}/artifact")
    assert response.status_code == 410
    assert response.json()["error"]["message"] == f"the files of {version.name} are missing on this server"


def test_an_artifact_path_cannot_leave_the_artifact_root(admin_client, tenant):
    version = make_model_version(tenant, artifact_path="../../etc")
    response = admin_client.get(f"/api/v1/model-versions/{version.pk}/artifact")
    assert response.status_code == 410 and "outside the artifact root" in response.json()["error"]["message"]


def test_reading_needs_the_training_read_scope(tenant):
    version = make_model_version(tenant)
    routing_only = client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])
    response = routing_only.get(f"/api/v1/model-versions/{version.pk}")
    assert response.status_code == 403 and "training:read" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "inputs: This field is required."),
        ({"inputs": []}, "inputs: This list may not be empty."),
        ({"inputs": ["ok"] * 17}, "inputs: At most 16 inputs per request; got 17."),
        ({"inputs": ["fine", "   "]}, "inputs[1]: must be a non-empty string"),
        ({"inputs": ["x" * 10_001]}, "inputs[0]: 10001 characters; at most 10000"),
    ],
)
def test_predict_validates_its_inputs(admin_client, tenant, payload, message):
    version = make_model_version(tenant)
    response = admin_client.post(f"/api/v1/model-versions/{version.pk}/predict", payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["error"])


@pytest.mark.engine
def test_predict_answers_with_confidence_and_the_route_the_threshold_chooses(
    admin_client, tenant, settings, jobs_tiny_classifier_artifact
):
    settings.ARTIFACT_ROOT = jobs_tiny_classifier_artifact["root"]
    task = make_jobs_task(tenant, slug="tickets", frontier_model="gpt-4o")
    job = make_training_job(tenant, task=task, state=JobState.SUCCEEDED)
    version = make_model_version(
        tenant, job=job, artifact_path=jobs_tiny_classifier_artifact["relative"], threshold=0.0
    )
    inputs = ["my card has not arrived yet 100", "how do i top up my account 100"]
    response = admin_client.post(f"/api/v1/model-versions/{version.pk}/predict", {"inputs": inputs}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == "tickets-v1" and body["threshold"] == 0.0
    # The engine's own predictions on these eval inputs, from the run that made the artifact.
    expected = jobs_tiny_classifier_artifact["predictions"][0], jobs_tiny_classifier_artifact["predictions"][6]
    for row, text, prediction in zip(body["results"], inputs, expected, strict=True):
        assert row["input"] == text and row["output"] == prediction.output
        assert row["confidence"] == pytest.approx(prediction.confidence, abs=1e-6)
        assert (row["route"], row["model"]) == ("small", "tickets-v1")

    # No threshold (target not met): every answer falls back to the frontier model.
    version.threshold = None
    version.save()
    body = admin_client.post(f"/api/v1/model-versions/{version.pk}/predict", {"inputs": inputs}, format="json").json()
    assert [(row["route"], row["model"]) for row in body["results"]] == [("frontier", "gpt-4o")] * 2
