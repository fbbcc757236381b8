"""Same person or not: distances turned into calibrated match probabilities, and verification metrics.

A calibration is fitted on the cross-camera query-gallery pairs of one half of the evaluated identities (isotonic
regression, scikit-learn: P(same identity) never rises with the distance) and measured on the pairs of the other
half. It is plain data (two lists of floats), so it travels inside a released network file.
"""

from __future__ import annotations

import numpy as np

FARS = (0.01, 0.001)


def cross_camera_pairs(distmat, q_pids, g_pids, q_camids, g_camids, ignore_pids=(-1,)) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same identity) of every query-gallery pair the Market protocol scores: the query's identity on its
    own camera and ignored gallery identities (junk) are left out."""
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    same = q_pids[:, None] == g_pids[None, :]
    keep = ~(same & (np.asarray(q_camids)[:, None] == np.asarray(g_camids)[None, :]))
    keep &= ~np.isin(g_pids, ignore_pids)[None, :]
    keep &= np.isfinite(distmat)
    return distmat[keep], same[keep]


def identity_halves(pids, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of identities (seeded): one to fit a calibration on, one to measure it on."""
    ids = np.unique(np.asarray(pids))
    ids = ids[~np.isin(ids, (-1,))]
    order = np.random.default_rng(seed).permutation(len(ids))
    return np.sort(ids[order[: len(ids) // 2]]), np.sort(ids[order[len(ids) // 2:]])


def fit_calibration(distances, same, max_points: int = 200) -> dict:
    """Isotonic P(same | distance), non-increasing, as at most ``max_points`` (distance, probability) knots."""
    from sklearn.isotonic import IsotonicRegression

    distances, same = np.asarray(distances, dtype=np.float64), np.asarray(same, dtype=np.float64)
    if len(distances) == 0 or same.min() == same.max():
        raise ValueError("a calibration needs pairs of the same and of different identities")
    model = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(distances, same)
    knots = np.unique(np.quantile(distances, np.linspace(0, 1, max_points)))
    return {"method": "isotonic", "pairs": int(len(distances)), "positives": int(same.sum()),
            "distance": [float(x) for x in knots], "p_same": [float(p) for p in model.predict(knots)]}


def p_same(calibration: dict, distances) -> np.ndarray:
    """P(same identity) of distances by a fitted calibration (linear between its knots, constant beyond them)."""
    return np.interp(np.asarray(distances, dtype=np.float64), calibration["distance"], calibration["p_same"])


def distance_at(calibration: dict, min_p_same: float) -> float:
    """The largest distance whose P(same identity) is at least ``min_p_same`` (the inverse of ``p_same`` on its
    knots): a cut at it keeps exactly the pairs the calibration gives ``min_p_same`` or more; inf when every distance
    does; ValueError when none does."""
    d, p = np.asarray(calibration["distance"], dtype=np.float64), np.asarray(calibration["p_same"], dtype=np.float64)
    if p[0] < min_p_same:
        raise ValueError(f"no distance reaches P(same identity) {min_p_same:g}: the calibration's highest is {p[0]:.4g}")
    last = int(np.flatnonzero(p >= min_p_same)[-1])
    if last == len(p) - 1:
        return float("inf")
    return float(d[last] + (p[last] - min_p_same) / (p[last] - p[last + 1]) * (d[last + 1] - d[last]))


def expected_calibration_error(probabilities, same, bins: int = 10) -> float:
    """ECE over equal-width probability bins: sum over bins of (share of pairs) x |mean probability - match rate|."""
    probabilities, same = np.asarray(probabilities, dtype=np.float64), np.asarray(same, dtype=np.float64)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(probabilities[inside].mean() - same[inside].mean())
    return float(error)


def reliability_bins(probabilities, same, bins: int = 10) -> list[dict]:
    """Per equal-width bin: its range, pair count, mean probability and observed match rate (the diagram's points)."""
    probabilities, same = np.asarray(probabilities, dtype=np.float64), np.asarray(same, dtype=np.float64)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    return [{"low": b / bins, "high": (b + 1) / bins, "pairs": int((which == b).sum()),
             "mean_p": float(probabilities[which == b].mean()), "match_rate": float(same[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def operating_points(distances, same, fars=FARS) -> dict:
    """ROC AUC and, for each false accept rate, the true accept rate and the distance threshold (accept d <= t)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = -np.asarray(distances, dtype=np.float64)
    false_accept, true_accept, thresholds = roc_curve(same, scores)
    points = {}
    for far in fars:
        i = int(np.searchsorted(false_accept, far, side="right")) - 1
        points[f"far_{far:g}"] = {"far": float(false_accept[i]), "tar": float(true_accept[i]),
                                  "threshold": float(-thresholds[i])}
    return {"roc_auc": float(roc_auc_score(same, scores)), "operating_points": points}


def verification_report(distmat, q_pids, g_pids, q_camids, g_camids, seed: int = 0, bins: int = 10) -> dict:
    """Fit a calibration on half the query identities' pairs; measure ECE, reliability, ROC AUC and TAR at FAR on the
    other half's. Returns the report with the calibration (the fitted half's) under ``calibration``."""
    q_pids = np.asarray(q_pids)
    fit_ids, test_ids = identity_halves(q_pids, seed)
    halves = {}
    for name, ids in (("fit", fit_ids), ("test", test_ids)):
        rows = np.isin(q_pids, ids)
        halves[name] = cross_camera_pairs(np.asarray(distmat)[rows], q_pids[rows], g_pids, np.asarray(q_camids)[rows],
                                          g_camids)
    calibration = fit_calibration(*halves["fit"])
    distances, same = halves["test"]
    probabilities = p_same(calibration, distances)
    return {"fit_identities": len(fit_ids), "test_identities": len(test_ids), "test_pairs": int(len(distances)),
            "test_positives": int(same.sum()), "ece": expected_calibration_error(probabilities, same, bins),
            "ece_bins": bins, "reliability": reliability_bins(probabilities, same, bins),
            **operating_points(distances, same), "calibration": calibration}


def check_calibration(calibration) -> dict:
    """A calibration read from a file (data shared by users): knots as equal-length lists of finite floats, distances
    rising, probabilities in [0, 1] and never rising; else ValueError saying what is wrong."""
    if not isinstance(calibration, dict):
        raise ValueError("calibration: not a mapping")
    distance, probability = calibration.get("distance"), calibration.get("p_same")
    if not isinstance(distance, list) or not isinstance(probability, list) or not distance or len(distance) != len(probability):
        raise ValueError("calibration: 'distance' and 'p_same' must be non-empty lists of the same length")
    d, p = np.asarray(distance, dtype=np.float64), np.asarray(probability, dtype=np.float64)
    if not (np.isfinite(d).all() and np.isfinite(p).all()) or (np.diff(d) <= 0).any():
        raise ValueError("calibration: distances must be finite and rising")
    if (p < 0).any() or (p > 1).any() or (np.diff(p) > 1e-12).any():
        raise ValueError("calibration: probabilities must lie in [0, 1] and never rise with the distance")
    return calibration
