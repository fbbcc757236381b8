"""model.compile=true: a compilation that fails falls back to eager with one warning (issue 15, bad input)."""

import warnings

import pytest
import torch

from src.models.strong_module import StrongReidModule

NET = {"_target_": "src.models.strong.StrongReidNet", "num_identities": 3,
       "backbone": {"_target_": "src.models.backbones.efficientnet_lite", "variant": "lite0", "pretrained": False}}


def test_failed_compilation_falls_back_to_eager_with_one_warning(monkeypatch):
    calls = []

    def broken_compile(fn, *args, **kwargs):
        def run(*a, **k):
            calls.append(1)
            raise RuntimeError("InductorError: no working C++ compiler found\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    module = StrongReidModule(net=NET, optimizer={"_target_": "torch.optim.Adam", "_partial_": True}, compile=True)
    images = torch.rand(2, 3, 64, 32)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no working C\\+\\+ compiler.*eager") as record:
        first = module.forward_train(images)
    assert len(record) == 1 and first["id_logits"].shape == (2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second attempt
        module.forward_train(images)
    assert calls == [1]
