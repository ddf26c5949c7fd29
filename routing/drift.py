"""Drift: is a task's observed fallback rate clearly above what calibration predicted? Free of Django.

Calibration chose a threshold at which the small model keeps a share `coverage` of the evaluation traffic,
so the predicted fallback rate is 1 - coverage. Over a day of real traffic the observed rate is a binomial
proportion; it is flagged only when it exceeds the prediction by more than max(10 points, 3 standard errors)
and at least 50 requests were seen: 3 standard errors keeps false alarms rare (about 1 in 740 under the
prediction), and the 10-point floor ignores drifts too small to be worth a retraining run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_REQUESTS = 50
MIN_MARGIN = 0.10
STANDARD_ERRORS = 3.0
WINDOW_HOURS = 24


@dataclass(frozen=True, slots=True)
class DriftAssessment:
    requests: int
    fell_back: int
    observed_fallback_rate: float | None
    predicted_fallback_rate: float | None
    allowed_margin: float | None
    retrain_suggested: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def assess_drift(*, requests: int, fell_back: int, coverage: float | None) -> DriftAssessment:
    """Compare `fell_back / requests` with the calibrated 1 - coverage; flag a clear rise."""
    observed = fell_back / requests if requests else None
    if coverage is None:
        return DriftAssessment(requests, fell_back, observed, None, None, False, "no calibrated prediction")
    predicted = min(1.0, max(0.0, 1.0 - coverage))
    if requests < MIN_REQUESTS:
        return DriftAssessment(
            requests, fell_back, observed, predicted, None, False, f"fewer than {MIN_REQUESTS} requests in 24 h"
        )
    standard_error = math.sqrt(predicted * (1.0 - predicted) / requests)
    margin = max(MIN_MARGIN, STANDARD_ERRORS * standard_error)
    if observed - predicted > margin:
        return DriftAssessment(
            requests,
            fell_back,
            observed,
            predicted,
            margin,
            True,
            f"fallback rate {observed:.0%} over the last 24 h against {predicted:.0%} predicted by calibration",
        )
    return DriftAssessment(requests, fell_back, observed, predicted, margin, False, "within the calibrated range")
