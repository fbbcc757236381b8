"""Random number generator states in checkpoints, so that a resumed run continues the same random stream.

Why: Lightning checkpoints hold the weights, optimizer, schedulers, loop counters and callback states,
but not the global RNGs. A resumed process starts again from ``seed_everything(cfg.seed)`` and the
model's initialisation, so after ``ckpt_path=last`` the global torch generator is where it was at the
start of epoch 0, not at the end of the checkpointed epoch. Everything that draws from it then differs
from the uninterrupted run: the training loader's shuffle (``RandomSampler`` seeds itself from the
global torch generator each epoch), the heads' dropout masks, random augmentations, triplet sampling.
Measured on the synthetic data (tests/reliability/test_resume.py): without this callback a run killed
in epoch 1 and resumed ends at val/mean_acc 0.5161 instead of 0.5134.

How: Lightning stores the ``state_dict()`` of every callback in each checkpoint it writes (it is called
while the checkpoint is dumped, i.e. at the moment of saving) and hands it back to ``load_state_dict()``
when ``trainer.fit(ckpt_path=...)`` restores it, before the sanity check (which Lightning runs inside
``isolate_rng``) and before the first training batch. The states of the torch CPU generator, the CUDA
generators (when CUDA is initialised), numpy's global generator and Python's ``random`` are saved as
tensors and plain Python values only, so checkpoints still load with ``torch.load(weights_only=True)``
(src/models/loading.py).

Limits: only rank 0's state is written (Lightning saves callback states from rank 0); with
``seed_everything`` every rank draws the same global stream, so restoring rank 0's state on all ranks
is what an uninterrupted DDP run has. DataLoader *worker* processes are re-seeded by Lightning from the
base seed drawn in the main process, so they follow too. Checkpoints written without this callback
load as before (nothing is restored, as until now).
"""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch


class RNGState(pl.Callback):
    """Saves the global torch / CUDA / numpy / Python RNG states in checkpoints and restores them on resume."""

    def state_dict(self) -> dict:
        name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(position),
                "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian),
            },
            "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        if not state_dict:
            return
        torch.set_rng_state(state_dict["torch"].cpu())
        numpy_state = state_dict["numpy"]
        np.random.set_state((
            numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
            numpy_state["has_gauss"], numpy_state["cached_gaussian"],
        ))
        python_state = state_dict["python"]
        random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
        cuda = state_dict.get("cuda")
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
