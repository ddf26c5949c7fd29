"""Fuzz tests through the API (hypothesis): uploads, JSON batches of examples and routing outcomes.

Whatever a client sends, the answer is a 2xx with the rows accounted for, or a 4xx in the one JSON error
envelope; never a 5xx. The tests go through Django (API key, routing, parsers, views, services, the
database); the parser-level properties live in tests/training/ingest/test_properties.py.

This module holds what the three test modules share: settings, the value strategies and the checks.
The default run keeps each test to ~60-150 examples; the `slow` variants (`-m slow`) run FUZZ_SLOW_EXAMPLES
(default 2,000) each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os

import jsonschema
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from training.ingest import assign_split, content_hash

SLOW_EXAMPLES = int(os.environ.get("FUZZ_SLOW_EXAMPLES", "2000"))


def fuzz_settings(max_examples: int) -> settings:
    # function_scoped_fixture: every example runs inside the test's one database transaction, on purpose
    # (rows of earlier examples make later ones duplicates, which the checks must account for too).
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---------------------------------------------------------------------------------------------- checks


def note(label: str) -> None:
    """Count `label` in hypothesis' statistics (--hypothesis-show-statistics); nothing outside a fuzz test."""
    with contextlib.suppress(InvalidArgument):
        event(label)


def assert_error_envelope(response) -> dict:
    """A 4xx answer carries {"error": {"status", "code", "message"}} with the response's status."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:2000])
    assert response["Content-Type"].startswith("application/json"), (response.status_code, response.content[:500])
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["status"] == response.status_code, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def assert_not_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:2000])


def assert_examples_fit_their_task(examples) -> None:
    """Stored examples are what their task accepts, with the hash and split the ingest gives them."""
    for example in examples:
        task = example.task
        assert example.input.strip() and "\x00" not in example.input, example.input
        if task.kind == "classification":
            assert example.output in task.labels, example.output
        else:
            schema = task.output_schema
            assert jsonschema.validators.validator_for(schema)(schema).is_valid(json.loads(example.output))
        assert example.content_hash == content_hash(example.input, example.output)
        assert example.split == assign_split(example.input, task.eval_share)


# ---------------------------------------------------------------------------------------------- values

# Strings that have broken parsers before: NUL, byte order marks, line separators, number look-alikes,
# lone surrogates (only reachable through JSON escapes), combining accents, spreadsheet formulas.
ODD_STRINGS = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\ufeff",
    "\ufeffinput",
    "\u2028\u2029",
    "\r",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e999",
    "-0",
    "null",
    "true",
    "{}",
    "[]",
    "\ud800",
    "x\udfffy",
    "e\u0301",
    "\U0001f600",
    "=cmd|' /C calc'!A0",
    "<script>alert(1)</script>",
    "1970-01-01T00:00:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "2024-13-45",
    "99999999999999999999999",
]
HUGE_NUMBERS = [
    0,
    -1,
    10_000_000,
    10_000_001,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    5e-324,
    4_102_444_800,
    4_102_444_799.5,
    -0.0,
]


def long_values(*specs: tuple) -> st.SearchStrategy:
    """Long strings (or bytes) built when drawn from (prefix, piece, times, suffix): hypothesis prints its
    strategies in statistics and failure reports, and a literal of thousands of characters floods them."""
    return st.sampled_from(specs).map(lambda spec: spec[0] + spec[1] * spec[2] + spec[3])


any_text = st.text(st.characters(exclude_categories=()), max_size=24)  # surrogates included
odd_text = st.sampled_from(ODD_STRINGS)
texts = st.one_of(any_text, odd_text, long_values(("", "x", 120, ""), ("", "y", 300, ""), (" ", "\u00e9", 2000, " ")))
numbers = st.one_of(
    st.sampled_from(HUGE_NUMBERS),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
# A value nested deeper than orjson serialises (254 levels) but within Python's JSON parser's reach.
deeply_nested = st.integers(min_value=250, max_value=400).map(lambda depth: json.loads("[" * depth + "]" * depth))


def json_bytes(value, mode: str) -> bytes:
    """`value` as JSON bytes: ASCII escapes (lone surrogates become \\udXXX), UTF-8, or broken UTF-8."""
    if mode == "ascii":
        return json.dumps(value, ensure_ascii=True).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


json_modes = st.sampled_from(["ascii", "ascii", "ascii", "utf8"])


# ---------------------------------------------------------------------------------------------- example rows

LABELS = ["billing", "lost_card", "refund", "card_delivery"]  # the labels of tests.factories_examples.make_task
LABEL_LIKE = [*LABELS, " BILLING ", "Refund", "refnd", "lost card", "card-delivery", "billing\x00"]
extraction_objects = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=12), texts), "amount": st.one_of(numbers, texts)},
    optional={"extra": json_values},
)
extraction_outputs = st.one_of(
    extraction_objects,
    extraction_objects.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.sampled_from(
        ['{"name": "Ann", "amount": 12.5}', '{"name": "Ann"}', '{"name": 1, "amount": "x"}', "{not json", "[]"]
    ),
)
# Mostly answers a task can accept (a label, a JSON object of the schema), then anything at all.
outputs = st.one_of(st.sampled_from(LABEL_LIKE), extraction_outputs, texts, json_values)
inputs = st.one_of(st.text(min_size=1, max_size=40), texts, json_values)

token_counts = st.one_of(numbers, scalars)
usages = st.one_of(
    st.fixed_dictionaries({"input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(0, 10**6)}),
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"), token_counts),
    ),
    json_values,
)
models = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40),
    st.sampled_from(["gpt-4o", "gpt\x00", ""]),
    long_values(*(("", "m", length, "") for length in (100, 101, 255, 256))),
    st.text(min_size=90, max_size=260),
    texts,
    json_values,
)
EDGE_TIMESTAMPS = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999",
    "0001-01-01",
    "2024-02-30",
    "2024-01-01T00:00:00Z",
    " 1735689600 ",
    "1e3",
    "-1",
    "inf",
    "nan",
    4_102_444_800,
    4_102_444_799.999999,
    -1e-300,
]
timestamps = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS),
    numbers,
    texts,
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.builds(
        lambda moment, minutes: moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).isoformat(),
        st.datetimes(),
        st.integers(min_value=-1439, max_value=1439),
    ),
)
metadatas = st.one_of(
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3),
    st.dictionaries(texts, json_values, max_size=4),
    json_values,
    deeply_nested.map(lambda deep: {"deep": deep}),
)
OPTIONAL_FIELDS = {"usage": usages, "model": models, "timestamp": timestamps, "metadata": metadatas}

roles = st.one_of(st.sampled_from(["system", "user", "assistant", "tool"]), texts, json_values)
message_contents = st.one_of(
    inputs,
    outputs,
    st.lists(
        st.one_of(texts, st.fixed_dictionaries({"type": st.just("text"), "text": texts}), json_values), max_size=3
    ),
    st.none(),
)
messages = st.one_of(
    st.fixed_dictionaries({"role": roles, "content": message_contents}, optional={"tool_calls": json_values}),
    json_values,
)
plausible_chats = st.builds(
    lambda question, answer: [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
    st.text(min_size=1, max_size=30),
    outputs,
)
requests = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "messages": st.one_of(
                plausible_chats.map(lambda chat: chat[:1]), st.lists(messages, max_size=3), json_values
            ),
            "prompt": inputs,
            "input": inputs,
            "system": st.one_of(texts, json_values),
            "model": models,
        },
    ),
    json_values,
)
responses = st.one_of(
    st.fixed_dictionaries(
        {
            "choices": st.one_of(
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries({"message": st.fixed_dictionaries({"content": outputs})}),
                        st.fixed_dictionaries({"text": outputs}),
                        json_values,
                    ),
                    max_size=2,
                ),
                json_values,
            )
        },
        optional={"usage": usages, "model": models, "created": timestamps},
    ),
    st.fixed_dictionaries({"content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": outputs}))}),
    st.fixed_dictionaries({"output_text": outputs}),
    json_values,
)
# Answers each kind of task accepts (tests.factories_examples.make_task: the labels, EXTRACTION_SCHEMA).
VALID_OUTPUTS = {
    "classification": st.sampled_from(LABELS),
    "extraction": st.fixed_dictionaries(
        {"name": st.text(max_size=12), "amount": st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6)}
    ),
}
SHAPE_KEYS = ["input", "output", "prompt", "completion", "messages", "request", "response", *OPTIONAL_FIELDS]


# Hypothesis draws the same small texts again and again ("0"), and every example runs in the same database,
# so most plausible rows would be duplicates of an earlier example's; a serial number keeps half of them new.
fresh_inputs = st.one_of(
    st.text(min_size=1, max_size=40),
    st.builds("{} #{}".format, st.text(max_size=30), st.integers(min_value=0, max_value=2**40)),
)


def plausible_rows(kind: str) -> st.SearchStrategy:
    """Rows the task accepts but perhaps for their optional fields, so that those fields' checks are reached
    often: no optional field, one, or any of them."""
    required = {"input": fresh_inputs, "output": VALID_OUTPUTS[kind]}
    return st.one_of(
        st.fixed_dictionaries(required),
        *(st.fixed_dictionaries({**required, name: values}) for name, values in OPTIONAL_FIELDS.items()),
        st.fixed_dictionaries(required, optional=OPTIONAL_FIELDS),
    )


def example_rows(kind: str) -> st.SearchStrategy:
    """Any row: four in ten plausible for the task, the others every accepted shape with any values, or junk."""
    plausible = plausible_rows(kind)
    return st.one_of(
        plausible,
        plausible,
        plausible,
        plausible,
        st.fixed_dictionaries({"input": inputs, "output": outputs}, optional=OPTIONAL_FIELDS),
        st.fixed_dictionaries({"prompt": inputs, "completion": outputs}, optional=OPTIONAL_FIELDS),
        st.fixed_dictionaries(
            {"messages": st.one_of(plausible_chats, st.lists(messages, max_size=4), json_values)},
            optional=OPTIONAL_FIELDS,
        ),
        st.fixed_dictionaries({"request": requests, "response": responses}, optional=OPTIONAL_FIELDS),
        st.dictionaries(st.one_of(st.sampled_from(SHAPE_KEYS), texts), json_values, max_size=5),
        json_values,  # not an object at all
    )
