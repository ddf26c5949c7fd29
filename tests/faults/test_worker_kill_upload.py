"""`kill -9` of the Celery worker in the middle of an upload: the counts stay exact and the upload resumes.

A real worker process (tests/worker.py) ingests a generated JSON Lines file in small batches; once some
batches are committed the whole worker process group gets SIGKILL. Each batch commits its examples, its
rejected rows, the counters and the checkpoint in one transaction, so right after the kill the row must
describe exactly the committed prefix of the file: accepted + rejected + duplicates == rows_read, with as
many stored Example and UploadRowError rows, and the same figures a one-pass ingest of those lines gives.

The dead worker's message is not redelivered in time to rely on (the file broker deletes a message when it
is fetched; Redis hands an unacknowledged one out again only after the visibility timeout, hours), so the
recovery paths under test are the two the product offers: the resume endpoint once the lease is stale, and
the sweep (`uploads_fail_stalled`) that marks a silent upload failed, after which it can be resumed too.
Either way the finished upload must hold the totals of a one-pass ingest, with no row counted twice.
"""

import json
import os
import signal
import time
from dataclasses import dataclass

import pytest

from controlplane.celery_app import Queue
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import SUPPORT_LABELS, make_task, post_upload
from tests.worker import celery_worker, wait_for
from training.ingest import content_hash
from training.models import Example, ExampleUpload, UploadRowError
from training.services.examples import ERRORS_PREVIEW_SIZE, uploads_fail_stalled

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

ROWS = 60_000
BATCH_SIZE = 500
STALE_SECONDS = 3
TERMINAL = ("succeeded", "failed", "stopped")


@dataclass(frozen=True)
class Counts:
    rows_read: int
    accepted: int
    rejected: int
    duplicates: int


def _generated_rows() -> list[dict]:
    """Support tickets; every 37th has a label the task does not know (rejected), and every 23rd repeats the
    row 3,000 lines earlier (a duplicate across batches, often across the kill's checkpoint too)."""
    rows = []
    for i in range(ROWS):
        if i % 23 == 11 and i >= 3000:
            rows.append(dict(rows[i - 3000]))
        elif i % 37 == 5:
            rows.append({"input": f"ticket {i}: where did my money go?", "output": "unknown_label"})
        else:
            rows.append({"input": f"ticket {i}: my card was charged twice", "output": SUPPORT_LABELS[i % 4]})
    return rows


def _one_pass(rows: list[dict]) -> tuple[Counts, set[str], set[int]]:
    """What one uninterrupted ingest of `rows` gives: counts, stored hashes and rejected line numbers."""
    stored, rejected_lines = set(), set()
    duplicates = 0
    for line, row in enumerate(rows, start=1):
        if row["output"] not in SUPPORT_LABELS:
            rejected_lines.add(line)
            continue
        key = content_hash(row["input"], row["output"])
        if key in stored:
            duplicates += 1
        else:
            stored.add(key)
    return Counts(len(rows), len(stored), len(rejected_lines), duplicates), stored, rejected_lines


def _counts(upload: ExampleUpload) -> Counts:
    return Counts(upload.rows_read, upload.accepted, upload.rejected, upload.duplicates)


def _assert_stored_rows_match(upload: ExampleUpload, rows: list[dict]) -> None:
    """The row's counters, the stored rows and a one-pass ingest of the lines up to the checkpoint agree."""
    counts, hashes, rejected_lines = _one_pass(rows[: upload.last_line])
    assert _counts(upload) == counts, (_counts(upload), counts)
    assert upload.accepted + upload.rejected + upload.duplicates == upload.rows_read
    stored = set(Example.objects.filter(upload_id=upload.pk).values_list("content_hash", flat=True))
    assert Example.objects.filter(task_id=upload.task_id).count() == upload.accepted == len(stored)
    assert stored == hashes
    errors = list(UploadRowError.objects.filter(upload_id=upload.pk).values_list("line", flat=True))
    assert len(errors) == upload.rejected and set(errors) == rejected_lines
    # The first errors shown on the upload: each once, in file order, across the kill and the resume.
    assert [error["line"] for error in upload.errors_preview] == sorted(rejected_lines)[:ERRORS_PREVIEW_SIZE]


@pytest.fixture
def traffic(transactional_db, settings, tmp_path):
    """A tenant, a task, its client, the generated file, and the worker's environment."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    tenant = make_tenant("kill-upload")
    client = client_for_key(make_api_key(tenant)[1])
    task = make_task(tenant, slug="tickets", labels=list(SUPPORT_LABELS))
    rows = _generated_rows()
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    env = {
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "INGEST_BATCH_SIZE": str(BATCH_SIZE),
        "INGEST_HEARTBEAT_STALE_SECONDS": str(STALE_SECONDS),
    }
    return client, task, rows, content, env


def _upload_and_kill(client, task, content: bytes, env: dict) -> ExampleUpload:
    """Upload with a worker up, SIGKILL the worker's process group mid-file, return the row after the kill."""
    with celery_worker(queues=[Queue.INGEST.value], extra_env=env) as worker:
        response = post_upload(client, task, "traffic.jsonl", content)
        assert response.status_code == 202, response.content
        upload_id = response.json()["id"]

        def some_batches_committed():
            upload = ExampleUpload.objects.get(pk=upload_id)
            assert upload.status in ("pending", "processing"), (upload.status, upload.message)
            return upload.status == "processing" and upload.rows_read >= 4 * BATCH_SIZE

        wait_for(some_batches_committed, timeout=60, interval=0.02, message="the worker to commit a few batches")
        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its prefork child, mid-batch
        worker.wait(timeout=10)
        time.sleep(0.2)  # a commit the worker sent just before it died has reached the database
    upload = ExampleUpload.objects.get(pk=upload_id)
    # Killed mid-file, and nothing wrote a final state: only the stale lease tells that the worker is gone.
    assert upload.status == "processing" and upload.attempts == 1, (upload.status, upload.message)
    assert 0 < upload.rows_read < ROWS, upload.rows_read
    assert upload.rows_read % BATCH_SIZE == 0 and upload.last_line == upload.rows_read  # whole batches only
    return upload


def _wait_finished(client, upload_id: int) -> dict:
    def finished():
        body = client.get(f"/api/v1/uploads/{upload_id}").json()
        return body if body["status"] in TERMINAL else None

    return wait_for(finished, timeout=120, interval=0.25, message="the upload to finish")


def _assert_finished_like_one_pass(body: dict, rows: list[dict], log: str) -> None:
    assert body["status"] == "succeeded", (body, log[-3000:])
    expected, _, _ = _one_pass(rows)
    assert Counts(body["rows_read"], body["accepted"], body["rejected"], body["duplicates"]) == expected
    assert body["last_line"] == ROWS and body["progress"] == 1.0
    assert body["message"] == (
        f"{expected.rows_read:,} rows read: {expected.accepted:,} accepted, {expected.rejected:,} rejected, "
        f"{expected.duplicates:,} duplicates."
    )
    _assert_stored_rows_match(ExampleUpload.objects.get(pk=body["id"]), rows)


def test_an_upload_killed_mid_file_keeps_exact_counts_and_resumes_after_its_checkpoint(traffic, settings):
    client, task, rows, content, env = traffic
    expected, _, _ = _one_pass(rows)
    assert expected.rejected > 1000 and expected.duplicates > 1000  # the file exercises every outcome

    killed = _upload_and_kill(client, task, content, env)
    _assert_stored_rows_match(killed, rows)
    checkpoint = killed.last_line

    # While the lease is fresh the worker might still be alive: the endpoint refuses to start a second run.
    settings.INGEST_HEARTBEAT_STALE_SECONDS = 600
    refused = client.post(f"/api/v1/uploads/{killed.pk}/resume")
    assert refused.status_code == 400, refused.content
    assert "being processed now" in refused.content.decode()

    settings.INGEST_HEARTBEAT_STALE_SECONDS = STALE_SECONDS
    with celery_worker(queues=[Queue.INGEST.value], extra_env=env) as worker:
        wait_for(
            lambda: client.post(f"/api/v1/uploads/{killed.pk}/resume").status_code == 202,
            timeout=STALE_SECONDS + 10,
            interval=0.25,
            message="the resume endpoint to accept the stalled upload",
        )
        body = _wait_finished(client, killed.pk)
        log = worker.log_path.read_text()

    _assert_finished_like_one_pass(body, rows, log)
    assert body["attempts"] == 1  # the resume reset the claim count; the new worker claimed it once
    assert f"processing from line {checkpoint + 1}" in log, log[-3000:]


def test_a_killed_upload_is_failed_by_the_sweep_with_exact_counts_and_can_be_resumed(traffic, settings):
    client, task, rows, content, env = traffic

    killed = _upload_and_kill(client, task, content, env)
    # No worker is left, and none will get the message again: the sweep is what ends the upload.
    settings.INGEST_STALLED_FAIL_SECONDS = 600
    assert uploads_fail_stalled() == 0  # not yet: the worker has been silent for less than that
    settings.INGEST_STALLED_FAIL_SECONDS = STALE_SECONDS
    wait_for(lambda: uploads_fail_stalled() == 1, timeout=STALE_SECONDS + 10, interval=0.25, message="the sweep")
    failed = ExampleUpload.objects.get(pk=killed.pk)
    assert failed.status == "failed" and failed.finished_at is not None and failed.heartbeat_at is None
    assert failed.message == (
        f"The worker stopped responding after line {killed.last_line:,}; the counts are exact up to there. "
        "Resume to continue."
    )
    assert _counts(failed) == _counts(killed) and failed.last_line == killed.last_line
    _assert_stored_rows_match(failed, rows)
    assert uploads_fail_stalled() == 0  # a failed upload is not swept again

    with celery_worker(queues=[Queue.INGEST.value], extra_env=env) as worker:
        response = client.post(f"/api/v1/uploads/{killed.pk}/resume")
        assert response.status_code == 202, response.content
        assert response.json()["message"] == f"Queued to resume after line {killed.last_line:,}."
        body = _wait_finished(client, killed.pk)
        log = worker.log_path.read_text()

    _assert_finished_like_one_pass(body, rows, log)
