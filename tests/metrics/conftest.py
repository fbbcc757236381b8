"""Shared fixtures: torchreid reference implementations loaded by file path."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_torchreid_file(relative: str):
    """Load one torchreid source file as a standalone module, without importing torchreid."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchreid is not installed (needed as the reference implementation)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    module_spec = importlib.util.spec_from_file_location(f"_reference_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    had = "torchreid" in sys.modules
    saved = sys.modules.get("torchreid")
    sys.modules["torchreid"] = None  # makes the optional cython import fail fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Cython evaluation ... unavailable"
            module_spec.loader.exec_module(module)
    finally:
        if had:
            sys.modules["torchreid"] = saved
        else:
            del sys.modules["torchreid"]
    return module


@pytest.fixture(scope="session")
def ref_rank():
    """torchreid's ``reid/metrics/rank.py`` (pure-python ``eval_market1501``)."""
    return load_torchreid_file("reid/metrics/rank.py")


@pytest.fixture(scope="session")
def ref_rerank():
    """torchreid's ``reid/utils/rerank.py``."""
    return load_torchreid_file("reid/utils/rerank.py")


@pytest.fixture(scope="session")
def make_data():
    """Factory for seeded identity-structured features and labels (see :func:`make_features`)."""
    return make_features


def make_features(num_query, num_gallery, num_ids, num_cams, dim, seed, noise=0.6):
    """Seeded features with identity structure: identity centre + camera shift + noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    cam_shift = 0.3 * rng.normal(size=(num_cams, dim))
    q_pids = rng.integers(0, num_ids, num_query)
    g_pids = rng.integers(0, num_ids, num_gallery)
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    qf = centres[q_pids] + cam_shift[q_cams] + noise * rng.normal(size=(num_query, dim))
    gf = centres[g_pids] + cam_shift[g_cams] + noise * rng.normal(size=(num_gallery, dim))
    return (qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids, q_cams, g_cams)
