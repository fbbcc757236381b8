"""Gallery index (build, reuse, incremental update, bad images, other checkpoint) and search (ranking, filter,
own-copy exclusion, re-ranking / query expansion, outputs, CLI). Tiny synthetic data, a tiny random re-ID net."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
import torch

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.records import file_digest
from src.inference import embed_files
from src.metrics.distance import pairwise_distance
from src.metrics.query_expansion import query_expansion
from src.metrics.rerank import re_ranking_from_features
from src.models.loading import load_network
from src.retrieval.build import build_index
from src.retrieval.filtering import parse_filter
from src.retrieval.outputs import settings_text, write_search_outputs
from src.retrieval.search import search
from src.retrieval.store import VERSION, GalleryIndexError, UnreadableImagesWarning, load_index
from src.search import hydra_argv
from tests.retrieval.worlds import HEIGHT, WIDTH, build, gallery, world  # noqa: F401  (fixtures)


def embed(world, paths) -> tuple[torch.Tensor, str]:
    """(embeddings, metric) of image files by the world's re-ID checkpoint, through the one inference path."""
    net, contract = load_network(world["ckpt"], "reid")
    return embed_files(net, list(paths), HEIGHT, WIDTH).values["embedding"], contract.metric


def brute_force(world, index, query_dir: Path, candidates=None):
    """Expected ranking: embed each query with the network, sort all (filtered) gallery distances, drop own copies."""
    names = sorted(p.name for p in query_dir.iterdir())
    q, metric = embed(world, [query_dir / n for n in names])
    rows = np.arange(len(index)) if candidates is None else np.asarray(candidates)
    distances = pairwise_distance(q, torch.from_numpy(np.asarray(index.embeddings)[rows]), metric)
    expected = {}
    for i, name in enumerate(names):
        sha = file_digest(query_dir / name)
        order = [int(j) for j in torch.argsort(distances[i], stable=True)]
        expected[name] = [(index.names[int(rows[j])], float(distances[i, j])) for j in order if index.sha256[int(rows[j])] != sha]
    return expected


# ------------------------------------------------------------------------------------------------ index
def test_index_folder_holds_the_documented_files_and_fields(world, gallery, tmp_path):
    output = tmp_path / "index"
    report = build(world, gallery, output)
    assert report.written and report.embedded == report.total == len(list(gallery.iterdir()))
    meta = json.loads((output / "manifest.json").read_text())
    assert meta["version"] == VERSION and meta["checkpoint_sha256"] == file_digest(world["ckpt"])
    assert (meta["height"], meta["width"], meta["metric"], meta["kind"], meta["dim"]) == (HEIGHT, WIDTH, "euclidean", "flat", 32)
    files = {role: output / entry["name"] for role, entry in meta["files"].items()}
    records = pd.read_parquet(files["records"])  # a standard table, no pickle
    assert list(records.columns[:4]) == ["id", "name", "sha256", "camera"]
    assert list(records.columns[4:16]) == list(HEAD_NAMES)
    assert records["name"].tolist() == sorted(p.name for p in gallery.iterdir())
    assert records["sha256"].tolist() == [file_digest(gallery / n) for n in records["name"]]
    assert records["upcolor"].isin(HEADS[HEAD_NAMES.index("upcolor")].classes).all()  # readable class names
    embeddings = np.load(files["embeddings"])
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(records), 32)
    assert faiss.read_index(str(files["faiss"])).ntotal == len(records)
    index = load_index(output)
    assert index.attributes.shape == (len(index), len(HEADS))
    for i, head in enumerate(HEADS):
        probs = index.probabilities[head.name]
        assert probs.shape == (len(index), head.num_classes)
        np.testing.assert_allclose(probs.sum(1), np.ones(len(index)), atol=1e-5)
        assert np.array_equal(probs.argmax(1), index.attributes[:, i])
    # the stored embeddings are the network's
    fresh = embed(world, [gallery / n for n in index.names[:3]])[0].numpy()
    np.testing.assert_allclose(index.embeddings[:3], fresh, atol=1e-5, rtol=1e-5)


def test_unchanged_gallery_is_not_recomputed_nor_rewritten(world, gallery, tmp_path, monkeypatch):
    output = tmp_path / "index"
    build(world, gallery, output)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in output.iterdir() if p.name != "build.lock"}

    import src.retrieval.build
    import src.retrieval.sharded

    def no_network(*args, **kwargs):
        raise AssertionError("the network was loaded for an unchanged gallery")

    monkeypatch.setattr(src.retrieval.sharded, "load_network", no_network)
    monkeypatch.setattr(src.retrieval.build, "run_predict", no_network)
    report = build(world, gallery, output)
    assert not report.written and report.embedded == 0 and report.reused == report.total
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in output.iterdir() if p.name != "build.lock"} == before
    assert "up to date" in report.summary()


def test_incremental_update_embeds_only_new_and_changed_images(world, gallery, tmp_path, monkeypatch):
    output = tmp_path / "index"
    build(world, gallery, output)
    old = load_index(output)
    names = list(old.names)
    (gallery / names[0]).unlink()  # removed
    shutil.copyfile(gallery / names[2], gallery / names[1])  # changed (now a copy of another image)
    train = sorted((world["data"] / "train").iterdir())
    shutil.copyfile(train[0], gallery / "new_a.jpg")  # added
    (gallery / "sub").mkdir()
    shutil.copyfile(train[1], gallery / "sub" / "new_b.jpg")  # added, in a sub-folder
    shutil.copyfile(gallery / names[3], gallery / "renamed.jpg")  # same bytes under a new name: reused

    import src.retrieval.build

    planned: list[str] = []
    original = src.retrieval.build.write_plan

    def spy(work, plan):
        planned.extend(plan.names)
        return original(work, plan)

    monkeypatch.setattr(src.retrieval.build, "write_plan", spy)
    report = build(world, gallery, output)
    assert sorted(planned) == ["new_a.jpg", "sub/new_b.jpg"]  # the changed file's bytes are already indexed
    assert (report.embedded, report.removed, report.total, report.faiss) == (2, 1, len(names) - 1 + 3, "updated")
    new = load_index(output)
    assert names[0] not in new.names and {"new_a.jpg", "sub/new_b.jpg", "renamed.jpg"} <= set(new.names)
    row = {n: i for i, n in enumerate(new.names)}
    assert new.sha256[row[names[1]]] == old.sha256[2]
    for i, name in enumerate(names[2:], start=2):  # untouched rows: bit-identical, same faiss id
        assert np.array_equal(new.embeddings[row[name]], old.embeddings[i]) and new.ids[row[name]] == old.ids[i]
    assert np.array_equal(new.embeddings[row[names[1]]], old.embeddings[2])
    assert np.array_equal(new.embeddings[row["renamed.jpg"]], old.embeddings[3])
    assert old.ids[0] not in new.ids and old.ids[1] not in new.ids  # removed / changed: new ids
    assert new.faiss.ntotal == len(new)
    # the incremental index equals a full rebuild, and searches the same
    full = load_index(build(world, gallery, tmp_path / "full").path)
    assert list(full.names) == list(new.names) and list(full.sha256) == list(new.sha256)
    np.testing.assert_allclose(full.embeddings, new.embeddings, atol=1e-5, rtol=1e-5)
    assert np.array_equal(full.attributes, new.attributes)
    query = gallery / "new_a.jpg"
    assert ([n for n, _ in as_pairs(search(full, query, top_k=5))["new_a.jpg"]]
            == [n for n, _ in as_pairs(search(new, query, top_k=5))["new_a.jpg"]])


def test_unreadable_images_are_skipped_with_one_warning(world, gallery, tmp_path):
    (gallery / "empty.jpg").write_bytes(b"")
    (gallery / "garbage.jpg").write_bytes(b"this is not a jpeg")
    good = len(list(gallery.iterdir())) - 2
    output = tmp_path / "index"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(world, gallery, output)
    ours = [w for w in caught if issubclass(w.category, UnreadableImagesWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "skipped 2 unreadable images" in message and "empty.jpg" in message and "garbage.jpg" in message
    assert report.total == good and report.unreadable == ["empty.jpg", "garbage.jpg"]
    assert not {"empty.jpg", "garbage.jpg"} & set(load_index(output).names)
    # still broken, unchanged: not retried, not rewritten, still reported
    mtime = (output / "manifest.json").stat().st_mtime_ns
    with pytest.warns(UnreadableImagesWarning, match="garbage.jpg"):
        again = build(world, gallery, output)
    assert not again.written and (output / "manifest.json").stat().st_mtime_ns == mtime
    # repaired: indexed
    shutil.copyfile(sorted((world["data"] / "train").iterdir())[0], gallery / "garbage.jpg")
    with pytest.warns(UnreadableImagesWarning, match="empty.jpg"):
        repaired = build(world, gallery, output)
    assert repaired.embedded == 1 and "garbage.jpg" in load_index(output).names


def test_index_of_another_checkpoint_size_or_kind_is_a_clear_error(world, gallery, tmp_path):
    output = tmp_path / "index"
    build(world, gallery, output)
    with pytest.raises(GalleryIndexError, match=r"built with checkpoint .*reid\.ckpt.*not with .*other\.ckpt"):
        build(world, gallery, output, ckpt=world["other_ckpt"])
    report = build(world, gallery, output, ckpt=world["other_ckpt"], rebuild=True)
    assert report.embedded == report.total and load_index(output).checkpoint_sha256 == file_digest(world["other_ckpt"])
    with pytest.raises(GalleryIndexError, match="input size 64x32, asked for 128x64"):
        build_index(world["other_ckpt"], gallery, output, height=128, width=64)
    with pytest.raises(GalleryIndexError, match="is a flat index, asked for index.kind=hnsw.*reindex=true"):
        build(world, gallery, output, ckpt=world["other_ckpt"], kind="hnsw")
    # reindex: another kind from the stored embeddings, nothing embedded again
    report = build(world, gallery, output, ckpt=world["other_ckpt"], kind="hnsw", reindex=True)
    assert (report.embedded, report.kind, report.faiss) == (0, "hnsw", "built")
    assert load_index(output).kind == "hnsw"


def test_not_an_index(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(GalleryIndexError, match="not an index folder.*earlier version"):
        load_index(path)
    with pytest.raises(GalleryIndexError, match="index not found"):
        load_index(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(GalleryIndexError, match="not a gallery index"):
        load_index(tmp_path / "other")


# ------------------------------------------------------------------------------------------------ search
@pytest.fixture(scope="module")
def indexed(world, tmp_path_factory):
    output = tmp_path_factory.mktemp("indexed") / "gallery"
    build(world, world["data"] / "test", output)
    return load_index(output)


@pytest.fixture(scope="module")
def outside_queries(world, tmp_path_factory) -> Path:
    """Queries that are not gallery copies: training images of another identity."""
    folder = tmp_path_factory.mktemp("outside")
    for path in sorted((world["data"] / "train").iterdir())[:2]:
        shutil.copyfile(path, folder / path.name)
    return folder


def as_pairs(result):
    return {name: [(result.index.names[r], d) for r, d in m] for name, m in zip(result.query_names, result.matches)}


def assert_same_ranking(actual, expected, top_k):
    assert actual.keys() == expected.keys()
    for name in expected:
        got, want = actual[name], expected[name][:top_k]
        assert [g for g, _ in got] == [g for g, _ in want], name
        torch.testing.assert_close(torch.tensor([d for _, d in got]), torch.tensor([d for _, d in want]), atol=1e-4, rtol=1e-4)


def test_search_equals_a_brute_force_distance_sort(world, indexed, outside_queries):
    for folder in (world["data"] / "queries", outside_queries):
        result = search(indexed, folder, top_k=5)
        assert_same_ranking(as_pairs(result), brute_force(world, indexed, folder), 5)
    everything = search(indexed, outside_queries, top_k=1000)
    assert all(len(m) == len(indexed) for m in everything.matches)


def test_own_copy_is_never_reported(world, indexed):
    truth = pd.read_csv(world["data"] / "queries_ground_truth.csv", dtype={"name": str, "gallery_copy": str})
    result = search(indexed, world["data"] / "queries", top_k=len(indexed))
    copies = dict(zip(truth["name"], truth["gallery_copy"]))
    for name, matches, excluded in zip(result.query_names, result.matches, result.excluded):
        reported = [indexed.names[r] for r, _ in matches]
        assert copies[name] not in reported
        assert [indexed.names[r] for r in excluded] == [copies[name]]
        assert len(reported) == len(indexed) - 1
    single = search(indexed, world["data"] / "queries" / truth["name"][0], top_k=3)  # one image works too
    assert single.query_names == [truth["name"][0]] and len(single.matches[0]) == 3


def varied_head(index) -> tuple[str, str]:
    """A (head, class) that some but not all gallery images are predicted to have."""
    for i, head in enumerate(HEADS):
        values = index.attributes[:, i]
        if len(np.unique(values)) > 1:
            return head.name, head.classes[int(np.bincount(values).argmax())]
    pytest.skip("the random network predicts one class per head for every image")


def test_filter_restricts_to_matching_predictions(world, indexed, outside_queries):
    name, value = varied_head(indexed)
    column = HEAD_NAMES.index(name)
    keep = np.flatnonzero(indexed.attributes[:, column] == HEADS[column].classes.index(value))
    assert 0 < len(keep) < len(indexed)
    result = search(indexed, outside_queries, top_k=len(indexed), filter=f"{name}={value}")
    assert np.array_equal(result.candidates, keep)
    assert_same_ranking(as_pairs(result), brute_force(world, indexed, outside_queries, keep), len(indexed))
    for matches in result.matches:
        assert {indexed.names[r] for r, _ in matches} == {indexed.names[int(r)] for r in keep}
    frame = write_search_outputs(result, Path(outside_queries).parent / "filtered", grids=False, html=False)
    table = pd.read_csv(frame["csv"])
    assert (table[name] == value).all() and len(table) == 2 * len(keep)


def test_reranking_and_query_expansion_work_on_the_filtered_gallery(world, indexed, outside_queries):
    name, value = varied_head(indexed)
    keep = np.flatnonzero(indexed.attributes[:, HEAD_NAMES.index(name)] == HEADS[HEAD_NAMES.index(name)].classes.index(value))
    names = sorted(p.name for p in outside_queries.iterdir())
    q, metric = embed(world, [outside_queries / n for n in names])
    g = torch.from_numpy(np.asarray(indexed.embeddings)[keep])
    qe_q, qe_g = query_expansion(q, g, top_k=2, alpha=3.0)
    expected = re_ranking_from_features(qe_q, qe_g, metric, k1=4, k2=2, lambda_value=0.3)
    result = search(indexed, outside_queries, top_k=len(keep), filter={name: value}, postprocess={
        "rerank": {"enabled": True, "k1": 4, "k2": 2, "lambda_value": 0.3},
        "query_expansion": {"enabled": True, "top_k": 2, "alpha": 3.0, "expand_gallery": False}})
    for i, matches in enumerate(result.matches):
        order = torch.argsort(expected[i], stable=True)
        assert [r for r, _ in matches] == [int(keep[j]) for j in order]
        torch.testing.assert_close(torch.tensor([d for _, d in matches]), expected[i][order].float(), atol=1e-4, rtol=1e-4)
    plain = search(indexed, outside_queries, top_k=len(keep), filter={name: value})
    assert [d for _, d in plain.matches[0]] != [d for _, d in result.matches[0]]


def test_reranking_works_on_the_shortlists_of_the_queries(world, indexed, outside_queries):
    """With a shortlist smaller than the gallery, re-ranking sees the union of the queries' nearest candidates."""
    plain = search(indexed, outside_queries, top_k=4)
    pool = np.array(sorted({r for matches in plain.matches for r, _ in matches}))
    assert len(pool) < len(indexed)
    result = search(indexed, outside_queries, top_k=3, shortlist=4,
                    postprocess={"rerank": {"enabled": True, "k1": 4, "k2": 2, "lambda_value": 0.3}})
    q, metric = embed(world, sorted(outside_queries.iterdir()))
    expected = re_ranking_from_features(q, torch.from_numpy(np.asarray(indexed.embeddings)[pool]), metric, k1=4, k2=2)
    for i, matches in enumerate(result.matches):
        assert [r for r, _ in matches] == pool[torch.argsort(expected[i], stable=True)[:3].numpy()].tolist()


def test_another_metric_re_sorts_the_candidates(world, indexed, outside_queries):
    result = search(indexed, outside_queries, top_k=5, metric="cosine")
    assert result.metric == "cosine" and "metric cosine" in settings_text(result)
    q, _ = embed(world, sorted(outside_queries.iterdir()))
    distances = pairwise_distance(q, torch.from_numpy(np.array(indexed.embeddings)), "cosine")
    for i, matches in enumerate(result.matches):
        assert [r for r, _ in matches] == torch.argsort(distances[i], stable=True)[:5].tolist()


def test_unreadable_queries_are_skipped_with_a_warning(world, indexed, outside_queries, tmp_path):
    folder = tmp_path / "queries"
    shutil.copytree(outside_queries, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.warns(UnreadableImagesWarning, match="skipped 1 unreadable query images: .*broken.jpg"):
        result = search(indexed, folder, top_k=2)
    assert result.unreadable == ["broken.jpg"] and len(result.query_names) == 2


def test_queries_need_the_index_checkpoint(world, indexed, outside_queries):
    with pytest.raises(GalleryIndexError, match=r"built with checkpoint .*reid\.ckpt.*not with .*other\.ckpt"):
        search(indexed, outside_queries, ckpt_path=world["other_ckpt"])


def test_search_outputs(world, indexed, tmp_path):
    from src.retrieval.outputs import identities, read_identities

    result = search(indexed, world["data"] / "queries", top_k=4)
    query_pids = identities(result.query_names, read_identities(world["data"] / "queries_ground_truth.csv"))
    gallery_pids = identities(indexed.names, read_identities(world["data"] / "test_ground_truth.csv"))
    written = write_search_outputs(result, tmp_path, max_visual_queries=2, query_pids=query_pids, gallery_pids=gallery_pids)
    table = pd.read_csv(written["csv"])
    assert list(table.columns[:5]) == ["query", "rank", "gallery", "distance", "same_identity"]
    assert list(table.columns[5:]) == list(HEAD_NAMES)
    assert len(table) == 4 * len(result.query_names) and table["distance"].is_monotonic_increasing is not None
    grids = sorted((tmp_path / "grids").iterdir())
    assert len(grids) == 2 and all(p.stat().st_size > 10_000 for p in grids)
    page = written["html"].read_text()
    assert page.count("data:image/jpeg;base64,") == 2 * (1 + 4)
    assert result.query_names[0] in page and "Gallery search" in page


def test_hydra_argv_quotes_the_filter():
    assert hydra_argv(["x", "filter=upcolor=red,backpack=yes", "top_k=3"]) == ["x", "filter='upcolor=red,backpack=yes'", "top_k=3"]
    assert hydra_argv(["x", "filter={upcolor:red}"]) == ["x", "filter={upcolor:red}"]
    assert hydra_argv(["x", "filter='a=b'"]) == ["x", "filter='a=b'"]
    assert hydra_argv(["x", "text=woman, John's red top"]) == ["x", "text='woman, John\\'s red top'"]
    assert hydra_argv(["x", "text=woman"]) == ["x", "text=woman"]


def test_command_line(world, tmp_path, capsys):
    """The CLI as a user types it (action word, an unquoted filter): build and search in subprocesses; a refused
    filter and a filter nothing passes through the same entry point in-process."""
    import src.search
    from src.config import compose_config
    from tests.conftest import ROOT

    index = tmp_path / "idx"
    common = [f"hydra.run.dir={tmp_path / 'run'}", "data.height=64", "data.width=32", "data.num_workers=0"]
    build_cmd = [sys.executable, "-m", "src.index", "build", f"ckpt_path={world['ckpt']}",
                 f"gallery={world['data'] / 'test'}", f"output={index}", *common]
    done = subprocess.run(build_cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{index}: {len(list((world['data'] / 'test').iterdir()))} images" in done.stdout

    name, value = varied_head(load_index(index))
    out = tmp_path / "search"
    search_cmd = [sys.executable, "-m", "src.search", f"index={index}", f"query={world['data'] / 'queries'}", "top_k=3",
                  f"filter={name}={value},age=young|teenager|adult|old", f"hydra.run.dir={out}",
                  f"ground_truth.query={world['data'] / 'queries_ground_truth.csv'}",
                  f"ground_truth.gallery={world['data'] / 'test_ground_truth.csv'}"]
    done = subprocess.run(search_cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"pass the filter {name}={value}" in done.stdout and "distance" in done.stdout
    assert (out / "search_results.csv").is_file() and (out / "search.html").is_file() and any((out / "grids").iterdir())
    capsys.readouterr()

    def search_in_process(*arguments: str, folder: str) -> None:
        overrides = src.search.hydra_argv(["python", *search_cmd[3:6], *arguments])[1:]
        src.search.main(compose_config("search", overrides, tmp_path / folder))

    with pytest.raises(SystemExit) as refused:
        search_in_process("filter=colour=red", folder="bad")
    assert refused.value.code == 2 and "attributes are: age, backpack" in capsys.readouterr().err
    head, value = absent_class(load_index(index))
    search_in_process(f"filter={head}={value}", folder="none")
    assert f"no gallery image passes the filter {head}={value}: nothing to rank" in capsys.readouterr().out


def test_an_attribute_checkpoint_is_refused(world, gallery, tmp_path):
    from src.models.loading import CheckpointError

    with pytest.raises(CheckpointError, match=r"reid\.stage1\.ckpt: holds an attributes checkpoint, a gallery index needs a "
                                              r"re-ID checkpoint.*task=reid"):
        build(world, gallery, tmp_path / "x", ckpt=world["ckpt"].with_suffix(".stage1.ckpt"))


def test_configs_compose_with_the_documented_overrides(tmp_path):
    from src.config import compose_config

    cfg = compose_config("index", ["ckpt_path=a.ckpt", "gallery=g", "data.height=256", "data.width=128"], tmp_path)
    assert (cfg.action, cfg.output, cfg.rebuild, cfg.data.height) == ("build", None, False, 256)
    assert (cfg.index.kind, cfg.trainer.devices, cfg.index.ivf_pq.nlist) == (None, 1, None)
    from src.index import hydra_argv as index_argv

    assert index_argv(["x", "info", "some/folder"]) == ["x", "action=info", "output=some/folder"]
    assert index_argv(["x", "info", "index=some/folder"]) == ["x", "action=info", "output=some/folder"]
    assert index_argv(["x", "build", "index.kind=hnsw"]) == ["x", "action=build", "index.kind=hnsw"]
    expected = {"upcolor": [2], "backpack": [1]}
    for override in ("filter={upcolor:red,backpack:yes}", "filter='upcolor=red,backpack=yes'",
                     hydra_argv(["", "filter=upcolor=red,backpack=yes"])[1]):
        cfg = compose_config("search", ["index=i.pt", "query=q", override, "postprocess.rerank.enabled=true"], tmp_path)
        assert parse_filter(cfg.filter) == expected, override
        assert cfg.postprocess.rerank.enabled and cfg.top_k == 20 and not cfg.postprocess.query_expansion.enabled
    cfg = compose_config("train", ["task=reid_strong"], tmp_path)
    assert cfg.callbacks.rank_lists._target_ == "src.callbacks.rank_lists.RankLists"


def absent_class(index) -> tuple[str, str]:
    """A (head, class) that no gallery image is predicted to have."""
    for i, head in enumerate(HEADS):
        absent = [c for c in range(head.num_classes) if not (index.attributes[:, i] == c).any()]
        if absent:
            return head.name, head.classes[absent[0]]
    pytest.skip("every class of every head is predicted for some gallery image")


def test_a_filter_that_matches_nothing_gives_empty_results(indexed, outside_queries, tmp_path):
    head, value = absent_class(indexed)
    result = search(indexed, outside_queries, filter={head: value})
    assert len(result.candidates) == 0 and result.matches == [[], []]
    table = pd.read_csv(write_search_outputs(result, tmp_path, grids=False, html=False)["csv"])
    assert len(table) == 0 and list(table.columns[:4]) == ["query", "rank", "gallery", "distance"]


def test_info_describes_an_index(indexed):
    from src.retrieval.store import describe

    text = describe(indexed)
    assert f"{indexed.folder}: {len(indexed)} images of {indexed.gallery}" in text and "metric euclidean" in text
    assert "flat index (IDMap,Flat)" in text
