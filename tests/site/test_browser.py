"""The built site in a real browser (headless Chromium driven by Playwright).

Every page is loaded over a local HTTP server with every request outside the
site aborted and counted: no console errors, no failed or external requests,
every image loaded and described, math typeset by the site's own MathJax, code
outputs present. Then: search finds a known term, the launch and download
buttons point where they should, the dark theme keeps figures readable, and a
page renders from ``file://`` too. A screenshot of one chapter is saved to
``test-artifacts/``.

Needs Debian's ``chromium`` (``make test`` installs it where it can); without a
browser these tests skip and say why.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.helpers import RAW_MARKUP
from tests.site.test_site import HTML, ROOT, _has_code, toc_files

pytestmark = pytest.mark.build

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server(built_site):
    result, _ = built_site
    assert result.returncode == 0, "the book build failed; see test_site.py"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class Visit:
    """One page load with its console errors, failed and external requests recorded."""

    def __init__(self, browser, base: str, url: str, *, color_scheme: str = "light") -> None:
        self.context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.external: list[str] = []

        def route(r):
            if r.request.url.startswith((base, "data:", "blob:", "file://")):
                r.continue_()
            else:
                self.external.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: r.url.startswith(base) and self.failed.append(r.url))
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def typeset(self) -> None:
        self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        self.page.evaluate("() => MathJax.startup.promise")

    def close(self) -> None:
        self.context.close()


PROSE_TEXT = """() => {
  const body = document.querySelector('main') || document.body;
  const clone = body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, mjx-container, .cell, .highlight').forEach(e => e.remove());
  return clone.innerText;
}"""

IMAGES = """() => Array.from(document.querySelectorAll('main img')).map(i => ({
  src: i.getAttribute('src'), alt: i.getAttribute('alt') || '', ok: i.complete && i.naturalWidth > 0}))"""


# Code listings that dlbook.listing.show puts on a page: Python highlighted in a cell's output.
LISTINGS = """() => Array.from(document.querySelectorAll(
  'main .cell_output div.highlight-python pre')).map(p => p.innerText)"""

def _site_pages() -> list[str]:
    return [f"{name}.html" for name in toc_files()] + ["genindex.html", "search.html"]


def test_every_page_loads_cleanly_offline(browser, server, measured):
    pages = _site_pages()
    problems, images_checked, math_pages = [], 0, 0
    listings, listing_lines = 0, 0
    for rel in pages:
        visit = Visit(browser, server, f"{server}/{rel}")
        try:
            if visit.page.evaluate("() => document.querySelector('.math') !== null"):
                visit.typeset()
                math_pages += 1
                if visit.page.evaluate("() => document.querySelectorAll('mjx-container').length") == 0:
                    problems.append(f"{rel}: math was not typeset")
                leftover = visit.page.evaluate(PROSE_TEXT)
                for raw in ("$$", "\\frac", "\\mathbf", "\\begin{"):
                    if raw in leftover:
                        problems.append(f"{rel}: raw LaTeX {raw!r} left in the text")
            for listing in visit.page.evaluate(LISTINGS):
                listings += 1
                listing_lines += listing.count("\n") + 1
                for hit in RAW_MARKUP.findall(listing):
                    problems.append(f"{rel}: raw reST/TeX {hit!r} in a code listing")
            for image in visit.page.evaluate(IMAGES):
                images_checked += 1
                if not image["ok"]:
                    problems.append(f"{rel}: image did not load: {image['src']}")
                if not image["alt"].strip():
                    problems.append(f"{rel}: image without alt text: {image['src']}")
            name = rel.removesuffix(".html")
            if name in toc_files() and _has_code(name) and "/back/" not in name:
                if visit.page.locator(".cell_output").count() == 0:
                    problems.append(f"{rel}: no code outputs")
            problems += [f"{rel}: console error: {e}" for e in visit.errors]
            problems += [f"{rel}: failed request: {u}" for u in visit.failed]
            problems += [f"{rel}: request outside the site: {u}" for u in visit.external]
        finally:
            visit.close()
    measured(f"browser: {len(pages)} pages, {math_pages} with math, {images_checked} images checked, "
             f"{listings} code listings ({listing_lines} lines) free of reST/TeX")
    assert listings > 0, "no code listings found: the listing selector no longer matches the site"
    assert not problems, "\n".join(problems)


def test_search_finds_a_known_term(browser, server):
    visit = Visit(browser, server, f"{server}/search.html?q=pivoting")
    try:
        visit.page.wait_for_selector("#search-results li", timeout=20000)
        hits = visit.page.locator("#search-results li a").all_inner_texts()
        assert any("Tensors and linear algebra" in h for h in hits), hits
    finally:
        visit.close()


def test_launch_and_download_buttons(browser, server):
    page_name = "book/foundations/tensors"
    visit = Visit(browser, server, f"{server}/{page_name}.html")
    try:
        hrefs = visit.page.eval_on_selector_all("a", "els => els.map(e => e.href)")
        # Binder and Colab open the converted notebook on the notebooks branch
        binder = [h for h in hrefs if h.startswith("https://mybinder.org/")]
        assert binder == [f"https://mybinder.org/v2/gh/dlbook/dlbook/notebooks?urlpath=lab/tree/{page_name}.ipynb"]
        colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/")]
        assert colab == [f"https://colab.research.google.com/github/dlbook/dlbook/blob/notebooks/{page_name}.ipynb"]
        downloads = [h for h in hrefs if "/_sources/" in h]
        assert f"{server}/_sources/{page_name}.ipynb" in downloads
        assert f"{server}/_sources/{page_name}.md" in downloads
        for url in downloads:  # both downloads exist and the notebook carries outputs
            response = visit.page.request.get(url)
            assert response.ok, url
            if url.endswith(".ipynb"):
                cells = json.loads(response.text())["cells"]
                assert any(cell.get("outputs") for cell in cells if cell["cell_type"] == "code")
    finally:
        visit.close()


def test_dark_mode_toggle_keeps_figures_readable(browser, server):
    visit = Visit(browser, server, f"{server}/book/foundations/tensors.html")
    try:
        page = visit.page
        assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
        for _ in range(3):  # the toggle cycles light -> dark -> auto; stop at dark
            page.locator("button.theme-switch-button").first.click()
            if page.evaluate("() => document.documentElement.dataset.theme") == "dark":
                break
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        body_bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert body_bg != "rgb(255, 255, 255)", "the dark theme did not apply"
        # Figures have an opaque white background (dlbook.plot.STYLE), so their
        # dark text and lines stay readable on the dark page: sample a corner pixel.
        corner = page.evaluate("""async () => {
            const img = document.querySelector('main .cell_output img');
            await img.decode();
            const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(2, 2, 1, 1).data);
        }""")
        assert corner == [255, 255, 255, 255], corner
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tensors-dark.png"), full_page=False)
    finally:
        visit.close()


def test_a_chapter_renders_from_file_urls(browser, server):
    url = (HTML / "book" / "foundations" / "tensors.html").as_uri()
    visit = Visit(browser, server, url)
    try:
        visit.typeset()
        assert visit.page.evaluate("() => document.querySelectorAll('mjx-container').length") > 10
        assert not visit.external, visit.external
        ARTIFACTS.mkdir(exist_ok=True)
        visit.page.screenshot(path=str(ARTIFACTS / "tensors.png"), full_page=True)
    finally:
        visit.close()
