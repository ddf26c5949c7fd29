"""Jobs on the packaged base models of the catalogue (minilm-l6 and smollm2-135m), through the same service
the Celery task runs. Minutes on 2 CPU cores, so marked slow; the tiny-model tests cover the logic."""

import csv
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests.factories import make_tenant
from tests.factories_jobs import make_base_model, make_examples, make_jobs_task, make_training_job
from training.engine.spec import KNOWN_BASE_MODELS
from training.models import BaseModel, JobState, ModelVersion, Split
from training.services import jobs as services
from training.services import model_versions as version_services

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _banking77(name: str, labels: set[str] | None = None) -> list[tuple[str, str]]:
    with (FIXTURES / name).open(newline="", encoding="utf-8") as source:
        rows = [(row["text"], row["category"]) for row in csv.DictReader(source)]
    return [row for row in rows if labels is None or row[1] in labels]


def _catalogue_row(name: str) -> BaseModel:
    known = KNOWN_BASE_MODELS[name]
    return make_base_model(
        name,
        source_kind=known.source_kind,
        source=known.source,
        gguf_file=known.gguf_file or "",
        architecture=known.architecture,
        task_kinds=["classification"]
        if known.architecture == "encoder"
        else ["extraction", "translation", "generation"],
        target_modules=known.target_modules,
        modules_to_save=known.modules_to_save,
        max_length=known.max_length,
    )


def test_minilm_learns_a_banking77_slice(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    tenant = make_tenant("bank")
    train = _banking77("banking77_train_2000.csv")
    top = {label for label, _ in Counter(label for _, label in train).most_common(8)}
    train = [row for row in train if row[1] in top]
    evaluation = _banking77("banking77_eval_500.csv", top)
    task = make_jobs_task(tenant, slug="banking", labels=sorted(top))
    make_examples(task, train)
    make_examples(task, evaluation, split=Split.EVAL)
    job = make_training_job(
        tenant, task=task, base_model=_catalogue_row("minilm-l6"), target_agreement=0.9,
        hyperparameters={"epochs": 6, "batch_size": 16, "learning_rate": 0.001, "max_length": 64},
    )  # fmt: skip
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert version.metrics["accuracy"] >= 0.7, version.metrics
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.examples_per_second > 0
    results = version_services.model_version_predict(model_version=version, inputs=[evaluation[0][0]])
    assert results[0]["output"] in top


def test_smollm2_trains_an_extraction_task(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    tenant = make_tenant("extract")
    task = make_jobs_task(tenant, slug="bookings", kind="extraction", output_schema={"type": "object"})
    cities = ["paris", "rome", "berlin", "madrid", "vienna", "lisbon"]
    rows = [
        (f"Book a table in {city} for {n} people", f'{{"city": "{city}", "people": {n}}}')
        for city in cities
        for n in (2, 3, 4, 5)
    ]
    make_examples(task, rows[:20])
    make_examples(task, rows[20:], split=Split.EVAL)
    job = make_training_job(
        tenant, task=task, base_model=_catalogue_row("smollm2-135m"), target_agreement=0.5,
        hyperparameters={"epochs": 1, "batch_size": 4, "gradient_accumulation_steps": 1, "max_length": 128},
    )  # fmt: skip
    assert services.training_job_run(job_id=job.pk, worker="test:1") == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert {"json_valid_rate", "field_f1", "exact_match", "agreement_rate"} <= set(version.metrics)
    assert version.eval_count == 4
