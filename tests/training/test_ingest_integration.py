"""A real Celery worker process ingests files posted through the API (same database, real broker)."""

import csv
import gzip
from pathlib import Path

import pytest

from controlplane.celery_app import Queue
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import jsonl, make_task, post_upload
from tests.worker import celery_worker, wait_for
from training.models import Example

BANKING_SLICE = Path(__file__).resolve().parent.parent / "fixtures" / "banking77_upload_550.csv"
TERMINAL = ("succeeded", "failed", "stopped")


@pytest.mark.integration
@pytest.mark.xdist_group("integration")
def test_a_worker_process_ingests_uploaded_files(transactional_db, settings, tmp_path):
    media = tmp_path / "media"
    settings.MEDIA_ROOT = str(media)
    tenant = make_tenant("worker-bank")
    client = client_for_key(make_api_key(tenant)[1])
    with BANKING_SLICE.open(newline="", encoding="utf-8") as source:
        labels = sorted({row["category"] for row in csv.DictReader(source)})
    task = make_task(tenant, slug="support-tickets", labels=labels)

    def finished(upload_id: int):
        body = client.get(f"/api/v1/uploads/{upload_id}").json()
        return body if body["status"] in TERMINAL else None

    with celery_worker(queues=[Queue.INGEST.value], extra_env={"MEDIA_ROOT": str(media)}) as worker:
        response = post_upload(
            client,
            task,
            "train.csv",
            BANKING_SLICE.read_bytes(),
            column_mapping='{"input": "text", "output": "category"}',
        )
        assert response.status_code == 202, response.content
        first = wait_for(lambda: finished(response.json()["id"]), timeout=90, message="the first upload to finish")
        # A second file, gzipped JSON Lines, repeating ten of the rows: duplicates across uploads.
        rows = [{"input": f"Where is my new card? ({i})", "output": labels[0]} for i in range(30)]
        with BANKING_SLICE.open(newline="", encoding="utf-8") as source:
            rows += [{"input": row["text"], "output": row["category"]} for row in list(csv.DictReader(source))[:10]]
        response = post_upload(client, task, "more.jsonl.gz", gzip.compress(jsonl(rows)))
        second = wait_for(lambda: finished(response.json()["id"]), timeout=90, message="the second upload to finish")
        log = Path(worker.log_path).read_text()

    assert first["status"] == "succeeded", (first, log[-2000:])
    assert (first["rows_read"], first["accepted"], first["rejected"], first["duplicates"]) == (550, 548, 0, 2)
    assert first["progress"] == 1.0 and first["attempts"] == 1
    assert (second["rows_read"], second["accepted"], second["duplicates"]) == (40, 30, 10), (second, log[-2000:])
    assert Example.objects.filter(task=task).count() == 578
    assert "training.ingest_upload" in log
