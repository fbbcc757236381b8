"""The page in a real browser (Debian's chromium driven by Playwright), offline (every request to another host is
refused): readable attribute labels, a photo by file and by drag-and-drop, a filter, the larger view of a result and a
search from it, a free-text description shown back as understood, more results, CSV export, the search in the URL
(back button, shared link), errors replacing stale results, and the API page from local files; screenshots to docs/
(``git checkout docs/*.png`` after a run unless the page changed)."""

from __future__ import annotations

import base64
import csv
import io
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page that can reach only the server: anything else (a CDN) is refused and recorded in
    ``page.context.outside``."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    context.outside = []

    def offline(route):
        if route.request.url.startswith(server) or route.request.url.startswith(("blob:", "data:")):
            return route.continue_()
        context.outside.append(route.request.url)
        return route.abort()

    context.route("**/*", offline)
    yield page
    context.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#filters select').length === 12")


def tiles(page) -> list[dict]:
    return page.eval_on_selector_all(".tile", "ts => ts.map(t => ({id: t.dataset.id, title: t.title, "
                                               "rank: t.querySelector('.value').textContent.split(' ')[0], "
                                               "attrs: t.querySelector('.attrs').textContent, "
                                               "loaded: t.querySelector('img').complete && t.querySelector('img').naturalWidth > 0}))")


def wait_for_status(page, text: str) -> str:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text)
    return page.text_content("#status")


def search_params(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_photo_filter_view_and_search_from_a_result(page, server, served_index):  # noqa: F811
    open_page(page, server)
    assert "32 images" in page.text_content("#info")
    labels = page.eval_on_selector_all("#filters label", "ls => ls.map(l => l.firstChild.textContent)")
    assert "upper-body colour" in labels and "length of lower-body clothing" in labels and "sleeve length" in labels
    options = page.eval_on_selector_all("#filters option", "os => os.map(o => o.textContent)")
    assert "several colours" in options and not [o for o in options if "_" in o]  # no code names
    assert page.eval_on_selector("select[name=down]", "s => [...s.options].map(o => o.textContent)") == ["any", "long", "short"]

    page.fill("#topk", "12")
    page.set_input_files("#file", str(served_index["outside"]))
    status = wait_for_status(page, "results for uploaded photo")
    assert status.startswith("12 results") and "embed" in status and " ms" in status
    page.wait_for_function("[...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
    shown = tiles(page)
    assert len(shown) == 12 and all(t["loaded"] for t in shown) and shown[0]["attrs"].split(",")[0] in ("man", "woman")
    assert search_params(page) == {}  # a photo stays on this machine: the URL holds no search
    page.screenshot(path=str(DOCS / "search_app.png"), full_page=True)

    # a filter on the predicted gender: every tile shows it
    page.select_option("select[name=gender]", "female")
    page.set_input_files("#file", [])
    page.set_input_files("#file", str(served_index["outside"]))
    status = wait_for_status(page, "pass the filter")
    filtered = tiles(page)
    assert filtered and all(t["attrs"].startswith("woman,") for t in filtered)
    assert len(filtered) == min(12, int(status.split("(")[1].split(" of ")[0]))

    # a result's larger view: file name, camera, every predicted attribute, the probability; a search from it
    first = filtered[0]
    page.click(f".tile[data-id='{first['id']}']")
    page.wait_for_selector("#view[open]")
    name = first["title"].split(":")[0]
    assert page.text_content("#view-name") == name
    facts = dict(page.eval_on_selector_all("#view-facts tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"))
    assert facts["gender"] == "woman" and facts["rank"] == "#1" and "camera" in facts and "distance" in facts
    assert len(facts) == 2 + 12 + 1 and "length of lower-body clothing" in facts
    assert page.evaluate("document.getElementById('file').value").endswith("outside.jpg")
    page.wait_for_function("document.getElementById('view-image').complete")
    page.screenshot(path=str(DOCS / "search_app_view.png"))
    page.click("#view-search")
    wait_for_status(page, f"results for gallery image {name}")
    after = tiles(page)
    assert after and first["id"] not in {t["id"] for t in after} and not page.is_visible("#view")
    assert page.evaluate("document.getElementById('file').value") == ""  # no longer names the photo
    assert search_params(page) == {"id": first["id"], "top_k": "12", "rerank": "false", "filter": "gender=female"}

    # the re-ranking toggle
    page.check("#rerank")
    page.click(f".tile[data-id='{after[0]['id']}']")
    page.click("#view-search")
    assert "re-ranked" in wait_for_status(page, "re-ranked")

    # a shared link reloads the search in another page
    other = page.context.new_page()
    open_page(other, page.url)
    wait_for_status(other, "re-ranked")
    assert [t["id"] for t in tiles(other)] == [t["id"] for t in tiles(page)]
    assert other.eval_on_selector("select[name=gender]", "s => s.value") == "female" and other.is_checked("#rerank")
    assert not page.context.outside, page.context.outside


def test_description_in_words_more_results_export_and_the_back_button(page, server):
    open_page(page, server)
    page.fill("#topk", "12")
    # by drop-downs
    page.select_option("select[name=upcolor]", "black")
    page.click("#describe")
    status = wait_for_status(page, "results for description")
    assert '"black upper-body clothing" (upcolor=black)' in status
    by_dropdown = [t["id"] for t in tiles(page)]

    # in words: what was understood is shown back, and the words that were not
    page.fill("#text", "a woman in a red top, sparkly")
    page.press("#text", "Enter")
    status = wait_for_status(page, '"woman, red upper-body clothing"')
    assert status.startswith("12 results") and "(gender=female,upcolor=red)" in status
    assert page.text_content("#understood .understood") == "understood: woman; red top → red upper-body clothing"
    assert page.text_content("#understood .unknown") == "not understood: sparkly"
    assert search_params(page) == {"text": "a woman in a red top, sparkly", "top_k": "12"}
    page.wait_for_function("[...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(DOCS / "search_app_description.png"), full_page=True)

    # more results: the next ranks, until the gallery's 32 images are all shown
    first = tiles(page)
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.tile').length === 24")
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.tile').length === 32")
    every = tiles(page)
    assert every[:12] == first and [t["rank"] for t in every] == [f"#{i}" for i in range(1, 33)]
    assert len({t["id"] for t in every}) == 32 and page.is_hidden("#more")

    # the shown results as CSV
    with page.expect_download() as download:
        page.click("#export")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert download.value.suggested_filename == "search_results.csv"
    assert [r["id"] for r in rows] == [t["id"] for t in every] and rows[0]["rank"] == "1" and float(rows[0]["score"]) > 0
    assert set(rows[0]) >= {"name", "camera", "gender", "upcolor", "downcolor", "backpack"}

    # an error replaces the results
    page.fill("#text", "sparkly")
    page.press("#text", "Enter")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "400: nothing understood in 'sparkly'" in page.text_content("#status")
    assert not tiles(page) and page.is_hidden("#export") and page.text_content("#understood") == ""

    # the back button restores the searches before it
    page.go_back()
    wait_for_status(page, '"woman, red upper-body clothing"')
    assert [t["id"] for t in tiles(page)] == [t["id"] for t in first] and page.input_value("#text").startswith("a woman")
    page.go_back()
    wait_for_status(page, "(upcolor=black)")
    assert [t["id"] for t in tiles(page)] == by_dropdown and page.input_value("#text") == ""
    assert page.eval_on_selector("select[name=upcolor]", "s => s.value") == "black"
    assert not page.context.outside, page.context.outside


def test_drag_and_drop_and_a_bad_file(page, server, served_index):  # noqa: F811
    open_page(page, server)
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
    assert page.text_content("#status") == ("415: notes.jpg: not an image this server reads (JPEG, PNG, BMP, WebP, ...): "
                                            "no image format starts with b'not an image'")
    assert not tiles(page)  # the old results are gone


def test_the_api_page_works_offline(page, server):
    page.goto(server + "docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "person search" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.textContent)")
    assert "/api/search/description" in paths and "/api/compare" in paths
    assert not page.context.outside, page.context.outside
