"""Demo data for the demo tenant (`manage.py demo_setup`): two tasks with examples already loaded.

- `support-tickets`: classification into the 77 BANKING77 intents, from a 2,500-row CSV slice;
- `assistant-requests`: extraction of the SNIPS intent and slots as JSON, from a 1,995-row slice.

Both go through the product's own upload path (stored file, ingest, counts), processed here instead of
by a worker so the demo is complete when the command returns. Each row gets a logging timestamp in the
last six weeks, derived from a hash of its text, so the spend dashboard has weeks to compare.
Sources and licences: training/demo_data/README.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from tenants.models import Tenant
from training.models import Task
from training.services import examples as example_services
from training.services import tasks as task_services

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
ACTOR = "demo_setup"
WEEKS_OF_TRAFFIC = 6


def _logged_at(text: str, now: datetime) -> str:
    """A timestamp in the last six weeks; later days are busier (traffic grows), as in a real rollout."""
    fraction = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    seconds_ago = (fraction**1.5) * WEEKS_OF_TRAFFIC * 7 * 86400
    return (now - timedelta(seconds=seconds_ago)).replace(microsecond=0).isoformat()


def _load(task: Task, name: str, content: bytes, column_mapping: dict | None, stdout) -> None:
    upload = example_services.example_upload_create(
        task=task,
        file=SimpleUploadedFile(name, content),
        file_format="auto",
        column_mapping=column_mapping,
        actor=ACTOR,
        enqueue=False,
    )
    example_services.upload_process(upload_id=upload.pk)
    upload.refresh_from_db()
    stdout.write(f"  {task.slug}: {upload.message}")


def _support_tickets(tenant: Tenant, now: datetime, stdout) -> None:
    with open(DEMO_DATA / "banking77_support_tickets.csv", newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    task = task_services.task_create(
        tenant=tenant,
        slug="support-tickets",
        name="Support ticket routing",
        description="Classify a customer's message into one of 77 banking support intents (BANKING77).",
        kind="classification",
        labels=sorted({row["category"] for row in rows}),
        frontier_model="gpt-4o",
        actor=ACTOR,
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "category", "logged_at"])
    for row in rows:
        writer.writerow([row["text"], row["category"], _logged_at(row["text"], now)])
    mapping = {"input": "text", "output": "category", "timestamp": "logged_at"}
    _load(task, "support_tickets.csv", buffer.getvalue().encode(), mapping, stdout)


def _assistant_requests(tenant: Tenant, now: datetime, stdout) -> None:
    with open(DEMO_DATA / "snips_assistant_requests.jsonl", encoding="utf-8") as source:
        rows = [json.loads(line) for line in source if line.strip()]
    intents = sorted({row["intent"] for row in rows})
    task = task_services.task_create(
        tenant=tenant,
        slug="assistant-requests",
        name="Assistant request parsing",
        description="Extract the intent and its slots from a voice-assistant request as JSON (SNIPS).",
        kind="extraction",
        output_schema={
            "type": "object",
            "properties": {
                "intent": {"enum": intents},
                "slots": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["intent", "slots"],
            "additionalProperties": False,
        },
        frontier_model="gpt-4o-mini",
        actor=ACTOR,
    )
    lines = []
    for row in rows:
        output = {"intent": row["intent"], "slots": {slot["slot"]: slot["value"] for slot in row["slots"]}}
        lines.append(json.dumps({"input": row["text"], "output": output, "timestamp": _logged_at(row["text"], now)}))
    _load(task, "assistant_requests.jsonl", ("\n".join(lines) + "\n").encode(), None, stdout)


def seed_demo(*, tenant: Tenant, stdout) -> None:
    """Give the demo tenant its two tasks and their examples (idempotent per task)."""
    now = timezone.now()
    stdout.write("Loading demo tasks and examples:")
    if not Task.objects.for_tenant(tenant).filter(slug="support-tickets").exists():
        _support_tickets(tenant, now, stdout)
    if not Task.objects.for_tenant(tenant).filter(slug="assistant-requests").exists():
        _assistant_requests(tenant, now, stdout)
