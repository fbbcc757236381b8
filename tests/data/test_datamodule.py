"""src/data/datamodule.py: options that do not fit the data at hand fail before the run folder is claimed."""

from __future__ import annotations

import pytest

from src.data.records import DataError
from src.errors import ConfigError
from src.train import train
from tests.conftest import SMALL_DATA


def test_a_p_x_k_batch_with_more_identities_than_the_training_split_says_so(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg(["task=reid_strong", *SMALL_DATA, "data.batch_size=128"])  # P=32 identities, 24 x 0.8 train
    with pytest.warns(UserWarning, match=r"data.batch_size=128: 32 identity groups of data.sampler.num_instances=4 images per "
                                         r"batch, but the training split of .* has 19 identities, so every batch repeats "
                                         r"some; data.batch_size <= 76 keeps them distinct"):
        instantiate(cfg.data).split()


@pytest.mark.parametrize(("ratio", "error", "message"), [
    ("0.01", DataError, r"data.val_ratio=0.01: round\(0.01 x 24 identities\) = 0 leaves no validation identity; use at least 0.0417"),
    ("0.99", DataError, r"data.val_ratio=0.99: round\(0.99 x 24 identities\) = 24 leaves no training identity; use at most 0.958"),
    ("0", ConfigError, r"data.val_ratio=0(.0)?: leaves no validation identity in .*; training monitors held-out identities"),
])
def test_a_val_ratio_that_leaves_a_side_empty_fails_first(make_cfg, tmp_path, ratio, error, message):
    with pytest.raises(error, match=message):
        train(make_cfg(["task=attributes", *SMALL_DATA, f"data.val_ratio={ratio}"]))
    assert not (tmp_path / "run").exists()
