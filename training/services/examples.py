"""Writes of examples: JSON batches from logging hooks, file uploads and their processing, deletion.

The parsing, validation, deduplication and split are `training.ingest` (no Django); this module gives
it a task's rules and a writer. Every batch commits its new examples, its rejected rows, the upload's
counters and checkpoint (`last_line`) in ONE transaction, so after any crash
accepted + rejected + duplicates == rows_read still holds and a resumed run continues after the
checkpoint without counting a row twice.

Who may process an upload is decided by a lease in the upload row: `status` is processing, `attempts`
is the claim number (the fencing token) and `heartbeat_at` is renewed by every batch. A batch commits
only while its run still holds the claim, so a worker that was presumed dead and comes back cannot
write over its successor.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane import metrics
from controlplane.logging_context import set_log_tenant
from tenants.services import audit_record
from training.ingest import IngestCounter, IngestLimits, RowError, TaskRules, UploadRefused, ValidRow, ingest_stream
from training.ingest.formats import MAPPABLE_FIELDS
from training.models import Example, ExampleSource, ExampleUpload, Task, UploadStatus
from training.services.examples_writer import (
    BatchTarget,
    examples_insert,
    row_errors_insert,
    storable_text,
)

logger = logging.getLogger(__name__)

# Settings read with these defaults (documented in the README); each can be set in the environment.
INGEST_DEFAULTS: dict[str, Any] = {
    "INGEST_MAX_UPLOAD_BYTES": 2 * 1024**3,  # one uploaded file, as sent (compressed size for .gz)
    "INGEST_MAX_DECOMPRESSED_BYTES": 4 * 1024**3,  # gzip bomb guard: bytes after decompression...
    "INGEST_MAX_COMPRESSION_RATIO": 200.0,  # ...and expansion ratio (logs reach 20-50x, bombs ~1000x)
    "INGEST_MAX_LINE_BYTES": 1024 * 1024,  # a longer line is one rejected row, never held in memory
    "INGEST_MAX_INPUT_CHARS": 50_000,
    "INGEST_MAX_OUTPUT_CHARS": 20_000,
    "INGEST_BATCH_SIZE": 2000,  # rows per transaction: amortises COPY, bounds what a crash re-reads
    "INGEST_API_MAX_ROWS": 5000,  # rows per POST /tasks/{slug}/examples
    "INGEST_HEARTBEAT_STALE_SECONDS": 120,  # no batch committed for this long: the worker is presumed dead
    "INGEST_MAX_ATTEMPTS": 3,  # claims of one upload before it is marked failed (a file that kills workers)
    "INGEST_STALLED_FAIL_SECONDS": 3600,  # the sweep marks an upload failed after this long without a batch
    "INGEST_SOFT_TIME_LIMIT": 4 * 3600,  # one run of the ingest task (~20 million rows at the measured rate)
    "INGEST_HARD_TIME_LIMIT": 4 * 3600 + 300,
}
ERRORS_PREVIEW_SIZE = 100
TERMINAL_UPLOAD_STATES = (UploadStatus.SUCCEEDED, UploadStatus.STOPPED, UploadStatus.FAILED)
UPLOAD_FORMATS = ("auto", "jsonl", "csv")


def ingest_setting(name: str) -> Any:
    return getattr(settings, name, INGEST_DEFAULTS[name])


def ingest_limits() -> IngestLimits:
    return IngestLimits(
        max_line_bytes=int(ingest_setting("INGEST_MAX_LINE_BYTES")),
        max_decompressed_bytes=int(ingest_setting("INGEST_MAX_DECOMPRESSED_BYTES")),
        max_compression_ratio=float(ingest_setting("INGEST_MAX_COMPRESSION_RATIO")),
    )


def task_rules(task: Task) -> TaskRules:
    """The ingest's view of a task: what its examples must look like."""
    return TaskRules(
        kind=task.kind,
        labels=tuple(task.labels or ()),
        output_schema=task.output_schema if task.kind == "extraction" else None,
        max_input_chars=int(ingest_setting("INGEST_MAX_INPUT_CHARS")),
        max_output_chars=int(ingest_setting("INGEST_MAX_OUTPUT_CHARS")),
        eval_share=task.eval_share,
    )


def _writer_finds_duplicates(hashes: list[str]) -> set[str]:
    """The pipeline's lookup of stored hashes, left to the writer.

    `examples_insert` learns inside the batch's transaction which rows are new (the unique index on
    PostgreSQL, a lookup under SQLite's write lock), and `_record_inserted` counts the rest as
    duplicates. A separate lookup before the write would only repeat that work: on a task with a
    million rows it cost more than the insert itself (2,000 random index probes per batch).
    """
    return set()


def _record_inserted(counter: IngestCounter, inserted: int) -> None:
    """Rows the unique index turned away (a concurrent writer stored them first) are duplicates.

    The pipeline adds the batch counter to its totals after write_batch returns, so the correction
    reaches the run's summary too.
    """
    counter.duplicates += counter.accepted - inserted
    counter.accepted = inserted


# ---------------------------------------------------------------------------------------------- batches


@dataclass
class BatchResult:
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    errors: list[dict] = field(default_factory=list)


@transaction.atomic
def examples_ingest_batch(*, task: Task, rows: Any, actor: str, source: str = ExampleSource.API) -> BatchResult:
    """Validate and store a JSON batch (the JSONL row shapes); all of it commits or none.

    Errors carry `row`, the 0-based index in `rows`.
    """
    max_rows = int(ingest_setting("INGEST_API_MAX_ROWS"))
    if not isinstance(rows, list):
        raise ValidationError({"examples": 'Send a JSON array of rows, or {"examples": [...]}.'})
    if not rows:
        raise ValidationError({"examples": f"The batch is empty; send between 1 and {max_rows:,} rows."})
    if len(rows) > max_rows:
        raise ValidationError(
            {"examples": f"The batch has {len(rows):,} rows; send at most {max_rows:,} per request (or upload a file)."}
        )
    # Each row becomes one JSON Lines line, so a batch takes exactly the path of an uploaded file. ASCII
    # escapes keep characters such as U+FEFF inside a value from looking like a stray byte order mark.
    stream = io.BytesIO(
        "".join(json.dumps(row, ensure_ascii=True, separators=(",", ":")) + "\n" for row in rows).encode()
    )
    target = BatchTarget(tenant_id=task.tenant_id, task_id=task.pk, source=source)
    now = timezone.now()
    errors: list[RowError] = []

    def write_batch(accepted: list[ValidRow], rejected: list[RowError], last_line: int, counter: IngestCounter):
        _record_inserted(counter, examples_insert(target=target, rows=accepted, now=now))
        errors.extend(rejected)

    summary = ingest_stream(
        stream,
        rules=task_rules(task),
        file_format="jsonl",
        limits=ingest_limits(),
        known_hashes=_writer_finds_duplicates,
        write_batch=write_batch,
        batch_size=len(rows),
        early_stop_rows=0,
    )
    return BatchResult(
        rows=summary.rows_read,
        accepted=summary.accepted,
        rejected=summary.rejected,
        duplicates=summary.duplicates,
        errors=[
            {"row": error.line - 1, "field": error.field, "code": error.code, "message": error.message}
            for error in errors
        ],
    )


@transaction.atomic
def example_delete(*, example: Example, actor: str) -> None:
    """Delete one example. The upload's counts stay as they were at ingest; re-sending it adds it again."""
    example.delete()


# ---------------------------------------------------------------------------------------------- uploads


class UploadTooLarge(Exception):
    """The file is over INGEST_MAX_UPLOAD_BYTES (the API answers 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"The file is {size:,} bytes; the limit for one upload is {limit:,} bytes. Split it.")
        self.size, self.limit = size, limit


def upload_size_check(size: int) -> None:
    limit = int(ingest_setting("INGEST_MAX_UPLOAD_BYTES"))
    if size > limit:
        raise UploadTooLarge(size, limit)


def clean_upload_options(file_format: str | None, column_mapping: Any) -> tuple[str, dict[str, str]]:
    """Check the format and column mapping before a file is stored; return them normalised."""
    file_format = (file_format or "auto").strip().lower()
    if file_format not in UPLOAD_FORMATS:
        raise ValidationError({"format": f"Unknown format {file_format!r}; use one of {', '.join(UPLOAD_FORMATS)}."})
    if column_mapping in (None, "", {}):
        return file_format, {}
    if isinstance(column_mapping, str):
        try:
            column_mapping = json.loads(column_mapping)
        except ValueError as error:
            raise ValidationError({"column_mapping": f"Not valid JSON: {error}."}) from None
    if not isinstance(column_mapping, dict):
        raise ValidationError({"column_mapping": 'Give an object such as {"input": "text", "output": "category"}.'})
    mapping = {}
    for key, value in column_mapping.items():
        if key not in MAPPABLE_FIELDS:
            raise ValidationError(
                {"column_mapping": f"Unknown field {key!r}; the fields you can map are {', '.join(MAPPABLE_FIELDS)}."}
            )
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 200:
            raise ValidationError({"column_mapping": f"The column for {key!r} must be a column name."})
        if not _storable_text(value):
            # A JSON escape can carry a lone surrogate or NUL; neither is in any file's header, and neither can
            # be stored (PostgreSQL refuses both in jsonb) or sent back in a response.
            raise ValidationError(
                {"column_mapping": f"The column for {key!r} contains a NUL character or invalid Unicode."}
            )
        mapping[key] = value.strip()
    for required in ("input", "output"):
        if mapping and required not in mapping:
            raise ValidationError({"column_mapping": f"Name the column that holds the {required}."})
    return file_format, mapping


# The client's file name is kept as `original_name` (shown, and used to detect the format); the stored file
# gets a name every storage accepts. Django's own cleaning keeps any Unicode letter, so a name of 200 accented
# letters passed it and failed the file system's 255-byte limit, and a name of only symbols was refused.
_UNSAFE_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_STORED_NAME_CHARS = 100


def _storage_name(original_name: str) -> str:
    """The name to store an upload under: ASCII letters, digits and `._-`, at most 100 characters, keeping
    the end of the original name (its extensions)."""
    name = _UNSAFE_FILE_NAME_CHARACTERS.sub("_", original_name)[-_STORED_NAME_CHARS:].strip("_")
    if not name.strip("."):
        return "upload"
    return f"upload{name}" if name.startswith(".") else name


def _storable_text(text: str) -> bool:
    """Text every database and the JSON renderer accept: valid Unicode (no lone surrogate), no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _enqueue(upload_id: int) -> None:
    from training.tasks.ingest import ingest_upload  # tasks import services; import late to avoid a cycle

    transaction.on_commit(lambda: ingest_upload.delay(upload_id))


@transaction.atomic
def example_upload_create(
    *,
    task: Task,
    file: UploadedFile,
    actor: str,
    file_format: str | None = "auto",
    column_mapping: Any = None,
    created_by=None,
    enqueue: bool = True,
) -> ExampleUpload:
    """Store an uploaded file (streamed by the storage backend) and queue it for processing.

    `enqueue=False` leaves it pending for a caller that processes it itself (the demo seeder, the benchmark).
    """
    file_format, mapping = clean_upload_options(file_format, column_mapping)
    upload_size_check(file.size or 0)
    if not file.size:
        raise ValidationError({"file": "The file is empty."})
    original_name = os.path.basename(file.name or "upload")[:255] or "upload"
    upload = ExampleUpload(
        tenant_id=task.tenant_id,
        task=task,
        original_name=original_name,
        size_bytes=file.size,
        file_format=file_format,
        column_mapping=mapping,
        created_by=created_by,
    )
    upload.file.save(_storage_name(original_name), file, save=False)
    upload.save()
    audit_record(
        tenant=task.tenant_id,
        actor=actor,
        action="upload.created",
        target=task.slug,
        data={"upload": upload.pk, "file": original_name, "bytes": file.size},
    )
    if enqueue:
        _enqueue(upload.pk)
    return upload


def upload_is_stalled(upload: ExampleUpload, now=None) -> bool:
    """Processing, but no batch committed for longer than the heartbeat's stale time."""
    if upload.status != UploadStatus.PROCESSING:
        return False
    now = now or timezone.now()
    stale = timedelta(seconds=int(ingest_setting("INGEST_HEARTBEAT_STALE_SECONDS")))
    return upload.heartbeat_at is None or now - upload.heartbeat_at > stale


@transaction.atomic
def upload_resume(*, upload: ExampleUpload, actor: str) -> ExampleUpload:
    """Queue a failed or stalled upload again; it continues after its checkpoint with its counts."""
    upload = ExampleUpload.objects.select_for_update().get(pk=upload.pk)
    if upload.status in (UploadStatus.SUCCEEDED, UploadStatus.STOPPED):
        raise ValidationError(
            {"status": f"The upload is {upload.status}; to read the file again with other settings, reprocess it."}
        )
    if upload.status == UploadStatus.PROCESSING and not upload_is_stalled(upload):
        raise ValidationError({"status": "The upload is being processed now; wait for it to finish."})
    upload.status = UploadStatus.PENDING
    upload.attempts = 0
    upload.heartbeat_at = None
    upload.finished_at = None
    upload.message = f"Queued to resume after line {upload.last_line:,}." if upload.last_line else ""
    upload.save(update_fields=["status", "attempts", "heartbeat_at", "finished_at", "message"])
    audit_record(tenant=upload.tenant_id, actor=actor, action="upload.resumed", target=str(upload.pk))
    _enqueue(upload.pk)
    return upload


@transaction.atomic
def upload_reprocess(
    *, upload: ExampleUpload, actor: str, file_format: str | None = None, column_mapping: Any = None, created_by=None
) -> ExampleUpload:
    """Read the kept original file again as a new upload (optionally with another format or mapping).

    Rows the task already holds count as duplicates of the new upload, so its own counts add up.
    """
    if file_format is None and column_mapping is None:
        file_format, mapping = upload.file_format, upload.column_mapping
    else:
        file_format, mapping = clean_upload_options(
            file_format if file_format is not None else upload.file_format,
            column_mapping if column_mapping is not None else upload.column_mapping,
        )
    if not upload.file or not upload.file.storage.exists(upload.file.name):
        raise ValidationError({"file": "The original file of this upload is no longer stored; upload it again."})
    again = ExampleUpload.objects.create(
        tenant_id=upload.tenant_id,
        task_id=upload.task_id,
        file=upload.file.name,  # the same stored file: nothing is copied
        original_name=upload.original_name,
        size_bytes=upload.size_bytes,
        file_format=file_format,
        column_mapping=mapping,
        created_by=created_by,
    )
    audit_record(
        tenant=upload.tenant_id, actor=actor, action="upload.reprocessed", target=str(upload.pk), data={"new": again.pk}
    )
    _enqueue(again.pk)
    return again


# ---------------------------------------------------------------------------------------------- processing


class UploadLeaseLost(Exception):
    """Another run claimed the upload (this one was presumed dead); stop without writing."""


@dataclass(frozen=True)
class ProcessOutcome:
    """What a worker should do next: nothing (`retry_in` None) or try again in `retry_in` seconds."""

    status: str | None
    retry_in: int | None = None


@transaction.atomic
def _upload_claim(upload_id: int) -> tuple[ExampleUpload | None, ProcessOutcome | None]:
    upload = ExampleUpload.objects.select_for_update().filter(pk=upload_id).first()
    if upload is None:
        return None, ProcessOutcome(status=None)  # deleted with its task: nothing to do
    if upload.status in TERMINAL_UPLOAD_STATES:
        return None, ProcessOutcome(status=upload.status)  # a redelivered message for a finished upload
    now = timezone.now()
    stale_seconds = int(ingest_setting("INGEST_HEARTBEAT_STALE_SECONDS"))
    if upload.status == UploadStatus.PROCESSING and not upload_is_stalled(upload, now):
        # Another run holds the lease (or held it until a moment ago: its worker may just have died and
        # the message come back). Come back when the lease would be stale.
        age = (now - upload.heartbeat_at).total_seconds()
        return None, ProcessOutcome(status=upload.status, retry_in=max(1, int(stale_seconds - age) + 1))
    if upload.status == UploadStatus.PROCESSING and upload.attempts >= int(ingest_setting("INGEST_MAX_ATTEMPTS")):
        _mark_failed(
            upload,
            f"Processing stopped {upload.attempts} times without finishing (the worker died or was killed), "
            f"last after line {upload.last_line:,}. The counts are exact up to there; resume to continue.",
        )
        return None, ProcessOutcome(status=UploadStatus.FAILED)
    resumed = upload.status == UploadStatus.PROCESSING or upload.last_line > 0
    upload.status = UploadStatus.PROCESSING
    upload.attempts += 1
    upload.started_at = upload.started_at or now
    upload.heartbeat_at = now
    upload.message = f"Resumed after line {upload.last_line:,}." if resumed and upload.last_line else ""
    upload.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "message"])
    return upload, None


def _mark_failed(upload: ExampleUpload, message: str) -> None:
    ExampleUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.FAILED, message=message, finished_at=timezone.now(), heartbeat_at=None
    )


class _UploadRun:
    """One claimed run of an upload: writes each batch under the lease, with its counts and checkpoint."""

    def __init__(self, upload: ExampleUpload) -> None:
        self.upload_id = upload.pk
        self.attempt = upload.attempts
        self.target = BatchTarget(
            tenant_id=upload.tenant_id, task_id=upload.task_id, source=ExampleSource.UPLOAD, upload_id=upload.pk
        )
        self.preview: list[dict] = list(upload.errors_preview or [])

    def _locked(self) -> ExampleUpload:
        upload = (
            ExampleUpload.objects.select_for_update()
            .only("id", "status", "attempts", "last_line")
            .get(pk=self.upload_id)
        )
        if upload.status != UploadStatus.PROCESSING or upload.attempts != self.attempt:
            raise UploadLeaseLost(f"upload {self.upload_id} was claimed by run {upload.attempts}")
        return upload

    def write_batch(self, rows: list[ValidRow], errors: list[RowError], last_line: int, counter: IngestCounter):
        now = timezone.now()
        with transaction.atomic():
            self._locked()
            _record_inserted(counter, examples_insert(target=self.target, rows=rows, now=now))
            row_errors_insert(tenant_id=self.target.tenant_id, upload_id=self.upload_id, errors=errors)
            changes: dict[str, Any] = {
                "rows_read": F("rows_read") + counter.rows_read,
                "accepted": F("accepted") + counter.accepted,
                "rejected": F("rejected") + counter.rejected,
                "duplicates": F("duplicates") + counter.duplicates,
                "last_line": last_line,
                "bytes_processed": counter.bytes_read,
                "heartbeat_at": now,
            }
            room = ERRORS_PREVIEW_SIZE - len(self.preview)
            if room > 0 and errors:
                self.preview.extend(_error_dict(error) for error in errors[:room])
                changes["errors_preview"] = self.preview
            ExampleUpload.objects.filter(pk=self.upload_id).update(**changes)

    def finish(self, status: str, message: str) -> None:
        now = timezone.now()
        with transaction.atomic():
            self._locked()
            ExampleUpload.objects.filter(pk=self.upload_id).update(
                status=status, message=message, finished_at=now, heartbeat_at=now
            )
            final = ExampleUpload.objects.filter(pk=self.upload_id).values(
                "started_at", "accepted", "rejected", "duplicates"
            )[0]
        metrics.UPLOADS.labels(status=status).inc()
        if final["started_at"]:
            metrics.UPLOAD_DURATION.labels(status=status).observe((now - final["started_at"]).total_seconds())
        for outcome in ("accepted", "rejected", "duplicates"):
            metrics.UPLOAD_ROWS.labels(outcome=outcome).inc(final[outcome])


def _error_dict(error: RowError) -> dict:
    return {
        "line": error.line,
        "field": storable_text(error.field or ""),
        "code": error.code,
        "message": storable_text(error.message),
        "excerpt": storable_text(error.raw_excerpt),
    }


def _totals_message(upload_id: int) -> str:
    upload = ExampleUpload.objects.only("rows_read", "accepted", "rejected", "duplicates").get(pk=upload_id)
    if not upload.rows_read:
        return "The file has no rows: it is empty or holds only a header or blank lines."
    return (
        f"{upload.rows_read:,} rows read: {upload.accepted:,} accepted, {upload.rejected:,} rejected, "
        f"{upload.duplicates:,} duplicates."
    )


def upload_process(*, upload_id: int) -> ProcessOutcome:
    """Process (or resume) an upload: the Celery task's whole job. Idempotent for redelivered messages."""
    upload, outcome = _upload_claim(upload_id)
    if upload is None:
        return outcome
    run = _UploadRun(upload)
    task = upload.task
    set_log_tenant(upload.tenant_id)
    logger.info("upload %s: processing from line %s", upload_id, upload.last_line + 1)
    try:
        rules = task_rules(task)
        with upload.file.open("rb") as stream:
            summary = ingest_stream(
                stream,
                rules=rules,
                file_format=upload.file_format if upload.file_format in UPLOAD_FORMATS else "auto",
                column_mapping=upload.column_mapping or None,
                limits=ingest_limits(),
                known_hashes=_writer_finds_duplicates,
                write_batch=run.write_batch,
                batch_size=int(ingest_setting("INGEST_BATCH_SIZE")),
                start_line=upload.last_line + 1,
                filename=upload.original_name,
            )
    except UploadLeaseLost:
        logger.warning("upload %s: another run took over; this one stops", upload_id)
        return ProcessOutcome(status=None)
    except UploadRefused as refused:
        run.finish(UploadStatus.FAILED, f"The file was refused: {refused.message}.")
        return ProcessOutcome(status=UploadStatus.FAILED)
    except (FileNotFoundError, ValueError) as error:
        # ValueError: a task definition the ingest cannot use (changed in the admin), or a bad stored option.
        run.finish(UploadStatus.FAILED, f"The upload could not be processed: {error}.")
        return ProcessOutcome(status=UploadStatus.FAILED)
    except Exception as error:
        last_line = ExampleUpload.objects.only("last_line").get(pk=upload_id).last_line
        if isinstance(error, SoftTimeLimitExceeded):
            reason = f"the run reached its time limit ({ingest_setting('INGEST_SOFT_TIME_LIMIT')} s)"
        else:
            logger.exception("upload %s failed", upload_id)
            reason = f"an internal error ({type(error).__name__})"
        with contextlib.suppress(UploadLeaseLost):
            run.finish(
                UploadStatus.FAILED,
                f"Processing stopped after line {last_line:,}: {reason}. The counts are exact up to there; "
                "resume to continue.",
            )
        return ProcessOutcome(status=UploadStatus.FAILED)
    if summary.stopped_early:
        run.finish(UploadStatus.STOPPED, f"Stopped early: {summary.message}.")
        return ProcessOutcome(status=UploadStatus.STOPPED)
    message = _totals_message(upload_id)
    status = UploadStatus.SUCCEEDED
    if not ExampleUpload.objects.filter(pk=upload_id, rows_read__gt=0).exists():
        status = UploadStatus.FAILED
    elif summary.message.startswith("wrong format"):
        message = f"{message} Most rows were rejected: {summary.message}."
    run.finish(status, message)
    return ProcessOutcome(status=status)


@transaction.atomic
def uploads_fail_stalled(*, older_than_seconds: int | None = None) -> int:
    """Mark uploads whose worker stopped sending heartbeats as failed (counts stay exact); return how many."""
    seconds = older_than_seconds if older_than_seconds is not None else ingest_setting("INGEST_STALLED_FAIL_SECONDS")
    cutoff = timezone.now() - timedelta(seconds=int(seconds))
    stalled = ExampleUpload.objects.select_for_update().filter(status=UploadStatus.PROCESSING, heartbeat_at__lt=cutoff)
    count = 0
    for upload in stalled:
        _mark_failed(
            upload,
            f"The worker stopped responding after line {upload.last_line:,}; the counts are exact up to there. "
            "Resume to continue.",
        )
        count += 1
    return count
