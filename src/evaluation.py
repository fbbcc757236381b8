"""Evaluating a checkpoint on a labelled split (the room under ``src.eval`` and ``src.release``): records of the
split, the network's outputs (cached by checkpoint bytes and images), ranking metrics, verification, attribute
accuracy, and the files a re-ID user looks at (rankings.csv, rank_lists.png, reliability.png, distmat.npy).

``split=all`` evaluates every identity of the folder; ``split=val`` only the identities that training held out
(the same seeded identity split from ``data.val_ratio`` and ``data.split_seed``); ``split=train`` the others.
Queries are one seeded image per (identity, camera), the gallery is everything else (the validation protocol).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config import check_ranges
from src.errors import ConfigError
from src.io.atomic import atomic_path, write_json
from src.runtime import apply_threads

if TYPE_CHECKING:  # the libraries load inside the functions: --help and config errors answer at once
    from src.models.loading import Contract

log = logging.getLogger(__name__)

DEFAULT_SPLIT = {"val_ratio": 0.2, "split_seed": 0}  # conf/data/default.yaml, for checkpoints that record no split


def split_settings(contract: Contract, val_ratio, split_seed, split: str) -> dict:
    """The identity split to evaluate on: the checkpoint's. A different ``data.val_ratio``/``data.split_seed`` given
    for ``split=val|train`` is refused (it would count training identities as held out)."""
    recorded = contract.split
    given = {"val_ratio": val_ratio, "split_seed": split_seed}
    if recorded is None:
        return {k: (DEFAULT_SPLIT[k] if v is None else v) for k, v in given.items()}
    settings = {k: recorded[k] for k in given}
    conflicts = [f"data.{k}={v} (the checkpoint's: {recorded[k]})" for k, v in given.items()
                 if v is not None and float(v) != float(recorded[k])]
    if conflicts and split != "all":
        raise ConfigError(f"{contract.path}: split={split} evaluates the identities this checkpoint held out, but "
                          + ", ".join(conflicts) + " would give another split; leave them out to use the checkpoint's")
    return {k: (v if v is not None else settings[k]) for k, v in given.items()}


def evaluation_records(datamodule, split: str, contract: Contract | None = None) -> list:
    from src.data.records import DataError
    from src.data.splits import split_contract

    records = datamodule.eval_records(split)
    if split == "all":
        return records
    if contract is not None and contract.split is not None:
        val_records = records if split == "val" else datamodule.eval_records("val")
        digest = split_contract(val_records, datamodule.val_ratio, datamodule.split_seed)["val_ids_sha256"]
        if digest != contract.split["val_ids_sha256"]:
            raise DataError(f"{datamodule.root}: the identities held out by split_seed={datamodule.split_seed} "
                            f"val_ratio={datamodule.val_ratio} are not the {contract.split['num_val_ids']} the checkpoint "
                            f"{contract.path} was validated on (another dataset or folder?)")
    return records


def network_outputs(cfg: DictConfig, net, contract: Contract, records: list, datamodule, flip_test: bool):
    """(embeddings or None, attribute probabilities) of the records, computed once per checkpoint bytes, images
    (path, size, mtime), input size and flip setting, and kept in ``cache_dir``: the jobs of a sweep over what
    comes after the network (re-ranking, query expansion, consensus) embed once."""
    import torch

    from src.inference import classify_loader, loader_of
    from src.models.feature_cache import cache_key

    loader = loader_of(records, datamodule.height, datamodule.width, datamodule.eval_batch_size, datamodule.num_workers)
    if not cfg.get("cache_dir"):
        return classify_loader(net, loader, flip_test, embeds=contract.embeds, desc="evaluating")
    key = cache_key(cfg.ckpt_path, records, datamodule.height, datamodule.width)
    path = Path(cfg.cache_dir) / f"outputs-{key}-flip{int(flip_test)}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored["names"] == [str(r.path) for r in records]:
            log.info("network outputs of %d images read from %s", len(records), path)
            return stored["embeddings"], stored["probabilities"]
    embeddings, probabilities = classify_loader(net, loader, flip_test, embeds=contract.embeds, desc="evaluating")
    with atomic_path(path) as tmp:
        torch.save({"names": [str(r.path) for r in records], "embeddings": embeddings, "probabilities": probabilities}, tmp)
    return embeddings, probabilities


def evaluate(cfg: DictConfig) -> dict:
    check_ranges(cfg)  # before the libraries load: a config error answers at once
    import numpy as np
    import torch

    from src.attribute_pass import attribute_pass
    from src.data.attributes import HEAD_NAMES
    from src.data.datamodule import MarketDataModule
    from src.data.splits import query_gallery_split
    from src.metrics.postprocess import retrieval_distances
    from src.metrics.rank import evaluate_rank
    from src.models.loading import load_network

    apply_threads(cfg.get("torch_threads"))
    split = cfg.get("split", "all")
    if split not in MarketDataModule.SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(MarketDataModule.SPLITS)}")
    net, contract = load_network(cfg.ckpt_path, cfg.get("checkpoint_kind"), f"task={cfg.get('task_name')}")
    height, width = contract.input_size(cfg.data.get("height"), cfg.data.get("width"))
    settings = split_settings(contract, cfg.data.get("val_ratio"), cfg.data.get("split_seed"), split)
    # the checkpoint's size and split, passed down (cfg.data keeps what the user gave)
    datamodule = instantiate(cfg.data, height=height, width=width, **settings)
    records = evaluation_records(datamodule, split, contract)
    metric = cfg.get("metric") or contract.metric
    passed = attribute_pass(cfg.get("attributes"), records, contract, lambda records, flip: network_outputs(
        cfg, net, contract, records, datamodule, flip), images=f"the evaluated split (split={split})", metric=metric,
        batch_size=datamodule.eval_batch_size, num_workers=datamodule.num_workers)
    embeddings, probabilities = passed.embeddings, passed.probabilities
    labels = torch.tensor([r.labels for r in records])
    accuracy = {name: float((probabilities[name].argmax(1) == labels[:, i]).float().mean()) for i, name in enumerate(HEAD_NAMES)}
    balanced = balanced_accuracy(probabilities, labels)
    result: dict = {"checkpoint": str(cfg.ckpt_path), "data_root": str(datamodule.source.root), "split": split,
                    "input_size": [height, width], "contract": contract.as_dict(), "split_settings": settings,
                    "num_images": len(records), "num_identities": len({r.pid for r in records}),
                    "attribute_options": passed.options,
                    "attribute_accuracy": accuracy, "mean_attribute_accuracy": float(np.mean(list(accuracy.values()))),
                    "attribute_balanced_accuracy": balanced,
                    "mean_balanced_accuracy": float(np.mean(list(balanced.values())))}
    if embeddings is not None:
        query, gallery = query_gallery_split(records, settings["split_seed"])
        pids = np.array([r.pid for r in records])
        camids = np.array([r.camid for r in records])
        distmat = retrieval_distances(embeddings[query], embeddings[gallery], metric, cfg.get("postprocess") or {})
        rank = evaluate_rank(distmat, pids[query], pids[gallery], camids[query], camids[gallery], max_rank=10)
        result.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in rank.items()})
        result.update(num_queries=len(query), num_gallery=len(gallery), metric=metric,
                      postprocess=OmegaConf.to_container(cfg.get("postprocess") or {}))
        mode = "rerank" if (cfg.get("postprocess") or {}).get("rerank", {}).get("enabled") else "plain"
        result["files"] = write_rankings(Path(cfg.paths.output_dir), cfg.get("outputs") or {}, records, query, gallery,
                                         distmat, rank["cmc"], result, contract.calibration(mode))
        if cfg.get("verification", {}).get("enabled", True):
            result["verification"] = verification(Path(cfg.paths.output_dir), distmat, pids[query], pids[gallery],
                                                  camids[query], camids[gallery], settings["split_seed"], result)
    write_json(Path(cfg.paths.output_dir) / "eval_metrics.json", result)
    return result


def balanced_accuracy(probabilities: dict, labels) -> dict[str, float]:
    """Per head, the mean of the per-class recalls over the classes present (mA, the attribute field's metric: for a
    binary attribute (TPR + TNR) / 2), so a head that always answers the common class scores 50%, not its share."""
    from sklearn.metrics import balanced_accuracy_score

    from src.data.attributes import HEAD_NAMES

    return {name: float(balanced_accuracy_score(labels[:, i].numpy(), probabilities[name].argmax(1).numpy()))
            for i, name in enumerate(HEAD_NAMES)}


def write_rankings(output_dir: Path, options, records: list, query, gallery, distmat, cmc, result: dict,
                   calibration: dict | None = None) -> list[str]:
    """What a re-ID user looks at besides the scores: ``rankings.csv`` (each query's top-k valid gallery images:
    query, rank, gallery, distance, same identity), ``rank_lists.png`` (the best and worst queries by AP, drawn as
    in a training run) and, when asked, ``distmat.npy`` with its row and column names."""
    import numpy as np
    import pandas as pd

    from src.callbacks.rank_lists import rank_rows, select_queries
    from src.io.atomic import write_csv, write_text
    from src.io.visual import rank_figure, save_png
    from src.metrics.rank import query_rank_lists

    top_k, drawn = int(options.get("top_k", 10)), int(options.get("rank_lists", 3))
    pids, camids = np.array([r.pid for r in records]), np.array([r.camid for r in records])
    retrieval = {"distmat": distmat, "q_pids": pids[query], "g_pids": pids[gallery], "q_camids": camids[query],
                 "g_camids": camids[gallery], "cmc": cmc, "q_index": np.asarray(query), "g_index": np.asarray(gallery)}
    chosen = select_queries(retrieval, drawn, top_k) if drawn else None
    aps, _, lists = query_rank_lists(distmat, pids[query], pids[gallery], camids[query], camids[gallery], top_k)
    distances = np.asarray(distmat)
    rows = [{"query": str(records[query[q]].path), "rank": rank, "gallery": str(records[gallery[g]].path),
             "distance": float(distances[q, g]), "same_identity": bool(pids[gallery[g]] == pids[query[q]]),
             "query_ap": float(aps[q])}
            for q, ranked in enumerate(lists) for rank, g in enumerate(ranked, start=1)]
    columns = ["query", "rank", "gallery", "distance", "same_identity", "query_ap"]
    if calibration is not None:  # the released network's P(same identity) of these distances (plain or re-ranked)
        from src.metrics.verification import p_same

        for row, probability in zip(rows, p_same(calibration, [r["distance"] for r in rows])):
            row["p_same"] = float(probability)
        columns.insert(4, "p_same")
    files = [str(write_csv(output_dir / "rankings.csv", pd.DataFrame(rows, columns=columns)))]
    if chosen and chosen["rows"]:
        title = (f"{result['split']} split, mAP {100 * result['mAP']:.2f}%: the {len(chosen['rows']) // 2} best and worst "
                 "queries by AP\n(green: same identity, red: another; the query's identity on its own camera is left out)")
        files.append(str(save_png(output_dir / "rank_lists.png", rank_figure(rank_rows(chosen["rows"], records, top_k),
                                                                              per_line=top_k, title=title))))
    if options.get("distmat"):
        with atomic_path(output_dir / "distmat.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, distances.astype(np.float32))
        files.append(str(output_dir / "distmat.npy"))
        names = {"queries": [str(records[i].path) for i in query], "gallery": [str(records[i].path) for i in gallery]}
        files.append(str(write_text(output_dir / "distmat_names.json", json.dumps(names, indent=1) + "\n")))
    return files


def verification(output_dir: Path, distmat, q_pids, g_pids, q_camids, g_camids, seed: int, result: dict) -> dict:
    """Same person or not: a calibration fitted on half the query identities, measured (ECE, TAR at FAR, ROC AUC,
    ``reliability.png``) on the other half; the calibration itself is in the report (src.release ships it)."""
    from src.io.plots import reliability_figure
    from src.io.visual import save_png
    from src.metrics.verification import verification_report

    try:
        report = verification_report(distmat, q_pids, g_pids, q_camids, g_camids, seed=seed)
    except ValueError as err:  # too few identities to fit on one half and measure on the other
        return {"skipped": str(err)}
    mode = "re-ranked" if (result.get("postprocess") or {}).get("rerank", {}).get("enabled") else "plain"
    title = (f"{result['split']} split, {mode} distances: fitted on {report['fit_identities']} identities,\n"
             f"measured on the other {report['test_identities']} ({report['test_pairs']:,} pairs)")
    report["figure"] = str(save_png(output_dir / "reliability.png", reliability_figure(report["reliability"], report["ece"], title)))
    return report


def ensemble_note(options: dict) -> str:
    members = len(options.get("ensemble") or ())
    if not members:
        return ""
    return f", ensemble of {members + bool(options.get('ensemble_with_main', True))} networks"


def summary(result: dict) -> str:
    lines = [f"{result['num_images']} images of {result['num_identities']} identities in {result['data_root']} (split {result['split']})"]
    if "mAP" in result:
        lines.append(f"mAP {100 * result['mAP']:.2f}%  rank-1 {100 * result['rank1']:.2f}%  rank-5 {100 * result['rank5']:.2f}%  "
                     f"rank-10 {100 * result['rank10']:.2f}%  mINP {100 * result['mINP']:.2f}%  "
                     f"({result['num_valid_queries']} queries, {result['num_skipped_queries']} without a match skipped)")
    check = result.get("verification") or {}
    if "ece" in check:
        points = check["operating_points"]
        lines.append(f"same person or not ({check['test_identities']} identities not used to fit the calibration): "
                     f"ECE {check['ece']:.4f}, ROC AUC {check['roc_auc']:.4f}, " + ", ".join(
                         f"TAR {100 * p['tar']:.2f}% at FAR {100 * p['far']:.2f}% (d <= {p['threshold']:.4f})"
                         for p in points.values()))
    options = result["attribute_options"]
    lines.append(f"mean attribute accuracy {100 * result['mean_attribute_accuracy']:.2f}% (flip_test={options['flip_test']}, "
                 f"consensus_k={options['consensus_k']}{' re-ranked' if options.get('consensus_rerank') else ''}"
                 f"{ensemble_note(options)}): " + ", ".join(
        f"{k} {100 * v:.1f}" for k, v in result["attribute_accuracy"].items()))
    if "mean_balanced_accuracy" in result:
        lines.append(f"balanced attribute accuracy (mA, mean per-class recall) {100 * result['mean_balanced_accuracy']:.2f}%")
    return "\n".join(lines)
