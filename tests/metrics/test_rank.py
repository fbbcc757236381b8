"""Tests for src.metrics.rank against torchreid 0.2.5 and hand-computed cases."""

import numpy as np
import pytest
import torch

from src.metrics.distance import pairwise_distance
from src.metrics.rank import evaluate_rank, evaluate_rank_from_features


def loop_reference(distmat, q_pids, g_pids, q_camids, g_camids):
    """Plain per-query loop (fast-reid style) giving mAP and mINP."""
    aps, inps = [], []
    for i in range(len(distmat)):
        order = np.argsort(distmat[i])
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order] == q_pids[i])[keep]
        if not hits.any():
            continue
        ranks = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(aps), np.mean(inps)


def assert_matches_reference(ref_rank, distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    ref_cmc, ref_map = ref_rank.eval_market1501(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)
    ours = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
    assert ours["mAP"] == pytest.approx(ref_map, abs=1e-6)
    assert ours["cmc"].shape == ref_cmc.shape
    np.testing.assert_allclose(ours["cmc"], ref_cmc, atol=1e-6, rtol=0)
    for k in (1, 5, 10):
        assert ours[f"rank{k}"] == pytest.approx(ref_cmc[k - 1], abs=1e-6)
    return ours


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_cams", [2, 6])
def test_matches_torchreid_random(ref_rank, make_data, seed, num_cams):
    qf, gf, qp, gp, qc, gc = make_data(50, 300, 25, num_cams, 16, seed, noise=1.0)
    distmat = pairwise_distance(qf, gf).numpy()
    ours = assert_matches_reference(ref_rank, distmat, qp, gp, qc, gc)
    map_loop, minp_loop = loop_reference(distmat, qp, gp, qc, gc)
    assert ours["mAP"] == pytest.approx(map_loop, abs=1e-12)
    assert ours["mINP"] == pytest.approx(minp_loop, abs=1e-12)
    assert 0 < ours["mINP"] < ours["mAP"] < 1  # informative data, not saturated


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_matches_torchreid_with_many_ties(ref_rank, seed, dtype):
    """Integer-valued distances: tie order decides AP, and must follow numpy's argsort like torchreid."""
    rng = np.random.default_rng(100 + seed)
    nq, ng = 40, 120  # long rows: numpy's argsort is not stable here
    distmat = rng.integers(0, 6, size=(nq, ng)).astype(dtype)
    qp, gp = rng.integers(0, 8, nq), rng.integers(0, 8, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    ours = assert_matches_reference(ref_rank, distmat, qp, gp, qc, gc, max_rank=20)
    stable = evaluate_rank(np.argsort(np.argsort(distmat, kind="stable"), kind="stable"), qp, gp, qc, gc)
    assert stable["mAP"] != pytest.approx(ours["mAP"], abs=1e-6)  # ties really matter here


def test_hand_made_single_query():
    # gallery (distance, pid, cam); query pid 1 cam 0
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g_pids = np.array([2, 1, 1, 3, 1])
    g_cams = np.array([1, 0, 1, 1, 2])
    # item 1 (same pid, same cam) is discarded -> valid list: neg, POS, neg, POS
    r = evaluate_rank(d, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=4)
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r["mINP"] == pytest.approx(2 / 4)
    np.testing.assert_array_equal(r["cmc"], [0, 1, 1, 1])
    assert (r["rank1"], r["rank5"], r["num_valid_queries"], r["num_skipped_queries"]) == (0, 1, 1, 0)


def test_hand_made_skipped_queries_and_averaging():
    d = np.array([
        [0.9, 0.1, 0.5, 0.3],  # pid 1 cam 0: positives g1 (cam 1) and g3 (cam 2) -> ranks 1, 2
        [0.2, 0.4, 0.6, 0.8],  # pid 2 cam 1: only g0 (same cam) -> skipped
        [0.5, 0.6, 0.7, 0.1],  # pid 7: absent from gallery -> skipped
        [0.4, 0.3, 0.2, 0.1],  # pid 1 cam 2: g3 same cam discarded; g1 at rank 2 (after g2) -> AP 1/2
    ])
    g_pids, g_cams = np.array([2, 1, 5, 1]), np.array([1, 1, 0, 2])
    q_pids, q_cams = np.array([1, 2, 7, 1]), np.array([0, 1, 0, 2])
    r = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    assert r["num_valid_queries"] == 2 and r["num_skipped_queries"] == 2
    assert r["mAP"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["mINP"] == pytest.approx((2 / 2 + 1 / 2) / 2)
    np.testing.assert_allclose(r["cmc"], [0.5, 1, 1])


def test_hand_made_junk_pid_is_ignored_by_default():
    d = np.array([[0.1, 0.2, 0.3]])
    g_pids, g_cams = np.array([-1, 4, 3]), np.array([1, 1, 1])
    q_pids, q_cams = np.array([3]), np.array([0])
    default = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams, max_rank=2)
    assert default["mAP"] == pytest.approx(1 / 2)  # junk dropped: [neg, POS]
    np.testing.assert_allclose(default["cmc"], [0, 1])
    kept = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams, max_rank=2, ignore_pids=())
    assert kept["mAP"] == pytest.approx(1 / 3)  # junk as a negative: [neg, neg, POS]
    np.testing.assert_allclose(kept["cmc"], [0, 0])


def test_junk_matches_torchreid_on_prefiltered_gallery(ref_rank, make_data):
    qf, gf, qp, gp, qc, gc = make_data(40, 250, 20, 4, 16, 7, noise=1.0)
    gp = gp.copy()
    gp[::7] = -1
    distmat = pairwise_distance(qf, gf).numpy()
    keep = gp != -1
    ref_cmc, ref_map = ref_rank.eval_market1501(distmat[:, keep], qp, gp[keep], qc, gc[keep], 50)
    ours = evaluate_rank(distmat, qp, gp, qc, gc)
    assert ours["mAP"] == pytest.approx(ref_map, abs=1e-6)
    np.testing.assert_allclose(ours["cmc"], ref_cmc, atol=1e-6)
    # ignore_pids=() reproduces eval_market1501 on the unfiltered gallery
    ref_cmc, ref_map = ref_rank.eval_market1501(distmat, qp, gp, qc, gc, 50)
    assert evaluate_rank(distmat, qp, gp, qc, gc, ignore_pids=())["mAP"] == pytest.approx(ref_map, abs=1e-6)


def test_perfect_ranking():
    d = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 0.5, 0.1, 2.0]])
    r = evaluate_rank(d, np.array([1, 2]), np.array([1, 1, 2, 3]), np.array([0, 0]), np.array([1, 2, 1, 1]),
                      max_rank=4)
    assert r["mAP"] == 1.0 and r["mINP"] == 1.0
    np.testing.assert_array_equal(r["cmc"], np.ones(4))


@pytest.mark.parametrize("chunk", [1, 3, 17, None])
def test_chunked_equals_unchunked(make_data, chunk):
    qf, gf, qp, gp, qc, gc = make_data(45, 260, 20, 5, 16, 3, noise=1.0)
    distmat = pairwise_distance(qf, gf)
    full = evaluate_rank(distmat.numpy(), qp, gp, qc, gc, chunk_size=10**6)
    for r in (evaluate_rank(distmat, qp, gp, qc, gc, chunk_size=chunk),
              evaluate_rank_from_features(qf, gf, qp, gp, qc, gc, chunk_size=chunk)):
        for key in ("mAP", "mINP", "rank1", "num_valid_queries"):
            assert r[key] == pytest.approx(full[key], abs=1e-9)
        np.testing.assert_allclose(r["cmc"], full["cmc"], atol=1e-12)


def test_from_features_cosine_and_junk(make_data):
    qf, gf, qp, gp, qc, gc = make_data(30, 200, 15, 3, 16, 4)
    gp = gp.copy()
    gp[:20] = -1
    expected = evaluate_rank(pairwise_distance(qf, gf, "cosine"), qp, gp, qc, gc)
    got = evaluate_rank_from_features(qf, gf, qp, gp, qc, gc, metric="cosine", chunk_size=7)
    assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    np.testing.assert_allclose(got["cmc"], expected["cmc"])


def test_max_rank_clamped_with_warning():
    d = np.array([[0.3, 0.1, 0.2]])
    with pytest.warns(UserWarning, match="clamping max_rank to 3"):
        r = evaluate_rank(d, np.array([1]), np.array([1, 2, 3]), np.array([0]), np.array([1, 1, 1]), max_rank=50)
    np.testing.assert_array_equal(r["cmc"], [0, 0, 1])


def test_bad_inputs(make_data):
    qf, gf, qp, gp, qc, gc = make_data(5, 20, 4, 2, 8, 0)
    d = pairwise_distance(qf, gf).numpy()
    with pytest.raises(ValueError, match="empty query set"):
        evaluate_rank(d[:0], qp[:0], gp, qc[:0], gc)
    with pytest.raises(ValueError, match="empty gallery"):
        evaluate_rank(d[:, :0], qp, gp[:0], qc, gc[:0])
    with pytest.raises(ValueError, match="every gallery pid is in ignore_pids"):
        evaluate_rank(d, qp, gp * 0 - 1, qc, gc)
    with pytest.raises(ValueError, match="g_pids must be 1-D of length 20"):
        evaluate_rank(d, qp, gp[:-1], qc, gc)
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(d[0], qp, gp, qc, gc)
    with pytest.raises(ValueError, match="empty query set"):
        evaluate_rank_from_features(qf[:0], gf, qp[:0], gp, qc[:0], gc)
    with pytest.raises(ValueError, match="no query has a matching gallery image"):
        evaluate_rank(d, qp + 100, gp, qc, gc)
    bad = d.copy()
    bad[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in query rows \[2\]"):
        evaluate_rank(bad, qp, gp, qc, gc)


def test_nan_feature_error_names_image(make_data):
    qf, gf, qp, gp, qc, gc = make_data(5, 20, 4, 2, 8, 0)
    gf = gf.copy()
    gf[11, 2] = np.nan
    gp = gp.copy()
    gp[:3] = -1  # junk rows are dropped later; the error must still name the original row
    names = [f"{i:04d}_c1s1_000000_00.jpg" for i in range(len(gf))]
    with pytest.raises(ValueError, match=r"rows \[11\].*0011_c1s1_000000_00\.jpg"):
        evaluate_rank_from_features(qf, gf, qp, gp, qc, gc, gallery_names=names)


def test_accepts_torch_labels(make_data):
    qf, gf, qp, gp, qc, gc = make_data(10, 50, 5, 3, 8, 1)
    d = pairwise_distance(qf, gf)
    a = evaluate_rank(d, qp, gp, qc, gc)
    b = evaluate_rank(d, *(torch.from_numpy(x) for x in (qp, gp, qc, gc)))
    assert a["mAP"] == b["mAP"]


def test_per_query_average_precision_agrees_with_evaluate_rank():
    from src.metrics.rank import evaluate_rank, query_rank_lists

    rng = np.random.default_rng(3)
    q_pids, g_pids = rng.integers(0, 8, 30), rng.integers(0, 8, 120)
    q_camids, g_camids = rng.integers(0, 3, 30), rng.integers(0, 3, 120)
    distmat = rng.random((30, 120))
    aps, first, lists = query_rank_lists(distmat, q_pids, g_pids, q_camids, g_camids, top_k=5)
    result = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    assert np.nanmean(aps) == pytest.approx(result["mAP"], abs=1e-9)
    assert np.mean(first[~np.isnan(aps)] == 1) == pytest.approx(result["rank1"], abs=1e-9)
