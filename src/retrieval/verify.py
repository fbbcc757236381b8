"""Same person or not, for two images: the distance of their embeddings, the calibrated P(same identity) the
released network carries, and the decision at a named operating point (a false accept rate measured on held-out
identities by src.release)."""

from __future__ import annotations

from pathlib import Path

from src.data.records import DataError
from src.errors import ConfigError


def decide(distance: float, calibration: dict | None, far: float) -> dict:
    """P(same identity) and the decision of one distance at the operating point of false accept rate ``far``."""
    from src.metrics.verification import p_same

    if calibration is None:
        return {"distance": distance, "p_same": None, "same": None, "far": far, "threshold": None}
    points = calibration.get("operating_points") or {}
    point = points.get(f"far_{far:g}")
    if point is None:
        known = ", ".join(k.removeprefix("far_") for k in points) or "none"
        raise ConfigError(f"far={far:g}: no operating point measured at this false accept rate (measured: {known})")
    return {"distance": distance, "p_same": float(p_same(calibration, [distance])[0]),
            "same": distance <= point["threshold"], "far": far, "threshold": point["threshold"]}


def compare_images(ckpt_path: str | Path, first: str | Path, second: str | Path, far: float = 0.01) -> dict:
    """Embed two images with a re-ID network (at its contract's size) and decide whether they show one person."""
    from src.inference import embed_files
    from src.metrics.distance import pairwise_distance
    from src.models.loading import load_network

    paths = [Path(first), Path(second)]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: image not found")
    net, contract = load_network(ckpt_path, "reid", "src.compare")
    height, width = contract.input_size(None, None)
    outputs = embed_files(net, paths, height, width, desc="embedding the two images")
    if outputs.errors:
        position, reason = next(iter(outputs.errors.items()))
        raise DataError(f"{paths[position]}: {reason}")
    embeddings = outputs.values["embedding"]
    distance = float(pairwise_distance(embeddings[:1], embeddings[1:], contract.metric)[0, 0])
    return {"images": [str(p) for p in paths], "checkpoint": str(ckpt_path), "metric": contract.metric,
            **decide(distance, contract.calibration("plain"), far)}


def describe(result: dict) -> str:
    first, second = (Path(p).name for p in result["images"])
    line = f"{first} vs {second}: {result['metric']} distance {result['distance']:.4f}"
    if result["p_same"] is None:
        return line + " (this checkpoint carries no calibration: release it with src.release for P(same identity))"
    verdict = "same person" if result["same"] else "different people"
    return (line + f", P(same identity) {result['p_same']:.3f}: {verdict} at a false accept rate of "
            f"{100 * result['far']:g}% (same when d <= {result['threshold']:.4f})")
