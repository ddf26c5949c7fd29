"""The ingest loop: read, validate, deduplicate and hand batches to the caller's writer.

The caller (a Celery task or an API view) owns the database. For each batch it receives the accepted
rows, the rejected rows, the last line consumed and the batch's counts, and writes all of them with
the upload's checkpoint in ONE transaction. So a crash loses at most the batch in flight, the counts
always satisfy accepted + rejected + duplicates == rows_read, and a retry resumes with
``start_line = checkpoint + 1``.

Deduplication is within each batch in memory and against `known_hashes`, the caller's lookup of the
hashes the task already holds. Duplicates across batches of the same stream are found the same way,
so `known_hashes` must see the rows of earlier `write_batch` calls (it does when both use the same
database). Keeping every hash of a stream in memory instead would cost ~150 MB per million rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO

from training.ingest.formats import FileFormat, iter_records
from training.ingest.records import IngestLimits, RowError, ValidRow
from training.ingest.validation import TaskRules, validate_record

# Rows per write: large enough that COPY and the per-batch transaction are amortised (~1-2 MB of
# text), small enough that a crash re-reads little and memory stays flat.
DEFAULT_BATCH_SIZE = 2000
# Rows inspected before deciding that a file is the wrong format or mapping (more than half rejected).
DEFAULT_EARLY_STOP_ROWS = 1000

# A short description and advice per error kind, for the early-stop message.
_ERROR_ADVICE: dict[str, tuple[str, str]] = {
    "missing_field": ("missing field {field}", "check the column mapping or the file's shape"),
    "unknown_shape": ("unrecognised row shape", "check the file's shape (input/output, prompt/completion, messages)"),
    "invalid_json": ("not valid JSON", "check that the file is JSON Lines (one JSON object per line)"),
    "not_an_object": ("not a JSON object", "check that the file is JSON Lines (one JSON object per line)"),
    "invalid_utf8": ("not valid UTF-8", "save the file as UTF-8"),
    "byte_order_mark": ("byte order mark in the middle of the file", "save the file as UTF-8 without BOM"),
    "column_count": ("wrong number of columns", "check the CSV delimiter and quoting"),
    "invalid_csv": ("not valid CSV", "check the CSV quoting"),
    "unknown_label": ("output is not one of the task's labels", "check the column mapping and the task's labels"),
    "empty_input": ("the input is empty", "check the column mapping"),
    "empty_output": ("the output is empty", "check the column mapping"),
    "output_not_json": ("the output is not valid JSON", "check the column mapping and the task kind"),
    "schema_violation": ("the output does not match the schema", "check the task's output schema"),
    "line_too_long": ("line too long", "check the file format"),
}


@dataclass(slots=True)
class IngestCounter:
    """Counts for a batch or a whole run; accepted + rejected + duplicates == rows_read always."""

    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    last_line: int = 0
    bytes_read: int = 0

    def add(self, other: IngestCounter) -> None:
        """Add a batch's counts to these, taking its position."""
        self.rows_read += other.rows_read
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.last_line = other.last_line
        self.bytes_read = other.bytes_read


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """The outcome of one `ingest_stream` call (rows from its start_line to where it stopped)."""

    rows_read: int
    accepted: int
    rejected: int
    duplicates: int
    last_line: int
    stopped_early: bool
    message: str
    bytes_read: int


KnownHashes = Callable[[list[str]], set[str]]
WriteBatch = Callable[[list[ValidRow], list[RowError], int, IngestCounter], None]


def ingest_stream(
    stream: BinaryIO,
    *,
    rules: TaskRules,
    file_format: FileFormat = "auto",
    column_mapping: dict[str, str] | None = None,
    limits: IngestLimits | None = None,
    known_hashes: KnownHashes,
    write_batch: WriteBatch,
    batch_size: int = DEFAULT_BATCH_SIZE,
    start_line: int = 1,
    on_progress: Callable[[IngestCounter], None] | None = None,
    early_stop_rows: int = DEFAULT_EARLY_STOP_ROWS,
    filename: str | None = None,
) -> IngestSummary:
    """Ingest `stream` for a task, calling write_batch(rows, errors, last_line, batch_counts) per batch.

    `known_hashes(hashes)` returns those of `hashes` the task already has. `on_progress` gets the
    running totals after each batch. Early stop (only from start_line 1, disabled by
    early_stop_rows=0): when more than half of the first `early_stop_rows` rows are rejected, the
    batch read so far is written and the run stops with a message naming the likely cause.
    Raises UploadRefused for a problem with the whole file.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    records = iter_records(
        stream,
        file_format=file_format,
        column_mapping=column_mapping,
        limits=limits,
        start_line=start_line,
        filename=filename,
    )
    check_early_stop = early_stop_rows > 0 and start_line == 1
    error_kinds: Counter[tuple[str, str | None]] = Counter()
    totals = IngestCounter(last_line=start_line - 1)
    rows: dict[str, ValidRow] = {}  # by content hash: first occurrence in the batch wins
    errors: list[RowError] = []
    batch_read = 0
    batch_duplicates = 0
    stopped_early = False
    message = ""

    def flush() -> None:
        nonlocal rows, errors, batch_read, batch_duplicates
        accepted = list(rows.values())
        if accepted:
            existing = known_hashes([row.content_hash for row in accepted])
            if existing:
                accepted = [row for row in accepted if row.content_hash not in existing]
        batch = IngestCounter(
            rows_read=batch_read,
            accepted=len(accepted),
            rejected=len(errors),
            duplicates=batch_duplicates + len(rows) - len(accepted),
            last_line=records.last_line,
            bytes_read=records.bytes_read,
        )
        write_batch(accepted, errors, batch.last_line, batch)
        totals.add(batch)
        rows, errors, batch_read, batch_duplicates = {}, [], 0, 0
        if on_progress is not None:
            on_progress(replace(totals))

    for record in records:
        batch_read += 1
        if type(record) is not RowError:
            record = validate_record(record, rules)
        if type(record) is RowError:
            errors.append(record)
            if check_early_stop:
                error_kinds[(record.code, record.field)] += 1
        elif record.content_hash in rows:
            batch_duplicates += 1
        else:
            rows[record.content_hash] = record
        if check_early_stop and totals.rows_read + batch_read == early_stop_rows:
            check_early_stop = False
            rejected = totals.rejected + len(errors)
            if rejected * 2 > early_stop_rows:
                stopped_early = True
                message = _early_stop_message(rejected, early_stop_rows, error_kinds)
                break
        if batch_read >= batch_size:
            flush()
    if batch_read:
        flush()
    if not stopped_early:
        if check_early_stop and totals.rows_read and totals.rejected * 2 > totals.rows_read:
            message = _early_stop_message(totals.rejected, totals.rows_read, error_kinds, whole_file=True)
        else:
            message = (
                f"{totals.rows_read:,} rows read: {totals.accepted:,} accepted, {totals.rejected:,} rejected, "
                f"{totals.duplicates:,} duplicates"
            )
    return IngestSummary(
        rows_read=totals.rows_read,
        accepted=totals.accepted,
        rejected=totals.rejected,
        duplicates=totals.duplicates,
        last_line=max(totals.last_line, records.last_line),
        stopped_early=stopped_early,
        message=message,
        bytes_read=records.bytes_read,
    )


def _early_stop_message(
    rejected: int, inspected: int, error_kinds: Counter[tuple[str, str | None]], *, whole_file: bool = False
) -> str:
    (code, field), _count = error_kinds.most_common(1)[0]
    description, advice = _ERROR_ADVICE.get(code, (code.replace("_", " "), "check the file format"))
    description = description.format(field=field or "")
    scope = f"{rejected:,} of the {inspected:,} rows" if whole_file else f"{rejected:,} of the first {inspected:,} rows"
    return (
        f"wrong format or column mapping: {scope} were rejected; the most common error was '{description}' — {advice}"
    )
