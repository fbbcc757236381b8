"""Predictions for unlabelled images, as files: attributes (course CSV, probabilities CSV/JSON, readable text) and
the report's ``reid_test.txt``. Used by ``src.predict`` and by training's end-of-run outputs for ``test/``.

Every function takes records (``src.data.records``), runs the network its checkpoint's contract describes at the
input size it was trained at (another size only when given, with one warning), and writes atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from src.attribute_pass import attribute_pass
from src.data.attributes import HEAD_NAMES, HEADS
from src.data.images import drop_unreadable
from src.data.records import ImageRecord
from src.errors import ConfigError
from src.inference import content_hashes, embed_and_classify_records, embed_records, fastest_inference
from src.io.atomic import write_csv, write_json, write_text
from src.io.classification import probabilities_frame, readable_rows, write_classification_csv
from src.io.reid import reid_lines, write_reid_txt
from src.models.loading import load_network

log = logging.getLogger(__name__)


def predict_attributes(
    ckpt_path: str | Path, records: list[ImageRecord], output_dir: str | Path, *, height: int | None = None,
    width: int | None = None, batch_size: int = 256, num_workers: int = 2, csv_name: str = "classification_test.csv",
    attributes: Mapping | None = None, skip_corrupt: bool = False,
) -> Path:
    """Write ``csv_name`` (course format), ``attribute_probabilities.csv``, ``attributes.json`` and ``attributes.txt``.

    ``attributes``: flip test, ensemble and neighbour consensus (conf/attributes/, src/attribute_pass.py); the
    consensus needs a re-ID checkpoint. ``skip_corrupt`` leaves out (with one warning) the images that cannot be decoded.
    """
    net, contract = load_network(ckpt_path)
    def network_pass(records: list[ImageRecord], flip: bool):  # at the trained size unless another is given
        return embed_and_classify_records(net, records, *contract.input_size(height, width), batch_size, num_workers,
                                          flip, desc="predicting attributes", embeds=contract.embeds)

    passed = attribute_pass(attributes, records, contract, network_pass, images="the images to predict",
                            batch_size=batch_size, num_workers=num_workers, readable=drop_unreadable if skip_corrupt else None)
    return write_attribute_outputs(output_dir, [r.name for r in passed.records],
                                   {k: v.numpy() for k, v in passed.probabilities.items()}, csv_name)


def write_attribute_outputs(output_dir: str | Path, names: list[str], probs: dict[str, np.ndarray],
                            csv_name: str = "classification_test.csv") -> Path:
    """Course-format CSV, per-class probabilities (CSV and JSON) and the readable text, from per-head probabilities."""
    labels = np.stack([probs[name].argmax(1) for name in HEAD_NAMES], axis=1)
    output_dir = Path(output_dir)
    csv_path = write_classification_csv(output_dir / csv_name, names, labels)
    write_csv(output_dir / "attribute_probabilities.csv", probabilities_frame(names, probs), float_format="%.4f")
    write_text(output_dir / "attributes.txt", "\n".join(readable_rows(names, labels, probs)) + "\n")
    write_json(output_dir / "attributes.json", {
        name: {h.name: {c: round(float(p), 4) for c, p in zip(h.classes, probs[h.name][row])} for h in HEADS}
        for row, name in enumerate(names)
    })
    return csv_path


def reid_cut(ckpt_path: str | Path, contract, threshold: float | None, min_p_same: float) -> float:
    """The distance threshold of ``reid_test.txt`` at a calibrated P(same identity) of ``min_p_same`` (plain
    distances), from the calibration the file at ``ckpt_path`` carries (its ``contract``); a ConfigError without one."""
    from src.metrics.verification import distance_at

    if threshold is not None:
        raise ConfigError(f"threshold={threshold} and min_p_same={min_p_same}: pass one of the two cuts")
    calibration = contract.calibration("plain")
    if calibration is None:
        raise ConfigError(f"{ckpt_path}: carries no calibration, so min_p_same={min_p_same} has no distance; use a "
                          "released re-ID file (python -m src.release writes one), or pass threshold=VALUE")
    try:
        cut = distance_at(calibration, min_p_same)
    except ValueError as err:
        raise ConfigError(f"{ckpt_path}: min_p_same={min_p_same}: {err}") from None
    log.info("reid_test.txt: matches with P(same identity) >= %g, distance <= %.4f", min_p_same, cut)
    return cut


def predict_reid(
    ckpt_path: str | Path, query_records: list[ImageRecord], gallery_records: list[ImageRecord],
    output_dir: str | Path, *, height: int | None = None, width: int | None = None, threshold: float | None = None,
    batch_size: int = 256, num_workers: int = 2, metric: str | None = None, attributes: Mapping | None = None,
    skip_corrupt: bool = False, min_p_same: float | None = None,
) -> Path:
    """Write ``reid_test.txt``: for each query, the gallery images closer than the threshold (own copy excluded),
    and the gallery's attribute predictions (classification_test.csv ...) from the same network pass.

    ``threshold=None`` takes the one the threshold sweep stored in the checkpoint, ``metric=None`` the
    distance the model was validated with. ``min_p_same`` cuts instead at the distance whose calibrated P(same
    identity) is ``min_p_same`` (the calibration a released re-ID file carries: ``reid_cut``). ``attributes``: as in
    ``predict_attributes``, for the gallery's attributes (the neighbours are other gallery images).
    """
    net, contract = load_network(ckpt_path)
    if not contract.embeds:
        raise ConfigError(f"{ckpt_path}: a {contract.kind} checkpoint gives no re-ID embeddings; pass a task=reid or "
                          "task=reid_strong checkpoint")
    threshold = reid_cut(ckpt_path, contract, threshold, min_p_same) if min_p_same is not None else threshold
    threshold = contract.threshold if threshold is None else threshold
    if threshold is None:
        raise ConfigError(f"{ckpt_path}: holds no swept threshold; pass threshold=VALUE")
    height, width = contract.input_size(height, width)
    metric = metric or contract.metric
    if min_p_same is not None and metric != contract.metric:
        raise ConfigError(f"metric={metric}: the calibration of min_p_same is of {contract.metric} distances")
    query_records = drop_unreadable(query_records) if skip_corrupt else query_records
    net = fastest_inference(net, len(query_records) + len(gallery_records))  # prepared once for both passes
    options = dict(height=height, width=width, batch_size=batch_size, num_workers=num_workers)
    query_features = embed_records(net, query_records, desc="embedding queries", **options)
    gallery = attribute_pass(attributes, gallery_records, contract, lambda records, flip: embed_and_classify_records(
        net, records, flip_test=flip, desc="embedding gallery", embeds=True, **options), images="the gallery",
        metric=metric, batch_size=batch_size, num_workers=num_workers, readable=drop_unreadable if skip_corrupt else None)
    names = [r.name for r in gallery.records]
    write_attribute_outputs(output_dir, names, {k: v.numpy() for k, v in gallery.probabilities.items()})
    lines = reid_lines(query_features, gallery.embeddings, [r.name for r in query_records], names, float(threshold),
                       metric=metric, query_hashes=content_hashes(query_records),
                       gallery_hashes=content_hashes(gallery.records))
    return write_reid_txt(Path(output_dir) / "reid_test.txt", lines)
