"""Confidence threshold calibration and the saving it projects.

Routing keeps the small model's answer when its confidence >= threshold and falls back to the frontier
model otherwise. On the eval split we know, per answer, its confidence and whether it agrees with the
frontier's, so every candidate threshold gives a coverage (share of answers kept) and an agreement
(share of kept answers that agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CURVE_MAX_POINTS = 101
# The small model's cost per request as a share of the frontier model's. DESIGN.md: a fine-tuned
# 0.1-8B model costs 5-20x less per token; 0.1 is the conservative end of that range.
DEFAULT_SMALL_MODEL_COST_SHARE = 0.1


@dataclass
class Calibration:
    """The chosen threshold (None when the target cannot be met) and the coverage/agreement curve."""

    threshold: float | None
    coverage: float
    agreement_at_threshold: float | None
    achievable: bool
    message: str
    target_agreement: float
    min_coverage: float
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def calibrate_threshold(
    confidences: Sequence[float],
    agreements: Sequence[bool],
    target_agreement: float = 0.95,
    min_coverage: float = 0.05,
) -> Calibration:
    """The lowest confidence cut whose kept answers (confidence >= cut) agree at >= target_agreement.

    Candidate cuts are the distinct confidence values. Agreement is not monotone in the cut, so we scan
    cuts in ascending order and take the first one that meets the target with coverage >= min_coverage:
    the lowest such cut, which is also the one with the largest coverage among all cuts that meet the
    target. A higher cut may dip below the target again; routing only uses the chosen cut, where the
    target holds on the eval split.
    """
    if len(confidences) != len(agreements):
        raise ValueError(f"{len(confidences)} confidences but {len(agreements)} agreements")
    if not 0 <= target_agreement <= 1:
        raise ValueError("target_agreement must be between 0 and 1")
    total = len(confidences)
    if total == 0:
        return Calibration(
            None, 0.0, None, False, "no evaluation examples to calibrate on", target_agreement, min_coverage
        )

    # Walk answers from most to least confident; after each group of equal confidence, the kept set is
    # exactly "confidence >= this value".
    pairs = sorted(
        zip((float(c) for c in confidences), (bool(a) for a in agreements), strict=True), key=lambda p: -p[0]
    )
    points: list[dict[str, float]] = []  # descending threshold order while building
    kept = agreeing = 0
    index = 0
    while index < total:
        value = pairs[index][0]
        while index < total and pairs[index][0] == value:
            kept += 1
            agreeing += pairs[index][1]
            index += 1
        points.append({"threshold": value, "coverage": kept / total, "agreement": agreeing / kept})
    points.reverse()  # ascending threshold, descending coverage

    # A tiny tolerance so that, e.g., 19 of 20 counts as meeting 0.95 despite float rounding.
    chosen = next(
        (p for p in points if p["agreement"] >= target_agreement - 1e-12 and p["coverage"] >= min_coverage - 1e-12),
        None,
    )
    curve = _downsample(points, CURVE_MAX_POINTS, keep=chosen)
    if chosen is None:
        eligible = [p for p in points if p["coverage"] >= min_coverage - 1e-12]
        best = max((p["agreement"] for p in eligible), default=0.0)
        message = (
            f"target {target_agreement:.2f} cannot be met: the best agreement at >= {min_coverage:.0%} coverage "
            f"is {best:.2f}"
        )
        return Calibration(None, 0.0, None, False, message, target_agreement, min_coverage, curve)
    message = (
        f"threshold {chosen['threshold']:.4f} keeps {chosen['coverage']:.1%} of requests on the small model "
        f"at {chosen['agreement']:.1%} agreement (target {target_agreement:.0%})"
    )
    return Calibration(
        chosen["threshold"],
        chosen["coverage"],
        chosen["agreement"],
        True,
        message,
        target_agreement,
        min_coverage,
        curve,
    )


def _downsample(
    points: list[dict[str, float]], max_points: int, keep: dict[str, float] | None
) -> list[dict[str, float]]:
    """At most ~max_points evenly spaced points (first and last kept), plus the chosen point."""
    if len(points) <= max_points:
        return points
    step = (len(points) - 1) / (max_points - 1)
    indices = {round(i * step) for i in range(max_points)}
    sampled = [points[i] for i in sorted(indices)]
    if keep is not None and keep not in sampled:
        sampled.append(keep)
        sampled.sort(key=lambda p: p["threshold"])
    return sampled


@dataclass
class SavingProjection:
    """Monthly spend on the task today (all frontier) and with routing, in the price's currency."""

    frontier_monthly_cost: float
    routed_monthly_cost: float
    monthly_saving: float
    saving_share: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def projected_monthly_saving(
    monthly_requests: float,
    avg_input_tokens: float,
    avg_output_tokens: float,
    frontier_price_in_per_million: float,
    frontier_price_out_per_million: float,
    coverage: float,
    small_model_cost_share: float = DEFAULT_SMALL_MODEL_COST_SHARE,
) -> SavingProjection:
    """Projected monthly saving from routing `coverage` of the task's traffic to the small model.

    frontier cost = requests * (input tokens * input price + output tokens * output price) / 1e6.
    With routing every request first goes to the small model (costing `small_model_cost_share` of a
    frontier call) and the (1 - coverage) share that falls back also pays the frontier call, so
    routed cost = frontier cost * (small_model_cost_share + 1 - coverage) and
    saving = frontier cost * (coverage - small_model_cost_share), negative when coverage is too low to pay
    for the small model.
    """
    if not 0 <= coverage <= 1:
        raise ValueError("coverage must be between 0 and 1")
    frontier = (
        monthly_requests
        * (avg_input_tokens * frontier_price_in_per_million + avg_output_tokens * frontier_price_out_per_million)
        / 1_000_000
    )
    routed = frontier * (small_model_cost_share + 1 - coverage)
    return SavingProjection(
        frontier_monthly_cost=frontier,
        routed_monthly_cost=routed,
        monthly_saving=frontier - routed,
        saving_share=(frontier - routed) / frontier if frontier else 0.0,
    )
