"""Reading examples from JSONL and the deterministic train/eval split."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from .spec import Example

DEFAULT_EVAL_SHARE = 0.2


def read_jsonl(path: str | Path) -> list[Example]:
    """Rows `{"input": ..., "output": ...}`, one per line; blank lines are skipped, bad lines are an error."""
    examples = []
    with open(path, encoding="utf-8") as stream:
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from None
            if not isinstance(row, dict) or not isinstance(row.get("input"), str) or "output" not in row:
                raise ValueError(f'{path}:{line_number}: expected an object with string "input" and "output"')
            output = row["output"]
            # Extraction outputs may be given as JSON objects rather than strings.
            examples.append(Example(row["input"], output if isinstance(output, str) else json.dumps(output)))
    return examples


def eval_bucket(text: str) -> float:
    """A stable number in [0, 1) from the input text: the same input always lands in the same split."""
    digest = hashlib.sha256(text.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_input_hash(
    examples: Iterable[Example], eval_share: float = DEFAULT_EVAL_SHARE
) -> tuple[list[Example], list[Example]]:
    """(train, eval): an example goes to eval when eval_bucket(input) < eval_share."""
    train: list[Example] = []
    evaluation: list[Example] = []
    for example in examples:
        (evaluation if eval_bucket(example.input) < eval_share else train).append(example)
    return train, evaluation


def write_jsonl(path: str | Path, examples: Sequence[Example]) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        for example in examples:
            stream.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
