"""The book builds without a warning, and its pages load nothing from another host.

One build, into a temporary folder, with warnings as errors and nitpicky
references (the session fixture ``book_build`` of conftest.py, shared with the
browser tests of test_browser.py); every assertion below inspects that build.
"""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

# Attributes through which a page makes the browser fetch something by itself.
FETCHING = {"script": "src", "img": "src", "iframe": "src", "link": "href", "source": "src", "video": "src"}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)""")


class Fetches(HTMLParser):
    """Collect every address an HTML page fetches: tag attributes and CSS url()."""

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in FETCHING and attrs.get(FETCHING[tag]):
            self.urls.append(attrs[FETCHING[tag]])
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        self.urls += CSS_URL.findall(attrs.get("style") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += CSS_URL.findall(data)


def is_remote(url):
    parts = urlsplit(url)
    return parts.scheme not in ("", "data", "file") or url.startswith("//")


def test_the_book_builds_without_a_warning(book_build):
    assert book_build.returncode == 0, book_build.output


def pages(html):
    """The rendered pages (the theme also copies unrendered template macros into _static)."""
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


def test_every_toc_entry_has_a_page(html, toc_entries):
    for entry in toc_entries:
        assert (html / f"{entry}.html").is_file(), f"no page built for {entry}"


def test_pages_fetch_nothing_from_another_host(html):
    for page in pages(html):
        parser = Fetches()
        parser.feed(page.read_text(encoding="utf-8"))
        remote = [u for u in parser.urls if is_remote(u)]
        assert not remote, f"{page.relative_to(html)} fetches {remote}"


def test_stylesheets_fetch_nothing_from_another_host(html):
    for css in html.rglob("*.css"):
        remote = [u for u in CSS_URL.findall(css.read_text(encoding="utf-8")) if is_remote(u)]
        assert not remote, f"{css.relative_to(html)} fetches {remote}"


def test_mathjax_is_served_from_the_build(html):
    page = html / "book" / "building_blocks" / "conv2d.html"
    parser = Fetches()
    parser.feed(page.read_text(encoding="utf-8"))
    mathjax = [s for s in parser.scripts if "mathjax" in s.lower()]
    assert mathjax, "the page loads no MathJax"
    for src in mathjax:
        target = (page.parent / urlsplit(src).path).resolve()
        assert target.is_file(), f"MathJax script {src} is missing from the build"
        assert target.stat().st_size > 100_000, f"{src} is not the full MathJax bundle"


def test_local_scripts_exist(html):
    for page in pages(html):
        parser = Fetches()
        parser.feed(page.read_text(encoding="utf-8"))
        for src in parser.scripts:
            target = (page.parent / urlsplit(src).path).resolve()
            assert target.is_file(), f"{page.relative_to(html)} loads missing {src}"
