"""Semantics of the routing decision shared by the server and the client (no Django needed)."""

import hashlib
import math

import pytest

from routing.decision import CompiledTable, Decision, decide_from_table


def make_table(**rule_overrides):
    rule = {
        "model_version": "tickets-v2",
        "model_version_id": 12,
        "base_model": "minilm-l6",
        "artifact": "/api/v1/model-versions/12/artifact",
        "threshold": 0.83,
        "fallback": "gpt-4o",
        "canary": 100,
        "shadow": False,
    }
    rule.update(rule_overrides)
    return {
        "version": 3,
        "tenant": "acme",
        "published_at": "2025-01-01T00:00:00Z",
        "default": {"route": "frontier"},
        "rules": {"ticket_classification": rule},
    }


def reference_bucket(task, request_key):
    """The contract's formula, written out independently of the implementation."""
    digest = hashlib.blake2b(f"{task}:{request_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000


def test_above_threshold_keeps_the_small_model():
    decision = decide_from_table(make_table(), "ticket_classification", 0.9, "req-1")
    assert decision == Decision("small", "tickets-v2", 0.83, "above_threshold", False)
    assert (decision.route, decision.model, decision.threshold, decision.reason, decision.shadow) == tuple(decision)


def test_confidence_equal_to_threshold_is_above():
    assert decide_from_table(make_table(), "ticket_classification", 0.83).reason == "above_threshold"


def test_below_threshold_falls_back_to_the_rules_fallback():
    decision = decide_from_table(make_table(), "ticket_classification", 0.5)
    assert decision == Decision("frontier", "gpt-4o", 0.83, "below_threshold", False)


def test_missing_confidence_is_below_threshold():
    assert decide_from_table(make_table(), "ticket_classification", None).reason == "below_threshold"


def test_not_in_scope_uses_the_default_route_and_model():
    table = make_table()
    assert decide_from_table(table, "translation", 0.99) == Decision("frontier", None, None, "not_in_scope", False)
    table["default"] = {"route": "frontier", "model": "gpt-4o-mini"}
    decision = decide_from_table(table, "translation", 0.99)
    assert (decision.route, decision.model, decision.reason) == ("frontier", "gpt-4o-mini", "not_in_scope")


def test_missing_fallback_uses_the_default_model():
    table = make_table(fallback=None)
    table["default"]["model"] = "gpt-4o-mini"
    assert decide_from_table(table, "ticket_classification", 0.1).model == "gpt-4o-mini"


def test_empty_version_zero_table_routes_everything_to_frontier():
    decision = decide_from_table({"version": 0, "default": {"route": "frontier"}, "rules": {}}, "anything", 1.0)
    assert (decision.route, decision.reason) == ("frontier", "not_in_scope")


def test_shadow_mode_answers_with_the_frontier_and_asks_for_both():
    for confidence in (0.99, 0.1, None):
        decision = decide_from_table(make_table(shadow=True), "ticket_classification", confidence, "k")
        assert decision == Decision("frontier", "gpt-4o", 0.83, "shadow", True)


def test_canary_is_deterministic_and_matches_the_contract_formula():
    table = CompiledTable.from_table(make_table(canary=30))
    for i in range(2000):
        key = f"request-{i}"
        decision = table.decide("ticket_classification", 0.99, key)
        expected_in = reference_bucket("ticket_classification", key) < 3000
        assert decision.reason == ("above_threshold" if expected_in else "canary_excluded")
        assert table.decide("ticket_classification", 0.99, key) is decision  # same key, same side


def test_canary_excluded_decision():
    decision = decide_from_table(make_table(canary=0), "ticket_classification", 0.99, "k")
    assert decision == Decision("frontier", "gpt-4o", 0.83, "canary_excluded", False)


@pytest.mark.parametrize("canary", [0, 5, 25, 50, 90, 100])
def test_canary_share_over_10k_keys(canary):
    table = CompiledTable.from_table(make_table(canary=canary))
    kept = sum(table.decide("ticket_classification", 0.99, f"user-{i}").route == "small" for i in range(10000))
    assert abs(kept / 10000 - canary / 100) < 0.02


def test_canary_with_integer_request_keys_uses_their_string_form():
    table = CompiledTable.from_table(make_table(canary=50))
    for i in range(500):
        assert table.decide("ticket_classification", 0.99, i) == table.decide("ticket_classification", 0.99, str(i))


def test_canary_without_request_key_draws_at_random_with_the_right_share():
    table = CompiledTable.from_table(make_table(canary=40))
    reasons = [table.decide("ticket_classification", 0.99).reason for _ in range(10000)]
    assert set(reasons) == {"above_threshold", "canary_excluded"}
    assert abs(reasons.count("above_threshold") / 10000 - 0.40) < 0.03


def test_canary_applies_before_shadow():
    table = CompiledTable.from_table(make_table(canary=50, shadow=True))
    reasons = {table.decide("ticket_classification", 0.99, f"k{i}").reason for i in range(200)}
    assert reasons == {"shadow", "canary_excluded"}


@pytest.mark.parametrize("bad", [-0.01, 1.0001, math.nan, math.inf, "0.9", True, [0.5]])
def test_confidence_outside_zero_one_is_rejected(bad):
    table = CompiledTable.from_table(make_table())
    with pytest.raises(ValueError):
        table.decide("ticket_classification", bad)
    with pytest.raises(ValueError):
        table.decide("not_a_task", bad)  # validated even when the task is not in scope


@pytest.mark.parametrize("ok", [0, 1, 0.0, 1.0, 0.5])
def test_confidence_bounds_and_integers_are_accepted(ok):
    CompiledTable.from_table(make_table()).decide("ticket_classification", ok)


@pytest.mark.parametrize(
    "table",
    [
        [],
        {"version": -1},
        {"version": "3"},
        {"default": {"route": "elsewhere"}},
        {"rules": []},
        make_table(threshold=None),
        make_table(threshold=1.5),
        make_table(canary=101),
        make_table(canary=-1),
    ],
)
def test_malformed_tables_are_rejected(table):
    with pytest.raises(ValueError):
        CompiledTable.from_table(table)


def test_compiled_table_metadata():
    table = CompiledTable.from_table(make_table())
    assert (table.version, table.tenant, len(table)) == (3, "acme", 1)
    assert table.tasks == frozenset({"ticket_classification"})
    assert table.raw["rules"]["ticket_classification"]["model_version_id"] == 12


def test_decision_module_does_not_need_django():
    import subprocess
    import sys

    code = "import sys, routing.decision; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
