"""Parse stage, run in worker processes: response bytes → text → the page's fields.

Pure CPU work: no network, no files, no shared state. Two engines give the same record:
`lxml` (lxml.html directly, the default: the fastest per core) and `bs4` (BeautifulSoup on the
lxml builder, the familiar API). Raises PageError (kind `decode` or `parse`) for one bad page.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scraper.errors import PageError
from scraper.parse.decode import decode_body
from scraper.parse.events import extract_events
from scraper.parse.extract import (
    ExtractProblem,
    extract_fields,
    follow_hrefs,
    follow_matching,
    follow_plan,
    site_for,
)
from scraper.parse.html import Document, html_parser
from scraper.parse.rules import SiteRule
from scraper.records import ErrorKind, FetchedPage, Found
from scraper.urls import (
    document_base,
    host_key,
    mask_passwords,
    other_scheme,
    redact_url,
    strip_userinfo,
    web_link,
    web_url,
)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
_TYPES = re.compile(r'(?:[^,"]|"[^"]*")+')  # comma-separated, commas in quoted values kept
HIDDEN_TAGS = ("script", "style", "noscript", "template")
LINK_TAGS = ("a", "area")
# The fields' key of what a page gives the frontier (a records.Found; never written out).
FOUND = "_found"
RESOLVED = "_resolved"  # the link resolver's href -> URL, from the extract functions


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What the parse stage needs from Settings; small, so it pickles into workers cheaply."""

    parser: str = "lxml"
    max_text_chars: int = 20_000
    sites: tuple[SiteRule, ...] = ()  # the `sites` setting: per-site field rules
    structured_data: bool = False  # add JSON-LD, OpenGraph and microdata under `structured`


def parse_options(settings: Any) -> ParseOptions:
    """The parse stage's part of Settings."""
    return ParseOptions(
        settings.parser, settings.max_text_chars, settings.sites, settings.structured_data
    )


def parse_page(page: FetchedPage, options: ParseOptions) -> dict[str, Any]:
    """The record's page fields for one fetched page (a sitemap's, parse/sitemap.py, when
    the task is one); raises PageError."""
    if page.task.kind == "sitemap":
        from scraper.parse.sitemap import sitemap_fields

        return sitemap_fields(page)
    header = content_type_of(page.headers.get("content-type", ""))
    content_type = media_type(header)
    fields: dict[str, Any] = {
        "final_url": redact_url(page.final_url),
        "status": page.status,
        "content_type": content_type or None,
        "encoding": None,
        "title": None,
        "description": None,
        "canonical": None,
        "lang": None,
        "links": [],
        "text": "",
        "word_count": 0,
        "content_hash": page.content_hash or content_hash(page.body),
        "body_bytes": len(page.body),
    }
    if page.html_file:
        fields["html_file"] = page.html_file
    if content_type not in HTML_TYPES or not page.body.strip():
        _check_not_html(page, options, content_type)
        return fields  # recorded, not parsed: PDFs, images, JSON, empty bodies
    text, encoding = decode_body(page.body, header)
    fields["encoding"] = encoding
    extract = _extract_lxml if options.parser == "lxml" else _extract_bs4
    # Only pages with site rules or structured data pay for the extras (per page, hot path).
    extras = _Extras(page, options) if options.sites or options.structured_data else None
    try:
        # Links resolve against the URL without its credentials: they are not passed on.
        found = extract(text, strip_userinfo(page.final_url), extras)
    except (ValueError, LookupError, RecursionError) as exc:
        raise PageError(ErrorKind.PARSE, f"{type(exc).__name__}: {exc}"[:300]) from exc
    words = found.pop("words")
    links = found["links"]
    resolved = found.pop(RESOLVED, {})
    fields.update(mask_passwords(found))  # a page's own links and words may hold some too
    fields["word_count"] = len(words)
    fields["text"] = mask_passwords(_capped(words, options.max_text_chars))
    if extras is not None:
        fields.update(mask_passwords(extras.fields))
        if extras.follow is not None:
            fields[FOUND] = extras.followed(links, resolved)
        if extras.problem is not None:
            raise PageError(ErrorKind.EXTRACT, extras.problem, fields)
    return fields


class _Extras:
    """The site's fields, the links its follow rules select and structured data, taken
    before the parse stage strips scripts."""

    def __init__(self, page: FetchedPage, options: ParseOptions) -> None:
        self.page, self.options = page, options
        self.fields: dict[str, Any] = {}
        self.problem: str | None = None
        self.follow = (
            follow_plan(options.sites, page.final_url, page.task.url, page.task.depth)
            if options.sites
            else None
        )
        self.hrefs: list[str] = []
        self.base = page.final_url

    def followed(self, links: list[str], resolved: dict[str, str | None]) -> Found:
        """The links to queue: those the CSS and XPath rules selected, resolved against the
        page's base, and the page's links the regex rules find; on the page's host only
        when the site says same_host. Absolute, in the WHATWG form, each once."""
        assert self.follow is not None
        urls = dict.fromkeys(
            u
            for h in self.hrefs
            if (u := resolved[h] if h in resolved else web_link(self.base, h)) is not None
        )
        urls.update(dict.fromkeys(follow_matching(self.follow, links)))
        if self.follow.same_host:
            own = host_key(self.page.final_url)
            urls = {u: None for u in urls if host_key(u) == own}
        return Found(pages=tuple(urls))

    def __call__(self, doc: Document, base_url: str) -> None:
        if self.follow is not None:
            self.base = base_url
            self.hrefs = follow_hrefs(self.follow, doc)
        if self.options.sites:
            try:
                self.fields.update(
                    extract_fields(
                        self.options.sites, doc, self.page.final_url, self.page.task.url, base_url
                    )
                )
            except ExtractProblem as exc:
                self.fields.update(exc.fields)
                self.problem = str(exc)
        if self.options.structured_data:
            from scraper.parse.structured import structured_data

            root = doc.root()
            self.fields["structured"] = structured_data(root, base_url) if root is not None else {}


def _check_not_html(page: FetchedPage, options: ParseOptions, content_type: str) -> None:
    """A page a site's rules cover, with required fields, cannot be a PDF or an empty body."""
    if not options.sites:
        return
    site = site_for(options.sites, page.final_url, page.task.url)
    if site is not None and any(f.required for f in site.fields):
        what = (content_type or "untyped") if page.body.strip() else "an empty body"
        message = f"site {site.name}: required fields, but the page is {what}, not HTML"
        raise PageError(ErrorKind.EXTRACT, message)


def content_hash(body: bytes) -> str:
    """The record's `content_hash`: sha256 of the (decoded) body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def media_type(content_type: str) -> str:
    """`text/html` from `text/HTML; charset=utf-8` (of the Content-Type content_type_of picks)."""
    return content_type_of(content_type).split(";", 1)[0].strip().lower()


def content_type_of(header: str) -> str:
    """The one Content-Type of a header value that may hold several: a response with two
    Content-Type lines arrives with them joined by a comma. The first HTML type is taken, as
    browsers take it, else the first type."""
    if "," not in header:
        return header
    parts = [part.strip() for part in _TYPES.findall(header) if part.strip()]
    if not parts:
        return ""
    essences = [part.split(";", 1)[0].strip().lower() for part in parts]
    html = next((p for p, e in zip(parts, essences, strict=True) if e and e in HTML_TYPES), None)
    return html if html is not None else parts[0]


def _capped(words: list[str], max_chars: int) -> str:
    text = " ".join(words)
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]


class _LinkResolver:
    """Absolute, de-duplicated http(s) links without fragments, in document order, each
    parsed and serialised as the WHATWG URL Standard says (urls.web_link, ada-url: ~2.4 µs a
    link, where urljoin took ~5.5 µs and gave what no browser requests). A malformed href
    is left out, never failing the page; `dropped` counts them."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.seen: set[str] = set()
        self.links: list[str] = []
        self.dropped = 0
        self.resolved: dict[str, str | None] = {}  # href -> URL: follow rules read them again

    def add(self, href: str) -> None:
        url = self.resolved[href] = self.resolve(href)
        if url is not None and url not in self.seen:
            self.seen.add(url)
            self.links.append(url)

    def resolve(self, href: str) -> str | None:
        """The absolute http(s) URL of `href` without its fragment, or None."""
        url = web_link(self.base, href)
        if url is None and not other_scheme(href) and web_url(href, self.base) is None:
            self.dropped += 1  # malformed (another scheme, mailto: or javascript:, is not)
        return url

    def absolute(self, href: str | None) -> str | None:
        if href is None or not href.strip():
            return None
        return self.resolve(href)


def _collapse(text: str | None) -> str | None:
    return " ".join(text.split()) if text is not None else None


Extras = Callable[[Document, str], None]


def _extract_lxml(text: str, final_url: str, extras: Extras | None) -> dict[str, Any]:
    from lxml import etree

    # Plain etree elements: lxml.html's element classes cost a Python lookup per node visited.
    parser = html_parser()
    doc = etree.fromstring(text, parser)
    last = parser.error_log.last_error
    if last is not None and last.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        # libxml2 builds 256 levels and drops the rest of a deeper page: read its events.
        run = (lambda base: extras(Document(text), base)) if extras is not None else None
        return extract_events(text, final_url, _LinkResolver, run)
    if doc is None:  # only whitespace or comments
        if extras is not None:
            extras(Document(text, root=None), final_url)
        return _empty_fields()
    base = next((b.get("href") for b in doc.iter("base") if b.get("href")), None)
    resolver = _LinkResolver(document_base(final_url, base))
    title_el = next(doc.iter("title"), None)
    title = " ".join("".join(title_el.itertext()).split()) if title_el is not None else None
    description = canonical = None
    for meta in doc.iter("meta"):
        if description is None and (meta.get("name") or "").strip().lower() == "description":
            description = meta.get("content")
    for link in doc.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split():
            canonical = resolver.absolute(link.get("href"))
            break
    for anchor in doc.iter(*LINK_TAGS):
        href = anchor.get("href")
        if href is not None:
            resolver.add(href)
    if extras is not None:
        extras(Document(text, root=doc), resolver.base)
    body = doc.find("body")
    root = body if body is not None else doc
    etree.strip_elements(root, *HIDDEN_TAGS, with_tail=False)
    words = " ".join(root.itertext()).split()
    return {
        "title": title,
        "description": _collapse(description),
        "canonical": canonical,
        "lang": (doc.get("lang") or "").strip() or None,
        "links": resolver.links,
        RESOLVED: resolver.resolved,
        "words": words,
    }


def _extract_bs4(text: str, final_url: str, extras: Extras | None) -> dict[str, Any]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "lxml")
    base_tag = soup.find("base", href=True)
    base = base_tag.get("href") if base_tag else None
    resolver = _LinkResolver(document_base(final_url, str(base) if base else None))
    description = canonical = None
    for meta in soup.find_all("meta"):
        if description is None and str(meta.get("name") or "").strip().lower() == "description":
            description = meta.get("content")
    for link in soup.find_all("link"):
        rel: Any = link.get("rel") or []
        rels = rel if isinstance(rel, list) else str(rel).split()
        if "canonical" in [r.lower() for r in rels]:
            href = link.get("href")
            canonical = resolver.absolute(str(href) if href is not None else None)
            break
    for anchor in soup.find_all(LINK_TAGS, href=True):
        resolver.add(str(anchor["href"]))
    title = soup.find("title")
    html_tag = soup.find("html")
    if extras is not None:
        extras(Document(text, soup=soup), resolver.base)
    root = soup.body or soup
    for hidden in root.find_all(HIDDEN_TAGS):
        hidden.decompose()
    return {
        "title": _collapse(title.get_text()) if title else None,
        "description": _collapse(str(description)) if description is not None else None,
        "canonical": canonical,
        "lang": (str(html_tag.get("lang") or "").strip() or None) if html_tag else None,
        "links": resolver.links,
        RESOLVED: resolver.resolved,
        "words": root.get_text(" ").split(),
    }


def _empty_fields() -> dict[str, Any]:
    return {
        "title": None,
        "description": None,
        "canonical": None,
        "lang": None,
        "links": [],
        "words": [],
    }
