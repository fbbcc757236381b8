"""Release a trained network: ``python -m src.release ckpt_path=RUN/checkpoints/epoch_031.ckpt name=FILE.pt
training_command="..." training_commit=SHA``.

Writes ``weights/FILE.pt``: the network weights (float16 by default) with the checkpoint's full contract (kind,
input size, normalisation, metric, identity split), loadable as ``ckpt_path=weights/FILE.pt`` by every command
that takes a checkpoint. Then measures the released file itself on the identities training held out (mAP, rank-1,
re-ranked mAP, attribute mean plain and with consensus) and its float16 parity against the source checkpoint, and
records all of it with the file's SHA-256 in ``weights/manifest.json`` (replacing the entry of the same name).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from src.cli import command
from src.errors import ConfigError
from src.io.atomic import atomic_path, write_json

if TYPE_CHECKING:  # torch loads inside the functions: --help and config errors answer at once
    import torch

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 10 * 2**20  # per released file; all of weights/ stays within 40 MB
DTYPES = ("float16", "float32", "int8")


QUANTIZE_MIN_ELEMENTS = 1 << 16  # dtype=int8: tensors this large are stored as int8 rows with a scale each
IDENTITY_CLASSIFIER = "net.id_classifier.weight"  # released without rows: inference never uses it


def quantize_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel (first dimension): (int8 values, float32 scales)."""
    import torch

    rows = tensor.float().reshape(len(tensor), -1)
    scale = rows.abs().amax(1).clamp_min(1e-12) / 127
    return (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(tensor.shape), scale


def slim_checkpoint(checkpoint: dict, dtype: str = "float16") -> dict:
    """The network half of a training checkpoint: weights, the hyper-parameters that rebuild the network and the
    contract; no optimizer, loop or callback state. ``float16``/``float32``: every floating tensor in that type;
    ``int8``: the large weight tensors as int8 rows with a float32 scale each (``quantized``), the rest float16.
    ``read_checkpoint`` restores float tensors either way. The identity classifier (one row per training identity,
    pseudo-identities included) is kept with no rows: embeddings and attributes do not use it."""
    import torch

    from src.models.loading import WEIGHTS_FORMAT, WEIGHTS_VERSION

    hparams = checkpoint.get("hyper_parameters", {})
    net_config = dict(hparams["net"])
    state, scales = {}, {}
    for key, value in checkpoint["state_dict"].items():
        if not key.startswith("net."):
            continue
        if key == IDENTITY_CLASSIFIER and "num_identities" in net_config:  # training-only: rows of training identities
            state[key] = value[:0].to(torch.float16)
            net_config["num_identities"] = 0
            continue
        if not value.is_floating_point():
            state[key] = value
        elif dtype == "int8" and value.dim() >= 2 and value.numel() >= QUANTIZE_MIN_ELEMENTS:
            state[key], scales[key] = quantize_rows(value)
        else:
            state[key] = value.to(torch.float32 if dtype == "float32" else torch.float16)
    slim = {"format": {"name": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION},
            "hyper_parameters": {"net": net_config, "metric": hparams.get("metric")}, "state_dict": state}
    if scales:
        slim["quantized"] = scales
    for key in ("network", "MarketDataModule", "retrieval_threshold", "epoch", "global_step"):
        if checkpoint.get(key) is not None:
            slim[key] = checkpoint[key]
    return slim


def followed_schedule(checkpoint: dict) -> list | None:
    """The phases a budget schedule followed (``BudgetSchedule.followed``), when the run used one."""
    for state in checkpoint.get("lr_schedulers") or ():
        if isinstance(state, dict) and "followed" in state:
            return state["followed"]
    return None


def write_weights(ckpt_path: str | Path, out: Path, dtype: str = "float16") -> dict:

    from src.models.loading import read_checkpoint

    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}: use one of {', '.join(DTYPES)}")
    checkpoint = read_checkpoint(ckpt_path)
    if "network" not in checkpoint:
        raise ConfigError(f"{ckpt_path}: records no network contract (written before contracts); retrain to release it")
    save_reproducibly(slim_checkpoint(checkpoint, dtype), out)
    size = out.stat().st_size
    if size > MAX_FILE_BYTES:
        out.unlink()
        raise ConfigError(f"{out}: {size / 2**20:.1f} MB, above the {MAX_FILE_BYTES / 2**20:.0f} MB a released file may take")
    return checkpoint


def add_calibration(out: Path, calibration: dict) -> None:
    """Store the calibrated P(same identity) of each distance mode (fitted on half the held-out identities by
    src.eval) in the released file; the network weights stay as they were measured."""
    import torch

    released = torch.load(out, map_location="cpu", weights_only=True)
    released["calibration"] = calibration
    save_reproducibly(released, out)


def save_reproducibly(content: dict, out: Path) -> None:
    """``torch.save`` through a file object, so the zip's inner folder is "archive" and not the temporary file's
    random name: the same network released twice gives the same bytes (and SHA-256)."""
    import torch

    with atomic_path(out) as tmp, open(tmp, "wb") as file:
        torch.save(content, file)


def embedding_difference(source: str | Path, released: str | Path, records: list, height: int, width: int) -> float:
    """Max abs difference of the two networks' outputs (embedding of re-ID nets, else attribute probabilities) on
    ``records``, each through the one inference loop."""
    import torch

    from src.inference import loader_of, run_network
    from src.models.loading import load_network

    outputs = []
    for path in (source, released):
        net, contract = load_network(path)
        values = run_network(net, loader_of(records, height, width, num_workers=0), embeds=contract.embeds).values
        outputs.append(values["embedding"] if contract.embeds else torch.cat([values[k] for k in sorted(values)], 1))
    return float((outputs[0] - outputs[1]).abs().max())


def eval_config(cfg: DictConfig, ckpt_path: str | Path, kind: str, output_dir: Path, **options) -> DictConfig:
    """The ``src.eval`` config of ``ckpt_path`` on the held-out identities (split=val) with the given settings."""
    from src.config import compose_config

    overrides = [f"task={'reid_strong' if kind == 'reid' else 'attributes'}", f"ckpt_path={ckpt_path}",
                 f"data={cfg.evaluate.data}", "split=val", f"torch_threads={cfg.torch_threads}",
                 f"postprocess.rerank.enabled={options.get('rerank', False)}",
                 f"attributes.consensus_k={options.get('consensus_k', 0)}"]
    if cfg.evaluate.get("data_root"):
        overrides.append(f"data.root={cfg.evaluate.data_root}")
    return compose_config("eval", [*overrides, *(cfg.evaluate.get("overrides") or [])], output_dir, cfg.paths.cache_dir)


def release(cfg: DictConfig) -> dict:
    from hydra.utils import instantiate

    from src.evaluation import evaluate
    from src.runtime import apply_threads

    apply_threads(cfg.get("torch_threads"))  # checked before torch loads
    from src.models.loading import MANIFEST, read_contract

    weights_dir = Path(cfg.weights_dir)
    name = str(cfg.name)
    final = weights_dir / name
    # ../x.pt or /abs/x.pt would write outside weights_dir, and its manifest would list a file it does not hold
    if final.suffix != ".pt" or Path(name).name != name or name.startswith(".") or "\\" in name or "\x00" in name:
        raise ConfigError(f"name={name!r}: a plain file name ending in .pt, no folder part (written under {weights_dir})")
    output_dir = Path(cfg.paths.output_dir)
    out = output_dir / name  # made and measured in the run folder; weights/ changes only when all of it worked
    output_dir.mkdir(parents=True, exist_ok=True)
    weights_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = write_weights(cfg.ckpt_path, out, cfg.dtype)
    contract = read_contract(checkpoint, out)
    runs = {"plain": {}}
    if contract.embeds:
        runs.update(rerank={"rerank": True}, consensus={"consensus_k": int(cfg.evaluate.consensus_k)})
    configs = {name: eval_config(cfg, out, contract.kind, output_dir / f"eval_{name}", **options) for name, options in runs.items()}
    measured = {name: evaluate(config) for name, config in configs.items()}
    source = evaluate(eval_config(cfg, cfg.ckpt_path, contract.kind, output_dir / "eval_source"))
    plain = measured["plain"]
    calibration = {mode: {**measured[name]["verification"]["calibration"],
                          "operating_points": measured[name]["verification"]["operating_points"]}
                   for mode, name in (("plain", "plain"), ("rerank", "rerank"))
                   if name in measured and "calibration" in measured[name].get("verification", {})}
    if calibration:
        add_calibration(out, calibration)
    val = {"attribute_mean": plain["mean_attribute_accuracy"], "attribute_mA": plain["mean_balanced_accuracy"]}
    if contract.embeds:
        val.update(mAP=plain["mAP"], rank1=plain["rank1"], mAP_rerank=measured["rerank"]["mAP"],
                   rank1_rerank=measured["rerank"]["rank1"],
                   attribute_mean_consensus=measured["consensus"]["mean_attribute_accuracy"],
                   attribute_mA_consensus=measured["consensus"]["mean_balanced_accuracy"],
                   consensus_k=int(cfg.evaluate.consensus_k))
    height, width = plain["input_size"]  # the checkpoint's size and split, as evaluate() resolved them
    datamodule = instantiate(configs["plain"].data, height=height, width=width, **plain["split_settings"])
    records = datamodule.eval_records("val")[: int(cfg.evaluate.parity_images)]
    difference = embedding_difference(cfg.ckpt_path, out, records, height, width)
    parity = {"max_abs_output_difference": difference, "outputs": "embedding" if contract.embeds else "attribute probabilities",
              "attribute_mean_change": plain["mean_attribute_accuracy"] - source["mean_attribute_accuracy"]}
    if contract.embeds:
        parity["mAP_change"] = plain["mAP"] - source["mAP"]
    from src.data.records import file_digest

    entry = {
        "sha256": file_digest(out), "bytes": out.stat().st_size, "dtype": cfg.dtype, "kind": contract.kind,
        "contract": contract.as_dict(),
        "training": {"command": str(cfg.training_command), "commit": str(cfg.training_commit),
                     "identities": {k: (contract.split or {}).get(k) for k in ("val_ratio", "split_seed", "num_val_ids", "val_ids_sha256")},
                     "source_checkpoint": Path(cfg.ckpt_path).name, "epoch": checkpoint.get("epoch"),
                     "schedule_followed": followed_schedule(checkpoint)},
        "val": {k: round(float(v), 6) if isinstance(v, float) else v for k, v in val.items()},
        "evaluated_on": {"data": cfg.evaluate.data, "split": "val", "num_images": plain["num_images"],
                         "num_queries": plain.get("num_valid_queries")},
        "parity": parity,
        "verification": {mode: {k: measured[name]["verification"][k] for k in
                                ("ece", "roc_auc", "operating_points", "fit_identities", "test_identities", "test_pairs")}
                         for mode, name in (("plain", "plain"), ("rerank", "rerank")) if mode in calibration},
    }
    import shutil

    with atomic_path(final) as tmp:
        shutil.copyfile(out, tmp)
    manifest_path = weights_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest.setdefault("license_note", "Trained on Market-1501 images (Zheng et al., ICCV 2015), released for research "
                                        "use only; attribute labels of the course version (weights/README.md, docs/released_weights.md).")
    manifest.setdefault("files", {})[cfg.name] = entry
    write_json(manifest_path, manifest)
    return entry


def summary(entry: dict, name: str) -> str:
    val = entry["val"]
    parts = [f"{name}: {entry['bytes'] / 2**20:.2f} MB {entry['dtype']}, sha256 {entry['sha256'][:16]}..."]
    if "mAP" in val:
        parts.append(f"val mAP {100 * val['mAP']:.2f}% rank-1 {100 * val['rank1']:.2f}% re-ranked mAP "
                     f"{100 * val['mAP_rerank']:.2f}%")
    parity = entry["parity"]
    parts.append(f"against the source checkpoint: max abs {parity['outputs']} difference {parity['max_abs_output_difference']:.3g}"
                 + (f", mAP {100 * parity['mAP_change']:+.2f} points" if "mAP_change" in parity else "")
                 + f", attribute mean {100 * parity['attribute_mean_change']:+.2f} points")
    consensus = "consensus_k" in val
    parts.append(f"attribute mean {100 * val['attribute_mean']:.2f}%, mA {100 * val['attribute_mA']:.2f}%" + (
        f" ({100 * val['attribute_mean_consensus']:.2f}% and {100 * val['attribute_mA_consensus']:.2f}% with consensus "
        f"k={val['consensus_k']})" if consensus else ""))
    return "\n".join(parts)


@command("release")
def main(cfg: DictConfig) -> None:
    print(summary(release(cfg), cfg.name))


if __name__ == "__main__":
    main()
