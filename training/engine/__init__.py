"""The ML engine: LoRA fine-tuning, evaluation, calibration and serving of small models. No Django here.

Importing this package imports torch (transformers loads on first use). Code that only needs specs,
defaults, metrics or calibration (the web process) should import the torch-free modules directly:
`training.engine.spec`, `.evaluate`, `.calibrate`, `.data`, `.artifact`.
"""

from __future__ import annotations

from .calibrate import Calibration, SavingProjection, calibrate_threshold, projected_monthly_saving
from .evaluate import (
    CHRF_AGREEMENT_CUTOFF,
    agreements,
    classification_metrics,
    corpus_chrf,
    extraction_metrics,
    sentence_chrf,
    task_metrics,
    text_metrics,
)
from .spec import (
    DEFAULT_HYPERPARAMETERS,
    KNOWN_BASE_MODELS,
    TASK_KINDS,
    BaseModel,
    Example,
    Hyperparameters,
    TrainingSpec,
    default_hyperparameters,
    resolve_model_dir,
)

from .artifact import read_artifact_metadata, write_artifact_metadata
from .data import read_jsonl, split_by_input_hash
from .modeling import Prediction
from .predict import Predictor, clear_predictor_cache
from .train import Progress, TrainingResult, train

__all__ = [
    "CHRF_AGREEMENT_CUTOFF",
    "DEFAULT_HYPERPARAMETERS",
    "KNOWN_BASE_MODELS",
    "TASK_KINDS",
    "BaseModel",
    "Calibration",
    "Example",
    "Hyperparameters",
    "Prediction",
    "Predictor",
    "Progress",
    "SavingProjection",
    "TrainingResult",
    "TrainingSpec",
    "agreements",
    "calibrate_threshold",
    "classification_metrics",
    "clear_predictor_cache",
    "corpus_chrf",
    "default_hyperparameters",
    "extraction_metrics",
    "projected_monthly_saving",
    "read_artifact_metadata",
    "read_jsonl",
    "resolve_model_dir",
    "sentence_chrf",
    "split_by_input_hash",
    "task_metrics",
    "text_metrics",
    "train",
    "write_artifact_metadata",
]
