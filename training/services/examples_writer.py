"""Bulk writes of accepted examples: COPY on PostgreSQL, batched `bulk_create` elsewhere.

Both paths return how many rows were really inserted, and must run inside the caller's transaction
(the batch's rows, error rows and the upload's counters commit together).

PostgreSQL: the batch is COPYed into a session temp table and moved with
`INSERT ... SELECT ... ON CONFLICT (task_id, content_hash) DO NOTHING`. The unique index decides, so
two writers racing on the same rows (two uploads, an upload and an API batch) can never insert a row
twice, and the row count of the INSERT is exactly what this batch added; the rest are duplicates.

Other databases (SQLite in development): the hashes already stored are looked up inside the same
transaction and only the new rows are created. SQLite runs write transactions one at a time
(`transaction_mode=IMMEDIATE` in settings), so nothing can slip in between the lookup and the insert;
`ignore_conflicts` stays on as a second guard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import connection

from training.ingest import ValidRow
from training.models import Example, UploadRowError

_TEMP_TABLE = "ingest_example_batch"
_COPY_COLUMNS = (
    "input", "output", "content_hash", "split", "input_tokens", "output_tokens", "model", "logged_at", "metadata",
)  # fmt: skip


@dataclass(frozen=True)
class BatchTarget:
    """Where a batch goes: the tenant and task, the upload (None for API batches) and the source."""

    tenant_id: int
    task_id: int
    source: str
    upload_id: int | None = None


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def existing_hashes(*, task_id: int, hashes: list[str]) -> set[str]:
    """Those of `hashes` the task already stores."""
    if not hashes:
        return set()
    if is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(  # the table name is the model's; values are parameters
                f"SELECT content_hash FROM {Example._meta.db_table} WHERE task_id = %s AND content_hash = ANY(%s)",  # noqa: S608
                [task_id, list(hashes)],
            )
            return {row[0] for row in cursor.fetchall()}
    return set(Example.objects.filter(task_id=task_id, content_hash__in=hashes).values_list("content_hash", flat=True))


def examples_insert(*, target: BatchTarget, rows: list[ValidRow], now: datetime) -> int:
    """Insert `rows` (unique hashes within the batch); return how many were new for the task."""
    if not rows:
        return 0
    if is_postgresql():
        return _copy_insert(target, rows, now)
    return _bulk_insert(target, rows, now)


def _metadata_text(metadata: dict | None) -> str:
    return orjson.dumps(metadata).decode() if metadata else "{}"


def _copy_insert(target: BatchTarget, rows: list[ValidRow], now: datetime) -> int:
    quote = connection.ops.quote_name
    table = quote(Example._meta.db_table)
    with connection.cursor() as cursor:
        # ON COMMIT DELETE ROWS empties the table at each commit; the DELETE below covers callers that
        # run several batches inside one outer transaction (tests, the API batch inside a request).
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP_TABLE} ("
            "input text NOT NULL, output text NOT NULL, content_hash varchar(64) NOT NULL, split varchar(5) NOT NULL,"
            " input_tokens integer, output_tokens integer, model varchar(100) NOT NULL, logged_at timestamptz,"
            " metadata jsonb NOT NULL) ON COMMIT DELETE ROWS"
        )
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        metadata_text = _metadata_text
        with raw.copy(f"COPY {_TEMP_TABLE} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(
                    (
                        row.input,
                        row.output,
                        row.content_hash,
                        row.split,
                        row.usage_input_tokens,
                        row.usage_output_tokens,
                        row.model or "",
                        row.timestamp,
                        metadata_text(row.metadata),
                    )
                )
        # Identifiers are the model's table and this module's constants; every value is a parameter.
        # ORDER BY content_hash: writers racing on overlapping rows wait for each other's uncommitted index
        # entries; taking them in one global order means they queue instead of deadlocking.
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, task_id, upload_id, source, created_at, {', '.join(_COPY_COLUMNS)}) "  # noqa: S608
            f"SELECT %s, %s, %s, %s, %s, {', '.join(_COPY_COLUMNS)} FROM {_TEMP_TABLE} ORDER BY content_hash "
            "ON CONFLICT (task_id, content_hash) DO NOTHING",
            [target.tenant_id, target.task_id, target.upload_id, target.source, now],
        )
        inserted = cursor.rowcount
        cursor.execute(f"DELETE FROM {_TEMP_TABLE}")  # noqa: S608
    return inserted


def _bulk_insert(target: BatchTarget, rows: list[ValidRow], now: datetime) -> int:
    stored = existing_hashes(task_id=target.task_id, hashes=[row.content_hash for row in rows])
    new = [
        Example(
            tenant_id=target.tenant_id,
            task_id=target.task_id,
            upload_id=target.upload_id,
            source=target.source,
            split=row.split,
            input=row.input,
            output=row.output,
            content_hash=row.content_hash,
            input_tokens=row.usage_input_tokens,
            output_tokens=row.usage_output_tokens,
            model=row.model or "",
            logged_at=row.timestamp,
            metadata=row.metadata or {},
            created_at=now,
        )
        for row in rows
        if row.content_hash not in stored
    ]
    Example.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    return len(new)


def storable_text(text: str) -> str:
    """`text` with each NUL shown as U+FFFD: PostgreSQL refuses NUL in text and jsonb, and an error's excerpt
    quotes the rejected row as it was, NUL characters included."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def row_errors_insert(*, tenant_id: int, upload_id: int, errors: Iterable) -> None:
    """Store rejected rows (`training.ingest.RowError`) for an upload's full error report."""
    UploadRowError.objects.bulk_create(
        [
            UploadRowError(
                tenant_id=tenant_id,
                upload_id=upload_id,
                line=error.line,
                field=storable_text((error.field or "")[:100]),
                message=storable_text(error.message),
                raw_excerpt=storable_text(error.raw_excerpt),
            )
            for error in errors
        ],
        batch_size=1000,
    )
