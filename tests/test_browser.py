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

    from searchkit.serve.app import create_app

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
    return page.locator(".result .title").all_inner_texts()


def test_type_query_see_results_apply_brand_filter(page, server):
    page.goto(server + "/")
    page.fill("#q", "swag light kit")
    page.click("#go")
    page.wait_for_selector(".result")
    assert "q=swag+light+kit" in page.url
    first = titles(page)
    assert len(first) >= 5
    assert "server" in page.inner_text("#status") and "ms" in page.inner_text("#status")
    assert page.locator(".result .price").count() == len(first)  # product cards with prices
    assert page.locator(".result .title mark").count() > 0  # the query's words marked
    assert not page.locator(".result .debug").first.is_visible()  # scores only behind the debug switch
    assert "showing results for" not in page.inner_text("#status")
    brands_before = set(page.locator(".result .brand").all_inner_texts())
    assert len(brands_before) > 1
    page.click("#brand-chips .chip[data-value='kohler']")
    page.wait_for_url("**brand=kohler**")
    page.wait_for_function("() => [...document.querySelectorAll('.result .brand')].every(d => d.textContent === 'kohler')")
    narrowed = page.locator(".result .brand").all_inner_texts()
    assert narrowed and set(narrowed) == {"kohler"}
    assert page.locator("#brand-chips .chip.active").inner_text().startswith("kohler")


def test_a_link_opens_with_its_results(page, server):
    page.goto(server + "/?q=garden+hose&brand=delta&mode=lexical")
    page.wait_for_selector(".result")
    assert page.input_value("#q") == "garden hose" and page.input_value("#mode") == "lexical"
    assert set(page.locator(".result .brand").all_inner_texts()) == {"delta"}
    assert all("garden hose" in t.lower() for t in titles(page))
    page.goto(server + "/?q=garden+hose&brand=DELTA")  # spelt otherwise than the catalog: still one chip, chosen
    page.wait_for_selector(".result")
    chips = page.locator("#brand-chips .chip").all_inner_texts()
    assert [c for c in chips if c.lower().startswith("delta")] == page.locator(
        "#brand-chips .chip.active").all_inner_texts() and len(page.locator("#brand-chips .chip.active").all()) == 1
    page.click("#brand-chips .chip.active")  # and choosing it again drops the filter
    page.wait_for_function("() => !location.search.includes('brand=')")


def test_a_misspelled_query_says_what_was_searched(page, server):
    page.goto(server + "/?q=wirless+door+knbo")
    page.wait_for_selector(".result")
    assert "showing results for “wireless door knob”" in page.inner_text("#status")


def test_empty_result_and_error_shown(page, server):
    page.goto(server + "/?q=" + "x" * 1001)
    page.wait_for_selector("#status .error")
    assert "1000" in page.inner_text("#status")


def test_pages_sorting_and_suggestions(page, server):
    page.goto(server + "/?q=kohler+toilet+seat")
    page.wait_for_selector(".result")
    first = titles(page)
    assert len(first) == 20 and page.locator("#next-page").count() == 1
    page.click("#next-page")
    page.wait_for_url("**page=2**")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('products 21')")
    second = titles(page)
    assert len(second) == 20 and page.locator(".result .debug").first.inner_text(timeout=1000) is not None
    ranks = [int(t.split("·")[0].strip("# ")) for t in page.locator(".result .debug").all_text_contents()]
    assert ranks == list(range(21, 41))  # page 2 is ranks 21-40
    assert page.locator("#prev-page").count() == 1
    page.select_option("#sort", "price")
    page.wait_for_url("**sort=price**")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('products 1')")
    prices = [float(p.strip("$")) for p in page.locator(".result .price").all_inner_texts()]
    assert prices == sorted(prices) and "page=2" not in page.url
    page.fill("#q", "")
    page.type("#q", "ceil", delay=30)
    page.wait_for_function("() => document.querySelectorAll('#suggestions option').length > 0")
    offered = page.locator("#suggestions option").evaluate_all("(os) => os.map(o => o.value)")
    assert any(o.startswith("ceiling") for o in offered)
    page.check("#debug")
    page.wait_for_url("**debug=1**")
    page.wait_for_selector(".result .debug:not(.hidden)")
    assert "cosine" in page.locator(".result .debug").first.inner_text()


def test_the_admin_page_shows_a_shop_its_searches(page, tmp_path_factory, built_index):
    import urllib.request

    import uvicorn

    from searchkit.serve.app import create_app

    folder = tmp_path_factory.mktemp("admin-logs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(built_index, watch=False, log_dir=folder, admin_key="k3y")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while not srv.started and time.time() < deadline:
            time.sleep(0.05)
        for query in ["ceiling fan", "ceiling fan", "door knob"]:
            urllib.request.urlopen(base + "/search?q=" + query.replace(" ", "+")).read()
        page.set_extra_http_headers({"Authorization": "Bearer k3y"})
        try:
            page.goto(base + "/admin")
            assert page.locator("#per-day rect").count() == 1  # one day of searches
            assert "ceiling fan" in page.locator("#top-queries").inner_text()
            assert "3 searches" in page.inner_text("#totals")
        finally:
            page.set_extra_http_headers({})
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
