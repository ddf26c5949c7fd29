"""Reads of examples and uploads: lists, dataset statistics and the error report. Nothing here writes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import Coalesce, Length, TruncDate

from tenants.models import Tenant
from training.models import Example, ExampleSource, ExampleUpload, Split, Task, TaskKind, UploadRowError, UploadStatus

PERCENTILES = (0.1, 0.5, 0.9, 0.99)
MAX_DAYS_SHOWN = 180
# Characters that make a spreadsheet treat a cell as a formula (or a DDE command).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def recommended_examples() -> int:
    """The readiness bar (DESIGN.md: 500-2,000 logged requests); the same setting training shows."""
    return int(getattr(settings, "TRAINING_RECOMMENDED_EXAMPLES", 500))


def examples_for_task(
    task: Task, *, q: str = "", split: str = "", source: str = "", upload_id: int | None = None
) -> QuerySet[Example]:
    """The task's examples, newest first, narrowed by a text search (input or output) and filters."""
    examples = Example.objects.for_tenant(task.tenant_id).filter(task=task)
    if q:
        examples = examples.filter(Q(input__icontains=q) | Q(output__icontains=q))
    if split:
        examples = examples.filter(split=split)
    if source:
        examples = examples.filter(source=source)
    if upload_id is not None:
        examples = examples.filter(upload_id=upload_id)
    return examples.order_by("-id")


def example_get(*, tenant: Tenant | int, pk: int) -> Example | None:
    return Example.objects.for_tenant(tenant).filter(pk=pk).select_related("task").first()


def uploads_for_tenant(tenant: Tenant | int) -> QuerySet[ExampleUpload]:
    return ExampleUpload.objects.for_tenant(tenant).select_related("task").order_by("-created_at", "-id")


def uploads_for_task(task: Task) -> QuerySet[ExampleUpload]:
    return uploads_for_tenant(task.tenant_id).filter(task=task)


def upload_get(*, tenant: Tenant | int, pk: int) -> ExampleUpload | None:
    return uploads_for_tenant(tenant).filter(pk=pk).first()


def upload_progress(upload: ExampleUpload) -> float:
    """Share of the file's bytes read so far (1.0 once it succeeded; where it stopped otherwise)."""
    if upload.status == UploadStatus.SUCCEEDED:
        return 1.0
    if not upload.size_bytes:
        return 0.0
    return round(min(1.0, upload.bytes_processed / upload.size_bytes), 4)


def upload_row_errors(upload: ExampleUpload) -> QuerySet[UploadRowError]:
    return UploadRowError.objects.for_tenant(upload.tenant_id).filter(upload=upload).order_by("line", "id")


# ---------------------------------------------------------------------------------------------- reports


def spreadsheet_safe(value: str) -> str:
    """A cell value that a spreadsheet shows as text: a leading ' before formula characters."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def error_report_chunks(upload: ExampleUpload, report_format: str) -> Iterator[bytes]:
    """The full error report as CSV or JSON Lines, produced in chunks (bounded memory)."""
    rows = upload_row_errors(upload).values_list("line", "field", "message", "raw_excerpt").iterator(chunk_size=2000)
    if report_format == "jsonl":
        buffer: list[bytes] = []
        for line, field, message, excerpt in rows:
            buffer.append(orjson.dumps({"line": line, "field": field, "message": message, "excerpt": excerpt}) + b"\n")
            if len(buffer) >= 500:
                yield b"".join(buffer)
                buffer = []
        if buffer:
            yield b"".join(buffer)
        return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["line", "field", "message", "excerpt"])
    for count, (line, field, message, excerpt) in enumerate(rows, start=1):
        writer.writerow([line, spreadsheet_safe(field), spreadsheet_safe(message), spreadsheet_safe(excerpt)])
        if count % 500 == 0:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    yield text.getvalue().encode()


# ---------------------------------------------------------------------------------------------- statistics


def _length_percentiles_postgresql(task: Task) -> dict[str, dict[str, Any]]:
    table = Example._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY length(input)), max(length(input)),"  # noqa: S608
            f" avg(length(input)), percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY length(output)),"
            f" max(length(output)), avg(length(output)) FROM {table} WHERE task_id = %s",
            [list(PERCENTILES), list(PERCENTILES), task.pk],
        )
        row = cursor.fetchone()
    result = {}
    for name, (values, maximum, mean) in (("input", row[0:3]), ("output", row[3:6])):
        result[name] = _percentile_dict(values or [None] * len(PERCENTILES), maximum, mean)
    return result


def _length_percentiles_generic(task: Task) -> dict[str, dict[str, Any]]:
    examples = Example.objects.filter(task=task)
    total = examples.count()
    result = {}
    for name in ("input", "output"):
        lengths = examples.annotate(length=Length(name)).order_by("length").values_list("length", flat=True)
        values = [lengths[int(p * (total - 1))] if total else None for p in PERCENTILES]
        maximum = lengths.last() if total else None
        mean = examples.aggregate(mean=Avg(Length(name)))["mean"] if total else None
        result[name] = _percentile_dict(values, maximum, mean)
    return result


def _percentile_dict(values, maximum, mean) -> dict[str, Any]:
    data = {f"p{round(p * 100)}": value for p, value in zip(PERCENTILES, values, strict=True)}
    data["max"] = maximum
    data["mean"] = round(float(mean), 1) if mean is not None else None
    return data


def length_percentiles(task: Task) -> dict[str, dict[str, Any]]:
    """Input and output lengths in characters: p10, p50, p90, p99, max and mean."""
    if connection.vendor == "postgresql":
        return _length_percentiles_postgresql(task)
    return _length_percentiles_generic(task)


def label_distribution(task: Task) -> list[dict[str, Any]] | None:
    """Classification: every label of the task with its example count per split (zero when absent)."""
    if task.kind != TaskKind.CLASSIFICATION:
        return None
    counts = {
        row["output"]: row
        for row in Example.objects.filter(task=task)
        .values("output")
        .annotate(
            total=Count("id"),
            train=Count("id", filter=Q(split=Split.TRAIN)),
            eval=Count("id", filter=Q(split=Split.EVAL)),
        )
        .order_by()
    }
    rows = []
    for label in task.labels:
        found = counts.pop(label, {})
        rows.append(
            {
                "label": label,
                "total": found.get("total", 0),
                "train": found.get("train", 0),
                "eval": found.get("eval", 0),
            }
        )
    # Outputs no longer in the label set (labels removed in the admin) are still shown, not hidden.
    for output, found in counts.items():
        rows.append(
            {"label": output, "total": found["total"], "train": found["train"], "eval": found["eval"], "unknown": True}
        )
    rows.sort(key=lambda row: (-row["total"], row["label"]))
    return rows


def examples_per_day(task: Task) -> list[dict[str, Any]]:
    """Examples per day of logging (the row's timestamp, else when it was stored), the latest days."""
    days = (
        Example.objects.filter(task=task)
        .annotate(day=TruncDate(Coalesce("logged_at", "created_at")))
        .values("day")
        .annotate(count=Count("id"))
        .order_by("-day")[:MAX_DAYS_SHOWN]
    )
    return [{"day": row["day"].isoformat(), "count": row["count"]} for row in reversed(list(days))]


def dataset_statistics(task: Task) -> dict[str, Any]:
    """Everything the dataset page and `GET /tasks/{slug}/dataset` show about a task's examples."""
    examples = Example.objects.filter(task=task)
    by_split_source = examples.values("split", "source").annotate(count=Count("id")).order_by()
    splits = dict.fromkeys(Split.values, 0)
    sources = dict.fromkeys(ExampleSource.values, 0)
    for row in by_split_source:
        splits[row["split"]] = splits.get(row["split"], 0) + row["count"]
        sources[row["source"]] = sources.get(row["source"], 0) + row["count"]
    total = sum(splits.values())
    usage = examples.aggregate(
        with_usage=Count("id", filter=Q(input_tokens__isnull=False, output_tokens__isnull=False))
    )
    needed = recommended_examples()
    train = splits.get(Split.TRAIN, 0)
    return {
        "task": task.slug,
        "kind": task.kind,
        "total": total,
        "splits": splits,
        "sources": sources,
        "with_usage": usage["with_usage"],
        "labels": label_distribution(task),
        "lengths": length_percentiles(task),
        "per_day": examples_per_day(task),
        "readiness": {
            "ready": train >= needed,
            "train_examples": train,
            "needed": needed,
            "message": (
                f"Ready to train: {train:,} training examples (at least {needed:,} recommended)."
                if train >= needed
                else f"{train:,} of at least {needed:,} training examples; add {needed - train:,} more."
            ),
        },
    }
