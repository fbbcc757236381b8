"""torch_threads: a number, or auto = the cores free at start; OpenMP waits passively."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from src.runtime import free_cores, resolve_threads, usable_cores
from tests.conftest import ROOT


def test_explicit_thread_counts_and_bad_values():
    assert resolve_threads(1) == 1 and resolve_threads("2") == 2
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(ValueError, match="torch_threads=.*positive whole number or auto"):
            resolve_threads(bad)
    cores = __import__("os").cpu_count()
    assert resolve_threads(4 * cores) == 4 * cores
    with pytest.raises(ValueError, match=f"torch_threads={40 * cores}: far above the {cores} cores"):
        resolve_threads(40 * cores)


def test_auto_leaves_out_a_busy_core():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = free_cores(window_s=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert 1 <= busy <= max(1, usable_cores() - 1)
    assert 1 <= resolve_threads("auto") <= usable_cores()


def test_openmp_waits_passively_in_every_entry_point():
    code = "import os, src, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"


def test_a_normal_run_prints_no_library_noise(make_cfg, recwarn, caplog, tmp_path):
    import logging

    from src.train import train
    from tests.conftest import SMALL_DATA

    caplog.set_level(logging.INFO)
    train(make_cfg(["task=reid_strong", *SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                    "data.height=64", "data.width=32", "predict_test=false"]))
    messages = [str(w.message) for w in recwarn]
    for noise in ("exists and is not empty", "LeafSpec", "in eval mode at the start of training"):
        assert not any(noise in m for m in messages), (noise, messages)
    assert not any("Tip" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_index_info_leaves_no_run_folder(tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "src.index", "info", "index=missing.pt"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "missing.pt" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cuda_runtime_notice_is_dropped_on_cpu(monkeypatch, tmp_path, caplog):
    """torch.compile loads torch.utils.cpp_extension, which logs "No CUDA runtime is found" wherever a CUDA toolkit
    is installed without a GPU; quiet_library_noise drops that record (and only that one)."""
    import logging

    import torch.utils.cpp_extension as cpp_extension

    from src.runtime import _DropTips, quiet_library_noise

    if torch_has_cuda():
        pytest.skip("the notice only appears without a CUDA runtime")
    logger = logging.getLogger("torch.utils.cpp_extension")
    monkeypatch.setattr(logger, "filters", [f for f in logger.filters if not isinstance(f, _DropTips)])
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))  # a toolkit folder that exists
    caplog.set_level(logging.INFO)
    cpp_extension._find_cuda_home()
    assert any("No CUDA runtime is found" in r.getMessage() for r in caplog.records)  # what a user saw before
    caplog.clear()
    quiet_library_noise()
    cpp_extension._find_cuda_home()
    logger.warning("another cpp_extension warning")
    assert [r.getMessage() for r in caplog.records] == ["another cpp_extension warning"]


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_own_warnings_print_as_one_line_library_warnings_keep_their_format():
    import warnings

    from src.cli import one_line_errors
    from src.retrieval.store import UnreadableImagesWarning

    def show(message, category, filename, lineno):
        return warnings.formatwarning(message, category, filename, lineno, line="  source line")

    seen = []

    @one_line_errors
    def main():
        seen.append(show("skipped 1 unreadable images: a.jpg: empty file", UnreadableImagesWarning, "/x/lib/call.py", 3))
        seen.append(show("clamped", UserWarning, str(ROOT / "src" / "metrics" / "rank.py"), 235))  # raised in src/
        seen.append(show("a library's warning", UserWarning, "/site-packages/lib/mod.py", 7))

    before = warnings.formatwarning
    main()
    assert seen == ["warning: skipped 1 unreadable images: a.jpg: empty file\n", "warning: clamped\n",
                    "/site-packages/lib/mod.py:7: UserWarning: a library's warning\n  source line\n"]
    assert warnings.formatwarning is before  # only while an entry point runs


# what a user may see besides results: our own log lines, Lightning's start-up lines, progress bars
LOG_LINE = re.compile(r"^\[[^\]]+\]\[(?P<name>[^\]]+)\]\[(?P<level>\w+)\] - ")
NOISE = re.compile(r"warn|deprecat|cuda|error|traceback|\.py:\d+", re.IGNORECASE)


def test_train_index_search_and_export_emit_nothing_else(tmp_path, cache_dir):
    """The four commands of a quick try, as a user runs them, on a machine with a CUDA toolkit and no GPU
    (``CUDA_HOME`` set): the only warnings are ours, one line each; log lines are our own."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_HOME": str(tmp_path)}
    run_dir, gallery = tmp_path / "run", tmp_path / "gallery"

    def command(*argv: str) -> str:
        result = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return (result.stdout + "\n" + result.stderr).replace(str(tmp_path), "TMP")

    train_out = command("src.train", "task=reid_strong", "data.num_workers=0", "data.source.num_train_ids=24",
                        "data.source.num_test_ids=6", "data.batch_size=16", "data.eval_batch_size=64",
                        "model.net.backbone.pretrained=false", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                        "trainer.limit_val_batches=2", "trainer.log_every_n_steps=1", "data.height=64", "data.width=32",
                        "torch_threads=1", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    synthetic = next(cache_dir.glob("synthetic-seed0-ids24"))
    gallery.mkdir()
    for image in sorted((synthetic / "test").iterdir())[:6]:
        (gallery / image.name).symlink_to(image)
    (gallery / "broken.jpg").write_bytes(b"not an image")
    outputs = {
        "train": train_out,
        "index": command("src.index", "build", f"ckpt_path={ckpt}", f"gallery={gallery}", "output=index", "torch_threads=1"),
        "search": command("src.search", "index=index", f"query={sorted((synthetic / 'queries').iterdir())[0]}", "top_k=3",
                          "hydra.run.dir=search", "torch_threads=1"),
        "export": command("src.export", f"ckpt_path={ckpt}", "output=model.onnx", "hydra.run.dir=export"),
    }
    expected = {
        "train": [r"warning: max_rank=10 exceeds the gallery size \d+; clamping max_rank to \d+"],  # 4 validation ids
        "index": [r"warning: skipped 1 unreadable images: TMP/gallery/broken.jpg: cannot decode image \(.*\)"],
        "search": [], "export": [],
    }
    for name, text in outputs.items():
        lines = [part.strip() for line in text.splitlines() for part in line.split("\r") if part.strip()]
        logs = [m.groupdict() for m in map(LOG_LINE.match, lines) if m]
        # Lightning's own INFO notes (seed, devices, why fit stopped) were printed before too: Lightning now loads
        # after Hydra configured logging, so they come in Hydra's format (and into the run's .log) instead of its own
        assert all(log["name"] == "__main__" or log["name"].startswith("src.") or (
            log["name"].startswith(("lightning_fabric.", "pytorch_lightning.")) and log["level"] == "INFO")
            for log in logs), (name, logs)
        noise = [line for line in lines if NOISE.search(line) and not LOG_LINE.match(line)]
        assert len(noise) == len(expected[name]) and all(re.fullmatch(p, n) for p, n in zip(expected[name], noise)), \
            (name, noise)
    assert "flat index built" in outputs["index"] and "onnxruntime vs torch: max abs difference" in outputs["export"]
