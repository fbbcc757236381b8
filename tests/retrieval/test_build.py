"""src/retrieval/build.py: the index reads the checkpoint's contract (kind, input size) and embeds exactly what
``src.eval`` embeds; a build that can read no new image leaves nothing behind."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from src.config import compose_config
from src.data.records import DataError
from src.data.synthetic import generate_synthetic_dataset
from src.evaluation import evaluate
from src.models.loading import CheckpointError, InputSizeWarning
from src.retrieval.build import build_index
from src.retrieval.store import load_index
from tests.models.test_loading import save_attribute_checkpoint
from tests.retrieval.worlds import TINY_NET, world  # noqa: F401  (fixtures)


def with_contract(source: Path, path: Path, height: int, width: int) -> Path:
    """A copy of a re-ID checkpoint that records the input contract a training run writes (network + data half)."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["network"] = {"kind": "reid", "backbone": "test_resnet", "mean": [0.485, 0.456, 0.406],
                             "std": [0.229, 0.224, 0.225], "metric": "euclidean"}
    checkpoint["MarketDataModule"] = {"height": height, "width": width}
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("labelled") / "data", num_train_ids=4, num_test_ids=1,
                                      images_per_id=(3, 4), seed=5)


def eval_embeddings(ckpt: Path, data: Path, out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The embeddings ``src.eval`` computes for the labelled images (read from its network-output cache)."""
    cfg = compose_config("eval", ["task=reid", f"ckpt_path={ckpt}", "data=market_course", f"data.root={data}",
                                  "data.num_workers=0", "data.eval_batch_size=8", f"cache_dir={out / 'cache'}"], out)
    result = evaluate(cfg)
    (stored,) = [torch.load(p, weights_only=True) for p in (out / "cache").glob("outputs-*.pt")]
    return {Path(n).name: e.numpy() for n, e in zip(stored["names"], stored["embeddings"])}, result


@pytest.mark.parametrize("size", [(64, 32), (128, 64)])
def test_the_index_embeds_at_the_trained_size_what_eval_embeds(world, labelled, tmp_path, size):
    ckpt = with_contract(world["ckpt"], tmp_path / "reid.ckpt", *size)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputSizeWarning)  # no size given: the trained one, no warning
        report = build_index(ckpt, labelled / "train", tmp_path / "index", batch_size=8, accelerator="cpu")
    index = load_index(report.path)
    assert (index.height, index.width) == size and index.meta["trained_size"] == list(size)
    expected, result = eval_embeddings(ckpt, labelled, tmp_path / "eval")
    assert result["input_size"] == list(size)
    assert sorted(expected) == sorted(index.names)
    stored = np.asarray(index.embeddings)
    difference = max(float(np.abs(stored[i] - expected[name]).max()) for i, name in enumerate(index.names))
    print(f"\nindex vs src.eval embeddings at {size[0]}x{size[1]}: max abs difference {difference:.3g}")
    assert difference < 1e-5
    # the size matters: the same weights at the other size give other embeddings
    other = (128, 64) if size == (64, 32) else (64, 32)
    with pytest.warns(InputSizeWarning, match=f"trained at {size[0]}x{size[1]}, run at {other[0]}x{other[1]}"):
        report = build_index(ckpt, labelled / "train", tmp_path / "other", height=other[0], width=other[1],
                             batch_size=8, accelerator="cpu")
    meta = json.loads((report.path / "manifest.json").read_text())
    assert [meta["height"], meta["width"]] == list(other) and meta["trained_size"] == list(size)
    assert float(np.abs(np.asarray(load_index(report.path).embeddings) - stored).max()) > 1e-3


def test_an_attributes_checkpoint_is_refused_before_any_work(tmp_path, labelled):
    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt, TINY_NET)
    with pytest.raises(CheckpointError, match="attributes.ckpt: holds an attributes checkpoint, a gallery index needs a re-ID"):
        build_index(ckpt, labelled / "train", tmp_path / "index", height=64, width=32, accelerator="cpu")
    assert not (tmp_path / "index").exists()


def test_a_build_with_no_readable_image_leaves_no_shards(world, tmp_path):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (gallery / name).write_bytes(b"\xff\xd8 not an image")
    with pytest.raises(DataError, match="none of the 2 images could be read"):
        build_index(world["ckpt"], gallery, tmp_path / "index", height=64, width=32, batch_size=8, accelerator="cpu")
    assert not (tmp_path / "index" / "shards").exists()


def test_index_parameters_the_gallery_cannot_satisfy_are_refused_before_embedding(world, tmp_path, monkeypatch):
    import src.retrieval.build
    from src.retrieval.kinds import IndexKindError

    def no_embedding(*args, **kwargs):
        raise AssertionError("images were embedded before the index parameters were checked")

    monkeypatch.setattr(src.retrieval.build, "run_predict", no_embedding)
    gallery = world["data"] / "test"
    count = len(list(gallery.iterdir()))
    with pytest.raises(IndexKindError, match=f"nlist=1024, nbits=.* needs at least 1024 images, the gallery has {count}"):
        build_index(world["ckpt"], gallery, tmp_path / "index", height=64, width=32, kind="ivf_pq",
                    params={"ivf_pq": {"nlist": 1024}}, accelerator="cpu")
    with pytest.raises(IndexKindError, match="index.ivf_pq.m=5 does not divide the embedding dimension 32"):
        build_index(world["ckpt"], gallery, tmp_path / "index", height=64, width=32, kind="ivf_pq",
                    params={"ivf_pq": {"m": 5}}, accelerator="cpu")
    assert not (tmp_path / "index" / "shards").exists()
