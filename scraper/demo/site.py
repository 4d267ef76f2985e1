"""The deterministic demo site: its pages, their ground truth, and the responses to serve.

Used by `scrape demo`, the benchmark and the tests; server.py serves it on 127.0.0.1.
Page `i` is the same bytes on every run and machine (seeded by `i`): 5-300 KB, 50-150 links,
metadata, non-ASCII text, some windows-1252 pages declared only by <meta>, redirects and 404s,
ETag and Last-Modified with 304s. This module never scrapes anything itself.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import hashlib
import html
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MOVED_EVERY, MOVED_AT = 50, 7  # /moved/i → 301 → /page/i
GONE_EVERY, GONE_AT = 50, 13  # /gone/i → 404
CP1252_EVERY, CP1252_AT = 50, 21  # windows-1252, declared only by <meta>
LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)
EXTERNAL = "https://example.org"
MAX_CACHED = 20_000  # pages kept built (about 42 KB each); others are built again when asked
SITEMAP_URLS = 10_000  # pages per sitemap file (the protocol allows 50,000)
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
LASTMOD = "2023-11-14T22:13:20Z"  # LAST_MODIFIED in W3C form: the pages never change

WORDS = [
    "data",
    "web",
    "page",
    "scraper",
    "thread",
    "process",
    "queue",
    "network",
    "latency",
    "parse",
    "record",
    "output",
    "site",
    "link",
    "title",
    "market",
    "price",
    "report",
    "river",
    "mountain",
    "garden",
    "letter",
    "window",
    "engine",
    "signal",
    "city",
    "coffee",
    "music",
    "station",
    "harbour",
    "library",
    "morning",
    "evening",
    "forest",
    "winter",
    "summer",
    "question",
    "answer",
    "system",
    "memory",
    "kernel",
    "socket",
    "buffer",
    "stream",
    "binary",
    "format",
    "summary",
    "history",
    "future",
]
UNICODE_WORDS = ["café", "naïve", "Straße", "façade", "Ångström", "東京", "Привет", "smørrebrød"]
CP1252_WORDS = ["café", "naïve", "façade", "Ångström", "œuvre", "déjà", "Zürich", "€uro"]


@dataclass(frozen=True, slots=True)
class PageTruth:
    """What a correct scraper records for one demo URL."""

    path: str  # as listed
    final_path: str
    status: int
    title: str | None
    link_count: int
    encoding: str | None
    lang: str | None
    word_count: int


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def list_paths(count: int) -> Iterator[str]:
    """The demo URL list's paths: pages, with a few redirects and 404s mixed in."""
    for i in range(count):
        if i % MOVED_EVERY == MOVED_AT:
            yield f"/moved/{i}"
        elif i % GONE_EVERY == GONE_AT:
            yield f"/gone/{i}"
        else:
            yield f"/page/{i}"


class DemoSite:
    """Pages and ground truth for `n_pages` distinct pages; page ids past that wrap around."""

    def __init__(self, n_pages: int = 2000, scheme: str = "http") -> None:
        self.n_pages = max(1, n_pages)
        self.scheme = scheme
        self._pages: dict[int, tuple[bytes, PageTruth]] = {}
        self._sitemaps: dict[tuple[str, int], bytes] = {}

    def page(self, i: int) -> tuple[bytes, PageTruth]:
        """Body and truth of page `i` (cached)."""
        key = i % self.n_pages
        if key not in self._pages:
            if len(self._pages) >= MAX_CACHED:  # a 100,000-page site would hold 4 GB
                del self._pages[next(iter(self._pages))]
            self._pages[key] = _make_page(key, self.n_pages)
        return self._pages[key]

    def truth(self, path: str) -> PageTruth:
        """Ground truth for one listed path."""
        kind, _, number = path.strip("/").partition("/")
        i = int(number)
        if kind == "gone":
            return PageTruth(path, path, 404, None, 0, None, None, 0)
        return dataclasses.replace(self.page(i)[1], path=path)

    def respond(self, path: str, headers: dict[str, str]) -> Response:
        """The response for a GET of `path` with (lower-cased) request `headers`."""
        kind, _, number = path.partition("?")[0].strip("/").partition("/")
        if kind in ("sitemap.xml", "sitemaps"):
            return self._sitemap(kind, number, headers.get("host", "127.0.0.1"))
        if kind in ("shop", "news"):
            return _fixture(path.partition("?")[0], headers)
        if not number.isdigit() or len(number) > 9:
            return _plain(404, b"not found\n")
        i = int(number)
        if kind == "moved":
            return Response(301, (("Location", f"/page/{i}"),), b"")
        if kind == "gone":
            return _plain(404, b"gone\n")
        if kind == "tiny":
            return _html_response(_tiny_page(i), "utf-8", headers)
        if kind != "page":
            return _plain(404, b"not found\n")
        body, truth = self.page(i)
        charset = "utf-8" if truth.encoding == "utf-8" else None
        return _html_response(body, charset, headers)

    def _sitemap(self, kind: str, name: str, host: str) -> Response:
        """/sitemap.xml: an index of /sitemaps/pages-<k>.xml.gz, gzipped urlsets of
        SITEMAP_URLS pages each (every /page/<i> of the site), with the pages' lastmod."""
        origin = f"{self.scheme}://{host}"
        files = -(-self.n_pages // SITEMAP_URLS)
        if kind == "sitemap.xml":
            locs = "".join(
                f"<sitemap><loc>{origin}/sitemaps/pages-{k}.xml.gz</loc></sitemap>"
                for k in range(files)
            )
            xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SITEMAP_NS}">'
            return Response(
                200,
                (("Content-Type", "application/xml"),),
                (xml + locs).encode() + b"</sitemapindex>\n",
            )
        number = name.removeprefix("pages-").removesuffix(".xml.gz")
        if not number.isdigit() or int(number) >= files:
            return _plain(404, b"not found\n")
        k = int(number)
        if (host, k) not in self._sitemaps:
            stop = min(self.n_pages, (k + 1) * SITEMAP_URLS)
            urls = "".join(
                f"<url><loc>{origin}/page/{i}</loc><lastmod>{LASTMOD}</lastmod></url>\n"
                for i in range(k * SITEMAP_URLS, stop)
            )
            xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n'
            body = gzip.compress((xml + urls + "</urlset>\n").encode(), 6)
            self._sitemaps[(host, k)] = body
        return Response(200, (("Content-Type", "application/gzip"),), self._sitemaps[(host, k)])


def _fixture(path: str, headers: dict[str, str]) -> Response:
    """/shop/product/<i> and /news/<i>: the pages of the example extraction configs."""
    from scraper.demo.fixtures import article_page, product_page

    number = path.rsplit("/", 1)[-1]
    if not number.isdigit() or len(number) > 9:
        return _plain(404, b"not found\n")
    if path.startswith("/shop/product/"):
        return _html_response(product_page(int(number))[0], "utf-8", headers)
    if path.startswith("/news/") and path.count("/") == 2:
        return _html_response(article_page(int(number))[0], "utf-8", headers)
    return _plain(404, b"not found\n")


def _plain(status: int, body: bytes) -> Response:
    return Response(status, (("Content-Type", "text/plain"),), body)


def _html_response(body: bytes, charset: str | None, headers: dict[str, str]) -> Response:
    etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
    if headers.get("if-none-match") == etag or headers.get("if-modified-since") == LAST_MODIFIED:
        return Response(304, (("ETag", etag), ("Last-Modified", LAST_MODIFIED)), b"")
    content_type = "text/html" + (f"; charset={charset}" if charset else "")
    out_headers = [("Content-Type", content_type), ("ETag", etag), ("Last-Modified", LAST_MODIFIED)]
    if "gzip" in headers.get("accept-encoding", "") and headers.get("x-demo-gzip"):
        body = gzip.compress(body, 1)
        out_headers.append(("Content-Encoding", "gzip"))
    return Response(200, tuple(out_headers), body)


def _tiny_page(i: int) -> bytes:
    return (
        f"<html><head><title>Tiny {i}</title></head><body><a href='/tiny/{i + 1}'>next</a>"
        f"</body></html>".encode()
    )


def _paragraphs(cp1252: bool) -> list[tuple[str, str, int]]:
    """A fixed pool of paragraphs pages draw from: building pages stays fast and deterministic."""
    key = "cp1252" if cp1252 else "utf-8"
    if key not in _PARAGRAPHS:
        rng = random.Random(4242 if cp1252 else 2424)
        extra = CP1252_WORDS if cp1252 else UNICODE_WORDS
        texts = [
            " ".join(
                rng.choice(extra) if rng.random() < 0.08 else rng.choice(WORDS)
                for _ in range(rng.randint(20, 80))
            )
            for _ in range(400)
        ]
        _PARAGRAPHS[key] = [(t, html.escape(t), t.count(" ") + 1) for t in texts]
    return _PARAGRAPHS[key]


_PARAGRAPHS: dict[str, list[tuple[str, str, int]]] = {}


def _make_page(i: int, n_pages: int) -> tuple[bytes, PageTruth]:
    rng = random.Random(i * 7919 + 17)
    cp1252 = i % CP1252_EVERY == CP1252_AT
    pool = _paragraphs(cp1252)
    lang = rng.choice(["en", "de", "fr", "en-GB"])
    # Sizes follow the web's skew: median near 30 KB, clipped to 5-300 KB.
    target = int(min(300_000, max(5_000, math.exp(rng.gauss(math.log(30_000), 0.8)))))
    title = f"Page {i}: {rng.choice(pool)[0][:30].strip()} & more"
    description = f"About {rng.choice(pool)[0][:60].strip()}"
    links, link_keys = _make_links(rng, i, n_pages)
    head = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head>'
        + (
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
            if cp1252
            else '<meta charset="utf-8">'
        )
        + f"<title>{html.escape(title)}</title>"
        f'<meta name="description" content="{html.escape(description)}">'
        f'<link rel="canonical" href="/page/{i}">'
        "<style>body { font-family: sans-serif } .nav a { margin: 1em }</style>"
        "<script>window.analytics = {track: function () { return 1 }};</script>"
        "</head><body>"
    )
    parts = [head, '<nav class="nav">', *(a for a, _ in links[:20]), "</nav><main>"]
    words = sum(w for _, w in links[:20])
    body_links = links[20:]
    size = sum(len(p) for p in parts)
    while size < target or body_links:
        _, escaped, count = rng.choice(pool)
        words += count
        chunk = f"<p>{escaped}"
        for anchor, anchor_words in body_links[-3:]:
            chunk += " " + anchor
            words += anchor_words
        del body_links[-3:]
        chunk += "</p>\n"
        if rng.random() < 0.1:
            heading = rng.choice(pool)[0][:20].strip()
            words += heading.count(" ") + 1
            chunk += f"<h2>{html.escape(heading)}</h2><!-- section {rng.randint(0, 999)} -->\n"
        parts.append(chunk)
        size += len(chunk)
    parts.append("</main><script>analytics.track('view')</script></body></html>\n")
    body = "".join(parts).encode("cp1252" if cp1252 else "utf-8")
    encoding = "windows-1252" if cp1252 else "utf-8"
    truth = PageTruth(f"/page/{i}", f"/page/{i}", 200, title, len(link_keys), encoding, lang, words)
    return body, truth


def _make_links(rng: random.Random, i: int, n_pages: int) -> tuple[list[tuple[str, int]], set[str]]:
    """50-150 (anchor, word count) in assorted spellings, and the distinct absolute targets."""
    anchors: list[tuple[str, int]] = []
    keys: set[str] = set()
    for _ in range(rng.randint(50, 150)):
        j = rng.randrange(n_pages)
        style = rng.random()
        if style < 0.35:
            href, key = f"/page/{j}", f"/page/{j}"
        elif style < 0.5:
            href, key = f"../page/{j}#part", f"/page/{j}"
        elif style < 0.6:
            href, key = f"{j}?ref=nav", f"/page/{j}?ref=nav"
        elif style < 0.75:
            href, key = f"{EXTERNAL}/article/{j}", f"{EXTERNAL}/article/{j}"
        elif style < 0.8:
            href, key = "#top", f"/page/{i}"
        elif style < 0.85:
            href, key = f"mailto:person{j}@example.org", ""
        elif style < 0.9:
            href, key = "javascript:void(0)", ""
        else:
            href, key = f"  /page/{j}  ", f"/page/{j}"
        if key:
            keys.add(key)
        anchors.append((f'<a href="{html.escape(href)}">link {j}</a>', 2))
    return anchors, keys


def demo_url_lines(origin: str | list[str], count: int) -> Iterator[bytes]:
    """The demo list as URL lines (bytes, newline-terminated), generated lazily; with several
    origins (hosts), line i goes to origin i mod n."""
    origins = [origin] if isinstance(origin, str) else origin
    for n, path in enumerate(list_paths(count)):
        yield f"{origins[n % len(origins)]}{path}\n".encode()


def check_records(
    site: DemoSite, origin: str | list[str], records: list[dict[str, Any]]
) -> list[str]:
    """Compare records (as written) with the ground truth; returns one line per mismatch."""
    origins = [origin] if isinstance(origin, str) else origin
    problems = []
    for record in records:
        origin = next((o for o in origins if record["url"].startswith(o + "/")), origins[0])
        path = record["url"].removeprefix(origin)
        truth = site.truth(path)
        expected_outcome = "ok" if truth.status == 200 else "failed"
        got = (record["outcome"], record.get("final_url"), record.get("status"))
        want = (expected_outcome, origin + truth.final_path, truth.status)
        if got != want:
            problems.append(f"line {record['line']}: {path}: got {got}, want {want}")
            continue
        if truth.status != 200:
            continue
        fields = (
            record.get("title"),
            len(record.get("links") or []),
            record.get("word_count"),
            record.get("encoding"),
            record.get("lang"),
        )
        want_fields = (truth.title, truth.link_count, truth.word_count, truth.encoding, truth.lang)
        if fields != want_fields:
            problems.append(f"line {record['line']}: {path}: got {fields}, want {want_fields}")
    return problems
