"""Image records -> embeddings / attribute probabilities (the one inference path): checkpoints are read through
their contract (``load_network``), images through ``ImageDataset``, batches through ``src/models/outputs.py``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from src.data.datasets import ImageDataset
from src.data.records import ImageRecord, file_digest
from src.errors import ConfigError
from src.models.loading import CheckpointError, load_contract, load_network
from src.models.outputs import Outputs, map_batches, network_step


def loader_of(records: list[ImageRecord], height: int, width: int, batch_size: int = 256, num_workers: int = 2,
              skip_unreadable: bool = False) -> DataLoader:
    return DataLoader(ImageDataset(records, height, width, skip_unreadable=skip_unreadable), batch_size=batch_size,
                      num_workers=num_workers)


def embed_records(net, records: list[ImageRecord], height: int, width: int, batch_size: int = 256,
                  num_workers: int = 2, desc: str = "embedding") -> torch.Tensor:
    """(N, D) retrieval embeddings of a re-ID net for the records' images."""
    net = fastest_inference(net, len(records))
    return run_network(net, loader_of(records, height, width, batch_size, num_workers), embeds=True, desc=desc
                       ).values["embedding"]


def run_network(net, loader, *, embeds: bool, flip_test: bool = False, desc: str = "inference") -> Outputs:
    """``network_step`` over a loader: embeddings (re-ID nets) and attribute probabilities of the readable images."""
    return map_batches(lambda images: network_step(net, images, embeds, flip_test), loader, desc)


def classify_loader(net, loader, flip_test: bool = True, embeds: bool = False, desc: str = "predicting attributes"
                    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Over a loader -> (embeddings (N, D) of re-ID nets else None, attribute probabilities per head)."""
    values = dict(run_network(net, loader, embeds=embeds, flip_test=flip_test, desc=desc).values)
    return values.pop("embedding", None), values


def embed_and_classify_records(net, records: list[ImageRecord], height: int, width: int, batch_size: int = 256,
                               num_workers: int = 2, flip_test: bool = True, desc: str = "embedding + attributes",
                               embeds: bool = False) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """One backbone pass per image (two with ``flip_test`` on nets that do not flip themselves)
    -> (embeddings (N, D), attribute probabilities per head)."""
    net = fastest_inference(net, len(records))
    return classify_loader(net, loader_of(records, height, width, batch_size, num_workers), flip_test, embeds, desc)


def embed_files(net, paths: list[Path], height: int, width: int, *, batch_size: int = 64, num_workers: int = 0,
                desc: str = "embedding") -> Outputs:
    """Embeddings and attribute probabilities of a re-ID net for image files (gallery builds, queries); an
    unreadable file is reported in ``errors``, never fatal."""
    records = [ImageRecord(Path(p), -1, -1) for p in paths]
    loader = loader_of(records, height, width, batch_size, num_workers, skip_unreadable=True)
    return run_network(net.eval(), loader, embeds=True, desc=desc)


COMPILE_MIN_IMAGES = 2000  # below this, compilation (~30 s) costs more than it saves


def fastest_inference(net, num_images: int, compile: bool | str = "auto"):
    """The fastest setting within 1e-3 of float32 eager (BENCHMARKS.md #7): channels_last, plus torch.compile
    of the backbone (2.9x eager vs 1.95x) when there are enough images to pay for the compilation."""
    from src.models.backbones import Backbone

    net = net.eval().to(memory_format=torch.channels_last)
    if compile is True or (compile == "auto" and num_images >= COMPILE_MIN_IMAGES):
        for module in net.modules():
            if isinstance(module, Backbone) and not is_compiled(module.body):  # idempotent: a net may be passed twice
                module.body = torch.compile(module.body, dynamic=False)
    return net


def is_compiled(module: torch.nn.Module) -> bool:
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def content_hashes(records: list[ImageRecord]) -> list[str]:
    return [file_digest(r.path) for r in records]


def ensemble_members(specs) -> list[tuple[str, int, int]]:
    """``attributes.ensemble`` entries -> (checkpoint, height, width); an entry is a path or a mapping
    ``{ckpt: PATH, height: H, width: W}``; the size defaults to the one the member's checkpoint was trained at."""
    members = []
    for spec in specs or ():
        if isinstance(spec, str):
            spec = {"ckpt": spec}
        spec = dict(spec)
        unknown = set(spec) - {"ckpt", "height", "width"}
        if "ckpt" not in spec or unknown:
            raise ConfigError(f"attributes.ensemble entry {spec}: expected a path or {{ckpt: PATH, height: H, width: W}}"
                             + (f" (unknown keys {sorted(unknown)})" if unknown else " (no ckpt)"))
        if not Path(spec["ckpt"]).is_file():  # before any inference: a typo should not cost a pass over the images
            raise CheckpointError(f"{spec['ckpt']}: checkpoint not found (attributes.ensemble)")
        size = load_contract(spec["ckpt"]).input_size(spec.get("height"), spec.get("width"))
        members.append((str(spec["ckpt"]), *size))
    return members


def ensemble_probabilities(records: list[ImageRecord], members: list[tuple[str, int, int]],
                           main: dict[str, torch.Tensor] | None = None, *, flip_test: bool = True,
                           batch_size: int = 256, num_workers: int = 2) -> dict[str, torch.Tensor]:
    """Mean attribute probabilities of ``main`` (if given) and each member checkpoint, every network at its own
    input size; ``main`` itself when there are no members. Independently trained networks err on different
    pictures; measured in README "Results"."""
    if not members and main is not None:
        return main
    pool = [main] if main is not None else []
    for ckpt, height, width in members:
        net, contract = load_network(ckpt)
        _, probabilities = embed_and_classify_records(net, records, height, width, batch_size, num_workers, flip_test,
                                                      desc=f"attributes of {Path(ckpt).name}", embeds=contract.embeds)
        if pool and set(probabilities) != set(pool[0]):
            raise CheckpointError(f"{ckpt}: attribute heads {sorted(probabilities)} differ from {sorted(pool[0])}")
        pool.append(probabilities)
    if not pool:
        raise ConfigError("attribute ensemble: no network (empty attributes.ensemble and ensemble_with_main=false)")
    return {name: torch.stack([p[name] for p in pool]).mean(0) for name in pool[0]}
