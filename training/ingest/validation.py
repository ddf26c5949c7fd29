"""Validation of one example against its task: label set, output schema, sizes; hash and split."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators as jsonschema_validators

from training.ingest.dedup import (
    DEFAULT_EVAL_SHARE,
    EVAL,
    TRAIN,
    input_digest,
    output_key,
    split_threshold,
)
from training.ingest.records import RawRecord, RowError, ValidRow, excerpt

TaskKind = Literal["classification", "extraction", "translation", "generation"]
TASK_KINDS = ("classification", "extraction", "translation", "generation")
# Only a handful of labels are listed in an error; beyond that the suggestion is more useful.
_LABELS_LISTED_UP_TO = 12
# Unknown labels repeat (one mislabelled category on thousands of rows), and a difflib pass over
# hundreds of labels costs ~1 ms, so suggestions are cached per task; the cap bounds memory.
_SUGGESTION_CACHE_SIZE = 4096
_WORD_SPLIT = re.compile(r"[\s_\-/.:]+")
_sha256 = hashlib.sha256


def _label_key(text: str) -> str:
    return text.strip().casefold()


@dataclass(frozen=True)
class TaskRules:
    """What a task accepts. Derived lookups (label index, compiled schema validator) are built once.

    Raises ValueError for an unusable definition (unknown kind, no labels, invalid JSON Schema,
    two labels equal after case folding).
    """

    kind: TaskKind
    labels: tuple[str, ...] = ()
    output_schema: dict[str, Any] | None = None
    max_input_chars: int = 50_000
    max_output_chars: int = 20_000
    eval_share: float = DEFAULT_EVAL_SHARE
    _label_index: dict[str, str] = field(init=False, repr=False, compare=False)
    _label_lookup: dict[str, str] = field(init=False, repr=False, compare=False)
    _label_keys: dict[str, bytes] = field(init=False, repr=False, compare=False)
    _validator: Any = field(init=False, repr=False, compare=False)
    _split_threshold: int = field(init=False, repr=False, compare=False)
    _suggestions: dict[str, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; expected one of {', '.join(TASK_KINDS)}")
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)
        index: dict[str, str] = {}
        if self.kind == "classification":
            if not labels:
                raise ValueError("a classification task needs at least one label")
            for label in labels:
                key = _label_key(label)
                if not key:
                    raise ValueError("labels must not be empty")
                if key in index and index[key] != label:
                    raise ValueError(f"labels {index[key]!r} and {label!r} differ only by case or spaces")
                index[key] = label
        validator = None
        if self.kind == "extraction":
            if self.output_schema is None:
                raise ValueError("an extraction task needs an output JSON Schema")
            validator_class = jsonschema_validators.validator_for(self.output_schema)
            try:
                validator_class.check_schema(self.output_schema)
            except jsonschema_exceptions.SchemaError as error:
                raise ValueError(f"the output schema is not a valid JSON Schema: {error.message}") from None
            validator = validator_class(self.output_schema)
        object.__setattr__(self, "_label_index", index)
        # Exact labels first (most rows carry one verbatim), then the trimmed, case-folded forms.
        object.__setattr__(self, "_label_lookup", {**index, **{label: label for label in labels}})
        object.__setattr__(self, "_label_keys", {label: output_key(label) for label in labels})
        object.__setattr__(self, "_validator", validator)
        object.__setattr__(self, "_split_threshold", split_threshold(self.eval_share))
        object.__setattr__(self, "_suggestions", {})

    def closest_label(self, output: str) -> str | None:
        """Return the label most like `output` (difflib, then shared words), or None."""
        key = _label_key(output)
        cache = self._suggestions
        if key in cache:
            return cache[key]
        suggestion = _closest_label(key, self._label_index)
        if len(cache) >= _SUGGESTION_CACHE_SIZE:
            cache.clear()
        cache[key] = suggestion
        return suggestion


def _closest_label(key: str, index: dict[str, str]) -> str | None:
    matches = difflib.get_close_matches(key, list(index), n=1, cutoff=0.6)
    if matches:
        return index[matches[0]]
    # Reordered words ('card_lost' for 'lost_or_stolen_card') defeat difflib; share of common words.
    words = {word for word in _WORD_SPLIT.split(key) if word}
    if not words:
        return None
    best, best_score = None, 0.0
    for label_key, label in index.items():
        label_words = {word for word in _WORD_SPLIT.split(label_key) if word}
        common = len(words & label_words)
        if common:
            score = common / len(words | label_words)
            if score > best_score:
                best, best_score = label, score
    return best


def validate_record(record: RawRecord, rules: TaskRules) -> ValidRow | RowError:
    """Check `record` against the task; return the accepted row (canonical output, hash, split) or why not."""
    line = record.line
    input_text = record.input
    if not input_text or input_text.isspace():
        return RowError(line, "input", "the input is empty", "", "empty_input")
    if len(input_text) > rules.max_input_chars:
        return RowError(
            line,
            "input",
            f"the input is {len(input_text):,} characters long; the task accepts at most {rules.max_input_chars:,}",
            excerpt(input_text),
            "input_too_long",
        )
    if "\x00" in input_text:
        return RowError(line, "input", "the input contains a NUL character (\\u0000)", excerpt(input_text), "nul")
    output = record.output
    kind = rules.kind
    if kind == "classification":
        label_lookup = rules._label_lookup
        label = label_lookup.get(output)  # the exact label (most rows) before trimming and folding
        if label is None:
            label = label_lookup.get(output.strip().casefold())
        if label is None:
            return _unknown_label(record, rules)
        output = label
        output_bytes = rules._label_keys[label]
    else:
        if not output or output.isspace():
            return RowError(line, "output", "the output is empty", excerpt(input_text), "empty_output")
        if len(output) > rules.max_output_chars:
            return RowError(
                line,
                "output",
                f"the output is {len(output):,} characters long; the task accepts at most {rules.max_output_chars:,}",
                excerpt(output),
                "output_too_long",
            )
        if "\x00" in output:
            return RowError(line, "output", "the output contains a NUL character (\\u0000)", excerpt(output), "nul")
        if kind == "extraction":
            checked = _check_extraction(output, line, rules)
            if type(checked) is RowError:
                return checked
            output = checked
        output_bytes = output_key(output)
    # content_hash() and assign_split() inlined, sharing one input digest: the per-row hot path.
    digest = input_digest(input_text)
    return ValidRow(
        line,
        input_text,
        output,
        _sha256(digest + output_bytes).hexdigest(),
        EVAL if int.from_bytes(digest[:8], "big") < rules._split_threshold else TRAIN,
        record.usage_input_tokens,
        record.usage_output_tokens,
        record.model,
        record.timestamp,
        record.metadata,
    )


def _unknown_label(record: RawRecord, rules: TaskRules) -> RowError:
    output = record.output
    if not output.strip():
        return RowError(record.line, "output", "the output (label) is empty", excerpt(record.input), "empty_output")
    count = len(rules.labels)
    message = f"output {excerpt(output.strip(), 80)!r} is not one of the task's {count} labels"
    suggestion = rules.closest_label(output)
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
    elif count <= _LABELS_LISTED_UP_TO:
        message += f"; the labels are {', '.join(repr(label) for label in rules.labels)}"
    return RowError(record.line, "output", message, excerpt(output), "unknown_label")


def _check_extraction(output: str, line: int, rules: TaskRules) -> str | RowError:
    """Parse the output as JSON, validate it against the schema; return it as compact JSON."""
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError as error:
        return RowError(
            line,
            "output",
            f"the output is not valid JSON ({error.msg} at character {error.pos + 1}); "
            "an extraction task needs a JSON object matching its schema",
            excerpt(output),
            "output_not_json",
        )
    validator = rules._validator
    if not validator.is_valid(value):
        error = jsonschema_exceptions.best_match(validator.iter_errors(value))
        return RowError(
            line,
            "output",
            f"the output does not match the task's schema at {error.json_path}: {excerpt(error.message, 160)}",
            excerpt(output),
            "schema_violation",
        )
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: nested deeper than it can serialise
        return RowError(line, "output", "the output JSON is nested too deeply", excerpt(output), "output_not_json")
