"""The import graph of the commands (not their timings): an entry point loads a heavy library only when the command
needs it, so ``--help``, a config error or ``src.index info`` answer in seconds (BENCHMARKS.md, start-up time).
Each case runs the command in a fresh interpreter and lists the heavy modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.retrieval.worlds import build, gallery, world  # noqa: F401  (fixtures)

ENTRY_POINTS = ("train", "eval", "predict", "index", "search", "export", "serve", "release", "compare")
HEAVY = ("torch", "torchvision", "torchvision.models", "pytorch_lightning", "faiss", "matplotlib", "pandas", "timm",
         "scipy", "sklearn", "uvicorn", "fastapi")
PROBE = """
import json, runpy, sys
heavy, sys.argv = json.loads(sys.argv[2]), json.loads(sys.argv[1])
status = 0
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as end:
    status = end.code or 0
print("PROBE " + json.dumps({"status": status, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def probe(module: str, *args: str) -> dict:
    """Run ``python -m module args`` in a fresh interpreter; {status, loaded heavy modules}."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([module, *args]), json.dumps(HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("PROBE ")]
    assert line, proc.stdout + proc.stderr
    return {**json.loads(line[-1][6:]), "stderr": proc.stderr}


def test_probe_sees_what_a_command_loads():
    assert {"torch", "faiss"} <= set(probe("src.retrieval.search")["loaded"])


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_importing_an_entry_point_loads_no_heavy_library(entry):
    """``import src.<entry>`` (what ``--help`` runs) loads none of them: each is imported where it is used."""
    proc = subprocess.run([sys.executable, "-c", f"import json, sys, src.{entry}; "
                           f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("entry", ["train", "search", "index"])
def test_help_and_config_errors_load_no_heavy_library(entry, tmp_path):
    helped = probe(f"src.{entry}", "--help")  # bare: the help needs no task (src/cli_help.py)
    assert helped["status"] == 0 and helped["loaded"] == []
    required = {"train": ["task=attributes"], "search": [f"index={tmp_path / 'index'}"]}.get(entry, [])
    refused = probe(f"src.{entry}", *required, "torch_threads=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert refused["status"] == 2 and "error: torch_threads=0" in refused["stderr"]
    assert not {"torch", "faiss", "pytorch_lightning", "torchvision"} & set(refused["loaded"])


def test_index_info_and_a_refused_search_load_neither_torch_nor_faiss(world, gallery, tmp_path):  # noqa: F811
    build(world, gallery, tmp_path / "index")
    info = probe("src.index", "info", str(tmp_path / "index"))
    assert info["status"] == 0, info["stderr"]
    assert not {"torch", "faiss", "torchvision", "matplotlib", "pytorch_lightning"} & set(info["loaded"])
    query = sorted(gallery.iterdir())[0]
    for bad in ("filter=colour=red", "postprocess.rerank.enabled=true", "postprocess.query_expansion.top_k=0"):
        extra = ["postprocess.rerank.k1=1000"] if "rerank" in bad else (
            ["postprocess.query_expansion.enabled=true"] if "query_expansion" in bad else [])
        refused = probe("src.search", f"index={tmp_path / 'index'}", f"query={query}", bad, *extra,
                        f"hydra.run.dir={tmp_path / 'run'}")
        assert refused["status"] == 2 and refused["stderr"].startswith("error: "), refused["stderr"]
        assert not {"torch", "faiss", "torchvision", "matplotlib"} & set(refused["loaded"]), bad
        assert not (tmp_path / "run").exists()  # the failed search left no run folder


def src_imports() -> dict[str, set[str]]:
    """Module -> the src modules it imports, at the top or inside a function (``from . import x`` resolved)."""
    import ast

    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sorted((ROOT / "src").rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join([*package.split(".")[:len(package.split(".")) + 1 - node.level], *[node.module or ""]]
                                ).strip(".") if node.level else node.module or ""
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            graph[name] |= {n for n in names if n in modules and n != name}
    return graph


def test_no_module_imports_an_entry_point():
    """Entry points call the rooms below them; no module of src/ imports one (``src/eval.py`` -> ``src.evaluation``)."""
    entries = {f"src.{name}" for name in ENTRY_POINTS}
    assert [f"{m} imports {t}" for m, targets in src_imports().items() for t in sorted(targets & entries)] == []


def test_the_import_graph_has_no_circle_and_the_low_rooms_never_reach_up():
    """No circle among src modules (a lazy import counts), and the errors, the CPU settings and the data import only
    each other and src/io: never models, retrieval, serving, the harness or an entry point."""
    graph = src_imports()
    state: dict[str, int] = {}
    circles = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1  # on the current path
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert circles == []
    low = ("src.errors", "src.runtime", "src.data", "src.io")
    upward = {f"{m} -> {t}" for m, targets in graph.items() if m.startswith(low[:3]) for t in targets
              if t != "src" and not t.startswith(low)}
    assert upward == set()
