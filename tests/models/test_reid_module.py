"""src/models/reid_module.py: the shared re-ID validation, Market metrics of the query->gallery ranking, the kept
distance matrix, the running best mAP and the threshold written into checkpoints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.models.reid_module import RetrievalValidation
from src.models.strong_module import StrongReidModule

pytestmark = pytest.mark.filterwarnings("ignore:max_rank=10 exceeds the gallery size 3")  # a 3-image gallery on purpose

# one-dimensional embeddings: distances are absolute differences
#   query pid 1 (cam 1) at 0.0: gallery pid 1 (cam 2) at 0.1 is first -> AP 1
#   query pid 2 (cam 1) at 5.0: gallery pid 3 at 4.9 first, then pid 2 at 5.3 -> AP 1/2
EMBEDDINGS = torch.tensor([[0.0], [5.0], [0.1], [5.3], [4.9]])
PIDS = np.array([1, 2, 1, 2, 3])
CAMIDS = np.array([1, 1, 2, 2, 2])
IS_QUERY = torch.tensor([True, True, False, False, False])


def module(sanity_checking: bool = False) -> RetrievalValidation:
    validation = RetrievalValidation()
    validation._trainer = SimpleNamespace(sanity_checking=sanity_checking)
    return validation


def test_metrics_of_a_hand_checked_ranking():
    metrics = module().retrieval_metrics(EMBEDDINGS, PIDS, CAMIDS, IS_QUERY)
    assert metrics["val/mAP"] == pytest.approx(0.75)
    assert metrics["val/rank1"] == pytest.approx(0.5) and metrics["val/rank5"] == pytest.approx(1.0)
    assert metrics["val/mAP_best"] == pytest.approx(0.75)


def test_the_distance_matrix_and_labels_are_kept_for_the_callbacks():
    validation = module()
    validation.retrieval_metrics(EMBEDDINGS, PIDS, CAMIDS, IS_QUERY)
    kept = validation.val_retrieval
    torch.testing.assert_close(torch.as_tensor(kept["distmat"]), torch.tensor([[0.1, 5.3, 4.9], [4.9, 0.3, 0.1]]),
                               atol=1e-4, rtol=1e-4)
    assert kept["q_pids"].tolist() == [1, 2] and kept["g_pids"].tolist() == [1, 2, 3]
    assert kept["q_index"].tolist() == [0, 1] and kept["g_index"].tolist() == [2, 3, 4]
    assert kept["g_camids"].tolist() == [2, 2, 2] and len(kept["cmc"]) >= 3


def test_the_best_map_is_the_running_maximum_outside_the_sanity_check():
    validation = module(sanity_checking=True)
    worse = torch.tensor([[0.0], [5.0], [9.0], [5.3], [4.9]])  # query 1's match is now last: AP 1/3
    assert validation.retrieval_metrics(EMBEDDINGS, PIDS, CAMIDS, IS_QUERY)["val/mAP_best"] == pytest.approx(0.75)
    validation._trainer.sanity_checking = False
    first = validation.retrieval_metrics(worse, PIDS, CAMIDS, IS_QUERY)
    assert first["val/mAP"] == pytest.approx((1 / 3 + 1 / 2) / 2) and first["val/mAP_best"] == pytest.approx(first["val/mAP"])
    assert validation.retrieval_metrics(EMBEDDINGS, PIDS, CAMIDS, IS_QUERY)["val/mAP_best"] == pytest.approx(0.75)
    assert validation.retrieval_metrics(worse, PIDS, CAMIDS, IS_QUERY)["val/mAP_best"] == pytest.approx(0.75)


def test_map_goes_to_the_progress_bar_and_the_rest_to_the_log(monkeypatch):
    validation = module()
    logged = {}
    monkeypatch.setattr(validation, "log_dict", lambda values, **kwargs: logged.update(values))
    monkeypatch.setattr(validation, "log", lambda name, value, **kwargs: logged.update({name: (value, kwargs)}))
    validation.log_validation({"val/mAP": torch.tensor(0.5), "val/rank1": torch.tensor(0.25)})
    assert logged == {"val/rank1": 0.25, "val/mAP": (0.5, {"prog_bar": True})}


def test_checkpoints_hold_the_swept_threshold():
    net = {"_target_": "src.models.strong.StrongReidNet", "num_identities": 2,
           "backbone": {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False}}
    strong = StrongReidModule(net, {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    checkpoint = {}
    strong.on_save_checkpoint(checkpoint)
    assert np.isnan(checkpoint["retrieval_threshold"])  # no sweep yet
    strong.threshold.fill_(1.25)
    strong.on_save_checkpoint(checkpoint)
    assert checkpoint["retrieval_threshold"] == 1.25 and checkpoint["network"]["kind"] == "reid"
