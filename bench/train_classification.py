"""Benchmark: MiniLM-L6 LoRA on a banking77 slice through the engine, against a bare transformers+peft loop.

    python bench/train_classification.py [--train CSV] [--eval CSV] [--baseline-steps 100]

CSV columns `text,category`. Defaults: the slices shipped in tests/fixtures (2,000 train, 500 held out).
Prints the engine's held-out accuracy, macro-F1, coverage at the target agreement, time, examples/s,
and the baseline's examples/s over `--baseline-steps` optimizer steps with the same data and settings.
Targets on 2 CPU cores: accuracy >= 0.80, coverage at 95% agreement >= 0.55, engine run <= 10 minutes,
engine/baseline throughput >= 0.9.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.engine import (  # noqa: E402
    KNOWN_BASE_MODELS,
    Example,
    TrainingSpec,
    calibrate_threshold,
    default_hyperparameters,
    resolve_model_dir,
    train,
)
from training.engine.modeling import quiet_known_deprecations  # noqa: E402

FIXTURES = REPO_ROOT / "tests" / "fixtures"


def read_csv(path: Path) -> list[Example]:
    with open(path, newline="", encoding="utf-8") as stream:
        return [Example(row["text"], row["category"]) for row in csv.DictReader(stream)]


def run_baseline(spec: TrainingSpec, examples: list[Example], labels: list[str], steps: int) -> tuple[float, float]:
    """A bare transformers + peft loop with the same settings: (examples per wall second, per CPU second)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    hp = spec.hyperparameters
    torch.manual_seed(hp.seed)
    model_dir = resolve_model_dir(spec.base_model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    with quiet_known_deprecations():
        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.SEQ_CLS,
                r=hp.lora_r,
                lora_alpha=hp.lora_alpha,
                lora_dropout=hp.lora_dropout,
                target_modules=spec.base_model.target_modules,
                modules_to_save=["classifier", *spec.base_model.modules_to_save],
            ),
        )
    label_index = {label: index for index, label in enumerate(labels)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate)
    steps_per_epoch = math.ceil(len(examples) / hp.batch_size)
    total = math.ceil(steps_per_epoch * hp.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
    model.train()
    done = 0
    seen = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    while done < steps:
        order = torch.randperm(len(examples)).tolist()
        for start in range(0, len(order), hp.batch_size):
            if done >= steps:
                break
            batch = [examples[i] for i in order[start : start + hp.batch_size]]
            encoded = tokenizer(
                [e.input for e in batch], padding=True, truncation=True, max_length=hp.max_length, return_tensors="pt"
            )
            labels_tensor = torch.tensor([label_index[e.output] for e in batch])
            loss = model(**encoded, labels=labels_tensor).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            done += 1
            seen += len(batch)
    return seen / (time.perf_counter() - started), seen / (time.process_time() - cpu_started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=FIXTURES / "banking77_train_2000.csv")
    parser.add_argument("--eval", type=Path, default=FIXTURES / "banking77_eval_500.csv")
    parser.add_argument("--baseline-steps", type=int, default=100, help="bare-loop steps to time; 0 skips it")
    parser.add_argument("--target-agreement", type=float, default=0.95)
    parser.add_argument("--max-steps", type=int, help="cap the engine's optimizer steps (throughput checks)")
    parser.add_argument("--modules-to-save", help="comma-separated modules trained in full (overrides the catalogue)")
    parser.add_argument("--output", type=Path, help="artifact folder (default: a temporary folder)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter")
    args = parser.parse_args()

    train_examples = read_csv(args.train)
    eval_examples = read_csv(args.eval)
    labels = sorted({e.output for e in train_examples} | {e.output for e in eval_examples})
    hyperparameters = default_hyperparameters("encoder").to_dict()
    for item in args.set:
        name, _, value = item.partition("=")
        hyperparameters[name] = json.loads(value)
    output = args.output or Path(tempfile.mkdtemp(prefix="bench-minilm-"))
    base_model = dataclasses.replace(KNOWN_BASE_MODELS["minilm-l6"])
    if args.modules_to_save is not None:
        base_model.modules_to_save = [name for name in args.modules_to_save.split(",") if name]
    spec = TrainingSpec(
        task_kind="classification",
        base_model=base_model,
        labels=labels,
        hyperparameters=hyperparameters,
        output_dir=str(output),
        max_steps=args.max_steps,
    )
    print(f"train {len(train_examples)}  eval {len(eval_examples)}  labels {len(labels)}")
    print("hyperparameters " + json.dumps(spec.hyperparameters.to_dict(), sort_keys=True))

    last = [0.0]

    def report(progress) -> None:
        if time.monotonic() - last[0] >= 30 or progress.step == progress.total_steps:
            last[0] = time.monotonic()
            print(
                f"  step {progress.step}/{progress.total_steps} epoch {progress.epoch:.1f} loss {progress.loss:.3f} "
                f"{progress.examples_per_second:.0f} ex/s eta {progress.eta_seconds:.0f}s",
                flush=True,
            )

    # The baseline runs before and after the engine and is averaged, so drifting load on a shared
    # machine does not favour either side. CPU-time throughput is the steadier figure under contention.
    baseline_runs = []
    if args.baseline_steps > 0:
        baseline_runs.append(run_baseline(spec, train_examples, labels, args.baseline_steps))
    started = time.perf_counter()
    result = train(spec, train_examples, eval_examples, on_progress=report)
    engine_wall = time.perf_counter() - started
    if args.baseline_steps > 0:
        baseline_runs.append(run_baseline(spec, train_examples, labels, args.baseline_steps))
    calibration = calibrate_threshold(
        [p.confidence for p in result.predictions], [bool(p.agrees) for p in result.predictions], args.target_agreement
    )
    engine_cpu_rate = result.examples_seen / result.train_cpu_seconds if result.train_cpu_seconds else 0.0
    print(f"engine: accuracy {result.metrics.get('accuracy', 0):.4f}  macro_f1 {result.metrics.get('macro_f1', 0):.4f}")
    print(
        f"engine: coverage at {args.target_agreement:.0%} agreement {calibration.coverage:.4f} "
        f"(threshold {calibration.threshold}, agreement {calibration.agreement_at_threshold})"
    )
    print(
        f"engine: {result.steps} steps, {result.examples_per_second:.1f} train ex/s ({engine_cpu_rate:.1f} per CPU s), "
        f"run {engine_wall:.1f}s wall (load + train + eval + save), training loop {result.train_cpu_seconds:.0f} CPU s"
    )
    if baseline_runs:
        wall = sum(run[0] for run in baseline_runs) / len(baseline_runs)
        cpu = sum(run[1] for run in baseline_runs) / len(baseline_runs)
        print(
            f"baseline (bare transformers+peft, {args.baseline_steps} steps, before/after): "
            f"{baseline_runs[0][0]:.1f}/{baseline_runs[-1][0]:.1f} train ex/s, {cpu:.1f} per CPU s"
        )
        print(
            f"throughput ratio engine/baseline: {result.examples_per_second / wall:.3f} wall, "
            f"{engine_cpu_rate / cpu:.3f} CPU"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"artifact: {result.artifact_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
