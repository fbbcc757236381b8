"""The one attribute pass of src.eval (so src.release), src.predict and the end-of-run predictions, set by
``conf/attributes/``: each image's probabilities from the network (with its mirror's, ``flip_test``), averaged with an
ensemble of attribute networks', then with those of its ``consensus_k`` nearest images in the checkpoint's re-ID space
(src/metrics/consensus.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from src.config import group_default
from src.inference import ensemble_members, ensemble_probabilities
from src.metrics.consensus import check_consensus_k, neighbour_consensus


@dataclass
class AttributeOutputs:
    records: list  # the images passed (the readable ones, with ``readable``)
    embeddings: object  # (N, D) re-ID embeddings; None from an attributes network
    probabilities: dict  # head -> (N, classes)
    options: dict  # the settings used, each ensemble member with its input size (eval_metrics.json)


def attribute_pass(options: Mapping | None, records: list, contract, network_pass: Callable, *, images: str,
                   metric: str | None = None, batch_size: int = 256, num_workers: int = 2,
                   readable: Callable | None = None) -> AttributeOutputs:
    """``options``: conf/attributes/ (a missing key takes its default). Before any image is decoded, ``consensus_k`` is
    checked against the checkpoint's ``contract`` and the number of ``images`` and the ensemble's checkpoints are read;
    then ``readable`` may leave images out (checked again), ``network_pass(records, flip_test)`` gives (embeddings or
    None, probabilities), the members' probabilities are averaged in, and the consensus is taken by ``metric`` (None:
    the checkpoint's)."""
    options = {**group_default("attributes"), **(options or {})}
    k, flip, with_main = int(options["consensus_k"]), bool(options["flip_test"]), bool(options["ensemble_with_main"])
    check_consensus_k(k, len(records), contract.embeds, contract.path, images)
    members = ensemble_members(options["ensemble"])
    if readable is not None:
        records = readable(records)
        check_consensus_k(k, len(records), contract.embeds, contract.path, f"the readable {images.removeprefix('the ')}")
    embeddings, probabilities = network_pass(records, flip)
    probabilities = ensemble_probabilities(records, members, probabilities if with_main else None, flip_test=flip,
                                           batch_size=batch_size, num_workers=num_workers)
    rerank = bool(options["consensus_rerank"])
    probabilities = neighbour_consensus(embeddings, probabilities, k, metric or contract.metric, rerank=rerank)
    used = {"flip_test": flip, "consensus_k": k, "consensus_rerank": rerank,
            "ensemble": [{"ckpt": c, "height": h, "width": w} for c, h, w in members], "ensemble_with_main": with_main}
    return AttributeOutputs(records, embeddings, probabilities, used)
