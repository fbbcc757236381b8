"""Network outputs over a loader of :class:`src.data.datasets.ImageDataset` batches: the one step (a batch of images
-> embedding and attribute probabilities), the one batch of the loop and the one loop, shared by eval, predict, the
end-of-run files, pseudo-label rounds, the stage-1 descriptor cache, release's parity check, the app's uploads (the
step alone) and the gallery index (its build runs the same batch under Lightning predict). Unreadable images
(``ok=False`` in the batch) are skipped and reported, never fed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from src.progress import with_progress


def network_step(net, images: torch.Tensor, embeds: bool, flip_test: bool = False) -> dict[str, torch.Tensor]:
    """One batch -> ``{"embedding": (B, D) (re-ID nets only), <head>: (B, classes) probabilities}``.

    ``embeds``: the checkpoint's contract says the net is a re-ID net (its embedding is its own and never flipped
    here, so it matches what validation measured); ``flip_test`` averages the attribute logits with the mirrored
    image's, except on networks that flip internally (``net.flip_test``, the strong model).
    """
    images = images.contiguous(memory_format=torch.channels_last)
    if embeds:
        embedding, logits = net.embed_and_classify(images)
    else:
        embedding, logits = None, net(images)
    if flip_test and not getattr(net, "flip_test", False):
        mirrored = net(images.flip(3))
        logits = {name: (value + mirrored[name]) / 2 for name, value in logits.items()}
    out = {name: value.float().softmax(-1) for name, value in logits.items()}
    if embedding is not None:
        out["embedding"] = embedding.float()
    return out


@dataclass
class Outputs:
    """What the loop returns: per key, the rows of the readable images in dataset order."""

    values: dict[str, torch.Tensor]
    ok: list[int]  # dataset positions of those rows
    errors: dict[int, str]  # dataset position -> error of the unreadable ones

    def numpy(self) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in self.values.items()}


def batch_outputs(function, batch: dict) -> Outputs:
    """One batch of the loop (``map_batches``, and the index build's Lightning predict step): ``function(images)`` of
    its readable images (channels_last; ``ok`` absent: all readable), their positions, the others' errors."""
    good = torch.as_tensor(batch.get("ok", [True] * len(batch["image"])), dtype=torch.bool)
    positions = torch.as_tensor(batch["index"]).tolist()
    errors = {p: e for p, e, g in zip(positions, batch.get("error", [""] * len(good)), good.tolist()) if not g}
    ok = [p for p, g in zip(positions, good.tolist()) if g]
    images = batch["image"][good.to(batch["image"].device)].contiguous(memory_format=torch.channels_last)
    return Outputs(function(images) if ok else {}, ok, errors)


@torch.no_grad()
def map_batches(function, loader, desc: str) -> Outputs:
    """``batch_outputs`` over every batch of ``loader``, concatenated per key; with a progress bar."""
    parts = [batch_outputs(function, batch) for batch in with_progress(loader, desc)]
    keys = dict.fromkeys(key for part in parts for key in part.values)
    return Outputs({k: torch.cat([part.values[k] for part in parts if k in part.values]) for k in keys},
                   [p for part in parts for p in part.ok], {p: e for part in parts for p, e in part.errors.items()})
