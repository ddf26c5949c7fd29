"""File uploads through the API and the ingest service the worker runs: counts, dedup, splits, reports,
limits, early stop, resuming after a dead worker, reprocessing."""

import csv
import gzip
import io
import json
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import client_for_key
from tests.factories import make_api_key
from tests.factories_examples import assert_counts_add_up, jsonl, make_task, post_upload, upload_and_process
from training.ingest import assign_split, formats
from training.models import Example, ExampleUpload, UploadRowError, UploadStatus
from training.services import examples as example_services

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BANKING_SLICE = FIXTURES / "banking77_upload_550.csv"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def banking_task(tenant):
    with BANKING_SLICE.open(newline="", encoding="utf-8") as source:
        labels = sorted({row["category"] for row in csv.DictReader(source)})
    return make_task(tenant, slug="support-tickets", labels=labels)


def support_rows(count: int, start: int = 0) -> list[dict]:
    labels = ["billing", "lost_card", "refund", "card_delivery"]
    return [
        {"input": f"Customer message number {i}: where is my card?", "output": labels[i % 4]}
        for i in range(start, start + count)
    ]


# ---------------------------------------------------------------------------------------------- acceptance


def test_banking77_csv_with_its_own_repeated_questions_then_a_reupload_adds_nothing(tenant, admin_client):
    task = banking_task(tenant)
    content = BANKING_SLICE.read_bytes()
    mapping = '{"input": "text", "output": "category"}'

    first = upload_and_process(admin_client, task, "train.csv", content, column_mapping=mapping)
    assert first.status == UploadStatus.SUCCEEDED, first.message
    assert first.rows_read == 550
    assert (first.accepted, first.rejected, first.duplicates) == (548, 0, 2)
    assert_counts_add_up(first)
    assert Example.objects.filter(task=task).count() == 548
    assert first.last_line > 550  # multi-line quoted values: physical lines exceed records

    again = upload_and_process(admin_client, task, "train.csv", content, column_mapping=mapping)
    assert (again.rows_read, again.accepted, again.duplicates) == (550, 0, 550)
    assert Example.objects.filter(task=task).count() == 548

    dataset = admin_client.get(f"/api/v1/tasks/{task.slug}/dataset").json()
    assert dataset["total"] == 548
    assert sum(row["total"] for row in dataset["labels"]) == 548


def test_upload_answers_202_and_enqueues_after_commit(tenant, admin_client, django_capture_on_commit_callbacks):
    task = make_task(tenant)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_upload(admin_client, task, "a.jsonl", jsonl(support_rows(3)))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["task"] == task.slug and body["size_bytes"] > 0
    assert len(callbacks) == 1  # the ingest task is sent only once the upload row is committed
    upload = ExampleUpload.objects.get(pk=body["id"])
    assert upload.file.read() == jsonl(support_rows(3))  # the original is kept for reprocessing


@pytest.mark.parametrize("name", ["é" * 200 + ".jsonl", "***", "$$$.jsonl", "name with spaces.jsonl"])
def test_any_file_name_is_stored_under_a_safe_name_and_shown_as_sent(tenant, admin_client, name):
    # Found by tests/fuzz: 200 accented letters passed Django's name cleaning and broke the file system's
    # 255-byte limit (a 500); a name of only symbols was refused with Django's HTML 400 page.
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, name, jsonl(support_rows(3)))
    assert upload.original_name == name
    assert (upload.status, upload.accepted) == (UploadStatus.SUCCEEDED, 3)
    stored = Path(upload.file.name).name
    assert stored.isascii() and len(stored) <= 100 and stored.endswith(".jsonl" if "." in name else "upload")


def test_upload_status_shows_counts_progress_and_first_100_errors(tenant, admin_client):
    task = make_task(tenant)
    rows = support_rows(300) + [{"input": f"q{i}", "output": "not-a-label"} for i in range(150)]
    upload = upload_and_process(admin_client, task, "mixed.jsonl", jsonl(rows))
    body = admin_client.get(f"/api/v1/uploads/{upload.pk}").json()
    assert body["status"] == "succeeded"
    assert (body["rows_read"], body["accepted"], body["rejected"], body["duplicates"]) == (450, 300, 150, 0)
    assert body["progress"] == 1.0
    assert len(body["errors"]) == 100
    assert body["errors"][0]["line"] == 301 and "not one of the task's 4 labels" in body["errors"][0]["message"]
    assert UploadRowError.objects.filter(upload=upload).count() == 150


# ---------------------------------------------------------------------------------------------- dedup and split


def test_duplicates_across_uploads_and_api_batches_are_counted_not_stored(tenant, admin_client):
    task = make_task(tenant)
    batch = admin_client.post(f"/api/v1/tasks/{task.slug}/examples", support_rows(100), format="json").json()
    assert batch["accepted"] == 100
    # The file repeats the 100 rows (re-wrapped and re-cased whitespace must not matter) and adds 50.
    rows = [
        {"input": "  " + row["input"].replace(" ", "\n ") + " ", "output": row["output"]} for row in support_rows(100)
    ]
    upload = upload_and_process(admin_client, task, "more.jsonl", jsonl(rows + support_rows(50, start=100)))
    assert (upload.accepted, upload.duplicates) == (50, 100)
    batch = admin_client.post(f"/api/v1/tasks/{task.slug}/examples", support_rows(160), format="json").json()
    assert (batch["accepted"], batch["duplicates"]) == (10, 150)
    assert Example.objects.filter(task=task).count() == 160


def test_duplicates_within_one_file_across_batches(tenant, admin_client, settings):
    settings.INGEST_BATCH_SIZE = 7  # rows repeat across batch boundaries
    task = make_task(tenant)
    rows = support_rows(20) + support_rows(20) + support_rows(5)
    upload = upload_and_process(admin_client, task, "dup.jsonl", jsonl(rows))
    assert (upload.rows_read, upload.accepted, upload.duplicates) == (45, 20, 25)
    assert_counts_add_up(upload)


def test_split_is_decided_by_the_input_whatever_the_order_or_the_file(tenant, admin_client):
    task = make_task(tenant, eval_share=0.3)
    rows = support_rows(200)
    upload_and_process(admin_client, task, "forward.jsonl", jsonl(rows))
    other = make_task(tenant, eval_share=0.3)
    # Reversed order, and each input once with another label: a different pair, the same split.
    relabelled = [
        {"input": row["input"], "output": "refund" if row["output"] != "refund" else "billing"} for row in rows
    ]
    upload_and_process(admin_client, other, "backward.jsonl", jsonl(list(reversed(rows))))
    upload_and_process(admin_client, other, "relabelled.jsonl", jsonl(relabelled))
    first = dict(Example.objects.filter(task=task).values_list("input", "split"))
    for text, split in Example.objects.filter(task=other).values_list("input", "split"):
        assert split == first[text] == assign_split(text, 0.3)
    # Never both splits for one input.
    splits_per_input = {}
    for text, split in Example.objects.filter(task=other).values_list("input", "split"):
        splits_per_input.setdefault(text, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_per_input.values())
    evals = sum(1 for split in first.values() if split == "eval")
    assert 30 <= evals <= 90  # ~30% held out


# ---------------------------------------------------------------------------------------------- error report


def test_error_report_csv_is_complete_and_spreadsheet_safe(tenant, admin_client):
    task = make_task(tenant)
    rows = [
        {"input": '=HYPERLINK("http://evil")', "output": "=cmd|' /C calc'!A0"},
        {"input": "ok", "output": "+SUM(A1)"},
        {"input": "ok", "output": "-2"},
        {"input": "ok", "output": "@x"},
        {"input": "fine", "output": "billing"},
    ]
    upload = upload_and_process(admin_client, task, "evil.jsonl", jsonl(rows) + b'{"input": "\\tx", "output": 1\n')
    response = admin_client.get(f"/api/v1/uploads/{upload.pk}/errors?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    report = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert report[0] == ["line", "field", "message", "excerpt"]
    assert [int(row[0]) for row in report[1:]] == [1, 2, 3, 4, 6]
    for row in report[1:]:
        for cell in row[1:]:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert any(cell.startswith("'=") or cell.startswith("'+") for row in report[1:] for cell in row)

    response = admin_client.get(f"/api/v1/uploads/{upload.pk}/errors?format=jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 5 and '"line":6' in lines[-1]
    assert admin_client.get(f"/api/v1/uploads/{upload.pk}/errors?format=xml").status_code in (400, 404)


def test_error_report_streams_many_rows(tenant, admin_client, settings):
    settings.INGEST_BATCH_SIZE = 500
    task = make_task(tenant)
    rows = support_rows(1200) + [{"input": f"bad {i}", "output": "nope"} for i in range(1300)]
    upload = upload_and_process(admin_client, task, "big.jsonl", jsonl(rows))
    response = admin_client.get(f"/api/v1/uploads/{upload.pk}/errors")
    chunks = list(response.streaming_content)
    assert len(chunks) > 1  # streamed in pieces, not built in memory
    assert b"".join(chunks).decode().count("\n") == 1301


# ---------------------------------------------------------------------------------------------- refusals and limits


def test_early_stop_when_most_of_the_first_1000_rows_are_invalid(tenant, admin_client):
    task = make_task(tenant)
    rows = [{"text": f"message {i}", "category": "billing"} for i in range(3000)]
    upload = upload_and_process(admin_client, task, "wrong.jsonl", jsonl(rows))
    assert upload.status == UploadStatus.STOPPED
    assert upload.rows_read == 1000 and upload.rejected == 1000
    assert_counts_add_up(upload)
    assert "wrong format or column mapping" in upload.message


def test_csv_without_mapping_or_with_a_wrong_mapping_is_refused_with_the_columns(tenant, admin_client):
    task = banking_task(tenant)
    upload = upload_and_process(admin_client, task, "train.csv", BANKING_SLICE.read_bytes())
    assert upload.status == UploadStatus.FAILED
    assert "'text', 'category'" in upload.message and "column mapping" in upload.message
    upload = upload_and_process(
        admin_client,
        task,
        "train.csv",
        BANKING_SLICE.read_bytes(),
        column_mapping='{"input": "question", "output": "category"}',
    )
    assert upload.status == UploadStatus.FAILED and "'question'" in upload.message
    assert upload.rows_read == 0 and not Example.objects.filter(task=task).exists()


def test_bad_options_are_refused_before_the_file_is_stored(tenant, admin_client):
    task = make_task(tenant)
    content = jsonl(support_rows(2))
    response = post_upload(admin_client, task, "a.jsonl", content, column_mapping='{"input": "a", "answer": "b"}')
    assert response.status_code == 400 and "answer" in response.json()["error"]["message"]
    response = post_upload(admin_client, task, "a.jsonl", content, column_mapping="{not json")
    assert response.status_code == 400 and "column_mapping" in response.json()["error"]["message"]
    response = post_upload(admin_client, task, "a.jsonl", content, format="xlsx")
    assert response.status_code == 400 and "format" in response.json()["error"]["message"]
    response = post_upload(admin_client, task, "a.jsonl", b"")
    assert response.status_code == 400
    response = admin_client.post(f"/api/v1/tasks/{task.slug}/uploads", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["details"]
    assert not ExampleUpload.objects.exists()


@pytest.mark.parametrize("column", ["\\ud800", "text\\u0000"])
def test_a_mapping_to_a_column_name_that_cannot_be_stored_is_refused(tenant, admin_client, column):
    # Found by tests/fuzz: a lone surrogate sent as a JSON escape was stored and then broke the response (500).
    task = make_task(tenant)
    mapping = '{"input": "' + column + '", "output": "category"}'
    response = post_upload(admin_client, task, "a.csv", b"text,category\nhi,billing\n", column_mapping=mapping)
    assert response.status_code == 400, response.content
    assert "invalid Unicode" in response.json()["error"]["message"]
    assert not ExampleUpload.objects.exists()


def test_a_rejected_row_holding_nul_characters_is_reported_not_fatal(tenant, admin_client):
    # Found by tests/fuzz on PostgreSQL: the excerpt of a rejected row kept its NUL bytes, which text and jsonb
    # columns refuse, so the whole upload failed with "an internal error (DataError)".
    task = make_task(tenant)
    content = jsonl(support_rows(2)) + b'\x00{"input": "a\x00b"}\n' + b'{"input": "a\\u0000b", "output": "refund"}\n'
    upload = upload_and_process(admin_client, task, "nul.jsonl", content)
    assert upload.status == UploadStatus.SUCCEEDED, upload.message
    assert (upload.rows_read, upload.accepted, upload.rejected) == (4, 2, 2)
    assert_counts_add_up(upload)
    excerpts = list(UploadRowError.objects.filter(upload=upload).order_by("line").values_list("raw_excerpt", flat=True))
    assert "\x00" not in "".join(excerpts) and "\ufffd" in excerpts[0]
    assert all("\x00" not in error["excerpt"] for error in upload.errors_preview)


def test_a_model_name_longer_than_the_column_is_a_counted_row_error(tenant, admin_client):
    # Found by tests/fuzz: names of 101-255 characters passed the reader and were dropped after the pipeline,
    # which left its early-stop bookkeeping without the error: the upload failed with an internal error.
    assert Example._meta.get_field("model").max_length == formats.MAX_MODEL_CHARS
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "m.jsonl", jsonl([{**support_rows(1)[0], "model": "m" * 101}]))
    assert (upload.status, upload.rows_read, upload.rejected) == (UploadStatus.SUCCEEDED, 1, 1), upload.message
    assert upload.errors_preview[0]["field"] == "model" and "at most 100" in upload.errors_preview[0]["message"]
    rows = [{**support_rows(1, start=5)[0], "model": "m" * 100}, {**support_rows(1, start=6)[0], "model": "m" * 101}]
    body = admin_client.post(f"/api/v1/tasks/{task.slug}/examples", {"examples": rows}, format="json").json()
    assert (body["accepted"], body["rejected"]) == (1, 1) and body["errors"][0]["row"] == 1


def test_file_over_the_size_limit_answers_413(tenant, admin_client, settings):
    settings.INGEST_MAX_UPLOAD_BYTES = 1000
    task = make_task(tenant)
    response = post_upload(admin_client, task, "big.jsonl", jsonl(support_rows(100)))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large" and "1,000 bytes" in response.json()["error"]["message"]
    assert not ExampleUpload.objects.exists()


def test_gzip_bomb_is_refused_with_counts_consistent(tenant, admin_client, settings):
    settings.INGEST_MAX_DECOMPRESSED_BYTES = 50 * 1024 * 1024
    task = make_task(tenant)
    line = jsonl(support_rows(1))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = compressor.compress(line * 10) + compressor.compress(b" " * (200 * 1024 * 1024)) + compressor.flush()
    assert len(bomb) < 1024 * 1024
    upload = upload_and_process(admin_client, task, "bomb.jsonl.gz", bomb)
    assert upload.status == UploadStatus.FAILED
    assert "decompression bomb" in upload.message or "decompresses to more than" in upload.message
    assert_counts_add_up(upload)


# ---------------------------------------------------------------------------------------------- resuming


def _crash_after(upload: ExampleUpload, full_content: bytes) -> None:
    """Put the upload in the state a worker leaves when it dies after its last committed batch: status
    processing, an old heartbeat, counts and checkpoint of the committed batches; the full file stored."""
    with upload.file.storage.open(upload.file.name, "wb") as stored:
        stored.write(full_content)
    ExampleUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING,
        finished_at=None,
        message="",
        size_bytes=len(full_content),
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )


def test_a_dead_workers_upload_resumes_after_its_checkpoint_without_double_counting(tenant, admin_client, settings):
    settings.INGEST_BATCH_SIZE = 100
    task = make_task(tenant)
    rows = support_rows(500) + [{"input": f"bad {i}", "output": "nope"} for i in range(30)] + support_rows(100)
    content = jsonl(rows)
    head = b"".join(content.splitlines(keepends=True)[:300])
    upload = upload_and_process(admin_client, task, "log.jsonl", head)
    assert upload.last_line == 300 and upload.accepted == 300
    _crash_after(upload, content)

    assert example_services.upload_process(upload_id=upload.pk).status == UploadStatus.SUCCEEDED
    upload.refresh_from_db()
    assert (upload.rows_read, upload.accepted, upload.rejected, upload.duplicates) == (630, 500, 30, 100)
    assert upload.last_line == 630 and upload.attempts == 2
    assert Example.objects.filter(task=task).count() == 500
    assert UploadRowError.objects.filter(upload=upload).count() == 30


def test_resumed_csv_upload_keeps_its_header(tenant, admin_client, settings):
    settings.INGEST_BATCH_SIZE = 50
    task = banking_task(tenant)
    content = BANKING_SLICE.read_bytes()
    lines = content.splitlines(keepends=True)
    mapping = '{"input": "text", "output": "category"}'
    # The first 101 physical lines end at a record boundary (some quoted values span several lines).
    upload = upload_and_process(admin_client, task, "train.csv", b"".join(lines[:101]), column_mapping=mapping)
    assert (upload.last_line, upload.rejected) == (101, 0) and 0 < upload.rows_read < 100
    _crash_after(upload, content)
    example_services.upload_process(upload_id=upload.pk)
    upload.refresh_from_db()
    assert (upload.rows_read, upload.accepted, upload.duplicates, upload.rejected) == (550, 548, 2, 0)


def test_a_redelivered_message_waits_while_the_lease_is_fresh_and_never_double_processes(tenant, admin_client):
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl(support_rows(10)))
    # Finished: a second delivery is a no-op.
    assert example_services.upload_process(upload_id=upload.pk).status == UploadStatus.SUCCEEDED
    upload.refresh_from_db()
    assert upload.accepted == 10 and upload.rows_read == 10
    # Held by a live run: come back later, touch nothing.
    ExampleUpload.objects.filter(pk=upload.pk).update(status=UploadStatus.PROCESSING, heartbeat_at=timezone.now())
    outcome = example_services.upload_process(upload_id=upload.pk)
    assert outcome.retry_in is not None and 1 <= outcome.retry_in <= 121
    upload.refresh_from_db()
    assert upload.rows_read == 10 and upload.attempts == 1


def test_a_run_that_lost_its_lease_cannot_write(tenant, admin_client):
    task = make_task(tenant)
    response = post_upload(admin_client, task, "a.jsonl", jsonl(support_rows(10)))
    upload_id = response.json()["id"]
    claimed, _ = example_services._upload_claim(upload_id)
    presumed_dead = example_services._UploadRun(claimed)
    ExampleUpload.objects.filter(pk=upload_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    successor, _ = example_services._upload_claim(upload_id)
    assert successor.attempts == presumed_dead.attempt + 1
    with pytest.raises(example_services.UploadLeaseLost):
        presumed_dead.finish(UploadStatus.SUCCEEDED, "too late")


def test_an_upload_that_keeps_killing_workers_is_marked_failed_with_its_counts(tenant, admin_client, settings):
    settings.INGEST_MAX_ATTEMPTS = 2
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl(support_rows(10)))
    ExampleUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING, attempts=2, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert example_services.upload_process(upload_id=upload.pk).status == UploadStatus.FAILED
    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED and "2 times" in upload.message and "after line 10" in upload.message
    assert_counts_add_up(upload)


def test_resume_and_reprocess_endpoints(tenant, admin_client):
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl(support_rows(10)))
    response = admin_client.post(f"/api/v1/uploads/{upload.pk}/resume")
    assert response.status_code == 400 and "reprocess" in response.json()["error"]["message"]

    ExampleUpload.objects.filter(pk=upload.pk).update(status=UploadStatus.FAILED, attempts=3)
    response = admin_client.post(f"/api/v1/uploads/{upload.pk}/resume")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert example_services.upload_process(upload_id=upload.pk).status == UploadStatus.SUCCEEDED
    upload.refresh_from_db()
    assert (upload.rows_read, upload.accepted) == (10, 10)  # nothing after the checkpoint: nothing added

    response = admin_client.post(f"/api/v1/uploads/{upload.pk}/reprocess", {}, format="json")
    assert response.status_code == 202
    again = ExampleUpload.objects.get(pk=response.json()["id"])
    assert again.pk != upload.pk and again.file.name == upload.file.name
    example_services.upload_process(upload_id=again.pk)
    again.refresh_from_db()
    assert (again.rows_read, again.accepted, again.duplicates) == (10, 0, 10)


def test_reprocess_with_another_mapping_reads_the_kept_file_again(tenant, admin_client):
    task = banking_task(tenant)
    upload = upload_and_process(admin_client, task, "train.csv", BANKING_SLICE.read_bytes())
    assert upload.status == UploadStatus.FAILED  # no mapping given the first time
    response = admin_client.post(
        f"/api/v1/uploads/{upload.pk}/reprocess",
        {"column_mapping": {"input": "text", "output": "category"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    example_services.upload_process(upload_id=response.json()["id"])
    again = ExampleUpload.objects.get(pk=response.json()["id"])
    assert (again.status, again.accepted, again.duplicates) == (UploadStatus.SUCCEEDED, 548, 2)


def test_stalled_uploads_are_marked_failed_by_the_sweep(tenant, admin_client):
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl(support_rows(5)))
    ExampleUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING, heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    assert admin_client.get(f"/api/v1/uploads/{upload.pk}").json()["stalled"] is True
    assert example_services.uploads_fail_stalled() == 1
    upload.refresh_from_db()
    assert upload.status == UploadStatus.FAILED and "Resume" in upload.message
    assert example_services.uploads_fail_stalled() == 0


def test_uploads_list_and_scopes(tenant, admin_client):
    task = make_task(tenant)
    upload = upload_and_process(admin_client, task, "a.jsonl", jsonl(support_rows(3)))
    body = admin_client.get(f"/api/v1/tasks/{task.slug}/uploads").json()
    assert [row["id"] for row in body["results"]] == [upload.pk]
    assert admin_client.get(f"/api/v1/uploads?task={task.slug}").json()["results"][0]["id"] == upload.pk
    reader = client_for_key(make_api_key(tenant, scopes=["examples:read"])[1])
    assert reader.get(f"/api/v1/uploads/{upload.pk}").status_code == 200
    response = post_upload(reader, task, "b.jsonl", jsonl(support_rows(3)))
    assert response.status_code == 403 and "examples:write" in response.json()["error"]["message"]
    assert reader.post(f"/api/v1/uploads/{upload.pk}/resume").status_code == 403
    assert ExampleUpload.objects.count() == 1


def test_gzip_csv_upload(tenant, admin_client):
    task = banking_task(tenant)
    upload = upload_and_process(
        admin_client,
        task,
        "train.csv.gz",
        gzip.compress(BANKING_SLICE.read_bytes()),
        column_mapping='{"input": "text", "output": "category"}',
    )
    assert (upload.status, upload.accepted, upload.duplicates) == (UploadStatus.SUCCEEDED, 548, 2)


# ---------------------------------------------------------------------------------------------- invariant

ROW = st.one_of(
    st.tuples(st.integers(0, 30), st.sampled_from(["billing", "Refund ", "lost_card"])).map(
        lambda pair: {"input": f"question {pair[0]}", "output": pair[1]}
    ),  # valid, often repeated
    st.just({"input": "", "output": "billing"}),  # empty input
    st.just({"input": "x", "output": "unknown label"}),
    st.just("not an object"),
)


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(ROW, min_size=1, max_size=60), second=st.lists(ROW, min_size=1, max_size=60), batch=st.integers(1, 9)
)
def test_counts_always_add_up_and_match_what_is_stored(tenant, admin_client, settings, first, second, batch):
    settings.INGEST_BATCH_SIZE = batch
    task = make_task(tenant)
    stored_before = 0
    for rows in (first, second):
        body = b"".join((row if isinstance(row, str) else json.dumps(row)).encode() + b"\n" for row in rows)
        upload = upload_and_process(admin_client, task, "rows.jsonl", body)
        assert_counts_add_up(upload)
        assert upload.rows_read == len(rows)
        stored_now = Example.objects.filter(task=task).count()
        assert upload.accepted == stored_now - stored_before
        stored_before = stored_now
    distinct_valid = {
        (row["input"], row["output"].strip().casefold())
        for row in first + second
        if isinstance(row, dict) and row["input"] and row["output"] != "unknown label"
    }
    assert Example.objects.filter(task=task).count() == len(distinct_valid)
