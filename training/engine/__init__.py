"""The ML engine: LoRA fine-tuning, evaluation, calibration and serving of small models. No Django here.

Importing this package is cheap: torch, transformers and peft load on the first train() or
Predictor.load(), so the web process can use the specs, defaults, metrics and calibration freely.
"""

from __future__ import annotations

import os

# torch's CPU kernels run on OpenMP threads that by default busy-wait between parallel regions. When the
# cores are shared (a Celery worker next to web processes, tests in parallel) a spinning or descheduled
# thread stalls every barrier: a MiniLM step went from 0.3 s to 3-8 s with two threads on two busy cores.
# Passive waiting removes that cliff. It only takes effect if set before torch is first imported, so a
# worker's environment may also set it; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .artifact import read_artifact_metadata, write_artifact_metadata
from .calibrate import Calibration, SavingProjection, calibrate_threshold, projected_monthly_saving
from .data import read_jsonl, split_by_input_hash
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
from .predict import Predictor, clear_predictor_cache
from .spec import (
    DEFAULT_HYPERPARAMETERS,
    KNOWN_BASE_MODELS,
    TASK_KINDS,
    BaseModel,
    Example,
    Hyperparameters,
    Prediction,
    TrainingSpec,
    default_hyperparameters,
    resolve_model_dir,
)
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
