"""Sitemaps (sitemaps.org protocol) read safely and as a stream, in the parse workers: what a
sitemap gives the frontier (pipeline/frontier.py).

- A urlset's `<url><loc>` (with `<lastmod>`) or a sitemapindex's `<sitemap><loc>`, the
  namespace optional (many sites leave it out), each element dropped once read, so a 50 MB
  sitemap never becomes 50 MB of Python objects.
- The protocol's limits: 50,000 entries and 50 MB uncompressed per file; gzip (by its magic
  bytes, `.xml.gz` or Content-Encoding alike) is decompressed under the same cap.
- No DTD at all (a DOCTYPE is refused before parsing: no billion laughs, no external
  entities), lxml with resolve_entities=False and no_network=True besides.
- URLs on another host than the sitemap's are left out (the protocol's rule; the path rule,
  which Google does not apply either, is not), but for a sitemap that a host's robots.txt
  names, which may list that host's URLs (the protocol's "cross submits"); each URL in the
  WHATWG form (urls.normalize_url).
Problems are collected in words; nothing raises for a bad sitemap.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

from scraper.records import FetchedPage, Found
from scraper.urls import InvalidUrl, host_key, normalize_url, redact_url

FOUND = "_found"  # as parse/page.py names it

MAX_ENTRIES = 50_000
MAX_BYTES = 50 * 1024 * 1024
SHOWN_PROBLEMS = 20  # a sitemap of 50,000 bad <loc>s keeps 20 messages and a count
GZIP_MAGIC = b"\x1f\x8b"
_LASTMOD = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@dataclass(frozen=True)
class SitemapEntry:
    url: str  # normalised
    lastmod: datetime | None  # UTC


@dataclass
class Sitemap:
    kind: str = ""  # "urlset" or "sitemapindex"; "" when unreadable
    entries: list[SitemapEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0  # past SHOWN_PROBLEMS: counted, not kept

    def note(self, problem: str) -> None:
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1


class _Capped(io.RawIOBase):
    """A stream that stops with an error past `limit` bytes (a decompression bomb)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.limit, self.read_so_far = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > self.limit:
            raise _TooLarge
        buffer[: len(data)] = data
        return len(data)


class _TooLarge(Exception):
    pass


def read_sitemap(
    body: bytes, sitemap_url: str, max_entries: int = MAX_ENTRIES, for_host: str = ""
) -> Sitemap:
    """The entries of one sitemap file (`body` as fetched, gzipped or not); `for_host`: the
    host (urls.host_key) whose robots.txt named it, whose URLs it may list too."""
    result = Sitemap()
    raw: BinaryIO = io.BytesIO(body)
    if body.startswith(GZIP_MAGIC):
        raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    stream = io.BufferedReader(_Capped(raw, MAX_BYTES))
    try:
        head = stream.peek(4096)[:4096]
    except (OSError, EOFError, _TooLarge) as exc:
        result.problems.append(f"cannot read the sitemap: {_words(exc)}")
        return result
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
        result.problems.append("a sitemap with a DTD is refused (entities are not expanded)")
        return result
    hosts = {host_key(sitemap_url), for_host or host_key(sitemap_url)}
    try:
        for kind, loc, lastmod in _elements(stream):
            result.kind = result.kind or kind
            if len(result.entries) >= max_entries:
                result.problems.append(
                    f"more than {max_entries:,} entries: the rest left out (sitemaps protocol)"
                )
                break
            try:
                url = normalize_url(loc)
            except InvalidUrl as exc:
                result.note(f"<loc> {loc[:100]!r} left out: {exc}")
                continue
            if host_key(url) not in hosts:
                result.note(f"<loc> {url[:100]} left out: another host than the sitemap's")
                continue
            result.entries.append(SitemapEntry(url, parse_lastmod(lastmod)))
    except _TooLarge:
        result.problems.append(f"over {MAX_BYTES // 2**20} MB uncompressed: the rest left out")
    except (OSError, EOFError) as exc:
        result.problems.append(f"cannot read the sitemap: {_words(exc)}")
    except SyntaxError as exc:  # lxml's XMLSyntaxError
        result.problems.append(f"not well-formed XML: {str(exc)[:200]}")
    return result


def sitemap_fields(page: FetchedPage) -> dict[str, Any]:
    """A fetched sitemap as the parse stage returns it: what it says in a few words, and
    (under page.FOUND) its URLs and lastmods, or the sitemaps an index lists."""
    task = page.task
    sitemap = read_sitemap(page.body, task.normalized_url, for_host=task.for_host)
    urls = tuple(e.url for e in sitemap.entries)
    problems = list(sitemap.problems)
    if sitemap.more_problems:
        problems.append(f"... and {sitemap.more_problems} more problems")
    if sitemap.kind == "sitemapindex":
        found = Found(sitemaps=urls, problems=tuple(problems))
    else:
        lastmods = tuple(e.lastmod.timestamp() if e.lastmod else None for e in sitemap.entries)
        found = Found(pages=urls, lastmods=lastmods, problems=tuple(problems))
    summary = {"kind": sitemap.kind or None, "entries": len(urls), "problems": problems}
    return {
        "final_url": redact_url(page.final_url),
        "status": page.status,
        "sitemap": summary,
        FOUND: found,
    }


def _elements(stream: BinaryIO) -> Iterator[tuple[str, str, str | None]]:
    """(root kind, loc, lastmod) per <url> or <sitemap>, each element cleared once read."""
    from lxml import etree

    kind = ""
    events = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    for event, element in events:
        name = etree.QName(element).localname if isinstance(element.tag, str) else ""
        if event == "start":
            if not kind:
                kind = name
                if kind not in ("urlset", "sitemapindex"):
                    raise SyntaxError(f"the root element is <{kind}>, not urlset or sitemapindex")
            continue
        if name in ("url", "sitemap"):
            loc = lastmod = None
            for child in element:
                child_name = etree.QName(child).localname if isinstance(child.tag, str) else ""
                if child_name == "loc":
                    loc = (child.text or "").strip()
                elif child_name == "lastmod":
                    lastmod = (child.text or "").strip()
            element.clear()
            while element.getprevious() is not None:  # drop the siblings already read
                del element.getparent()[0]
            if loc:
                yield kind, loc, lastmod


def parse_lastmod(text: str | None) -> datetime | None:
    """A W3C datetime (YYYY, YYYY-MM, YYYY-MM-DD, with a time and zone) in UTC; None if not."""
    if not text:
        return None
    match = _LASTMOD.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        stamp = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        from datetime import timedelta

        stamp -= sign * timedelta(hours=hours, minutes=minutes)
    return stamp


def _words(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
