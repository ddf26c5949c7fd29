"""Factories for this area; each tenant-owned model served by the API is registered for the isolation matrix."""

import itertools
from decimal import Decimal

from tenants.models import Tenant
from tests.factories import register_factory
from training.ingest import assign_split, content_hash
from training.models import Example, ExampleSource, ExampleUpload, Task, TaskKind, UploadStatus

_counter = itertools.count(1)

SUPPORT_LABELS = ["billing", "lost_card", "refund", "card_delivery"]
EXTRACTION_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["name", "amount"],
    "additionalProperties": False,
}


def make_task(tenant: Tenant, *, kind: str = TaskKind.CLASSIFICATION, slug: str | None = None, **fields) -> Task:
    """A valid task of `kind` (created directly: the service's checks are tested on their own)."""
    defaults = {
        "slug": slug or f"task-{next(_counter)}",
        "name": "Support tickets",
        "kind": kind,
        "frontier_model": "gpt-4o",
        "price_input_per_million": Decimal("2.50"),
        "price_output_per_million": Decimal("10.00"),
    }
    if kind == TaskKind.CLASSIFICATION:
        defaults["labels"] = list(SUPPORT_LABELS)
    elif kind == TaskKind.EXTRACTION:
        defaults["output_schema"] = EXTRACTION_SCHEMA
    elif kind == TaskKind.TRANSLATION:
        defaults.update(source_language="en", target_language="de")
    defaults.update(fields)
    return Task.objects.create(tenant=tenant, **defaults)


def make_upload(tenant: Tenant, *, task: Task | None = None, **fields) -> ExampleUpload:
    """An upload row (no stored file: tests that process files upload them through the API)."""
    task = task or make_task(tenant)
    defaults = {
        "file": f"uploads/{tenant.pk}/test/examples.jsonl",
        "original_name": "examples.jsonl",
        "size_bytes": 100,
        "status": UploadStatus.SUCCEEDED,
    }
    defaults.update(fields)
    return ExampleUpload.objects.create(tenant=tenant, task=task, **defaults)


def make_example(
    tenant: Tenant, *, task: Task | None = None, input: str | None = None, output: str = "billing", **fields
):
    task = task or make_task(tenant)
    text = input or f"My card was charged twice, ticket {next(_counter)}"
    defaults = {
        "source": ExampleSource.API,
        "split": assign_split(text, task.eval_share),
        "content_hash": content_hash(text, output),
    }
    defaults.update(fields)
    return Example.objects.create(tenant=tenant, task=task, input=text, output=output, **defaults)


register_factory(Task, make_task)
register_factory(ExampleUpload, make_upload)
register_factory(Example, make_example)


# ---------------------------------------------------------------------------------------------- test helpers


def jsonl(rows) -> bytes:
    """JSON Lines bytes of `rows` (dicts)."""
    import json

    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def post_upload(client, task: Task, name: str, content: bytes, **data):
    """POST a file to /api/v1/tasks/{slug}/uploads as multipart; returns the response."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    payload = {"file": SimpleUploadedFile(name, content), **data}
    return client.post(f"/api/v1/tasks/{task.slug}/uploads", payload, format="multipart")


def upload_and_process(client, task: Task, name: str, content: bytes, **data) -> ExampleUpload:
    """Upload through the API and run the ingest task's service, as the worker would; returns the upload."""
    from training.services.examples import upload_process

    response = post_upload(client, task, name, content, **data)
    assert response.status_code == 202, response.content
    upload_id = response.json()["id"]
    upload_process(upload_id=upload_id)
    return ExampleUpload.objects.get(pk=upload_id)


def assert_counts_add_up(upload: ExampleUpload) -> None:
    assert upload.accepted + upload.rejected + upload.duplicates == upload.rows_read, (
        f"accepted {upload.accepted} + rejected {upload.rejected} + duplicates {upload.duplicates} "
        f"!= rows read {upload.rows_read}"
    )
