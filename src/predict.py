"""Attribute prediction: ``python -m src.predict ckpt_path=PATH input=DIR_OR_IMAGE``."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from src.data.records import IMAGE_SUFFIXES, DataError, ImageRecord, list_images
from src.io.atomic import write_csv, write_json, write_text
from src.io.classification import probabilities_frame, readable_rows, write_classification_csv
from src.data.attributes import HEAD_NAMES, HEADS
from src.inference import (content_hashes, embed_and_classify_records, embed_records, ensemble_members,
                           ensemble_probabilities, fastest_inference)
from src.metrics.consensus import neighbour_consensus
from src.io.reid import reid_lines, write_reid_txt
from src.models.loading import build_from_checkpoint, load_attribute_net, read_checkpoint
from src.runtime import apply_threads


def input_records(path: str | Path) -> list[ImageRecord]:
    path = Path(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [ImageRecord(path, -1, -1)]
    if path.is_file():
        raise DataError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)})")
    return [ImageRecord(p, -1, -1) for p in list_images(path)]


def predict_folder(
    ckpt_path: str | Path, input_path: str | Path, output_dir: str | Path, *, height: int, width: int,
    batch_size: int = 256, num_workers: int = 2, csv_name: str = "classification_test.csv",
    flip_test: bool = True, consensus_k: int = 0, consensus_rerank: bool = False, ensemble=(),
    ensemble_with_main: bool = True,
) -> Path:
    """Write ``csv_name`` (course format), ``attribute_probabilities.csv`` and ``attributes.txt`` for the images.

    ``flip_test`` averages each image with its mirror; ``consensus_k > 0`` averages each image's probabilities
    with its k nearest images in the checkpoint's re-ID space (src/metrics/consensus.py; re-ID checkpoints only),
    by k-reciprocal re-ranked distance with ``consensus_rerank``.
    ``ensemble``: more attribute checkpoints whose probabilities are averaged in (``ensemble_members`` entries);
    ``ensemble_with_main=False`` leaves the checkpoint's own heads out (it then only gives the re-ID neighbours).
    """
    members = ensemble_members(ensemble, height, width)
    records = input_records(input_path)
    net, hparams = load_attribute_net(ckpt_path)
    if consensus_k and not hasattr(net, "embed_and_classify"):
        raise ValueError(f"{ckpt_path}: attribute consensus needs re-ID embeddings; pass a task=reid or task=reid_strong "
                         "checkpoint (it holds the attribute heads too) or set consensus_k=0")
    embeddings, probs = embed_and_classify_records(net, records, height, width, batch_size, num_workers, flip_test,
                                                   desc="predicting attributes")
    probs = ensemble_probabilities(records, members, probs if ensemble_with_main else None, flip_test=flip_test,
                                   batch_size=batch_size, num_workers=num_workers)
    if consensus_k:
        probs = neighbour_consensus(embeddings, probs, consensus_k, hparams.get("metric", "euclidean"), rerank=consensus_rerank)
    return write_attribute_outputs(output_dir, [r.name for r in records], {k: v.numpy() for k, v in probs.items()}, csv_name)


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


def predict_reid(
    ckpt_path: str | Path, queries: str | Path, gallery: str | Path, output_dir: str | Path, *, height: int, width: int,
    threshold: float | None = None, batch_size: int = 256, num_workers: int = 2, metric: str | None = None,
    flip_test: bool = True, consensus_k: int = 0, consensus_rerank: bool = False, ensemble=(),
    ensemble_with_main: bool = True,
) -> Path:
    """Write ``reid_test.txt``: for each query, the gallery images closer than the threshold (own copy excluded),
    and the gallery's attribute predictions (classification_test.csv ...) from the same network pass.

    ``threshold=None`` takes the one the threshold sweep stored in the checkpoint, ``metric=None`` the
    distance the model was validated with. ``flip_test`` / ``consensus_*`` / ``ensemble*``: as in ``predict_folder``, for the
    gallery's attributes (the neighbours are other gallery images).
    """
    if threshold is None:
        threshold = read_checkpoint(ckpt_path).get("retrieval_threshold")
        if threshold is None or threshold != threshold:
            raise ValueError(f"{ckpt_path}: holds no swept threshold; pass threshold=VALUE")
    members = ensemble_members(ensemble, height, width)
    net, hparams = build_from_checkpoint(ckpt_path, "net.")
    metric = metric or hparams.get("metric", "euclidean")
    query_records, gallery_records = input_records(queries), input_records(gallery)
    net = fastest_inference(net, len(query_records) + len(gallery_records))  # prepared once for both passes
    options = dict(height=height, width=width, batch_size=batch_size, num_workers=num_workers)
    query_features = embed_records(net, query_records, desc="embedding queries", **options)
    gallery_features, probabilities = embed_and_classify_records(net, gallery_records, flip_test=flip_test,
                                                                 desc="embedding gallery", **options)
    probabilities = ensemble_probabilities(gallery_records, members, probabilities if ensemble_with_main else None,
                                           flip_test=flip_test, batch_size=batch_size, num_workers=num_workers)
    probabilities = neighbour_consensus(gallery_features, probabilities, consensus_k, metric, rerank=consensus_rerank)
    write_attribute_outputs(output_dir, [r.name for r in gallery_records], {k: v.numpy() for k, v in probabilities.items()})
    lines = reid_lines(
        query_features, gallery_features, [r.name for r in query_records], [r.name for r in gallery_records],
        float(threshold), metric=metric, query_hashes=content_hashes(query_records),
        gallery_hashes=content_hashes(gallery_records),
    )
    return write_reid_txt(Path(output_dir) / "reid_test.txt", lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    apply_threads(cfg.get("torch_threads"))
    path = predict_folder(
        cfg.ckpt_path, cfg.input, cfg.paths.output_dir, height=cfg.data.height, width=cfg.data.width,
        batch_size=cfg.data.eval_batch_size, num_workers=cfg.data.num_workers,
        flip_test=cfg.attributes.flip_test, consensus_k=cfg.attributes.consensus_k,
        consensus_rerank=cfg.attributes.consensus_rerank,
        ensemble=cfg.attributes.ensemble, ensemble_with_main=cfg.attributes.ensemble_with_main,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
