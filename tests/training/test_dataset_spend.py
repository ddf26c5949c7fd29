"""GET /api/v1/tasks/{slug}/dataset and GET /api/v1/spend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import client_for_key
from tests.factories import make_api_key, make_tenant
from tests.factories_examples import make_task
from training.selectors.spend import spend_by_task

pytestmark = pytest.mark.django_db


def send(client, task, rows):
    response = client.post(f"/api/v1/tasks/{task.slug}/examples", rows, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["rejected"] == 0, response.json()["errors"][:3]
    return response.json()


def iso(moment) -> str:
    return moment.isoformat()


# ---------------------------------------------------------------------------------------------- dataset


def test_dataset_statistics(tenant, admin_client, settings):
    settings.TRAINING_RECOMMENDED_EXAMPLES = 50
    task = make_task(tenant)
    now = timezone.now()
    rows = [
        {
            "input": "x" * (10 + i),
            "output": "billing" if i % 3 else "refund",
            "timestamp": iso(now - timedelta(days=i % 2)),
        }
        for i in range(90)
    ]
    send(admin_client, task, rows)
    body = admin_client.get(f"/api/v1/tasks/{task.slug}/dataset").json()
    assert body["total"] == 90
    assert body["splits"]["train"] + body["splits"]["eval"] == 90 and body["splits"]["eval"] > 0
    assert body["sources"] == {"upload": 0, "api": 90, "feedback": 0}
    labels = {row["label"]: row for row in body["labels"]}
    assert labels["billing"]["total"] == 60 and labels["refund"]["total"] == 30
    assert labels["lost_card"]["total"] == 0  # every label of the task is listed
    assert labels["billing"]["train"] + labels["billing"]["eval"] == 60
    assert body["lengths"]["input"]["p50"] in (54, 55) and body["lengths"]["input"]["max"] == 99
    assert body["lengths"]["output"]["max"] == 7
    assert [day["count"] for day in body["per_day"]] == [45, 45]
    readiness = body["readiness"]
    assert readiness["ready"] is (readiness["train_examples"] >= 50)
    assert f"{readiness['train_examples']:,}" in readiness["message"]


def test_dataset_of_an_empty_task_and_of_a_generation_task(tenant, admin_client):
    task = make_task(tenant, kind="generation")
    body = admin_client.get(f"/api/v1/tasks/{task.slug}/dataset").json()
    assert body["total"] == 0 and body["labels"] is None and body["per_day"] == []
    assert body["lengths"]["input"]["p50"] is None
    assert body["readiness"]["ready"] is False and "add 500 more" in body["readiness"]["message"]


# ---------------------------------------------------------------------------------------------- spend


def test_spend_per_week_from_usage_and_estimated_from_lengths(tenant, admin_client):
    task = make_task(tenant, slug="tickets")  # 2.50 in / 10.00 out per million tokens
    now = timezone.now()
    last_week = now - timedelta(days=7)
    send(
        admin_client,
        task,
        [
            {
                "input": f"ticket {i}",
                "output": "billing",
                "usage": {"prompt_tokens": 1000, "completion_tokens": 10},
                "timestamp": iso(last_week),
            }
            for i in range(100)
        ],
    )
    send(
        admin_client,
        task,
        [{"input": f"{i:03d}" + "y" * 397, "output": "refund", "timestamp": iso(now)} for i in range(40)],
    )
    body = admin_client.get("/api/v1/spend?weeks=4").json()
    assert [week["week"] for week in body["weeks"]][-1] == "{}-W{:02d}".format(*now.isocalendar()[:2])
    (tickets,) = body["tasks"]
    previous, current = tickets["weeks"][-2], tickets["weeks"][-1]
    assert (previous["requests"], previous["input_tokens"], previous["output_tokens"]) == (100, 100_000, 1000)
    assert previous["spend"] == pytest.approx((100_000 * 2.5 + 1000 * 10) / 1e6)
    assert previous["estimated"] is False
    # 400 characters -> 100 tokens; "refund" (6 characters) -> 2 tokens.
    assert (current["requests"], current["input_tokens"], current["output_tokens"]) == (40, 4000, 80)
    assert current["estimated"] is True and current["estimated_share"] == 1.0 and current["partial"] is True
    assert tickets["total_spend"] == pytest.approx(previous["spend"] + current["spend"], abs=1e-4)
    assert body["estimated"] is True and "4 characters per token" in body["estimate_note"]
    assert tickets["weeks"][0]["requests"] == 0


def test_ranking_and_specialisation_score(tenant, admin_client, settings):
    settings.TRAINING_RECOMMENDED_EXAMPLES = 100
    now = timezone.now()
    stable, drifting, idle = (
        make_task(tenant, slug="stable"),
        make_task(tenant, slug="drifting"),
        make_task(tenant, slug="idle"),
    )
    for weeks_ago in (2, 1):
        at = iso(now - timedelta(days=7 * weeks_ago))
        send(
            admin_client,
            stable,
            [
                {"input": f"w{weeks_ago} question {i:04d}", "output": ["billing", "refund"][i % 2], "timestamp": at}
                for i in range(300)
            ],
        )
    send(
        admin_client,
        drifting,
        [{"input": f"short {i}", "output": "billing", "timestamp": iso(now - timedelta(days=14))} for i in range(100)],
    )
    send(
        admin_client,
        drifting,
        [
            {
                "input": f"a much longer message this week {i} " * 5,
                "output": "lost_card",
                "timestamp": iso(now - timedelta(days=7)),
            }
            for i in range(100)
        ],
    )
    body = admin_client.get("/api/v1/spend").json()
    ranking = {row["task"]: row for row in body["ranking"]}
    assert [row["task"] for row in body["ranking"]][-1] == "idle"
    assert [row["rank"] for row in body["ranking"]] == [1, 2, 3]
    spends = [row["spend"] for row in body["ranking"]]
    assert spends == sorted(spends, reverse=True)
    assert ranking["stable"]["components"]["stability"] > 0.95
    assert ranking["drifting"]["components"]["stability"] < 0.5
    assert ranking["stable"]["stability_known"] and not ranking["idle"]["stability_known"]
    assert ranking["stable"]["components"]["examples"] == 1.0
    assert ranking["stable"]["score"] > ranking["drifting"]["score"] > ranking["idle"]["score"]
    for row in body["ranking"]:
        c = row["components"]
        assert row["score"] == pytest.approx(
            round(100 * (0.4 * c["volume"] + 0.3 * c["stability"] + 0.3 * c["examples"]), 1), abs=0.11
        )
    assert body["specialise_first"] == "stable"
    assert "score = 100 x" in body["score_formula"]
    assert idle.slug in ranking


def test_spend_only_counts_the_callers_tasks(tenant, admin_client):
    """Isolation of the non-object route GET /api/v1/spend (listed in tests/isolation_routes.py)."""
    mine = make_task(tenant, slug="mine")
    send(admin_client, mine, [{"input": "ticket", "output": "billing"}])
    other = make_tenant("globex")
    theirs = make_task(other, slug="theirs")
    other_client = client_for_key(make_api_key(other)[1])
    send(other_client, theirs, [{"input": f"t{i}", "output": "billing"} for i in range(50)])

    mine_body = admin_client.get("/api/v1/spend").json()
    assert [task["task"] for task in mine_body["tasks"]] == ["mine"]
    assert mine_body["tasks"][0]["requests"] == 1
    theirs_body = other_client.get("/api/v1/spend").json()
    assert [task["task"] for task in theirs_body["tasks"]] == ["theirs"] and theirs_body["tasks"][0]["requests"] == 50
    # The tenant is the caller's, whatever the request says.
    assert [t["task"] for t in admin_client.get(f"/api/v1/spend?tenant={other.pk}").json()["tasks"]] == ["mine"]


def test_spend_parameters_and_scope(tenant, admin_client):
    assert admin_client.get("/api/v1/spend?weeks=0").status_code == 400
    assert admin_client.get("/api/v1/spend?weeks=abc").status_code == 400
    assert len(admin_client.get("/api/v1/spend?weeks=3").json()["weeks"]) == 3
    routing_only = client_for_key(make_api_key(tenant, scopes=["routing:read"])[1])
    assert routing_only.get("/api/v1/spend").status_code == 403


def test_spend_of_a_tenant_without_tasks(tenant):
    body = spend_by_task(tenant)
    assert body["tasks"] == [] and body["ranking"] == [] and body["specialise_first"] is None
