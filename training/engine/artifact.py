"""The artifact folder: a standard PEFT adapter plus our metadata, label map and a short README."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"
LABEL_MAP_FILE = "label_map.json"
ENGINE_ARTIFACT_VERSION = 1


def _write_json_atomically(path: Path, data: Any) -> None:
    # Write-then-rename so a reader (a serving worker) never sees a half-written file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True, ensure_ascii=False)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_artifact_metadata(artifact_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The artifact's metadata.json as a dict."""
    path = Path(artifact_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {artifact_dir} is not a training artifact")
    return json.loads(path.read_text(encoding="utf-8"))


def write_artifact_metadata(artifact_dir: str | os.PathLike[str], **extra: Any) -> dict[str, Any]:
    """Merge `extra` (e.g. threshold=0.87, calibration={...}) into metadata.json; returns the new metadata."""
    directory = Path(artifact_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    metadata.update(extra)
    _write_json_atomically(path, metadata)
    if "threshold" in extra and "base_model" in metadata and "task_kind" in metadata:
        write_readme(directory, metadata)  # the README states the threshold
    return metadata


def write_label_map(artifact_dir: str | os.PathLike[str], labels: list[str]) -> None:
    """label_map.json: class index <-> label, the order of the classifier head's outputs."""
    _write_json_atomically(
        Path(artifact_dir) / LABEL_MAP_FILE,
        {
            "labels": list(labels),
            "id2label": {str(index): label for index, label in enumerate(labels)},
            "label2id": {label: index for index, label in enumerate(labels)},
        },
    )


def write_readme(artifact_dir: str | os.PathLike[str], metadata: dict[str, Any]) -> None:
    """Replace PEFT's generic model card with how to load and serve this adapter."""
    base = metadata["base_model"]
    base_reference = base.get("hub_id") or base.get("source")
    kind = metadata["task_kind"]
    lines = [
        f"# LoRA adapter: {kind} on {base['name']}",
        "",
        f"Base model: `{base_reference}` ({base['architecture']}"
        + (f", GGUF file `{base['gguf_file']}` dequantised to fp32" if base.get("gguf_file") else "")
        + ").",
        "Files: `adapter_config.json` + `adapter_model.safetensors` (PEFT), tokenizer files, `metadata.json`"
        + (" and `label_map.json`." if kind == "classification" else "."),
        "",
        "## Load",
        "",
        "```python",
    ]
    if kind == "classification":
        lines += [
            "import json",
            "from peft import PeftModel",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            'label_map = json.load(open("label_map.json"))',
            "base = AutoModelForSequenceClassification.from_pretrained(",
            f'    "{base_reference}", num_labels=len(label_map["labels"]),',
            '    id2label={int(k): v for k, v in label_map["id2label"].items()}, label2id=label_map["label2id"])',
            'model = PeftModel.from_pretrained(base, ".").eval()  # also restores the classifier head',
            'tokenizer = AutoTokenizer.from_pretrained(".")',
        ]
    else:
        lines += [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base_reference}")',
            'model = PeftModel.from_pretrained(base, ".").eval()',
            'tokenizer = AutoTokenizer.from_pretrained(".")  # prompts use its chat template',
        ]
    lines += [
        "```",
        "",
        "Or, with this repository's engine: `training.engine.Predictor.load(<this folder>).predict([...])`,",
        "which returns each answer with its confidence.",
        "",
        "## Serve",
        "",
    ]
    if kind == "classification":
        lines.append(
            "Run the model above behind your service; keep an answer when its softmax confidence is >= "
            "`threshold` in metadata.json, else call the frontier model."
        )
    else:
        lines.append(
            "Serving stacks with LoRA support (vLLM `--enable-lora --lora-modules task=<this folder>`, LoRAX) "
            "load this folder on the base model above. Use greedy decoding with the instruction in "
            "metadata.json as the system message; keep an answer when its mean token probability is >= "
            "`threshold`, else call the frontier model."
        )
    threshold = metadata.get("threshold")
    lines += ["", f"Calibrated threshold: {threshold if threshold is not None else 'not calibrated yet'}.", ""]
    (Path(artifact_dir) / "README.md").write_text("\n".join(lines), encoding="utf-8")
