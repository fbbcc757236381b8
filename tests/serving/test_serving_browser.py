"""The page in a real browser (Debian's chromium driven by Playwright): open it, upload a query, drop one, set a
filter, check the grid, click a result to search from it, browse by description; screenshots go to docs/."""

from __future__ import annotations

import base64
import shutil
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from src.serving.app import create_app
from src.serving.launch import free_port
from tests.conftest import ROOT
from tests.serving.worlds import served_index  # noqa: F401

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason="no chromium installed (apt-get install -y chromium; .ci/run does)")


@pytest.fixture(scope="module")
def server(served_index):  # noqa: F811
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served_index["index"]), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def tiles(page) -> list[dict]:
    return page.eval_on_selector_all(".tile", "ts => ts.map(t => ({id: t.dataset.id, title: t.title, "
                                               "attrs: t.querySelector('.attrs').textContent, "
                                               "loaded: t.querySelector('img').complete && t.querySelector('img').naturalWidth > 0}))")


def wait_for_status(page, text: str) -> str:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text)
    return page.text_content("#status")


def test_page_search_filter_click_and_describe(page, server, served_index):  # noqa: F811
    page.goto(server)
    page.wait_for_function("document.querySelectorAll('#filters select').length === 12")
    assert "32 images" in page.text_content("#info")

    page.fill("#topk", "12")
    page.set_input_files("#file", str(served_index["outside"]))
    status = wait_for_status(page, "results for uploaded photo")
    assert status.startswith("12 results") and "embed" in status and " ms" in status
    page.wait_for_function("[...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
    shown = tiles(page)
    assert len(shown) == 12 and all(t["loaded"] for t in shown)
    page.screenshot(path=str(DOCS / "search_app.png"), full_page=True)

    # a filter on the predicted gender: every tile shows it
    page.select_option("select[name=gender]", "female")
    page.set_input_files("#file", [])
    page.set_input_files("#file", str(served_index["outside"]))
    status = wait_for_status(page, "pass the filter")
    filtered = tiles(page)
    assert filtered and all(t["attrs"].startswith("female,") for t in filtered)
    passing = int(status.split("(")[1].split(" of ")[0])
    assert len(filtered) == min(12, passing)

    # click a result: the search starts from it, and it is left out of its own results
    first = filtered[0]
    page.click(f".tile[data-id='{first['id']}']")
    wait_for_status(page, "results for gallery image")
    after = tiles(page)
    assert after and first["id"] not in {t["id"] for t in after}
    assert first["title"].split(":")[0] in page.text_content("#status")

    # the re-ranking toggle
    page.check("#rerank")
    page.click(f".tile[data-id='{after[0]['id']}']")
    assert "re-ranked" in wait_for_status(page, "re-ranked")

    # browse by description (no query image)
    page.select_option("select[name=upcolor]", "black")
    page.click("#describe")
    status = wait_for_status(page, "description")
    assert "upcolor=black" in status and "gender=female" in status
    described = tiles(page)
    assert described and len(described) <= 12
    page.screenshot(path=str(DOCS / "search_app_description.png"), full_page=True)


def test_drag_and_drop_and_a_bad_file(page, server, served_index):  # noqa: F811
    page.goto(server)
    page.wait_for_function("document.querySelectorAll('#filters select').length === 12")
    payload = base64.b64encode(served_index["outside"].read_bytes()).decode()
    drop = """([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: 'image/jpeg'}));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }"""
    page.evaluate(drop, [payload, "dropped.jpg"])
    wait_for_status(page, "results for uploaded photo")
    assert len(tiles(page)) == 20
    page.evaluate(drop, [base64.b64encode(b"not an image at all").decode(), "notes.jpg"])
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "415" in page.text_content("#status") and "not an image" in page.text_content("#status")
