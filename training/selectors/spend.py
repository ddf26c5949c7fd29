"""Spend by task: what a tenant's logged traffic cost at the frontier model's prices, per ISO week, and
which task to specialise first.

Spend of a row = input tokens x the task's input price + output tokens x its output price (USD per
million tokens). Token counts come from the row's logged usage; a row without usage is estimated at
4 characters per token (rounded up) and the week's figure is marked `estimated`. The examples are the
traffic the product has seen: identical requests logged twice are stored (and counted) once.

Specialisation score (0-100), higher = specialise sooner:

    score = 100 x (0.4 x volume + 0.3 x stability + 0.3 x examples)

- volume = min(1, log10(1 + requests per active week) / log10(1 + 100,000)): 100,000 requests a week
  scores 1, 1,000 scores 0.6; the logarithm keeps one huge task from flattening the rest.
- stability = 1 - mean week-over-week drift over consecutive active weeks, where a week's drift is the
  mean of (a) the relative change of the mean input length, |a - b| / max(a, b), and (b) for
  classification the total variation distance between the two weeks' label distributions, else the
  relative change of the mean output length. A narrow task whose traffic looks the same every week is
  what a small model learns well. With fewer than two active weeks stability is unknown and counts 0.5.
- examples = min(1, training examples / 500): the data to fine-tune on is already there.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, IntegerField, Q, Sum, Value
from django.db.models.functions import Coalesce, Length, TruncWeek
from django.utils import timezone

from tenants.models import Tenant
from training.models import Example, Split, Task, TaskKind
from training.selectors.examples import recommended_examples

CHARS_PER_TOKEN = 4
DEFAULT_WEEKS = 12
MAX_WEEKS = 104
VOLUME_SATURATION = 100_000  # requests per week at which the volume component reaches 1
WEIGHTS = {"volume": 0.4, "stability": 0.3, "examples": 0.3}
UNKNOWN_STABILITY = 0.5
SCORE_FORMULA = (
    "score = 100 x (0.4 x volume + 0.3 x stability + 0.3 x examples); volume = min(1, log10(1 + requests per "
    "active week) / log10(1 + 100,000)); stability = 1 - mean week-over-week drift of the mean input length and "
    "of the label distribution (total variation; output length for non-classification tasks), 0.5 when fewer "
    "than two weeks have traffic; examples = min(1, training examples / 500)."
)
ESTIMATE_NOTE = "Rows without logged usage are estimated at 4 characters per token; such weeks are marked estimated."


def _estimated_tokens(field: str):
    # (length + 3) / 4 is integer division in PostgreSQL and SQLite: ceil(length / 4).
    return (Length(field) + Value(CHARS_PER_TOKEN - 1)) / Value(CHARS_PER_TOKEN)


def _week_start(moment: datetime) -> datetime:
    moment = timezone.localtime(moment)
    monday = moment - timedelta(days=moment.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


def _iso_label(start: datetime) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def _relative_change(a: float | None, b: float | None) -> float:
    if not a or not b:
        return 0.0 if a == b else 1.0
    return abs(a - b) / max(a, b)


def _total_variation(p: dict[str, int], q: dict[str, int]) -> float:
    p_total, q_total = sum(p.values()), sum(q.values())
    if not p_total or not q_total:
        return 1.0
    return 0.5 * sum(abs(p.get(k, 0) / p_total - q.get(k, 0) / q_total) for k in set(p) | set(q))


def _round_money(value: float) -> float:
    return round(value, 4)


def spend_by_task(tenant: Tenant | int, *, weeks: int = DEFAULT_WEEKS, now: datetime | None = None) -> dict[str, Any]:
    """Spend per task per ISO week over the last `weeks` weeks (the current one partial), and the ranking."""
    weeks = max(1, min(int(weeks), MAX_WEEKS))
    now = now or timezone.now()
    current = _week_start(now)
    starts = [current - timedelta(weeks=offset) for offset in range(weeks - 1, -1, -1)]
    tasks = list(Task.objects.for_tenant(tenant).order_by("slug"))
    examples = (
        Example.objects.for_tenant(tenant)
        .annotate(at=Coalesce("logged_at", "created_at"))
        .filter(at__gte=starts[0], at__lt=current + timedelta(weeks=1))
        .annotate(week=TruncWeek("at"))
    )
    weekly = (
        examples.values("task_id", "week")
        .annotate(
            requests=Count("id"),
            # Named apart from the model's fields, so the filter below reads the row's columns.
            estimated_rows=Count("id", filter=Q(input_tokens__isnull=True) | Q(output_tokens__isnull=True)),
            tokens_in=Sum(Coalesce("input_tokens", _estimated_tokens("input"), output_field=IntegerField())),
            tokens_out=Sum(Coalesce("output_tokens", _estimated_tokens("output"), output_field=IntegerField())),
            mean_input_chars=Avg(Length("input")),
            mean_output_chars=Avg(Length("output")),
        )
        .order_by()
    )
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    for row in weekly:
        cells[(row["task_id"], _iso_label(row["week"]))] = row
    classification_ids = [task.pk for task in tasks if task.kind == TaskKind.CLASSIFICATION]
    labels: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    if classification_ids:
        for row in (
            examples.filter(task_id__in=classification_ids)
            .values("task_id", "week", "output")
            .annotate(n=Count("id"))
            .order_by()
        ):
            labels[(row["task_id"], _iso_label(row["week"]))][row["output"]] = row["n"]
    train_counts = dict(
        Example.objects.for_tenant(tenant)
        .filter(split=Split.TRAIN)
        .values("task_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("task_id", "n")
    )

    week_labels = [_iso_label(start) for start in starts]
    result_tasks, ranking = [], []
    for task in tasks:
        price_in, price_out = float(task.price_input_per_million), float(task.price_output_per_million)
        series, active = [], []
        for start, label in zip(starts, week_labels, strict=True):
            cell = cells.get((task.pk, label))
            requests = cell["requests"] if cell else 0
            input_tokens = int(cell["tokens_in"] or 0) if cell else 0
            output_tokens = int(cell["tokens_out"] or 0) if cell else 0
            estimated_rows = cell["estimated_rows"] if cell else 0
            spend = (input_tokens * price_in + output_tokens * price_out) / 1_000_000
            series.append(
                {
                    "week": label,
                    "start": start.date().isoformat(),
                    "partial": start == current,
                    "requests": requests,
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "spend": _round_money(spend),
                    "estimated": estimated_rows > 0,
                    "estimated_share": round(estimated_rows / requests, 4) if requests else 0.0,
                }
            )
            if cell:
                active.append((label, cell))
        total_spend = sum(week["spend"] for week in series)
        total_requests = sum(week["requests"] for week in series)
        estimated = any(week["estimated"] for week in series)
        stability, drifts = _stability(task, active, labels)
        requests_per_week = total_requests / len(active) if active else 0.0
        volume = min(1.0, math.log10(1 + requests_per_week) / math.log10(1 + VOLUME_SATURATION))
        examples_share = min(1.0, train_counts.get(task.pk, 0) / recommended_examples())
        components = {
            "volume": round(volume, 4),
            "stability": round(stability if stability is not None else UNKNOWN_STABILITY, 4),
            "examples": round(examples_share, 4),
        }
        score = round(100 * sum(WEIGHTS[name] * value for name, value in components.items()), 1)
        spend_per_week = total_spend / len(active) if active else 0.0
        result_tasks.append(
            {
                "task": task.slug,
                "name": task.name,
                "kind": task.kind,
                "frontier_model": task.frontier_model,
                "price_input_per_million": price_in,
                "price_output_per_million": price_out,
                "weeks": series,
                "total_spend": _round_money(total_spend),
                "requests": total_requests,
                "estimated": estimated,
            }
        )
        ranking.append(
            {
                "task": task.slug,
                "name": task.name,
                "spend": _round_money(total_spend),
                "projected_monthly_spend": _round_money(spend_per_week * 52 / 12),
                "requests": total_requests,
                "estimated": estimated,
                "score": score,
                "components": components,
                "stability_known": stability is not None,
                "weekly_drift": [round(drift, 4) for drift in drifts],
                "training_examples": train_counts.get(task.pk, 0),
            }
        )
    ranking.sort(key=lambda row: (-row["spend"], -row["score"], row["task"]))
    for position, row in enumerate(ranking, start=1):
        row["rank"] = position
    candidates = [row for row in ranking if row["requests"]]
    first = max(candidates, key=lambda row: (row["score"], row["spend"]), default=None)
    return {
        "currency": "USD",
        "weeks": [
            {"week": label, "start": start.date().isoformat()} for start, label in zip(starts, week_labels, strict=True)
        ],
        "tasks": result_tasks,
        "ranking": ranking,
        "total_spend": _round_money(sum(task["total_spend"] for task in result_tasks)),
        "estimated": any(task["estimated"] for task in result_tasks),
        "specialise_first": first["task"] if first else None,
        "score_formula": SCORE_FORMULA,
        "estimate_note": ESTIMATE_NOTE,
    }


def _stability(
    task: Task, active: list[tuple[str, dict[str, Any]]], labels: dict[tuple[int, str], dict[str, int]]
) -> tuple[float | None, list[float]]:
    """1 - mean week-over-week drift over consecutive active weeks (None with fewer than two)."""
    drifts = []
    for (previous_label, previous), (label, cell) in itertools.pairwise(active):
        length_drift = _relative_change(previous["mean_input_chars"], cell["mean_input_chars"])
        if task.kind == TaskKind.CLASSIFICATION:
            other = _total_variation(labels.get((task.pk, previous_label), {}), labels.get((task.pk, label), {}))
        else:
            other = _relative_change(previous["mean_output_chars"], cell["mean_output_chars"])
        drifts.append((length_drift + other) / 2)
    if not drifts:
        return None, []
    return max(0.0, 1.0 - sum(drifts) / len(drifts)), drifts
