"""/api/v1/tasks/: register, read, change and delete tasks; what each kind needs; prices; scopes."""

from decimal import Decimal

import pytest

from tenants.models import AuditEvent
from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import make_example, make_task
from training.models import Example, FrontierModelPrice, Task

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def create(client, **fields):
    body = {
        "name": "Support tickets",
        "kind": "classification",
        "labels": ["billing", "refund"],
        "frontier_model": "gpt-4o",
    }
    body.update(fields)
    return client.post("/api/v1/tasks/", body, format="json")


def error_of(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]["message"]


def test_create_each_kind_with_prices_from_the_price_table(tenant, admin_client):
    response = create(admin_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "support-tickets" and body["labels"] == ["billing", "refund"]
    assert Decimal(body["price_input_per_million"]) == Decimal("2.5")
    assert Decimal(body["price_output_per_million"]) == Decimal("10")
    assert body["target_agreement"] == 0.95 and body["eval_share"] == 0.1

    extraction = create(admin_client, name="Invoices", kind="extraction", labels=[], output_schema=SCHEMA)
    assert extraction.status_code == 201 and extraction.json()["output_schema"] == SCHEMA
    translation = create(
        admin_client, name="Product copy", kind="translation", labels=[], source_language="en", target_language="de-CH"
    )
    assert translation.status_code == 201 and translation.json()["target_language"] == "de-CH"
    generation = create(
        admin_client, name="Summaries", kind="generation", labels=[], frontier_model="claude-sonnet-4",
        price_input_per_million="1.1", target_agreement=0.9,
    )  # fmt: skip
    assert generation.status_code == 201
    assert Decimal(generation.json()["price_input_per_million"]) == Decimal("1.1")  # given
    assert Decimal(generation.json()["price_output_per_million"]) == Decimal("15")  # from the table
    assert admin_client.get("/api/v1/tasks/").json()["count"] == 4
    assert AuditEvent.objects.filter(action="task.created").count() == 4


def test_each_kind_checks_what_it_needs(tenant, admin_client):
    assert "non-empty list of labels" in error_of(create(admin_client, labels=[]))
    assert "same after trimming and case folding" in error_of(create(admin_client, labels=["Billing", " billing"]))
    assert "empty" in error_of(create(admin_client, labels=["billing", "  "]))
    message = error_of(create(admin_client, kind="extraction", labels=[], output_schema={"type": "objekt"}))
    assert "Not a valid JSON Schema" in message
    assert "JSON Schema" in error_of(create(admin_client, kind="extraction", labels=[]))
    assert '"type": "object"' in error_of(
        create(admin_client, kind="extraction", labels=[], output_schema={"type": "string"})
    )
    assert "source and a target language" in error_of(create(admin_client, kind="translation", labels=[]))
    message = error_of(create(admin_client, kind="translation", labels=[], source_language="en", target_language="EN"))
    assert "differ" in message
    assert "language tag" in error_of(
        create(admin_client, kind="translation", labels=[], source_language="english!", target_language="de")
    )
    assert "only to classification" in error_of(create(admin_client, kind="generation"))
    assert "target agreement" in error_of(create(admin_client, target_agreement=1.5))
    assert "held-out share" in error_of(create(admin_client, eval_share=0.9))
    assert "kind" in error_of(create(admin_client, kind="regression"))
    assert not Task.objects.exists()


def test_unknown_frontier_model_needs_prices(tenant, admin_client):
    message = error_of(create(admin_client, frontier_model="my-own-llm"))
    assert "'my-own-llm' is not in the price table" in message and "gpt-4o" in message
    response = create(
        admin_client, frontier_model="my-own-llm", price_input_per_million="0.5", price_output_per_million="1.5"
    )
    assert response.status_code == 201
    FrontierModelPrice.objects.create(name="My-LLM-2", input_per_million="3", output_per_million="4")
    response = create(admin_client, name="Other", frontier_model="my-llm-2")  # case-insensitive lookup
    assert Decimal(response.json()["price_output_per_million"]) == Decimal("4")


def test_slugs_are_unique_per_tenant_and_not_reserved(tenant, admin_client):
    assert create(admin_client, slug="tickets").status_code == 201
    assert "exists" in error_of(create(admin_client, slug="tickets"))
    assert "reserved" in error_of(create(admin_client, slug="new"))
    other_client = client_for_key(make_api_key(make_tenant("globex"))[1])
    assert create(other_client, slug="tickets").status_code == 201  # another tenant may use the same slug


def test_retrieve_update_and_delete_by_slug(tenant, admin_client):
    task = make_task(tenant, slug="tickets")
    assert admin_client.get("/api/v1/tasks/tickets").json()["id"] == task.pk
    response = admin_client.patch(
        "/api/v1/tasks/tickets", {"labels": ["billing", "refund", "fraud"], "target_agreement": 0.9}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["labels"] == ["billing", "refund", "fraud"] and response.json()["target_agreement"] == 0.9
    response = admin_client.patch("/api/v1/tasks/tickets", {"frontier_model": "gpt-4o-mini"}, format="json")
    assert Decimal(response.json()["price_input_per_million"]) == Decimal("0.15")  # the new model's prices
    assert "cannot change" in error_of(admin_client.patch("/api/v1/tasks/tickets", {"slug": "other"}, format="json"))
    response = admin_client.put(
        "/api/v1/tasks/tickets",
        {"name": "Renamed", "kind": "classification", "frontier_model": "gpt-4o"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    assert admin_client.delete("/api/v1/tasks/tickets").status_code == 204
    assert not Task.objects.exists()
    assert admin_client.get("/api/v1/tasks/tickets").status_code == 404


def test_changes_that_would_strand_examples_are_refused(tenant, admin_client):
    task = make_task(tenant, slug="tickets")
    make_example(tenant, task=task, output="billing")
    assert "kind cannot change" in error_of(
        admin_client.patch("/api/v1/tasks/tickets", {"kind": "generation", "labels": []}, format="json")
    )
    assert "between splits" in error_of(admin_client.patch("/api/v1/tasks/tickets", {"eval_share": 0.2}, format="json"))
    message = error_of(admin_client.patch("/api/v1/tasks/tickets", {"labels": ["refund", "lost_card"]}, format="json"))
    assert "1 examples carry the label(s) 'billing'" in message
    assert "'billing'" in error_of(
        admin_client.patch("/api/v1/tasks/tickets", {"labels": ["Billing", "refund"]}, format="json")
    )
    # Removing a label no example carries is fine.
    response = admin_client.patch("/api/v1/tasks/tickets", {"labels": ["billing", "refund"]}, format="json")
    assert response.status_code == 200
    assert admin_client.delete("/api/v1/tasks/tickets").status_code == 204
    assert not Example.objects.exists()


def test_scopes(tenant):
    reader = client_for_key(make_api_key(tenant, scopes=["examples:read"])[1])
    make_task(tenant, slug="tickets")
    assert reader.get("/api/v1/tasks/").status_code == 200
    assert reader.get("/api/v1/tasks/tickets/dataset").status_code == 200
    response = create(reader)
    assert response.status_code == 403 and "examples:write" in response.json()["error"]["message"]
    assert reader.patch("/api/v1/tasks/tickets", {"name": "x"}, format="json").status_code == 403
    assert reader.delete("/api/v1/tasks/tickets").status_code == 403
    routing_only = client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])
    assert routing_only.get("/api/v1/tasks/").status_code == 403
