"""Benchmark RoutingClient.decide(): nanoseconds per call, best of several timeit repeats.

    .venv/bin/python bench/client_decide.py [--number 200000] [--repeat 7]

Compares each case with a baseline measured in the same run (a bare dict lookup plus a float comparison,
inline and wrapped in a function call). Target: <= 5 microseconds per decide() call. Exits 1 if missed.
"""

import argparse
import os
import platform
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from routing.client import CompiledTable, RoutingClient

TARGET_NS = 5000


def rule(model_version, threshold, canary=100, shadow=False):
    return {
        "model_version": model_version,
        "model_version_id": 1,
        "base_model": "minilm-l6",
        "artifact": "/api/v1/model-versions/1/artifact",
        "threshold": threshold,
        "fallback": "gpt-4o",
        "canary": canary,
        "shadow": shadow,
    }


TABLE = {
    "version": 3,
    "tenant": "acme",
    "published_at": "2025-01-01T00:00:00Z",
    "default": {"route": "frontier"},
    "rules": {
        "ticket_classification": rule("tickets-v2", 0.83),
        "invoice_extraction": rule("invoices-v1", 0.9, canary=25),
        **{f"task_{i}": rule(f"task-{i}-v1", 0.8) for i in range(50)},  # a realistic number of other rules
    },
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the best is reported")
    args = parser.parse_args()

    client = RoutingClient("http://127.0.0.1:9", "unused", start=False)  # no network: the table is loaded below
    client.load_table(TABLE)
    compiled = CompiledTable.from_table(TABLE)
    rules = {task: r["threshold"] for task, r in TABLE["rules"].items()}

    def baseline_function(task, confidence, request_key=None):
        threshold = rules.get(task)
        return threshold is not None and confidence >= threshold

    namespace = {
        "client": client,
        "compiled": compiled,
        "rules": rules,
        "baseline_function": baseline_function,
    }
    cases = [
        ("baseline: dict lookup + float compare (inline)", "rules.get('ticket_classification') <= 0.91"),
        ("baseline: same, in a function call", "baseline_function('ticket_classification', 0.91, 'req-8c1f')"),
        ("decide: in scope, above threshold", "client.decide('ticket_classification', 0.91, 'req-8c1f')"),
        ("decide: in scope, below threshold", "client.decide('ticket_classification', 0.42, 'req-8c1f')"),
        ("decide: not in scope", "client.decide('translation', 0.91, 'req-8c1f')"),
        ("decide: canary 25%, hashed request key", "client.decide('invoice_extraction', 0.95, 'req-8c1f')"),
        ("decide: canary 25%, no request key (draw)", "client.decide('invoice_extraction', 0.95)"),
        ("decide: in scope, confidence None", "client.decide('ticket_classification', None, 'req-8c1f')"),
        ("CompiledTable.decide: above threshold", "compiled.decide('ticket_classification', 0.91, 'req-8c1f')"),
    ]
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.machine()}; "
        f"best of {args.repeat} x {args.number:,} calls"
    )
    results = {}
    for label, statement in cases:
        timings = timeit.repeat(statement, globals=namespace, number=args.number, repeat=args.repeat)
        results[label] = min(timings) / args.number * 1e9
    baseline_inline = results[cases[0][0]]
    worst = 0.0
    for label, ns in results.items():
        worst = max(worst, ns) if label.startswith("decide") else worst
        print(f"  {label:<48} {ns:8.1f} ns   {ns / baseline_inline:5.1f}x baseline")
    verdict = "OK" if worst <= TARGET_NS else "MISSED"
    print(f"slowest decide(): {worst:.1f} ns; target <= {TARGET_NS} ns: {verdict}")
    client.close(timeout=0)
    return 0 if worst <= TARGET_NS else 1


if __name__ == "__main__":
    sys.exit(main())
