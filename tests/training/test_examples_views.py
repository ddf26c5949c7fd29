"""The web UI: tasks, the upload page (plain-form path), upload results, dataset page, examples, dashboard."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from tenants.authentication import SESSION_TENANT_KEY
from tenants.models import Role
from tests.factories import make_membership
from tests.factories_examples import jsonl, make_example, make_task
from training.models import Example, ExampleUpload, Task, UploadStatus
from training.services.examples import upload_process

pytestmark = pytest.mark.django_db
BANKING_SLICE = Path(__file__).resolve().parent.parent / "fixtures" / "banking77_upload_550.csv"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def browser(user, tenant) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_TENANT_KEY] = tenant.pk
    session.save()
    return client


@pytest.fixture
def web(owner, tenant):
    return browser(owner, tenant)


def chart_spec(page: str, canvas_id: str) -> dict:
    match = re.search(rf'id="{canvas_id}" data-chart="([^"]*)"', page)
    assert match, f"no chart {canvas_id}"
    return json.loads(html.unescape(match.group(1)))


def test_register_a_task_then_upload_from_the_form_and_see_the_result(web, tenant):
    page = web.get("/tasks/").content.decode()
    assert "No tasks yet" in page and 'href="/tasks/new/"' in page
    response = web.post(
        "/tasks/new/",
        {
            "name": "Support tickets",
            "kind": "classification",
            "labels": "billing\nrefund\n\nlost_card\n",
            "frontier_model": "gpt-4o",
            "target_agreement": "0.95",
            "eval_share": "0.1",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/tasks/support-tickets/upload/"
    task = Task.objects.get(tenant=tenant, slug="support-tickets")
    assert task.labels == ["billing", "refund", "lost_card"] and str(task.price_input_per_million) == "2.5000"

    page = web.get("/tasks/support-tickets/upload/").content.decode()
    assert 'id="upload-form"' in page and 'data-api="/api/v1/tasks/support-tickets/uploads"' in page
    assert "js/upload.js" in page and 'name="input_column"' in page

    rows = [{"input": f"ticket {i}", "output": "billing"} for i in range(20)] + [{"input": "x", "output": "nope"}]
    response = web.post(
        "/tasks/support-tickets/upload/", {"file": SimpleUploadedFile("log.jsonl", jsonl(rows)), "format": "auto"}
    )
    upload = ExampleUpload.objects.get(task=task)
    assert response.status_code == 302 and response["Location"] == f"/uploads/{upload.pk}/"
    page = web.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page  # pending: the page refreshes itself

    upload_process(upload_id=upload.pk)
    page = web.get(f"/uploads/{upload.pk}/").content.decode()
    assert 'http-equiv="refresh"' not in page
    assert '<td id="count-accepted">20</td>' in page and '<td id="count-rejected">1</td>' in page
    assert "not one of the task&#x27;s 3 labels" in page
    assert f"/api/v1/uploads/{upload.pk}/errors?format=csv" in page
    # The report link works with the browser's session.
    assert web.get(f"/api/v1/uploads/{upload.pk}/errors?format=csv").status_code == 200


def test_csv_column_mapping_from_the_form(web, tenant):
    import csv

    with BANKING_SLICE.open(newline="", encoding="utf-8") as source:
        labels = sorted({row["category"] for row in csv.DictReader(source)})
    task = make_task(tenant, slug="banking", labels=labels)
    response = web.post(
        "/tasks/banking/upload/",
        {
            "file": SimpleUploadedFile("train.csv", BANKING_SLICE.read_bytes()),
            "format": "csv",
            "input_column": "text",
            "output_column": "category",
        },
    )
    assert response.status_code == 302
    upload = ExampleUpload.objects.get(task=task)
    assert upload.column_mapping == {"input": "text", "output": "category"}
    upload_process(upload_id=upload.pk)
    upload.refresh_from_db()
    assert (upload.accepted, upload.duplicates, upload.rows_read) == (548, 2, 550)

    response = web.post(
        "/tasks/banking/upload/",
        {"file": SimpleUploadedFile("train.csv", b"a,b\n1,2\n"), "format": "csv", "input_column": "text"},
    )
    assert response.status_code == 200 and "both the input column and the output column" in response.content.decode()


def test_task_form_shows_the_services_errors(web):
    response = web.post(
        "/tasks/new/",
        {
            "name": "X",
            "kind": "classification",
            "labels": "",
            "frontier_model": "gpt-4o",
            "target_agreement": "0.95",
            "eval_share": "0.1",
        },
    )
    assert response.status_code == 200
    assert "non-empty list of labels" in response.content.decode()
    response = web.post(
        "/tasks/new/",
        {
            "name": "X",
            "kind": "extraction",
            "output_schema": "{oops",
            "frontier_model": "gpt-4o",
            "target_agreement": "0.95",
            "eval_share": "0.1",
        },
    )
    assert "Not valid JSON" in response.content.decode()
    assert not Task.objects.exists()


def test_task_page_shows_dataset_chart_uploads_and_training_panel(web, tenant):
    task = make_task(tenant, slug="tickets")
    for i in range(6):
        make_example(tenant, task=task, input=f"charged twice {i}", output="billing")
    make_example(tenant, task=task, input="refund me", output="refund")
    page = web.get("/tasks/tickets/").content.decode()
    chart = chart_spec(page, "label-chart")
    assert chart["type"] == "bar" and dict(zip(chart["labels"], chart["values"], strict=True)) == {
        "billing": 6, "refund": 1, "lost_card": 0, "card_delivery": 0,
    }  # fmt: skip
    assert '<div class="stat" id="stat-total">7</div>' in page
    assert "7 of at least 500 training examples" in page or "of at least 500 training examples" in page
    assert 'id="training-panel"' in page  # the training area's panel is included
    assert 'href="/tasks/tickets/examples/"' in page and 'href="/tasks/tickets/upload/"' in page
    assert web.get("/tasks/unknown/").status_code == 404


def test_edit_and_delete_a_task(web, tenant):
    make_task(tenant, slug="tickets")
    page = web.get("/tasks/tickets/edit/").content.decode()
    assert "billing\nlost_card" in page
    response = web.post(
        "/tasks/tickets/edit/",
        {
            "name": "Renamed",
            "kind": "classification",
            "labels": "billing\nrefund",
            "frontier_model": "gpt-4o-mini",
            "target_agreement": "0.9",
            "eval_share": "0.1",
        },
    )
    assert response.status_code == 302
    task = Task.objects.get(slug="tickets")
    assert (task.name, task.labels, task.target_agreement) == ("Renamed", ["billing", "refund"], 0.9)
    assert web.post("/tasks/tickets/delete/").status_code == 302
    assert not Task.objects.exists()


def test_browse_search_and_delete_examples(web, tenant):
    task = make_task(tenant, slug="tickets")
    for i in range(60):
        make_example(tenant, task=task, input=f"lost my card {i}", output="lost_card")
    refund = make_example(tenant, task=task, input="please refund order 7", output="refund")
    page = web.get("/tasks/tickets/examples/").content.decode()
    assert "61 examples" in page and "page 1 of 2" in page
    page = web.get("/tasks/tickets/examples/?q=refund").content.decode()
    assert "1 example" in page and "please refund order 7" in page and "lost my card" not in page
    response = web.post(f"/tasks/tickets/examples/{refund.pk}/delete/", {"next": "/tasks/tickets/examples/?q=refund"})
    assert response.status_code == 302 and response["Location"] == "/tasks/tickets/examples/?q=refund"
    assert not Example.objects.filter(pk=refund.pk).exists()
    other_task = make_task(tenant, slug="other")
    foreign = make_example(tenant, task=other_task)
    assert web.post(f"/tasks/tickets/examples/{foreign.pk}/delete/").status_code == 404


def test_dashboard_shows_spend_per_task_as_a_chart_and_the_ranking(web, tenant):
    task = make_task(tenant, slug="tickets")
    for i in range(10):
        make_example(
            tenant, task=task, input=f"question {i}", output="billing", input_tokens=1000, output_tokens=10,
            logged_at=timezone.now() - timedelta(days=7),
        )  # fmt: skip
    make_task(tenant, slug="quiet")
    page = web.get("/dashboard/").content.decode()
    chart = chart_spec(page, "spend-chart")
    assert chart["labels"] == ["tickets", "quiet"] and chart["values"][0] == pytest.approx(
        10 * (1000 * 2.5 + 10 * 10) / 1e6
    )
    assert chart_spec(page, "weekly-chart")["type"] == "line"
    assert '<tr data-task="tickets">' in page and 'id="specialise-first">tickets<' in page


def test_upload_page_actions_resume_and_reprocess(web, tenant):
    task = make_task(tenant, slug="tickets")
    response = web.post(
        "/tasks/tickets/upload/", {"file": SimpleUploadedFile("a.jsonl", jsonl([{"input": "a", "output": "refund"}]))}
    )
    upload = ExampleUpload.objects.get(task=task)
    upload_process(upload_id=upload.pk)
    ExampleUpload.objects.filter(pk=upload.pk).update(status=UploadStatus.FAILED)
    response = web.post(f"/uploads/{upload.pk}/resume/")
    assert response.status_code == 302
    assert ExampleUpload.objects.get(pk=upload.pk).status == UploadStatus.PENDING
    upload_process(upload_id=upload.pk)
    response = web.post(f"/uploads/{upload.pk}/reprocess/")
    again = ExampleUpload.objects.exclude(pk=upload.pk).get()
    assert response["Location"] == f"/uploads/{again.pk}/"


def test_viewers_read_but_do_not_write(tenant):
    viewer = make_membership(tenant, Role.VIEWER)
    client = browser(viewer.user, tenant)
    make_task(tenant, slug="tickets")
    assert client.get("/tasks/").status_code == 200
    assert client.get("/tasks/tickets/").status_code == 200
    assert client.get("/dashboard/").status_code == 200
    assert "Upload examples" not in client.get("/tasks/tickets/").content.decode()
    assert client.get("/tasks/new/").status_code == 403
    assert client.get("/tasks/tickets/upload/").status_code == 403
    assert client.post("/tasks/tickets/delete/").status_code == 403
    assert Task.objects.filter(slug="tickets").exists()


def test_another_tenants_pages_answer_404(web):
    from tests.factories import make_tenant

    other = make_tenant("globex")
    task = make_task(other, slug="secret")
    upload = ExampleUpload.objects.create(tenant=other, task=task, file="x", original_name="x.jsonl")
    assert web.get("/tasks/secret/").status_code == 404
    assert web.get("/tasks/secret/examples/").status_code == 404
    assert web.get(f"/uploads/{upload.pk}/").status_code == 404
    assert web.post(f"/uploads/{upload.pk}/resume/").status_code == 404


def test_every_training_model_has_an_admin_page(tenant):
    from django.apps import apps
    from django.contrib import admin

    from tests.factories import make_user

    superuser = make_user("root@example.com")
    superuser.is_staff = superuser.is_superuser = True
    superuser.save()
    client = Client()
    client.force_login(superuser)
    make_example(tenant, task=make_task(tenant))
    for model in apps.get_app_config("training").get_models():
        assert model in admin.site._registry, f"{model.__name__} has no admin"
        url = f"/admin/training/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
