"""Every relative link and #anchor of README.md and docs/*.md resolves: the file exists, and the heading an anchor
names exists in it, by the slugs GitHub gives headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a ``#`` or ``[x](y)`` inside one is code, not markdown)."""
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text (code spans, links and emphasis reduced to their text),
    lower case, everything but letters, digits, spaces, hyphens and underscores dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "``", prose(path.read_text()))  # code spans are not links ([`x`](y) still is)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_slugs_follow_github():
    assert slug("21. The test suite") == "21-the-test-suite"
    assert slug("Train the report's re-ID aggregator (stage 2)") == "train-the-reports-re-id-aggregator-stage-2"
    assert slug("`src.search`: filters, *description*") == "srcsearch-filters-description"
    assert slug("Attributes at test time: flips, re-ID neighbour consensus, ensembles") == (
        "attributes-at-test-time-flips-re-id-neighbour-consensus-ensembles")


def test_links_are_found_outside_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A\n\nSee [b](b.md#x), ![pic](p.png) and [web](https://example.org).\n\n"
                    "```bash\n# not a heading [c](c.md)\n```\n\n`[d](d.md)` is code.\n## A\n")
    assert links(page) == ["b.md#x", "p.png"]
    assert anchors(page) == {"a", "a-1"}


def test_there_are_docs_pages():
    names = {p.name for p in PAGES}
    assert {"getting_started.md", "training.md", "search_and_app.md", "released_weights.md", "evaluation.md",
            "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.name}")
    assert not broken, "\n".join(broken)


def test_the_documented_api_answer_has_the_shape_the_app_returns():
    """The example answer of docs/search_and_app.md parses as the app's SearchResponse, with no field it lacks."""
    import json

    from src.serving.app import SearchResponse

    page = (ROOT / "docs" / "search_and_app.md").read_text()
    answer = json.loads(re.search(r"```json\n(.*?)```", page, re.S).group(1))
    response = SearchResponse.model_validate(answer)
    assert set(answer) == set(SearchResponse.model_fields)
    assert all(set(m) == set(type(response.matches[0]).model_fields) for m in answer["matches"])
    assert response.matches and [m.rank for m in response.matches] == list(range(1, len(response.matches) + 1))
