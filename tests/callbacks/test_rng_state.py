"""src/callbacks/rng_state.py: the global torch / numpy / Python random states saved in checkpoints (as plain data
that ``weights_only`` loading accepts) and restored on resume."""

from __future__ import annotations

import random

import numpy as np
import torch

from src.callbacks.rng_state import RNGState


def draws() -> tuple:
    """The next values of every global stream, including the Gaussians that numpy and Python cache in pairs."""
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.standard_normal(), random.random(), random.gauss(0, 1))


def test_a_restored_state_continues_the_same_random_streams(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.standard_normal(), random.gauss(0, 1)  # odd number of Gaussians drawn: one is cached in each generator
    torch.save(RNGState().state_dict(), tmp_path / "rng.pt")
    expected = draws()
    draws()  # the run goes on elsewhere (or a new process starts from its seed)
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    RNGState().load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))  # plain data only
    assert draws() == expected


def test_a_checkpoint_without_rng_state_changes_nothing():
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    expected = draws()
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    RNGState().load_state_dict({})
    assert draws() == expected


def test_the_state_is_tensors_and_plain_values():
    state = RNGState().state_dict()
    assert isinstance(state["torch"], torch.Tensor) and isinstance(state["numpy"]["keys"], torch.Tensor)
    assert state["numpy"]["name"] == "MT19937" and len(state["numpy"]["keys"]) == 624
    assert all(isinstance(v, int) for v in state["python"]["internal"]) and len(state["python"]["internal"]) == 625
