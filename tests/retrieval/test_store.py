"""The index folder on disk: truncated files are refused before anything loads, a crash keeps the old index,
two builds of one index are refused, kinds and their parameters, hnsw removals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from src.retrieval import kinds
from src.retrieval.build import index_from_embeddings
from src.retrieval.search import nearest
from src.retrieval.store import GalleryIndexError, IndexLock, load_index
from tests.conftest import ROOT
from tests.retrieval.worlds import build, clustered, gallery, random_probabilities, world  # noqa: F401  (fixtures)


@pytest.fixture
def small_index(tmp_path):
    vectors, _, _ = clustered(200)
    return index_from_embeddings(tmp_path / "index", vectors, [f"{i}.jpg" for i in range(200)],
                                 random_probabilities(200), kind="ivf_pq")


@pytest.mark.parametrize("role", ["records", "embeddings", "faiss"])
def test_a_truncated_file_is_refused_before_anything_loads(small_index, role):
    path = small_index.file(role)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryIndexError, match=rf"{path.name}: \d+ bytes, the manifest says {len(data)}: the file is truncated"):
        load_index(small_index.folder)
    path.unlink()
    with pytest.raises(GalleryIndexError, match=f"{path.name}: missing"):
        load_index(small_index.folder)


def test_a_truncated_manifest_is_refused(small_index):
    manifest = small_index.folder / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(GalleryIndexError, match="manifest.json: truncated or not JSON"):
        load_index(small_index.folder)


def test_a_crash_while_writing_keeps_the_old_index(small_index, monkeypatch):
    import src.retrieval.build

    before = sorted(p.name for p in small_index.folder.iterdir())

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the faiss file")

    monkeypatch.setattr(src.retrieval.build, "write_faiss", crash)
    vectors, _, _ = clustered(300, seed=1)
    with pytest.raises(KeyboardInterrupt):
        index_from_embeddings(small_index.folder, vectors, [f"{i}.jpg" for i in range(300)], random_probabilities(300))
    old = load_index(small_index.folder)  # still the old generation, whole
    assert len(old) == 200 and old.kind == "ivf_pq" and old.faiss.ntotal == 200
    monkeypatch.undo()
    index_from_embeddings(small_index.folder, vectors, [f"{i}.jpg" for i in range(300)], random_probabilities(300))
    after = sorted(p.name for p in small_index.folder.iterdir())
    assert len(load_index(small_index.folder)) == 300
    assert len(after) == len(before) and not set(after) & (set(before) - {"manifest.json", "build.lock"})  # old generation gone


def test_two_builds_of_one_index_are_refused(world, gallery, tmp_path):
    output = tmp_path / "index"
    with IndexLock(output):
        with pytest.raises(GalleryIndexError, match=r"another build is writing this index \(build by pid \d+"):
            build(world, gallery, output)
    assert build(world, gallery, output).written  # free again once the first one is done


def test_a_build_running_in_another_process_is_refused(world, gallery, tmp_path):
    """Two processes: the one holding the index's build lock wins, the other is refused naming it; the lock goes
    with its holder (even killed)."""
    output = tmp_path / "index"
    hold = ("import sys\nfrom src.retrieval.store import IndexLock\n"
            "with IndexLock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(output)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GalleryIndexError, match=rf"another build is writing this index \(build by pid {holder.pid} on "):
            build(world, gallery, output)
        assert not (output / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert build(world, gallery, output).written


def test_a_gallery_folder_as_output_is_refused_and_keeps_every_file(world, gallery):  # noqa: F811
    photo = next(gallery.iterdir())
    shutil.copyfile(photo, gallery / "records-holiday.jpg")  # a user's photo named like an index file
    (gallery / ".notes.tmp").write_text("mine")
    before = sorted(p.name for p in gallery.iterdir())
    with pytest.raises(GalleryIndexError, match=rf"{gallery}: holds {len(before)} files that are not an index's "
                                                r"\(e\.g\. .*\); an index needs a folder of its own"):
        build(world, gallery, gallery)
    assert sorted(p.name for p in gallery.iterdir()) == before  # nothing removed, no lock left behind


def test_an_update_removes_only_the_files_it_made(world, gallery, tmp_path):  # noqa: F811
    output = tmp_path / "index"
    build(world, gallery, output)
    first = {p.name for p in output.iterdir()}
    user = ["records-holiday.jpg", "embeddings-notes.txt", "faiss-x.index", ".draft.tmp"]
    for name in user:  # files a user put into the index folder later, named like its own
        (output / name).write_text("mine")
    crashed = {"records": "records-20000101T000000-abcdef.parquet", "faiss": ".faiss-20000101T000000-abcdef.index.x1.tmp"}
    (output / "build.pending").write_text(json.dumps({"generation": "20000101T000000-abcdef"}))  # a killed build's
    for name in crashed.values():
        (output / name).write_text("half")
    (sorted(gallery.iterdir())[0]).unlink()  # a new generation
    assert build(world, gallery, output).written
    after = {p.name for p in output.iterdir()}
    assert set(user) <= after and not set(crashed.values()) & after and "build.pending" not in after
    assert not (first - {"manifest.json", "build.lock"}) & after  # the previous generation's files went


def test_hnsw_removals_stay_out_of_the_results(world, gallery, tmp_path):
    output = tmp_path / "index"
    build(world, gallery, output, kind="hnsw")
    first = load_index(output)
    gone = sorted(gallery.iterdir())[0]
    gone_row = list(first.names).index(gone.name)
    gone_vector = np.asarray(first.embeddings[gone_row : gone_row + 1])
    gone.unlink()
    report = build(world, gallery, output)
    index = load_index(output)
    assert (report.kind, report.faiss, report.removed) == ("hnsw", "updated", 1)
    assert index.faiss.ntotal == len(index) + 1 and index.tombstones == 1  # still in the graph, never returned
    found = nearest(index, gone_vector, len(index) + 5)
    assert (found.rows >= 0).sum() == len(index) and gone.name not in index.names[found.rows[0][found.rows[0] >= 0]]
    # removing more than a tenth of the graph rebuilds it
    for path in sorted(gallery.iterdir())[:3]:
        path.unlink()
    assert build(world, gallery, output).faiss == "built" and load_index(output).tombstones == 0


def test_automatic_parameters_follow_the_gallery_size():
    assert kinds.of("ivf_pq").auto_params(1_000_000, 512) == {"nlist": 1024, "m": 64, "nbits": 8, "train_size": 40_960,
                                                           "nprobe": 384, "refine": 10}
    assert kinds.of("ivf_pq").auto_params(100_000, 512)["nlist"] == 256
    small = kinds.of("ivf_pq").auto_params(100, 32)
    assert small["nlist"] == 2 and small["m"] == 4 and 2 ** small["nbits"] <= 100
    assert kinds.of("hnsw").resolve({"m": 16, "ef_search": None}, 10, 32)["m"] == 16
    with pytest.raises(kinds.IndexKindError, match="index.hnsw has no parameter nlist"):
        kinds.of("hnsw").resolve({"nlist": 4}, 10, 32)
    with pytest.raises(kinds.IndexKindError, match="m=5 does not divide the embedding dimension 32"):
        kinds.of("ivf_pq").resolve({"m": 5}, 1000, 32)
    with pytest.raises(kinds.IndexKindError, match="needs at least 256 images, the gallery has 100; use index.kind=flat"):
        kinds.of("ivf_pq").resolve({"nbits": 8}, 100, 32)
    with pytest.raises(kinds.IndexKindError, match="index.kind='annoy': expected one of flat, ivf_pq, hnsw"):
        kinds.of("annoy")


def test_pinned_parameters_are_kept_and_search_settings_need_no_new_files(world, gallery, tmp_path):
    output = tmp_path / "index"
    build(world, gallery, output, kind="hnsw", params={"hnsw": {"m": 8}})
    first = json.loads((output / "manifest.json").read_text())
    assert first["params"]["m"] == 8 and first["pinned"] == ["m"]
    build(world, gallery, output, params={"hnsw": {"ef_search": 99}})  # kind and m kept, nothing embedded
    second = json.loads((output / "manifest.json").read_text())
    assert second["params"] == {**first["params"], "ef_search": 99} and second["files"] == first["files"]
    shutil.copyfile(sorted(gallery.iterdir())[0], gallery / "copy.jpg")
    build(world, gallery, output)
    assert load_index(output).params == second["params"]


def test_a_loaded_index_keeps_searching_while_a_build_replaces_it(small_index):
    reader = load_index(small_index.folder)  # its files are held open; faiss is read on first use
    vectors, queries, _ = clustered(300, seed=1)
    index_from_embeddings(small_index.folder, vectors, [f"{i}.jpg" for i in range(300)], random_probabilities(300))
    assert not reader.file("faiss").exists() and not reader.file("embeddings").exists()  # an older generation now
    found = nearest(reader, queries[:3], 5)
    assert (found.rows >= 0).all() and len(reader) == 200
    assert reader.rows([0, 5]).shape == (2, 32) and reader.probabilities["age"].shape == (200, 4)
    assert len(load_index(small_index.folder)) == 300


def test_a_full_disk_is_one_line_and_leaves_no_file_of_the_new_generation(small_index, monkeypatch):
    import errno

    import faiss

    import src.retrieval.build

    before = sorted(p.name for p in small_index.folder.iterdir())
    vectors, _, _ = clustered(300, seed=1)

    def no_space(*args, **kwargs):
        raise RuntimeError("Error in faiss::FileIOWriter::operator() at impl/io.cpp:67:\nfwrite: No space left on device")

    monkeypatch.setattr(faiss, "write_index", no_space)
    with pytest.raises(GalleryIndexError, match=r"faiss-.*\.index: faiss could not write the index \(fwrite: No space"):
        index_from_embeddings(small_index.folder, vectors, [f"{i}.jpg" for i in range(300)], random_probabilities(300))
    assert sorted(p.name for p in small_index.folder.iterdir()) == before

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(src.retrieval.build, "write_embeddings", full)
    with pytest.raises(GalleryIndexError, match=r"No space left on device while writing a new index generation; "
                                                r"its files were removed and the previous index is unchanged"):
        index_from_embeddings(small_index.folder, vectors, [f"{i}.jpg" for i in range(300)], random_probabilities(300))
    assert sorted(p.name for p in small_index.folder.iterdir()) == before and len(load_index(small_index.folder)) == 200
