"""The demo tenant's seed: two tasks with examples loaded through the upload path from the shipped slices."""

import io

import pytest

from tests.factories import make_tenant
from training.demo import seed_demo
from training.models import Example, ExampleUpload, Task, UploadStatus

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_both_tasks_and_is_idempotent(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    tenant = make_tenant("demo")
    out = io.StringIO()
    seed_demo(tenant=tenant, stdout=out)
    tickets = Task.objects.get(tenant=tenant, slug="support-tickets")
    assert tickets.kind == "classification" and len(tickets.labels) == 77
    assert Example.objects.filter(task=tickets).count() == 2500
    extraction = Task.objects.get(tenant=tenant, slug="assistant-requests")
    assert extraction.kind == "extraction" and extraction.output_schema["required"] == ["intent", "slots"]
    assert Example.objects.filter(task=extraction).count() > 1900
    for upload in ExampleUpload.objects.filter(tenant=tenant):
        assert upload.status == UploadStatus.SUCCEEDED and upload.rejected == 0
        assert upload.accepted + upload.duplicates == upload.rows_read
    assert not Example.objects.filter(tenant=tenant, logged_at__isnull=True).exists()
    assert "support-tickets: 2,500 rows read" in out.getvalue()

    seed_demo(tenant=tenant, stdout=io.StringIO())
    assert ExampleUpload.objects.filter(tenant=tenant).count() == 2
