"""Model versions: the exported adapter (a streamed zip) and "try it" predictions with the routing decision."""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from training.models import ModelVersion
from training.selectors.jobs import training_setting

# The names the routing table uses (routing.client.ROUTE_SMALL / ROUTE_FRONTIER); training may not import
# routing, so they are repeated here.
ROUTE_SMALL = "small"
ROUTE_FRONTIER = "frontier"
ZIP_CHUNK_BYTES = 1024 * 1024
# Already-compressed or incompressible weights are stored; JSON, tokenizer and README files are deflated.
STORED_SUFFIXES = (".safetensors", ".bin", ".gguf")

# One prediction at a time per process: the model is shared, and a CPU-bound forward pass gains nothing
# from running two at once on the same cores.
_predict_lock = threading.Lock()


class ArtifactMissing(Exception):
    """The model version's files are not on this server (deleted, or a different artifact volume)."""


def model_version_artifact_dir(model_version: ModelVersion) -> Path:
    """The artifact folder under ARTIFACT_ROOT; refuses a path that would leave it."""
    root = Path(settings.ARTIFACT_ROOT).resolve()
    directory = (root / model_version.artifact_path).resolve()
    if root not in directory.parents:
        raise ArtifactMissing(f"artifact path {model_version.artifact_path!r} is outside the artifact root")
    if not (directory / "adapter_config.json").is_file():
        raise ArtifactMissing(f"the files of {model_version.name} are missing on this server")
    return directory


class _ZipSink:
    """A write-only, unseekable stream that zipfile writes into and the response generator drains."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def model_version_artifact_zip(model_version: ModelVersion) -> tuple[str, Iterator[bytes]]:
    """(file name, byte chunks) of a zip of the adapter folder, built while it is sent: memory stays at
    about one chunk whatever the adapter's size. Entries sit in a `<name>/` folder."""
    directory = model_version_artifact_dir(model_version)
    files = sorted(path for path in directory.rglob("*") if path.is_file() and not path.name.startswith("."))

    def chunks() -> Iterator[bytes]:
        sink = _ZipSink()
        with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
            for path in files:
                arcname = f"{model_version.name}/{path.relative_to(directory).as_posix()}"
                method = zipfile.ZIP_STORED if path.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = method
                with path.open("rb") as source, archive.open(info, "w") as target:
                    while block := source.read(ZIP_CHUNK_BYTES):
                        target.write(block)
                        if data := sink.drain():
                            yield data
                if data := sink.drain():
                    yield data
        if data := sink.drain():
            yield data

    return f"{model_version.name}.zip", chunks()


def _validate_inputs(inputs: Any) -> list[str]:
    limit = int(training_setting("TRAINING_PREDICT_MAX_INPUTS"))
    max_chars = int(training_setting("TRAINING_PREDICT_MAX_CHARS"))
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise ValidationError({"inputs": "Send a non-empty list of input texts."})
    if len(inputs) > limit:
        raise ValidationError({"inputs": f"At most {limit} inputs per request; got {len(inputs)}."})
    errors = []
    for index, text in enumerate(inputs):
        if not isinstance(text, str) or not text.strip():
            errors.append(f"inputs[{index}]: must be a non-empty string")
        elif len(text) > max_chars:
            errors.append(f"inputs[{index}]: {len(text)} characters; at most {max_chars}")
    if errors:
        raise ValidationError({"inputs": errors})
    return inputs


def model_version_predict(*, model_version: ModelVersion, inputs: Any) -> list[dict[str, Any]]:
    """Answer `inputs` with the model version: output, confidence and the route its threshold chooses.

    The model is loaded once per process and reused (the engine's Predictor cache).
    """
    texts = _validate_inputs(inputs)
    directory = model_version_artifact_dir(model_version)
    from training.engine.predict import Predictor  # torch: imported only when a prediction is asked for

    with _predict_lock:
        predictor = Predictor.load(directory)
        predictions = predictor.predict(texts)
    threshold = model_version.threshold
    fallback = model_version.task.frontier_model
    results = []
    for text, prediction in zip(texts, predictions, strict=True):
        keep = threshold is not None and prediction.confidence >= threshold
        results.append(
            {
                "input": text,
                "output": prediction.output,
                "confidence": round(prediction.confidence, 6),
                "min_token_probability": None
                if prediction.min_token_probability is None
                else round(prediction.min_token_probability, 6),
                "route": ROUTE_SMALL if keep else ROUTE_FRONTIER,
                "model": model_version.name if keep else fallback,
            }
        )
    return results
