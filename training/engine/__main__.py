"""Train without Django: `python -m training.engine --spec spec.json --train train.jsonl [--eval eval.jsonl]`.

Prints one progress line per reporting interval and, last, a JSON summary (metrics, calibration).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .calibrate import calibrate_threshold
from .data import DEFAULT_EVAL_SHARE, read_jsonl, split_by_input_hash
from .spec import TrainingSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.engine", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="TrainingSpec as JSON (base_model may be a catalogue name)")
    parser.add_argument("--train", required=True, help="JSONL rows {input, output}")
    parser.add_argument("--eval", help="JSONL eval rows; default: a deterministic hash split of --train")
    parser.add_argument("--eval-share", type=float, default=DEFAULT_EVAL_SHARE, help="share for the hash split")
    parser.add_argument("--output", help="artifact folder (overrides the spec's output_dir)")
    parser.add_argument("--target-agreement", type=float, default=0.95, help="calibration target (default 0.95)")
    parser.add_argument("--max-steps", type=int, help="cap optimizer steps (smoke runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    args = parser.parse_args(argv)

    with open(args.spec, encoding="utf-8") as stream:
        spec_data = json.load(stream)
    if args.output:
        spec_data["output_dir"] = args.output
    if args.max_steps is not None:
        spec_data["max_steps"] = args.max_steps
    if not spec_data.get("output_dir"):
        parser.error("give --output or output_dir in the spec")
    spec = TrainingSpec.from_dict(spec_data)

    train_examples = read_jsonl(args.train)
    if args.eval:
        eval_examples = read_jsonl(args.eval)
    else:
        train_examples, eval_examples = split_by_input_hash(train_examples, args.eval_share)
    print(f"train {len(train_examples)} examples, eval {len(eval_examples)}", file=sys.stderr, flush=True)

    from .artifact import write_artifact_metadata
    from .train import Progress, train

    last_print = [0.0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if args.quiet or (now - last_print[0] < 2.0 and progress.step != progress.total_steps):
            return
        last_print[0] = now
        print(
            f"step {progress.step}/{progress.total_steps} epoch {progress.epoch:.2f} loss {progress.loss:.4f} "
            f"{progress.examples_per_second:.1f} ex/s eta {progress.eta_seconds:.0f}s",
            file=sys.stderr,
            flush=True,
        )

    result = train(spec, train_examples, eval_examples, on_progress=report)
    summary = {
        "artifact_dir": result.artifact_dir,
        "cancelled": result.cancelled,
        "train_count": result.train_count,
        "eval_count": result.eval_count,
        "steps": result.steps,
        "duration_seconds": round(result.duration_seconds, 2),
        "examples_per_second": round(result.examples_per_second, 2),
        "metrics": {key: value for key, value in result.metrics.items() if key != "per_label"},
        "calibration": None,
    }
    if result.predictions:
        calibration = calibrate_threshold(
            [p.confidence for p in result.predictions],
            [bool(p.agrees) for p in result.predictions],
            args.target_agreement,
        )
        calibration_data = calibration.to_dict()
        write_artifact_metadata(result.artifact_dir, threshold=calibration.threshold, calibration=calibration_data)
        calibration_data.pop("curve")
        summary["calibration"] = calibration_data
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
