"""Validation of records against each task kind."""

from __future__ import annotations

import pytest

from training.ingest import RawRecord, RowError, TaskRules, ValidRow, content_hash, validate_record
from training.ingest.dedup import assign_split

BANKING_LABELS = (*tuple(f"label_{i}" for i in range(76)), "lost_or_stolen_card")
INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "number": {"type": "string"},
        "total": {"type": "number"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"amount": {"type": "number"}}}},
    },
    "required": ["number", "total"],
    "additionalProperties": False,
}


def classification(*labels: str) -> TaskRules:
    return TaskRules(kind="classification", labels=labels or ("billing", "card", "other"))


# ------------------------------------------------------------------ classification


def test_label_is_matched_after_trimming_and_case_folding():
    row = validate_record(RawRecord(3, "my card is gone", "  CARD \n"), classification())
    assert isinstance(row, ValidRow)
    assert (row.line, row.input, row.output) == (3, "my card is gone", "card")
    assert row.content_hash == content_hash("my card is gone", "card")
    assert row.split == assign_split("my card is gone")


def test_unknown_label_suggests_the_closest():
    rules = TaskRules(kind="classification", labels=BANKING_LABELS)
    error = validate_record(RawRecord(12, "I lost my card", "card_lost"), rules)
    assert isinstance(error, RowError) and (error.field, error.code) == ("output", "unknown_label")
    assert str(error) == (
        "line 12: output 'card_lost' is not one of the task's 77 labels; did you mean 'lost_or_stolen_card'?"
    )


def test_unknown_label_close_by_spelling():
    error = validate_record(RawRecord(1, "x", "biling"), classification())
    assert error.message.endswith("did you mean 'billing'?")


def test_unknown_label_lists_a_small_label_set_when_nothing_is_close():
    error = validate_record(RawRecord(1, "x", "zzz"), classification())
    assert error.message == "output 'zzz' is not one of the task's 3 labels; the labels are 'billing', 'card', 'other'"


def test_empty_label():
    error = validate_record(RawRecord(1, "x", "  "), classification())
    assert isinstance(error, RowError) and error.code == "empty_output"


def test_suggestions_are_cached():
    rules = classification()
    validate_record(RawRecord(1, "x", "biling"), rules)
    assert rules._suggestions == {"biling": "billing"}


def test_labels_differing_only_by_case_are_a_definition_error():
    with pytest.raises(ValueError, match="differ only by case"):
        TaskRules(kind="classification", labels=("Billing", "billing "))


def test_classification_needs_labels():
    with pytest.raises(ValueError):
        TaskRules(kind="classification")


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown task kind"):
        TaskRules(kind="ranking")  # type: ignore[arg-type]


# ------------------------------------------------------------------ extraction


def extraction() -> TaskRules:
    return TaskRules(kind="extraction", output_schema=INVOICE_SCHEMA)


def test_extraction_output_is_validated_and_made_compact():
    row = validate_record(RawRecord(1, "Invoice A-1, total 12.5", '{ "number": "A-1",\n "total": 12.5 }'), extraction())
    assert isinstance(row, ValidRow) and row.output == '{"number":"A-1","total":12.5}'


def test_extraction_output_not_json():
    error = validate_record(RawRecord(4, "x", "number A-1"), extraction())
    assert isinstance(error, RowError) and (error.field, error.code) == ("output", "output_not_json")
    assert error.message.startswith("the output is not valid JSON")


def test_schema_violation_names_the_json_path():
    output = '{"number": "A-1", "total": 3, "lines": [{"amount": 1}, {"amount": "two"}]}'
    error = validate_record(RawRecord(8, "x", output), extraction())
    assert isinstance(error, RowError) and error.code == "schema_violation"
    assert (
        error.message
        == "the output does not match the task's schema at $.lines[1].amount: 'two' is not of type 'number'"
    )


def test_schema_missing_property():
    error = validate_record(RawRecord(8, "x", '{"number": "A-1"}'), extraction())
    assert "'total' is a required property" in error.message


def test_validator_is_compiled_once_per_rules():
    rules = extraction()
    validator = rules._validator
    for line in range(3):
        validate_record(RawRecord(line + 1, "x", '{"number": "1", "total": 1}'), rules)
    assert rules._validator is validator


def test_invalid_schema_is_a_definition_error():
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        TaskRules(kind="extraction", output_schema={"type": "no-such-type"})


def test_extraction_needs_a_schema():
    with pytest.raises(ValueError):
        TaskRules(kind="extraction")


# ------------------------------------------------------------------ translation and generation


@pytest.mark.parametrize("kind", ["translation", "generation"])
def test_free_text_output_is_kept_as_is(kind):
    row = validate_record(RawRecord(1, "Hello", "  Bonjour\n"), TaskRules(kind=kind))
    assert isinstance(row, ValidRow) and row.output == "  Bonjour\n"


@pytest.mark.parametrize("kind", ["translation", "generation", "extraction"])
@pytest.mark.parametrize("output", ["", " \n\t"])
def test_empty_output(kind, output):
    rules = TaskRules(kind=kind, output_schema=INVOICE_SCHEMA if kind == "extraction" else None)
    error = validate_record(RawRecord(1, "Hello", output), rules)
    assert isinstance(error, RowError) and (error.field, error.code) == ("output", "empty_output")


def test_output_too_long():
    error = validate_record(RawRecord(1, "Hello", "x" * 11), TaskRules(kind="generation", max_output_chars=10))
    assert isinstance(error, RowError) and error.code == "output_too_long"


# ------------------------------------------------------------------ input rules, every kind


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_input(text):
    error = validate_record(RawRecord(2, text, "card"), classification())
    assert isinstance(error, RowError) and (error.field, error.code, error.message) == (
        "input",
        "empty_input",
        "the input is empty",
    )


def test_input_too_long():
    rules = TaskRules(kind="classification", labels=("a",), max_input_chars=10)
    assert isinstance(validate_record(RawRecord(1, "x" * 10, "a"), rules), ValidRow)
    error = validate_record(RawRecord(1, "x" * 11, "a"), rules)
    assert isinstance(error, RowError) and error.code == "input_too_long"
    assert "11 characters long; the task accepts at most 10" in error.message


def test_nul_characters_cannot_be_stored():
    assert validate_record(RawRecord(1, "a\x00b", "card"), classification()).code == "nul"
    assert validate_record(RawRecord(1, "ab", "x\x00"), TaskRules(kind="generation")).code == "nul"


def test_optional_fields_are_carried():
    record = RawRecord(5, "in", "card", 10, 2, "gpt-4o", None, {"k": 1})
    row = validate_record(record, classification())
    assert (row.usage_input_tokens, row.usage_output_tokens, row.model, row.metadata) == (10, 2, "gpt-4o", {"k": 1})


def test_eval_share_is_a_task_setting():
    rules = TaskRules(kind="generation", eval_share=1.0)
    assert validate_record(RawRecord(1, "a", "b"), rules).split == "eval"
    with pytest.raises(ValueError):
        TaskRules(kind="generation", eval_share=1.5)
