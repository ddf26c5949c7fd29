"""POST /api/v1/tasks/{slug}/examples (JSON batches from logging hooks), listing, searching and deleting."""

import threading

import pytest
from django.db import connection

from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import make_example, make_task
from training.models import Example
from training.services import examples as example_services

pytestmark = pytest.mark.django_db


def post_batch(client, task, body):
    return client.post(f"/api/v1/tasks/{task.slug}/examples", body, format="json")


def test_batch_of_every_shape_answers_counts_and_row_errors(tenant, admin_client):
    task = make_task(tenant)
    rows = [
        {"input": "Card not here yet", "output": "card_delivery", "usage": {"input_tokens": 5, "output_tokens": 2}},
        {"prompt": "Refund please", "completion": "REFUND"},
        {"messages": [{"role": "user", "content": "lost it"}, {"role": "assistant", "content": "lost_card"}]},
        {
            "request": {"messages": [{"role": "user", "content": "double charge"}]},
            "response": {"choices": [{"message": {"content": "billing"}}]},
            "timestamp": 1735689600,
            "model": "gpt-4o",
        },
        {"input": "Where is my money", "output": "refnd"},
        {"input": "", "output": "billing"},
        "not an object",
        {"text": "wrong keys"},
    ]
    response = post_batch(admin_client, task, {"examples": rows})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["rows"], body["accepted"], body["rejected"], body["duplicates"]) == (8, 4, 4, 0)
    assert [error["row"] for error in body["errors"]] == [4, 5, 6, 7]
    assert "did you mean 'refund'?" in body["errors"][0]["message"]
    assert body["errors"][1]["code"] == "empty_input" and body["errors"][1]["field"] == "input"
    assert body["errors"][2]["code"] == "not_an_object"
    assert body["errors"][3]["code"] == "unknown_shape"
    stored = {e.input: e for e in Example.objects.filter(task=task)}
    assert set(stored) == {"Card not here yet", "Refund please", "lost it", "double charge"}
    assert all(e.source == "api" and e.upload_id is None for e in stored.values())
    assert stored["Refund please"].output == "refund"
    assert stored["double charge"].logged_at.year == 2025 and stored["double charge"].model == "gpt-4o"
    assert stored["Card not here yet"].input_tokens == 5


def test_a_bare_json_array_is_accepted_and_resending_adds_nothing(tenant, admin_client):
    task = make_task(tenant)
    rows = [{"input": f"ticket {i}", "output": "billing"} for i in range(50)]
    assert post_batch(admin_client, task, rows).json()["accepted"] == 50
    body = post_batch(admin_client, task, rows + rows[:5]).json()
    assert (body["rows"], body["accepted"], body["duplicates"]) == (55, 0, 55)
    assert Example.objects.filter(task=task).count() == 50


def test_batch_limits_and_shapes(tenant, admin_client, settings):
    settings.INGEST_API_MAX_ROWS = 10
    task = make_task(tenant)
    too_many = [{"input": f"t{i}", "output": "billing"} for i in range(11)]
    response = post_batch(admin_client, task, too_many)
    assert response.status_code == 400 and "at most 10" in response.json()["error"]["message"]
    assert post_batch(admin_client, task, []).status_code == 400
    assert post_batch(admin_client, task, {"rows": []}).status_code == 400
    assert post_batch(admin_client, task, {"examples": "nope"}).status_code == 400
    assert not Example.objects.exists()


def test_values_with_a_bom_character_or_non_ascii_are_kept(tenant, admin_client):
    task = make_task(tenant, kind="generation")
    body = post_batch(admin_client, task, [{"input": "\ufeffZo\u00eb\u2019s caf\u00e9 ☕", "output": "ok 你好"}]).json()
    assert body["accepted"] == 1, body
    example = Example.objects.get(task=task)
    assert example.input == "\ufeffZo\u00eb\u2019s caf\u00e9 ☕" and example.output == "ok 你好"


def test_writing_needs_the_write_scope(tenant):
    task = make_task(tenant)
    reader = client_for_key(make_api_key(tenant, scopes=["examples:read"])[1])
    response = post_batch(reader, task, [{"input": "a", "output": "billing"}])
    assert response.status_code == 403
    assert not Example.objects.exists()


def test_another_tenants_task_answers_404_before_validation(tenant, admin_client):
    other = make_task(make_tenant("globex"))
    response = post_batch(admin_client, other, {"bad": "body"})
    assert response.status_code == 404
    response = admin_client.get(f"/api/v1/tasks/{other.slug}/examples")
    assert response.status_code == 404


def test_list_search_filter_and_delete(tenant, admin_client):
    task = make_task(tenant)
    post_batch(
        admin_client,
        task,
        [{"input": f"lost my card {i}", "output": "lost_card"} for i in range(30)]
        + [{"input": f"refund for order {i}", "output": "refund"} for i in range(30)],
    )
    body = admin_client.get(f"/api/v1/tasks/{task.slug}/examples?q=refund&page_size=100").json()
    assert body["count"] == 30 and all("refund" in row["input"] for row in body["results"])
    train = admin_client.get(f"/api/v1/tasks/{task.slug}/examples?split=train&page_size=100").json()["count"]
    evals = admin_client.get(f"/api/v1/tasks/{task.slug}/examples?split=eval&page_size=100").json()["count"]
    assert train + evals == 60 and evals > 0
    assert admin_client.get(f"/api/v1/tasks/{task.slug}/examples?source=upload").json()["count"] == 0
    assert admin_client.get(f"/api/v1/tasks/{task.slug}/examples?split=test").status_code == 400
    assert admin_client.get(f"/api/v1/tasks/{task.slug}/examples?source=x").status_code == 400

    example_id = body["results"][0]["id"]
    assert admin_client.get(f"/api/v1/examples/{example_id}").json()["id"] == example_id
    assert admin_client.delete(f"/api/v1/examples/{example_id}").status_code == 204
    assert admin_client.get(f"/api/v1/examples/{example_id}").status_code == 404
    assert Example.objects.filter(task=task).count() == 59


def test_deleted_example_can_be_sent_again(tenant, admin_client):
    task = make_task(tenant)
    example = make_example(tenant, task=task, input="charged twice", output="billing")
    admin_client.delete(f"/api/v1/examples/{example.pk}")
    body = post_batch(admin_client, task, [{"input": "charged twice", "output": "billing"}]).json()
    assert body["accepted"] == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_the_same_rows_never_double_count():
    """Eight threads send overlapping batches at once; the unique index decides, and the counts add up."""
    tenant = make_tenant("racers")
    task = make_task(tenant)
    rows = [{"input": f"ticket {i}", "output": "billing"} for i in range(400)]
    results, failures = [], []
    barrier = threading.Barrier(8)

    def send(offset: int):
        try:
            barrier.wait()
            result = example_services.examples_ingest_batch(task=task, rows=rows[offset:] + rows[:offset], actor="t")
            results.append(result)
        except Exception as error:  # reported below, with the thread's error
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(offset,)) for offset in range(0, 400, 50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert sum(result.accepted for result in results) == 400
    assert sum(result.accepted + result.duplicates for result in results) == 8 * 400
    assert Example.objects.filter(task=task).count() == 400
