"""src/data/samplers.py: the P x K identity sampler."""

from __future__ import annotations

from collections import Counter

from src.data.samplers import IdentitySampler
from tests.conftest import COURSE, ROOT, needs_shared
from tests.data.conftest import identity_records


def test_every_group_of_k_is_one_identity_and_small_identities_are_resampled():
    pids = [r.pid for r in identity_records({1: 9, 2: 2, 3: 4, 4: 1})]
    sampler = IdentitySampler(pids, num_instances=4, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) and len(indices) % 4 == 0
    for start in range(0, len(indices), 4):
        assert len({pids[i] for i in indices[start:start + 4]}) == 1
    assert {pids[i] for i in indices} == {1, 2, 3, 4}
    assert Counter(pids[i] for i in indices)[1] == 8  # 9 images -> two groups of 4


def test_sampler_is_seeded_per_epoch():
    pids = [r.pid for r in identity_records({p: 6 for p in range(8)})]
    a, b = IdentitySampler(pids, 4, seed=3), IdentitySampler(pids, 4, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_camera_aware_groups_hold_as_many_cameras_as_the_identity_has():
    records = [r for r in identity_records({1: 12, 2: 8, 3: 3})]  # cameras 1..6 in turn
    records += [type(r)(r.path.with_name(f"0004_c2_{k}.jpg"), 4, 2, r.labels) for k, r in enumerate(records[:6])]  # one camera
    pids, cameras = [r.pid for r in records], [r.camid for r in records]
    aware, plain = IdentitySampler(pids, 4, seed=5, cameras=cameras), IdentitySampler(pids, 4, seed=5)
    for epoch in range(4):
        aware.set_epoch(epoch), plain.set_epoch(epoch)
        indices = list(aware)
        assert len(indices) == len(aware) == len(list(plain))
        assert Counter(pids[i] for i in indices) == Counter(pids[i] for i in plain)  # the same groups per identity
        for start in range(0, len(indices), 4):
            group = indices[start:start + 4]
            assert len({pids[i] for i in group}) == 1
            distinct = len({cameras[i] for i in group})
            if pids[group[0]] in (1, 2):
                assert distinct == 4  # 6 cameras: four different ones in every group
            if pids[group[0]] == 4:
                assert distinct == 1


def test_without_cameras_the_order_is_unchanged_by_the_option():
    pids = [r.pid for r in identity_records({p: 7 for p in range(6)})]
    a, b = IdentitySampler(pids, 4, seed=2), IdentitySampler(pids, 4, seed=2, cameras=None)
    assert list(a) == list(b)
    same_camera = IdentitySampler(pids, 4, seed=2, cameras=[1] * len(pids))  # one camera: nothing to deal
    assert list(same_camera) == list(a)


def test_the_option_reaches_the_training_sampler():
    from src.data.samplers import IdentityBatches

    records = identity_records({p: 8 for p in range(4)})

    class Images(list):
        pass

    images = Images(range(len(records)))
    images.records = records
    order = IdentityBatches(4, 0, camera_aware=True).batches(images, 16, seed=0)["sampler"].order
    assert order.cameras.tolist() == [r.camid for r in records]
    assert IdentityBatches(4, 0).batches(images, 16, seed=0)["sampler"].order.cameras is None


@needs_shared
def test_on_the_course_training_split_groups_span_more_cameras():
    from hydra.utils import instantiate

    from src.config import compose_config

    datamodule = instantiate(compose_config("train", ["task=reid_strong", "data=market_course", f"data.root={COURSE}"],
                                            ROOT / "outputs" / "unused").data, preload=False)
    datamodule.split()
    pids = [r.pid for r in datamodule.train_records]
    cameras = [r.camid for r in datamodule.train_records]
    assert min(cameras) >= 1
    def mean_cameras(sampler):
        indices = list(sampler)
        return sum(len({cameras[i] for i in indices[s:s + 4]}) for s in range(0, len(indices), 4)) / (len(indices) / 4)
    aware, plain = mean_cameras(IdentitySampler(pids, 4, 0, cameras)), mean_cameras(IdentitySampler(pids, 4, 0))
    assert aware > plain + 0.2 and aware > 3.0
