"""End to end: a real Celery worker process (training queue) trains a tiny model through the API, and the
downloaded adapter, loaded with plain transformers + `PeftModel.from_pretrained`, reproduces the reported
evaluation. Two jobs under a quota of one also show the second waiting for the first's slot."""

import io
import json
import os
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from controlplane.celery_app import Queue
from tests import factories_jobs
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_jobs import (
    TINY_EVAL,
    TINY_TRAIN,
    make_examples,
    make_jobs_task,
    make_tiny_encoder_base_model,
)
from tests.worker import celery_worker, wait_for
from training.engine.evaluate import classification_metrics
from training.models import Example, Split, TrainingEvent

# Session fixtures shared with the other jobs test modules (tiny models are built once).
jobs_tiny_encoder_dir = factories_jobs.jobs_tiny_encoder_dir

TERMINAL = ("succeeded", "failed", "cancelled")


def _reload_and_evaluate(artifact_dir: Path, base_dir: Path, texts: list[str]) -> tuple[list[str], list[float]]:
    """What a tenant does with the download: base model + PeftModel.from_pretrained, then classify."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    label_map = json.loads((artifact_dir / "label_map.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir),
        num_labels=len(label_map["labels"]),
        id2label={int(k): v for k, v in label_map["id2label"].items()},
        label2id=label_map["label2id"],
    )
    model = PeftModel.from_pretrained(base, str(artifact_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir))
    max_length = json.loads((artifact_dir / "metadata.json").read_text())["max_length"]
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
    confidence, index = probabilities.max(dim=-1)
    return [label_map["labels"][i] for i in index.tolist()], confidence.tolist()


@pytest.mark.integration
@pytest.mark.engine
@pytest.mark.xdist_group("integration")
def test_a_worker_trains_through_the_api_and_the_adapter_reproduces_its_metrics(
    transactional_db, settings, tmp_path, jobs_tiny_encoder_dir
):
    artifacts = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT = artifacts
    tenant = make_tenant("worker-train")
    assert tenant.max_running_training_jobs == 1
    client = client_for_key(make_api_key(tenant)[1])
    make_tiny_encoder_base_model(jobs_tiny_encoder_dir)
    task = make_jobs_task(tenant, slug="tickets")
    make_examples(task, TINY_TRAIN)
    make_examples(task, TINY_EVAL, split=Split.EVAL)

    def job(job_id: int) -> dict:
        return client.get(f"/api/v1/training-jobs/{job_id}").json()

    with celery_worker(
        queues=[Queue.TRAINING.value], extra_env={"ARTIFACT_ROOT": str(artifacts)}, concurrency=2
    ) as worker:
        payload = {
            "base_model": "tiny-encoder",
            "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 0.01},
            "target_agreement": 0.5,
        }
        first = client.post(f"/api/v1/tasks/{task.slug}/training-jobs", payload, format="json")
        second = client.post(f"/api/v1/tasks/{task.slug}/training-jobs", payload, format="json")
        assert first.status_code == second.status_code == 202, (first.content, second.content)
        first_id, second_id = first.json()["id"], second.json()["id"]
        states = set()

        def both_finished():
            rows = (job(first_id), job(second_id))
            states.add(tuple(row["state"] for row in rows))
            return rows if all(row["state"] in TERMINAL for row in rows) else None

        finished = wait_for(both_finished, timeout=180, interval=0.5, message="both training jobs to finish")
        log = Path(worker.log_path).read_text()

    assert [row["state"] for row in finished] == ["succeeded", "succeeded"], (finished, log[-3000:])
    # The quota: never both running at once; whichever job the second worker process received waited for the
    # first one's slot, and was sent again when it freed.
    assert not any(a in ("running", "evaluating") and b in ("running", "evaluating") for a, b in states), states
    waited = [
        any(
            e["message"].startswith("Waiting: 1 of this organisation's jobs are running")
            for e in client.get(f"/api/v1/training-jobs/{job_id}/events").json()["results"]
        )
        for job_id in (first_id, second_id)
    ]
    assert sorted(waited) == [False, True], (waited, log[-3000:])

    body, later = sorted(finished, key=lambda row: row["finished_at"])
    assert body["progress"]["percent"] == 100.0 and body["progress"]["step"] == body["progress"]["total_steps"] == 6
    assert len(body["loss_curve"]) == 6 and body["attempts"] == 1
    version = client.get(f"/api/v1/model-versions/{body['model_version']['id']}").json()
    assert version["name"] == "tickets-v1" and later["model_version"]["name"] == "tickets-v2"
    assert version["metrics"] == body["metrics"]

    # Download the adapter and load it the way the README says.
    download = client.get(version["artifact_url"].replace("http://testserver", ""))
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    archive.extractall(tmp_path / "download")
    adapter = tmp_path / "download" / "tickets-v1"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "label_map.json", "README.md"):
        assert (adapter / name).is_file(), name
    metadata = json.loads((adapter / "metadata.json").read_text())
    assert metadata["threshold"] == version["threshold"] and metadata["model_version"] == "tickets-v1"

    eval_rows = list(Example.objects.filter(task=task, split=Split.EVAL).order_by("id").values_list("input", "output"))
    predicted, confidences = _reload_and_evaluate(adapter, jobs_tiny_encoder_dir, [text for text, _ in eval_rows])
    reference = [output for _, output in eval_rows]
    recomputed = classification_metrics(predicted, reference)
    assert recomputed["accuracy"] == pytest.approx(version["metrics"]["accuracy"], abs=1e-9)
    assert recomputed["macro_f1"] == pytest.approx(version["metrics"]["macro_f1"], abs=1e-9)
    assert recomputed["per_label"] == version["metrics"]["per_label"]
    assert sum(confidences) / len(confidences) == pytest.approx(version["metrics"]["mean_confidence"], abs=1e-5)
    if version["threshold"] is not None:
        kept = [c >= version["threshold"] - 1e-6 for c in confidences]
        assert sum(kept) / len(kept) == pytest.approx(version["coverage"])

    # "Try it" in the web process answers as the reloaded adapter does.
    answer = client.post(
        f"/api/v1/model-versions/{version['id']}/predict", {"inputs": [eval_rows[0][0]]}, format="json"
    ).json()["results"][0]
    assert answer["output"] == predicted[0] and answer["confidence"] == pytest.approx(confidences[0], abs=1e-5)
    assert TrainingEvent.objects.filter(job_id=body["id"], message__startswith="Succeeded: tickets-v1").exists()
