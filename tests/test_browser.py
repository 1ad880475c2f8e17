"""A real browser proves the built HTML: headless Chromium reads every page with the network off.

The book is built once (the session fixture ``book_build`` of conftest.py, shared with
test_book_build.py), served over HTTP on loopback, and read by the system's Chromium through
Playwright, in a browser context that aborts every request to any other host. Each rendered page
is loaded once, and on it the suite proves that

- it loads (status 200) without a console error, a script error, or a failed or blocked request;
- every formula is typeset by MathJax, served from the build: no TeX error, no raw TeX left over;
- every image decodes;
- every link into the build names an existing file, and its #fragment an element of that page;
- its download menu serves its source, byte for byte the file in the repository.

Then a search for a word of one chapter finds that chapter's pages and no other, and a screenshot
of a page of each chapter (in _build/screenshots/) shows rendered content, not a blank page.

Each kind of check is one test that lists every page failing it, so one run names all problems.
"""

import functools
import http.server
import os
import re
import shutil
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import numpy as np
import pytest
import yaml

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # the suite then skips (or fails in CI) with a reason, instead of failing to import
    sync_playwright = None
    PlaywrightError = Exception

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Everything that makes Chromium talk to the network on its own, off; a root user needs no sandbox.
# The resolver rule fails any host name but loopback, even for requests no route handler sees.
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--disable-domain-reliability", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
# A word that only one chapter uses (asserted below over the built pages, so it cannot go stale unnoticed).
SEARCH_WORD = "eigenvector"
TIMEOUT_MS = 30_000

# The checks run in the page, after MathJax (if the page has math) has finished.
PAGE_CHECKS = r"""
async () => {
  const maths = [...document.querySelectorAll('.math')];
  const untypeset = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 80));
  const merrors = [...document.querySelectorAll('mjx-merror')]
    .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120));
  // TeX that MathJax did not see stays in the text; code may legitimately show delimiters.
  const rawTex = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: node =>
    node.parentElement.closest('pre, code, script, style, textarea, mjx-container')
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  for (let node; (node = walker.nextNode());) {
    const match = node.data.match(/\\[()[\]]|\$\$/);
    if (match) rawTex.push(node.data.slice(Math.max(0, match.index - 40), match.index + 40).trim());
  }
  // Lazy images load only when scrolled to; eager ones load now, and decode() waits for them.
  const images = [...document.images];
  for (const img of images) if (img.loading === 'lazy') img.loading = 'eager';
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const undecoded = images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.getAttribute('src'));
  return {
    formulas: maths.length, untypeset, merrors, rawTex, undecoded,
    links: [...new Set([...document.querySelectorAll('a[href]')].map(a => a.href))],
    downloads: [...document.querySelectorAll('a.btn-download-source-button')].map(a => a.href),
  };
}
"""


def browser_missing():
    """Why no browser can be had here, or None."""
    if sync_playwright is None:
        return "the Python package playwright is not installed"
    if CHROMIUM is None:
        return "no chromium or chromium-browser on PATH (Debian package chromium)"
    return None


# Where no browser can be had the suite skips, by a mark, so that it does not build the book first (the
# session-scoped build would be set up before any module-scoped fixture could skip). Never in CI, though:
# there the browser tests must run, and a missing browser fails them.
pytestmark = pytest.mark.skipif(browser_missing() is not None and not os.environ.get("CI"),
                                reason=f"needs headless Chromium driven by Playwright: {browser_missing()}")


def require_browser():
    missing = browser_missing()
    if missing:
        pytest.fail(f"{missing}: in CI, .ci/run should have installed it", pytrace=False)


def test_a_browser_is_available():
    require_browser()


# ---------------------------------------------------------------- the book as the tests see it


def rendered_pages(html):
    """Every rendered page, relative to the HTML folder (the theme also copies template macros into _static)."""
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if "_static" not in p.relative_to(html).parts)


def slug(caption):
    return re.sub(r"[^a-z0-9]+", "-", caption.lower()).strip("-")


def source_of(page):
    """The repository file a page is built from, or None."""
    return next((s for s in (ROOT / f"{page}.ipynb", ROOT / f"{page}.md") if s.is_file()), None)


def page_of(entry):
    """A toc entry as its page's path without suffix (an entry may name its source's suffix, or not)."""
    return re.sub(r"\.(md|ipynb)$", "", entry)


def entries_of(node):
    """Every ``file:`` of a _toc.yml subtree, in reading order, as page paths without suffix."""
    if "file" in node:
        yield page_of(node["file"])
    for key in ("chapters", "sections"):
        for child in node.get(key, []):
            yield from entries_of(child)


@pytest.fixture(scope="module")
def chapters():
    """Each part of the table of contents: its slug, its documents, and the one page that represents it.

    The representative is the part's first notebook section, where formulas and figures are, or its first
    chapter page when it has no notebook section.
    """
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    result = []
    for part in toc.get("parts", []):
        entries = list(entries_of(part))
        heads = {page_of(chapter["file"]) for chapter in part.get("chapters", []) if "file" in chapter}
        notebooks = [e for e in entries if e not in heads and (source_of(e) or Path()).suffix == ".ipynb"]
        result.append((slug(part["caption"]), entries, (notebooks or entries)[0]))
    return result


class Ids(HTMLParser):
    """The targets a #fragment can name: element ids, and the names of anchors."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if v and (k == "id" or (k == "name" and tag == "a")))


@functools.cache
def ids_of(path):
    parser = Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


class ArticleText(HTMLParser):
    """The text of a page's article, the part Sphinx's search indexes (not the navigation)."""

    def __init__(self):
        super().__init__()
        self.depth, self.skip, self.text = 0, 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "article"
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.depth -= tag == "article"
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if self.depth > 0 and not self.skip:
            self.text.append(data)


def redirect_of(path):
    """Where a page that only redirects (jupyter-book's root index.html) sends the reader, or None."""
    match = re.search(r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\d+;\s*url=([^"']+)""",
                      path.read_text(encoding="utf-8")[:2000], re.IGNORECASE)
    return match and match.group(1)


# ---------------------------------------------------------------- server and browser


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # a line per request would bury pytest's own output
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the browser drops connections it no longer needs; the page checks report real failures


@pytest.fixture(scope="module")
def server(html):
    httpd = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(html)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@dataclass
class Tab:
    """One page object, reused for every page, and the problems the browser reports while it shows a page."""

    page: object
    events: list = field(default_factory=list)
    blocked: set = field(default_factory=set)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tab(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    tab = Tab(context.new_page())

    def block(route):
        tab.blocked.add(route.request.url)
        tab.events.append(f"blocked request to another host: {route.request.url}")
        route.abort("blockedbyclient")

    def failed(request):
        if request.url not in tab.blocked:  # those are reported once, by block()
            tab.events.append(f"request failed ({request.failure}): {request.url}")

    def response(response):
        if response.status >= 400:
            tab.events.append(f"HTTP {response.status}: {response.url}")

    # Every request not addressed to the local server is intercepted and aborted. The pattern is matched
    # inside the browser driver, so the many local requests do not each make a round trip through Python.
    context.route(re.compile(rf"^(?!{re.escape(server)})"), block)
    tab.page.on("console", lambda m: m.type == "error" and tab.events.append(f"console error: {m.text}"))
    tab.page.on("pageerror", lambda error: tab.events.append(f"script error: {error}"))
    tab.page.on("requestfailed", failed)
    tab.page.on("response", response)
    yield tab
    context.close()


# ---------------------------------------------------------------- one visit of every page


@dataclass
class Visits:
    pages: list
    formulas: dict = field(default_factory=dict)
    problems: dict = field(default_factory=lambda: defaultdict(list))  # kind of check -> "page: problem"


def settle(page):
    """Wait until MathJax, if the page has math, has typeset it, and the fonts its formulas need have loaded.

    A font still loading at the next navigation would be aborted, and reported against the wrong page.
    """
    if page.locator(".math").count():
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
    # fonts are requested only once the text that uses them is laid out
    page.evaluate("() => { document.body.getBoundingClientRect(); return document.fonts.ready.then(() => true) }")


def check_links(links, server, html, report):
    local = urlsplit(server).netloc
    for link in links:
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or parts.netloc != local:
            continue  # mailto:, and papers on other hosts: links, not loads
        path = unquote(parts.path).lstrip("/")
        target = html / path / "index.html" if path.endswith("/") or not path else html / path
        if not target.is_file():
            report(f"link to a missing file: {link.removeprefix(server)}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_of(target):
            report(f"link to a missing anchor: {link.removeprefix(server)}")


def check_downloads(page, rel, downloads, toc_entries, report):
    entry = rel.removesuffix(".html")
    if entry in map(page_of, toc_entries) and not downloads:
        report("no download link to the page's source")
    for href in downloads:
        path = unquote(urlsplit(href).path).lstrip("/")
        source = ROOT / path.removeprefix("_sources/")
        if not path.startswith("_sources/") or source.with_suffix("").relative_to(ROOT).as_posix() != entry:
            report(f"download link {path} is not the page's source")
            continue
        response = page.request.get(href)
        if response.status != 200:
            report(f"download {path}: HTTP {response.status}")
        elif not source.is_file():
            report(f"download {path}: no such file in the repository")
        elif response.body() != source.read_bytes():  # Sphinx copies the source verbatim
            report(f"download {path} differs from {source.relative_to(ROOT)}")


@pytest.fixture(scope="module")
def visits(tab, server, html, toc_entries, chapters):
    """Load every page once and run every check on it; the tests below read the problems found."""
    page = tab.page
    result = Visits(rendered_pages(html))
    screenshots = {f"{rep}.html": SCREENSHOTS / f"{name}.png" for name, _, rep in chapters}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for png in screenshots.values():
        png.unlink(missing_ok=True)  # a screenshot left from an earlier run proves nothing
    for rel in result.pages:
        tab.events = []

        def report(kind, message, rel=rel):
            result.problems[kind].append(f"{rel}: {message}")

        url = server + quote(rel)
        try:
            response = page.goto(url)
            if response is None or response.status != 200:
                report("load", f"HTTP {response and response.status}")
            redirect = redirect_of(html / rel)
            if redirect:  # its target is a page of its own; here only the redirect itself is checked
                page.wait_for_url(urljoin(url, redirect))
                check_links([urljoin(url, redirect)], server, html, functools.partial(report, "links"))
                settle(page)
            else:
                settle(page)
                found = page.evaluate(PAGE_CHECKS)
                result.formulas[rel] = found["formulas"]
                for what, items in (("formula not typeset", found["untypeset"]), ("TeX error", found["merrors"]),
                                    ("raw TeX in the text", found["rawTex"])):
                    for item in items:
                        report("math", f"{what}: {item!r}")
                for src in found["undecoded"]:
                    report("images", f"image does not decode: {src}")
                check_links(found["links"], server, html, functools.partial(report, "links"))
                check_downloads(page, rel, found["downloads"], toc_entries, functools.partial(report, "download"))
                if rel in screenshots:
                    page.screenshot(path=screenshots[rel])
        except PlaywrightError as error:  # a page that hangs is one problem, not the end of the suite
            report("load", f"{type(error).__name__}: {str(error).splitlines()[0]}")
        for event in tab.events:
            report("load", event)
    return result


def assert_none(visits, kind, what):
    problems = visits.problems[kind]
    assert not problems, f"{len(problems)} {what}:\n" + "\n".join(problems)


def test_every_page_is_visited(visits, html, toc_entries):
    missing = [e for e in toc_entries if f"{page_of(e)}.html" not in visits.pages]
    assert not missing, f"no page for the toc entries {missing}"
    assert {"genindex.html", "search.html"} <= set(visits.pages)
    assert sum(visits.formulas.values()) > 0, "no page has a formula: the math checks checked nothing"


def test_every_page_loads_cleanly(visits):
    assert_none(visits, "load", "problems loading pages (console errors, script errors, failed requests)")


def test_every_formula_is_typeset(visits):
    assert_none(visits, "math", "formulas not typeset")


def test_every_image_decodes(visits):
    assert_none(visits, "images", "images that do not decode")


def test_every_internal_link_resolves(visits):
    assert_none(visits, "links", "links into the build that lead nowhere")


def test_every_download_link_serves_the_source(visits):
    assert_none(visits, "download", "problems with the download menu")


# ---------------------------------------------------------------- search and screenshots


def test_search_finds_the_one_chapter_of_a_word(tab, server, html, toc_entries, chapters):
    import snowballstemmer  # what Sphinx's English search index stems words with

    stem = functools.cache(snowballstemmer.stemmer("porter").stemWord)
    having = set()
    for entry in map(page_of, toc_entries):
        parser = ArticleText()
        parser.feed((html / f"{entry}.html").read_text(encoding="utf-8"))
        if stem(SEARCH_WORD) in {stem(w) for w in set(re.findall(r"\w+", " ".join(parser.text).lower()))}:
            having.add(entry)
    parts = [name for name, entries, _ in chapters if having <= set(entries)]
    assert having and parts, f"pick another SEARCH_WORD: {SEARCH_WORD!r} is not in exactly one chapter, " \
                             f"but in {sorted(having)}"

    tab.events = []
    tab.page.goto(f"{server}search.html?q={SEARCH_WORD}")
    # Sphinx fills the summary only when the search has finished and every result is listed.
    tab.page.wait_for_function("() => document.querySelector('#search-results p.search-summary')?.textContent")
    hrefs = tab.page.eval_on_selector_all("#search-results ul.search > li > a", "links => links.map(a => a.href)")
    found = {unquote(urlsplit(h).path).lstrip("/").removesuffix(".html") for h in hrefs}
    assert not tab.events, "\n".join(tab.events)
    assert found == having, f"search for {SEARCH_WORD!r} in {parts[0]} listed {sorted(found)}, not {sorted(having)}"


def test_each_chapter_has_a_rendered_screenshot(visits, chapters):
    from PIL import Image

    for name, _, representative in chapters:
        png = SCREENSHOTS / f"{name}.png"
        assert png.is_file(), f"no screenshot of {representative} for {name}"
        with Image.open(png) as image:
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(np.uint32)
        inked = (pixels < 240).any(axis=1).mean()
        colours = len(np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2]))
        assert inked > 0.03 and colours > 16, f"{png.name} ({representative}) looks blank: " \
                                              f"{inked:.1%} non-white pixels, {colours} colours"
