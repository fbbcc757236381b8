"""src/data is the bottom room of training: none of its modules imports the rooms above it (models, callbacks,
retrieval, serving); progressive resizing is a callback that reaches down, never the reverse."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

ABOVE = ("src.models", "src.callbacks", "src.retrieval", "src.serving", "src.inference")


def test_data_imports_nothing_from_the_rooms_above_it():
    for path in sorted((ROOT / "src" / "data").glob("*.py")):
        nodes = list(ast.walk(ast.parse(path.read_text())))
        names = [n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module]
        names += [a.name for n in nodes if isinstance(n, ast.Import) for a in n.names]
        assert [n for n in names if n.startswith(ABOVE)] == [], path
