"""The search page end to end in headless Chromium (Debian's package), driven by Playwright, against a real server."""

import os
import shutil
import socket
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it; locally: apt-get install chromium)",
)


@pytest.fixture(scope="module")
def server(built_index):
    import uvicorn

    from searchkit.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(built_index, watch=False), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium")), executable_path=CHROMIUM, args=ARGS, headless=True)
        yield context.new_page()
        context.close()


def titles(page):
    return page.locator("tr.result td.title").all_inner_texts()


def test_type_query_see_results_apply_brand_filter(page, server):
    page.goto(server + "/")
    page.fill("#q", "swag light kit")
    page.click("#go")
    page.wait_for_selector("tr.result")
    assert "q=swag+light+kit" in page.url
    first = titles(page)
    assert len(first) >= 5
    assert "server" in page.inner_text("#status") and "ms" in page.inner_text("#status")
    assert "showing results for" not in page.inner_text("#status")
    brands_before = set(page.locator("tr.result td.brand").all_inner_texts())
    assert len(brands_before) > 1
    page.click("#brand-chips .chip[data-value='kohler']")
    page.wait_for_url("**brand=kohler**")
    page.wait_for_function("() => [...document.querySelectorAll('tr.result td.brand')].every(td => td.textContent === 'kohler')")
    narrowed = page.locator("tr.result td.brand").all_inner_texts()
    assert narrowed and set(narrowed) == {"kohler"}
    assert page.locator("#brand-chips .chip.active").inner_text().startswith("kohler")


def test_a_link_opens_with_its_results(page, server):
    page.goto(server + "/?q=garden+hose&brand=delta&mode=lexical")
    page.wait_for_selector("tr.result")
    assert page.input_value("#q") == "garden hose" and page.input_value("#mode") == "lexical"
    assert set(page.locator("tr.result td.brand").all_inner_texts()) == {"delta"}
    assert all("garden hose" in t.lower() for t in titles(page))


def test_a_misspelled_query_says_what_was_searched(page, server):
    page.goto(server + "/?q=wirless+door+knbo")
    page.wait_for_selector("tr.result")
    assert "showing results for “wireless door knob”" in page.inner_text("#status")


def test_empty_result_and_error_shown(page, server):
    page.goto(server + "/?q=" + "x" * 1001)
    page.wait_for_selector("#status .error")
    assert "1000" in page.inner_text("#status")
