"""src/metrics/verification.py against hand-computed cases: pairs, ECE, operating points, calibration checks."""

from __future__ import annotations

import numpy as np
import pytest

from src.metrics.verification import (
    check_calibration,
    cross_camera_pairs,
    distance_at,
    expected_calibration_error,
    fit_calibration,
    identity_halves,
    operating_points,
    p_same,
    verification_report,
)


def test_pairs_leave_out_the_query_identity_on_its_own_camera_and_junk():
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    d, same = cross_camera_pairs(distmat, [7], [7, 7, 8, -1], [1], [1, 2, 1, 2])
    assert d.tolist() == [0.2, 0.3] and same.tolist() == [True, False]


def test_ece_of_a_hand_computed_case():
    # bin [0.1, 0.2): p 0.1 0.1, matches 1 of 2 -> |0.1 - 0.5| = 0.4, share 0.5; bin [0.9, 1]: p 0.9 0.9, 2 of 2 -> 0.1
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [1, 0, 1, 1], bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0


def test_calibration_never_rises_with_the_distance_and_fits_the_rates():
    rng = np.random.default_rng(0)
    same = rng.random(4000) < 0.3
    distances = np.where(same, rng.normal(0.4, 0.1, 4000), rng.normal(0.9, 0.1, 4000))
    calibration = check_calibration(fit_calibration(distances, same))
    probabilities = p_same(calibration, np.linspace(-1, 3, 500))
    assert (np.diff(probabilities) <= 1e-12).all() and probabilities[0] == pytest.approx(1) and probabilities[-1] == 0
    assert expected_calibration_error(p_same(calibration, distances), same) < 0.02


def test_operating_points_of_a_hand_computed_case():
    # negatives at 0.5 0.6 ... 1.4 (10), positives at 0.1 0.2 0.55: accepting d <= 0.2 gives FAR 0, TAR 2/3
    negatives = np.arange(0.5, 1.45, 0.1)
    distances = np.concatenate([[0.1, 0.2, 0.55], negatives])
    same = np.array([1, 1, 1] + [0] * 10, dtype=bool)
    report = operating_points(distances, same, fars=(0.001, 0.1))
    assert report["operating_points"]["far_0.001"] == {"far": 0.0, "tar": pytest.approx(2 / 3), "threshold": pytest.approx(0.2)}
    assert report["operating_points"]["far_0.1"] == {"far": 0.1, "tar": 1.0, "threshold": pytest.approx(0.55)}
    assert report["roc_auc"] == pytest.approx(1 - 1 / 30)


def test_fitted_and_measured_identities_are_disjoint():
    fit, test = identity_halves([3, 3, 5, 9, 11, 11, -1], seed=1)
    assert set(fit).isdisjoint(test) and set(fit) | set(test) == {3, 5, 9, 11}


def test_report_on_a_separable_world_is_calibrated():
    rng = np.random.default_rng(1)
    q_pids, g_pids = np.repeat(np.arange(20), 2), np.repeat(np.arange(20), 6)
    distmat = np.where(q_pids[:, None] == g_pids[None, :], rng.uniform(0, 0.5, (40, 120)), rng.uniform(0.4, 2, (40, 120)))
    report = verification_report(distmat, q_pids, g_pids, np.zeros(40), np.ones(120))
    assert report["fit_identities"] == report["test_identities"] == 10 and report["ece"] < 0.05
    assert report["roc_auc"] > 0.99 and report["operating_points"]["far_0.01"]["tar"] > 0.9


@pytest.mark.parametrize("calibration, message", [
    ([], "not a mapping"),
    ({"distance": [0.1, 0.2], "p_same": [0.9]}, "same length"),
    ({"distance": [0.2, 0.1], "p_same": [0.9, 0.1]}, "rising"),
    ({"distance": [0.1, 0.2], "p_same": [0.1, 0.9]}, "never rise"),
    ({"distance": [0.1, float("nan")], "p_same": [0.9, 0.1]}, "finite"),
    ({"distance": [0.1, 0.2], "p_same": [1.5, 0.1]}, r"\[0, 1\]"),
])
def test_a_damaged_calibration_is_refused(calibration, message):
    with pytest.raises(ValueError, match=message):
        check_calibration(calibration)


def test_distance_at_inverts_the_calibration():
    calibration = {"distance": [0.1, 0.3, 0.6, 0.8], "p_same": [0.95, 0.5, 0.5, 0.01]}
    assert distance_at(calibration, 0.75) == pytest.approx(0.1 + 0.2 * 0.2 / 0.45)  # on the first segment
    assert distance_at(calibration, 0.5) == pytest.approx(0.6)  # the end of a plateau at exactly 0.5
    for probability in (0.9, 0.7, 0.4, 0.02):
        cut = distance_at(calibration, probability)
        assert p_same(calibration, [cut])[0] == pytest.approx(probability)
        assert p_same(calibration, [cut + 1e-6])[0] < probability <= p_same(calibration, [cut - 1e-6])[0]
    assert distance_at(calibration, 0.01) == float("inf")  # every distance has p >= 0.01 (constant beyond the knots)
    with pytest.raises(ValueError, match="no distance reaches P.same identity. 0.99: the calibration's highest is 0.95"):
        distance_at(calibration, 0.99)
