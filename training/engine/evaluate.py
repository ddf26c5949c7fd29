"""Agreement with the reference (frontier model) outputs, on plain lists of strings.

Every function here works without a model, so the metrics are unit-tested on known inputs; `train()` and
the CLI feed them the small model's predictions on the eval split.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

# A translation or free-text answer "agrees" with the frontier model's when its sentence-level chrF is at
# least this. 50 is where chrF judgements move from "different wording/meaning" to "same content with
# small wording differences" in WMT metric studies; tenants who need stricter routing raise the
# calibration target, not this cutoff.
CHRF_AGREEMENT_CUTOFF = 50.0


def _safe_divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_divide(2 * precision * recall, precision + recall)


def classification_metrics(predicted: Sequence[str], reference: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-label precision/recall/F1/support.

    Macro-F1 averages over every label that occurs in the references or the predictions (as
    scikit-learn does), so predicting a label that never occurs is penalised.
    """
    _check_lengths(predicted, reference)
    true_positive: Counter[str] = Counter()
    predicted_count: Counter[str] = Counter(predicted)
    support: Counter[str] = Counter(reference)
    for guess, truth in zip(predicted, reference, strict=True):
        if guess == truth:
            true_positive[truth] += 1
    per_label: dict[str, dict[str, float]] = {}
    for label in sorted(set(predicted) | set(reference)):
        precision = _safe_divide(true_positive[label], predicted_count[label])
        recall = _safe_divide(true_positive[label], support[label])
        per_label[label] = {
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "support": support[label],
        }
    return {
        "accuracy": _safe_divide(sum(true_positive.values()), len(reference)),
        "macro_f1": _safe_divide(sum(row["f1"] for row in per_label.values()), len(per_label)),
        "per_label": per_label,
    }


def parse_json_output(text: str) -> tuple[bool, Any]:
    """(valid, value): strict JSON, allowing only surrounding whitespace and a ``` code fence."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        if stripped.lower().startswith("json"):
            stripped = stripped[4:]
        stripped = stripped.strip()
    try:
        return True, json.loads(stripped)
    except (ValueError, TypeError):
        return False, None


def flatten_json(value: Any, prefix: str = "") -> dict[str, str]:
    """Leaf path -> canonical JSON of the leaf: {"a": {"b": [1]}} -> {"a.b[0]": "1"}."""
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, child in value.items():
            flat.update(flatten_json(child, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, child in enumerate(value):
            flat.update(flatten_json(child, f"{prefix}[{index}]"))
        return flat
    return {prefix or "$": json.dumps(value, sort_keys=True, ensure_ascii=False)}


def extraction_metrics(predicted: Sequence[str], reference: Sequence[str]) -> dict[str, Any]:
    """JSON validity rate, field-level (leaf path + value) micro precision/recall/F1, exact match.

    An invalid prediction contributes no fields (all reference fields count as missed). Exact match
    compares parsed JSON (key order and whitespace do not matter).
    """
    _check_lengths(predicted, reference)
    valid_count = exact = true_positive = predicted_fields = reference_fields = 0
    for guess_text, truth_text in zip(predicted, reference, strict=True):
        guess_valid, guess = parse_json_output(guess_text)
        truth_valid, truth = parse_json_output(truth_text)
        valid_count += guess_valid
        guess_flat = flatten_json(guess) if guess_valid else {}
        truth_flat = flatten_json(truth) if truth_valid else {}
        predicted_fields += len(guess_flat)
        reference_fields += len(truth_flat)
        true_positive += sum(1 for path, leaf in guess_flat.items() if truth_flat.get(path) == leaf)
        exact += _extraction_agrees(guess_valid, guess, truth_valid, truth, guess_text, truth_text)
    precision = _safe_divide(true_positive, predicted_fields)
    recall = _safe_divide(true_positive, reference_fields)
    return {
        "json_valid_rate": _safe_divide(valid_count, len(predicted)),
        "field_precision": precision,
        "field_recall": recall,
        "field_f1": _f1(precision, recall),
        "exact_match": _safe_divide(exact, len(predicted)),
    }


def _extraction_agrees(
    guess_valid: bool, guess: Any, truth_valid: bool, truth: Any, guess_text: str, truth_text: str
) -> bool:
    if guess_valid and truth_valid:
        return guess == truth
    return not truth_valid and guess_text.strip() == truth_text.strip()


def sentence_chrf(predicted: Sequence[str], reference: Sequence[str]) -> list[float]:
    """chrF (0-100, sacrebleu defaults: character 6-grams, beta 2) of each prediction against its reference."""
    from sacrebleu.metrics import CHRF

    _check_lengths(predicted, reference)
    metric = CHRF()
    return [metric.sentence_score(guess, [truth]).score for guess, truth in zip(predicted, reference, strict=True)]


def corpus_chrf(predicted: Sequence[str], reference: Sequence[str]) -> float:
    """Corpus-level chrF (0-100) over all pairs."""
    from sacrebleu.metrics import CHRF

    _check_lengths(predicted, reference)
    if not predicted:
        return 0.0
    return CHRF().corpus_score(list(predicted), [list(reference)]).score


def text_metrics(predicted: Sequence[str], reference: Sequence[str]) -> dict[str, Any]:
    """chrF for translation and free generation: corpus, mean sentence score, exact match."""
    scores = sentence_chrf(predicted, reference)
    return {
        "chrf": corpus_chrf(predicted, reference),
        "mean_sentence_chrf": _safe_divide(sum(scores), len(scores)),
        "exact_match": _safe_divide(
            sum(g.strip() == t.strip() for g, t in zip(predicted, reference, strict=True)), len(reference)
        ),
    }


def agreements(
    task_kind: str, predicted: Sequence[str], reference: Sequence[str], *, chrf_cutoff: float = CHRF_AGREEMENT_CUTOFF
) -> list[bool]:
    """Per example: does the small model's answer agree with the frontier's (the routing criterion)?

    classification: same label; extraction: same parsed JSON; translation/generation: sentence chrF >= cutoff.
    """
    _check_lengths(predicted, reference)
    if task_kind == "classification":
        return [guess == truth for guess, truth in zip(predicted, reference, strict=True)]
    if task_kind == "extraction":
        result = []
        for guess_text, truth_text in zip(predicted, reference, strict=True):
            guess_valid, guess = parse_json_output(guess_text)
            truth_valid, truth = parse_json_output(truth_text)
            result.append(_extraction_agrees(guess_valid, guess, truth_valid, truth, guess_text, truth_text))
        return result
    if task_kind in ("translation", "generation"):
        return [score >= chrf_cutoff for score in sentence_chrf(predicted, reference)]
    raise ValueError(f"unknown task kind {task_kind!r}")


def task_metrics(
    task_kind: str, predicted: Sequence[str], reference: Sequence[str], agree: Sequence[bool] | None = None
) -> dict[str, Any]:
    """The task kind's headline metrics (see the functions above) plus `agreement_rate` and `count`; `agree`:
    the per-example agreements when the caller has them already."""
    if task_kind == "classification":
        metrics = classification_metrics(predicted, reference)
    elif task_kind == "extraction":
        metrics = extraction_metrics(predicted, reference)
    elif task_kind in ("translation", "generation"):
        metrics = text_metrics(predicted, reference)
    else:
        raise ValueError(f"unknown task kind {task_kind!r}")
    if agree is None:
        agree = agreements(task_kind, predicted, reference)
    metrics["agreement_rate"] = _safe_divide(sum(agree), len(agree))
    metrics["count"] = len(agree)
    return metrics


def evaluate_predictions(task_kind: str, predictions: Sequence[Any], reference: Sequence[str]) -> dict[str, Any]:
    """Fill each Prediction's `agrees` in place and return the task metrics plus mean confidence."""
    outputs = [prediction.output for prediction in predictions]
    agree = agreements(task_kind, outputs, reference)
    for prediction, agrees in zip(predictions, agree, strict=True):
        prediction.agrees = agrees
    metrics = task_metrics(task_kind, outputs, reference, agree)
    metrics["mean_confidence"] = _safe_divide(sum(p.confidence for p in predictions), len(predictions))
    return metrics


def _check_lengths(predicted: Sequence[Any], reference: Sequence[Any]) -> None:
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predictions but {len(reference)} references")
