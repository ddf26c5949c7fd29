"""`train()`: LoRA fine-tuning of a base model on a task's examples, then evaluation on the eval split.

A plain PyTorch loop (AdamW, linear warmup/decay, gradient accumulation, dynamic padding) rather than
transformers.Trainer: we control per-step cost, progress reporting and cancellation exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from .artifact import ENGINE_ARTIFACT_VERSION, write_artifact_metadata, write_label_map
from .evaluate import evaluate_predictions
from .spec import Example, Prediction, TrainingSpec, resolve_model_dir

# Clip the global gradient norm at 1.0: the usual guard against a rare bad batch blowing up LoRA weights
# at the high learning rates the small encoders need.
MAX_GRAD_NORM = 1.0


@dataclass
class Progress:
    """Reported after every optimizer step. `epoch` is fractional (1.5 = halfway through epoch 2)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    examples_per_second: float
    eta_seconds: float


@dataclass
class TrainingResult:
    """What a run produced. `artifact_dir` is None and `metrics` empty when the run was cancelled."""

    metrics: dict[str, Any]
    artifact_dir: str | None
    cancelled: bool
    loss_curve: list[tuple[int, float]]
    predictions: list[Prediction]
    train_count: int
    eval_count: int
    duration_seconds: float
    examples_per_second: float
    steps: int = 0
    total_steps: int = 0
    train_cpu_seconds: float = 0.0
    examples_seen: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["loss_curve"] = [list(point) for point in self.loss_curve]
        return data


def set_seed(seed: int) -> None:
    """Seed every RNG that affects training (LoRA init, head init, dropout, shuffling)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _as_examples(rows: Sequence[Example | dict[str, Any]]) -> list[Example]:
    return [row if isinstance(row, Example) else Example.from_dict(row) for row in rows]


def resolve_labels(spec: TrainingSpec, train_examples: Sequence[Example]) -> list[str]:
    """The spec's label set, or the sorted labels seen in training; every training label must be in it."""
    labels = list(spec.labels) or sorted({example.output for example in train_examples})
    known = set(labels)
    for index, example in enumerate(train_examples):
        if example.output not in known:
            raise ValueError(
                f"training example {index}: label {example.output!r} is not in the task's label set "
                f"({len(labels)} labels)"
            )
    if len(labels) < 2:
        raise ValueError("classification needs at least 2 labels")
    return labels


def default_max_new_tokens(tokenizer, train_examples: Sequence[Example], max_length: int) -> int:
    """Room for the longest training output plus a margin, never more than half the window."""
    longest = max((len(tokenizer(e.output, add_special_tokens=False)["input_ids"]) for e in train_examples), default=16)
    return max(4, min(int(longest * 1.25) + 4, max(max_length // 2, 4)))


def _linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_peft_model(spec: TrainingSpec, base):
    """Wrap the base model with LoRA; a classifier head is trained in full and saved with the adapter."""
    from peft import LoraConfig, TaskType, get_peft_model

    from . import modeling

    hp = spec.hyperparameters
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if spec.task_kind == "classification" else TaskType.CAUSAL_LM,
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        # None lets PEFT pick its per-architecture default (e.g. query/value for BERT).
        target_modules=list(spec.base_model.target_modules) or None,
        # The new classification head starts random, so it must be trained in full and saved with the adapter.
        modules_to_save=(
            ["classifier", "score", *spec.base_model.modules_to_save]
            if spec.task_kind == "classification"
            else list(spec.base_model.modules_to_save) or None
        ),
    )
    with modeling.quiet_known_deprecations():
        return get_peft_model(base, config)


def _set_adapter_base_model(artifact_dir: Path, base_model_name_or_path: str) -> None:
    path = artifact_dir / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model_name_or_path
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def train(
    spec: TrainingSpec,
    train_examples: Sequence[Example | dict[str, Any]],
    eval_examples: Sequence[Example | dict[str, Any]],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Fine-tune `spec.base_model` with LoRA, save the adapter to `spec.output_dir`, evaluate on eval_examples.

    `on_progress` gets a Progress after every optimizer step; `should_stop` is polled before every
    micro-batch and a True answer ends the run in that step with `cancelled=True` (nothing is saved).
    """
    # torch and transformers load here, not at import: the web process imports this package for specs.
    import torch

    from . import modeling

    started = time.perf_counter()
    train_examples = _as_examples(train_examples)
    eval_examples = _as_examples(eval_examples)
    if not train_examples:
        raise ValueError("no training examples")
    hp = spec.hyperparameters
    set_seed(hp.seed)
    device = modeling.select_device()

    model_dir = resolve_model_dir(spec.base_model)
    tokenizer = modeling.load_tokenizer(spec.base_model, model_dir)
    instruction = None
    max_new_tokens = None
    if spec.task_kind == "classification":
        labels = resolve_labels(spec, train_examples)
        label_index = {label: index for index, label in enumerate(labels)}
        encoded = modeling.encode_classification_examples(tokenizer, [e.input for e in train_examples], hp.max_length)
        rows = [
            {"input_ids": ids, "labels": label_index[e.output]} for ids, e in zip(encoded, train_examples, strict=True)
        ]
        base = modeling.load_classifier_base(spec.base_model, labels, model_dir)
    else:
        labels = []
        instruction = modeling.task_instruction(spec)
        rows = [
            modeling.encode_generation_example(tokenizer, instruction, e.input, e.output, hp.max_length)
            for e in train_examples
        ]
        max_new_tokens = default_max_new_tokens(tokenizer, train_examples, hp.max_length)
        base = modeling.load_causal_lm_base(spec.base_model, model_dir)
        base.config.use_cache = False  # no KV cache while training; generation turns it back on
    model = build_peft_model(spec, base).to(device)

    # --- the loop ---------------------------------------------------------------------------------
    batches_per_epoch = math.ceil(len(rows) / hp.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / hp.gradient_accumulation_steps)
    total_steps = max(1, math.ceil(steps_per_epoch * hp.epochs))
    if spec.max_steps is not None:
        total_steps = max(1, min(total_steps, spec.max_steps))
    warmup_steps = round(hp.warmup_ratio * total_steps)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate, weight_decay=hp.weight_decay
    )
    scheduler = _linear_schedule(optimizer, warmup_steps, total_steps)
    shuffler = torch.Generator().manual_seed(hp.seed)
    pad_id = tokenizer.pad_token_id
    stop = should_stop or (lambda: False)

    model.train()
    loss_curve: list[tuple[int, float]] = []
    step = 0
    examples_seen = 0
    cancelled = False
    loop_started = time.perf_counter()
    loop_cpu_started = time.process_time()
    while step < total_steps and not cancelled:
        order = torch.randperm(len(rows), generator=shuffler).tolist()
        batches = [order[i : i + hp.batch_size] for i in range(0, len(order), hp.batch_size)]
        for group_start in range(0, len(batches), hp.gradient_accumulation_steps):
            if step >= total_steps:
                break
            group = batches[group_start : group_start + hp.gradient_accumulation_steps]
            group_size = sum(len(batch) for batch in group)
            step_loss = 0.0
            for batch_indices in group:
                if stop():
                    cancelled = True
                    break
                batch = modeling.pad_batch([rows[i] for i in batch_indices], pad_id)
                batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
                with modeling.autocast_context(device):
                    loss = model(**batch).loss
                # Weight each micro-batch by its share of the step's examples, so accumulation gives the
                # same mean as one big batch even when the last micro-batch is short.
                weight = len(batch_indices) / group_size
                (loss * weight).backward()
                step_loss += loss.detach().float() * weight
            if cancelled:
                optimizer.zero_grad(set_to_none=True)
                break
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            examples_seen += group_size
            loss_value = float(step_loss)
            loss_curve.append((step, loss_value))
            if on_progress is not None:
                elapsed = time.perf_counter() - loop_started
                on_progress(
                    Progress(
                        step=step,
                        total_steps=total_steps,
                        epoch=step / steps_per_epoch,
                        loss=loss_value,
                        examples_per_second=examples_seen / elapsed if elapsed else 0.0,
                        eta_seconds=elapsed / step * (total_steps - step),
                    )
                )
    train_seconds = time.perf_counter() - loop_started
    train_cpu_seconds = time.process_time() - loop_cpu_started
    examples_per_second = examples_seen / train_seconds if train_seconds else 0.0

    result = TrainingResult(
        metrics={},
        artifact_dir=None,
        cancelled=cancelled,
        loss_curve=loss_curve,
        predictions=[],
        train_count=len(train_examples),
        eval_count=len(eval_examples),
        duration_seconds=0.0,
        examples_per_second=examples_per_second,
        steps=step,
        total_steps=total_steps,
        train_cpu_seconds=train_cpu_seconds,
        examples_seen=examples_seen,
        hyperparameters=hp.to_dict(),
    )
    if cancelled:
        result.duration_seconds = time.perf_counter() - started
        return result

    # --- save ------------------------------------------------------------------------------------
    artifact_dir = Path(spec.output_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    # The vocabulary is never changed, so the embeddings need not be saved (and "auto" would look for the
    # base model's config.json, which a GGUF-only folder lacks).
    model.save_pretrained(str(artifact_dir), save_embedding_layers=False)
    if spec.base_model.hub_id:
        # Point serving stacks at the upstream model id rather than this machine's package folder. Patched
        # after saving: save_pretrained would otherwise try to fetch that id's config from the hub.
        _set_adapter_base_model(artifact_dir, spec.base_model.hub_id)
    tokenizer.save_pretrained(str(artifact_dir))
    if labels:
        write_label_map(artifact_dir, labels)

    # --- evaluate --------------------------------------------------------------------------------
    inputs = [e.input for e in eval_examples]
    if spec.task_kind == "classification":
        predictions = modeling.classify(model, tokenizer, inputs, labels, max_length=hp.max_length)
    else:
        model.config.use_cache = True
        predictions = modeling.generate(
            model, tokenizer, inputs, instruction, max_length=hp.max_length, max_new_tokens=max_new_tokens
        )
    metrics = (
        evaluate_predictions(spec.task_kind, predictions, [e.output for e in eval_examples]) if predictions else {}
    )
    metrics["train_examples_per_second"] = examples_per_second

    result.metrics = metrics
    result.predictions = predictions
    result.artifact_dir = str(artifact_dir)
    result.duration_seconds = time.perf_counter() - started
    write_artifact_metadata(
        artifact_dir,
        engine_artifact_version=ENGINE_ARTIFACT_VERSION,
        task_kind=spec.task_kind,
        base_model=spec.base_model.to_dict(),
        labels=labels,
        output_schema=spec.output_schema,
        source_language=spec.source_language,
        target_language=spec.target_language,
        instruction=instruction,
        max_length=hp.max_length,
        max_new_tokens=max_new_tokens,
        hyperparameters=hp.to_dict(),
        metrics=metrics,
        threshold=None,
        train_count=len(train_examples),
        eval_count=len(eval_examples),
        steps=step,
        duration_seconds=result.duration_seconds,
        examples_per_second=examples_per_second,
    )
    return result
