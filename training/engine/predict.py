"""Serving a trained artifact: base model + adapter, answers with confidences."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .artifact import read_artifact_metadata
from .spec import BaseModel, Prediction, resolve_model_dir

# A worker keeps this many models in memory; a MiniLM classifier is ~90 MB, a 135M causal LM ~550 MB.
PREDICTOR_CACHE_SIZE = 4
_cache: OrderedDict[str, Predictor] = OrderedDict()
_cache_lock = threading.Lock()


class Predictor:
    """A loaded artifact. Build with `Predictor.load(artifact_dir)`; call `predict(inputs)`."""

    def __init__(self, artifact_dir: str, metadata: dict[str, Any], model, tokenizer) -> None:
        self.artifact_dir = artifact_dir
        self.metadata = metadata
        self.model = model
        self.tokenizer = tokenizer
        self.task_kind: str = metadata["task_kind"]
        self.labels: list[str] = list(metadata.get("labels") or [])
        self.threshold: float | None = metadata.get("threshold")

    @classmethod
    def load(cls, artifact_dir: str | Path, *, use_cache: bool = True) -> Predictor:
        """Load (or reuse from this process's LRU cache) the artifact at `artifact_dir`."""
        key = str(Path(artifact_dir).resolve())
        if not use_cache:
            return cls._load_uncached(key)
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        predictor = cls._load_uncached(key)
        with _cache_lock:
            _cache[key] = predictor
            _cache.move_to_end(key)
            while len(_cache) > PREDICTOR_CACHE_SIZE:
                _cache.popitem(last=False)
        return predictor

    @classmethod
    def _load_uncached(cls, artifact_dir: str) -> Predictor:
        from peft import PeftModel

        from . import modeling

        metadata = read_artifact_metadata(artifact_dir)
        base_model = BaseModel.from_dict(metadata["base_model"])
        device = modeling.select_device()
        model_dir = resolve_model_dir(base_model)
        # The artifact's tokenizer is the one training used (incl. any added pad token and chat template).
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
        modeling.ensure_pad_token(tokenizer)
        if metadata["task_kind"] == "classification":
            base = modeling.load_classifier_base(base_model, metadata["labels"], model_dir)
        else:
            base = modeling.load_causal_lm_base(base_model, model_dir)
        with modeling.quiet_known_deprecations():
            model = PeftModel.from_pretrained(base, artifact_dir).to(device).eval()
        return cls(artifact_dir, metadata, model, tokenizer)

    def predict(self, inputs: Sequence[str], *, batch_size: int | None = None) -> list[Prediction]:
        """One Prediction (output, confidence, min_token_probability for generation) per input."""
        from . import modeling

        inputs = list(inputs)
        max_length = int(self.metadata.get("max_length") or 256)
        if self.task_kind == "classification":
            return modeling.classify(
                self.model, self.tokenizer, inputs, self.labels, max_length=max_length, batch_size=batch_size or 64
            )
        return modeling.generate(
            self.model,
            self.tokenizer,
            inputs,
            self.metadata.get("instruction") or modeling.task_instruction(self.metadata),
            max_length=max_length,
            max_new_tokens=int(self.metadata.get("max_new_tokens") or 64),
            batch_size=batch_size or 16,
        )


def clear_predictor_cache() -> None:
    """Forget all cached predictors (tests; after an artifact is replaced in place)."""
    with _cache_lock:
        _cache.clear()
