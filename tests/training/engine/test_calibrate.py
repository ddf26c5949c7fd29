"""Threshold calibration and saving projection on synthetic confidences with known answers."""

from __future__ import annotations

import pytest

from training.engine.calibrate import calibrate_threshold, projected_monthly_saving

pytestmark = pytest.mark.engine

CONFIDENCES = [0.9, 0.8, 0.7, 0.6, 0.5]


def test_lowest_threshold_that_meets_the_target():
    calibration = calibrate_threshold(CONFIDENCES, [True, True, True, False, True], target_agreement=0.95)
    assert calibration.achievable
    assert calibration.threshold == pytest.approx(0.7)
    assert calibration.coverage == pytest.approx(0.6)
    assert calibration.agreement_at_threshold == pytest.approx(1.0)
    # A lower target is met with everything kept.
    relaxed = calibrate_threshold(CONFIDENCES, [True, True, True, False, True], target_agreement=0.8)
    assert (relaxed.threshold, relaxed.coverage) == (pytest.approx(0.5), pytest.approx(1.0))


def test_non_monotone_agreement_takes_the_first_cut_from_below():
    # Agreement by cut: 0.6 -> 3/4, 0.7 -> 2/3, 0.8 -> 1/2, 0.9 -> 0/1.
    calibration = calibrate_threshold([0.9, 0.8, 0.7, 0.6], [False, True, True, True], target_agreement=0.7)
    assert calibration.threshold == pytest.approx(0.6)
    assert calibration.coverage == pytest.approx(1.0)


def test_tied_confidences_are_kept_or_dropped_together():
    calibration = calibrate_threshold([0.5, 0.5, 0.9], [True, False, True], target_agreement=1.0)
    assert calibration.threshold == pytest.approx(0.9)
    assert calibration.coverage == pytest.approx(1 / 3)


def test_exact_target_counts_as_met():
    calibration = calibrate_threshold([0.5] * 20, [True] * 19 + [False], target_agreement=0.95)
    assert calibration.achievable and calibration.coverage == pytest.approx(1.0)


def test_not_achievable_reports_the_best_agreement():
    calibration = calibrate_threshold(CONFIDENCES, [False, True, False, True, True], target_agreement=0.95)
    assert not calibration.achievable
    assert calibration.threshold is None and calibration.coverage == 0.0
    assert calibration.message == "target 0.95 cannot be met: the best agreement at >= 5% coverage is 0.60"


def test_min_coverage_excludes_tiny_confident_slices():
    confidences = [0.99] + [0.5] * 19
    agreements = [True] + [False] * 19
    assert calibrate_threshold(confidences, agreements, 0.95, min_coverage=0.05).threshold == pytest.approx(0.99)
    strict = calibrate_threshold(confidences, agreements, 0.95, min_coverage=0.1)
    assert not strict.achievable
    assert "at >= 10% coverage is 0.05" in strict.message


def test_curve_is_downsampled_and_ascending():
    confidences = [i / 1000 for i in range(1000)]
    calibration = calibrate_threshold(confidences, [i % 10 != 0 for i in range(1000)], target_agreement=0.9)
    thresholds = [point["threshold"] for point in calibration.curve]
    assert len(thresholds) <= 102
    assert thresholds == sorted(thresholds)
    assert thresholds[0] == 0.0 and thresholds[-1] == pytest.approx(0.999)
    assert any(point["threshold"] == calibration.threshold for point in calibration.curve)


def test_empty_input_is_not_achievable():
    assert not calibrate_threshold([], [], 0.95).achievable


def test_projected_monthly_saving():
    projection = projected_monthly_saving(100_000, 500, 200, 3.0, 15.0, coverage=0.6, small_model_cost_share=0.1)
    assert projection.frontier_monthly_cost == pytest.approx(450.0)
    assert projection.routed_monthly_cost == pytest.approx(225.0)
    assert projection.monthly_saving == pytest.approx(225.0)
    assert projection.saving_share == pytest.approx(0.5)
    # Coverage below the small model's cost share loses money, and says so.
    assert projected_monthly_saving(1000, 100, 100, 1, 1, coverage=0.05).monthly_saving < 0
