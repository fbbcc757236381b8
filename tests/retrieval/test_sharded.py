"""The multi-process build: two processes (Lightning DDP on gloo) give the index one process gives; a shard that
is missing or belongs to another build is refused by name."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from src.data.records import file_digest
from src.retrieval.sharded import Plan, collect_shards, run_predict, write_plan
from src.retrieval.store import GalleryIndexError, load_index
from tests.conftest import ROOT
from tests.retrieval.worlds import HEIGHT, WIDTH, build, world  # noqa: F401  (fixtures)


def test_two_processes_build_the_index_one_process_builds(world, tmp_path):
    gallery = world["data"] / "test"
    one = load_index(build(world, gallery, tmp_path / "one").path)
    command = [sys.executable, "-m", "src.index", "build", f"ckpt_path={world['ckpt']}", f"gallery={gallery}",
               f"output={tmp_path / 'two'}", f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.num_workers=0",
               "batch_size=4", "trainer.devices=2", "torch_threads=1"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(one)} images ({len(one)} embedded" in done.stdout and "2 processes" in done.stdout
    two = load_index(tmp_path / "two")
    assert list(two.names) == list(one.names) and np.array_equal(two.ids, one.ids)
    np.testing.assert_allclose(two.embeddings, one.embeddings, atol=1e-5, rtol=0)
    assert np.array_equal(two.attributes, one.attributes)
    assert two.faiss.ntotal == one.faiss.ntotal and not (tmp_path / "two" / "shards").exists()


@pytest.fixture
def planned(world, tmp_path):
    gallery = world["data"] / "test"
    names = sorted(p.name for p in gallery.iterdir())[:5]
    plan = Plan("build-1", str(gallery), str(world["ckpt"]), file_digest(world["ckpt"]), HEIGHT, WIDTH, 2, 0, names)
    work = tmp_path / "shards"
    write_plan(work, plan)
    run_predict(work)
    return work, plan


def test_a_missing_shard_is_refused_by_name(planned):
    work, plan = planned
    assert len(collect_shards(work, plan, 1).ok) == 5
    for path in work.glob("shard-00000-of-00001*"):  # as if a second process had never written its shard
        path.rename(work / path.name.replace("-of-00001", "-of-00002"))
    with pytest.raises(GalleryIndexError, match=r"shard-00001-of-00002.parquet: shard 1 of 2 is missing"):
        collect_shards(work, plan, 2)


def test_a_shard_of_another_build_is_refused(planned):
    work, plan = planned
    plan.build_id = "build-2"
    with pytest.raises(GalleryIndexError, match=r"shard-00000-of-00001.parquet: shard of another build \(build-1"):
        collect_shards(work, plan, 1)
