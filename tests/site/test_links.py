"""Internal link check over the built site: every link between pages, and every
anchor it names (sections, equations, figures), must exist."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.site.test_site import HTML

pytestmark = pytest.mark.build


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if tag in ("a", "img", "script", "link") and attrs.get(key):
                self.links.append(attrs[key])


def _parse(path: Path, cache: dict[Path, _Links]) -> _Links:
    if path not in cache:
        parser = _Links()
        parser.feed(path.read_text(encoding="utf8"))
        cache[path] = parser
    return cache[path]


def test_no_broken_internal_links_or_anchors(built_site, measured):
    result, _ = built_site
    assert result.returncode == 0, "the book build failed; see test_site.py"
    pages = sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)
    cache: dict[Path, _Links] = {}
    broken, checked = [], 0
    for page in pages:
        for link in _parse(page, cache).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                continue  # external: launch, repository and citation links are links, not loads
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(HTML)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target, cache).ids:
                    broken.append(f"{page.relative_to(HTML)}: {link} (no such anchor)")
    measured(f"link check: {len(pages)} pages, {checked} internal links and anchors")
    assert checked > 500
    assert not broken, "\n".join(broken[:50])
