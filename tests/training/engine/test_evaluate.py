"""Metric functions on known inputs (no models)."""

from __future__ import annotations

import pytest

from training.engine.evaluate import (
    CHRF_AGREEMENT_CUTOFF,
    agreements,
    classification_metrics,
    corpus_chrf,
    extraction_metrics,
    flatten_json,
    parse_json_output,
    sentence_chrf,
    task_metrics,
)

pytestmark = pytest.mark.engine


def test_classification_metrics_on_known_inputs():
    metrics = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["per_label"]["a"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics["per_label"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert metrics["per_label"]["c"]["f1"] == pytest.approx(1.0)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_macro_f1_counts_labels_only_predicted():
    metrics = classification_metrics(["x", "a"], ["a", "a"])
    assert set(metrics["per_label"]) == {"a", "x"}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_flatten_json_paths():
    assert flatten_json({"a": {"b": [1, {"c": None}]}, "d": "x"}) == {"a.b[0]": "1", "a.b[1].c": "null", "d": '"x"'}


def test_parse_json_output_accepts_code_fence_only():
    assert parse_json_output('```json\n{"a": 1}\n```') == (True, {"a": 1})
    assert parse_json_output("sure: {}")[0] is False


def test_extraction_metrics_on_known_inputs():
    predicted = ['{"b": {"c": "x"}, "a": 2}', "not json", '{"a":1}']
    reference = ['{"a": 1, "b": {"c": "x"}}', '{"a": 1}', '{"a": 1}']
    metrics = extraction_metrics(predicted, reference)
    assert metrics["json_valid_rate"] == pytest.approx(2 / 3)
    assert metrics["field_precision"] == pytest.approx(2 / 3)
    assert metrics["field_recall"] == pytest.approx(1 / 2)
    assert metrics["field_f1"] == pytest.approx(4 / 7)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert agreements("extraction", predicted, reference) == [False, False, True]


def test_chrf_identical_and_disjoint():
    assert corpus_chrf(["the cat sat"], ["the cat sat"]) == pytest.approx(100.0)
    identical, disjoint = sentence_chrf(["das ist gut", "xyz"], ["das ist gut", "abc"])
    assert identical == pytest.approx(100.0)
    assert disjoint == pytest.approx(0.0)


def test_translation_agreement_uses_the_chrf_cutoff():
    predicted = ["the house is small", "completely unrelated words"]
    reference = ["the house is small.", "das Haus ist klein"]
    scores = sentence_chrf(predicted, reference)
    assert scores[0] >= CHRF_AGREEMENT_CUTOFF > scores[1]
    assert agreements("translation", predicted, reference) == [True, False]
    metrics = task_metrics("translation", predicted, reference)
    assert metrics["agreement_rate"] == pytest.approx(0.5)
    assert metrics["mean_sentence_chrf"] == pytest.approx(sum(scores) / 2)
    assert 0 < metrics["chrf"] < 100


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        classification_metrics(["a", "b"], ["a"])
