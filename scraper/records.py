"""Data objects that cross stage boundaries, and the names that make up the output format.

Everything here is a frozen, slotted dataclass of plain types: it pickles into spawned parse
workers, compares by value in tests and prints well in logs. No sessions, locks or files inside.
The field names, `Outcome` values and `ErrorKind` values are the documented output format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Outcome(str, enum.Enum):
    """What happened to one input line; one record per line that held anything."""

    OK = "ok"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"  # not fetched: the run was interrupted first
    UNCHANGED = "unchanged"  # 304, or the same content as last time: not parsed

    def __str__(self) -> str:
        return self.value


class ErrorKind(str, enum.Enum):
    """Why a page failed. Retry decisions and the record's `error.kind` read this."""

    INVALID_URL = "invalid_url"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"  # the host name does not resolve
    TLS = "tls"  # the TLS handshake failed or the certificate was refused
    PROTOCOL = "protocol"  # the server's response breaks HTTP (malformed headers, say)
    TOO_LARGE = "too_large"
    REDIRECTS = "redirects"
    BAD_SCHEME = "bad_scheme"
    BLOCKED_ADDRESS = "blocked_address"
    HTTP_STATUS = "http_status"
    ROBOTS = "robots"
    DECODE = "decode"
    PARSE = "parse"
    PARSE_TIMEOUT = "parse_timeout"
    EXTRACT = "extract"
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


class _FastPickle:
    """Pickle as (class, field values). The __getstate__ that dataclasses write for slotted
    classes calls fields() on every page: a page's round trip to a worker took 25 µs of
    pickling with it and 14 µs with this (measured)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        names: tuple[str, ...] = self.__slots__
        return type(self), tuple(getattr(self, name) for name in names)


@dataclass(frozen=True, slots=True)
class UrlTask(_FastPickle):
    """One URL line of the list, normalised: what the download stage works on."""

    line_no: int  # the list's line; a discovered URL's is negative (its frontier row, -id)
    url: str  # as given in the list (stripped); shown in the record
    normalized_url: str  # scheme and host lower-cased, default port and fragment removed
    # Discovered URLs (pipeline/frontier.py) only: the sitemap or page that gave it, how many
    # follow-rule links away from a listed URL or a sitemap's entry it is, its sitemap
    # <lastmod> (unix time), and `kind` "sitemap" for a sitemap to read, not a page.
    found_on: str | None = None
    depth: int = 0
    lastmod: float | None = None
    kind: str = "page"
    # A sitemap's: the host whose robots.txt named it, whose URLs it may list (sitemaps.org
    # "cross submits"); "" for its own host only.
    for_host: str = ""

    @property
    def discovered(self) -> bool:
        return self.found_on is not None

    def where(self) -> str:
        """How messages name it: "line 3: URL", "URL (found on PAGE)", "sitemap URL"."""
        if self.kind == "sitemap":
            return f"sitemap {self.url}"
        if self.found_on is not None:
            return f"{self.url} (found on {self.found_on})"
        return f"line {self.line_no}: {self.url}"


@dataclass(frozen=True, slots=True)
class FetchedPage(_FastPickle):
    """Download stage → parse stage: the final response of one URL."""

    task: UrlTask
    final_url: str
    status: int
    headers: dict[str, str]  # names lower-cased; never mutated once built
    body: bytes  # content-decoded, at most max_body_bytes
    attempts: int
    elapsed_s: float
    content_hash: str = ""  # "sha256:<hex>" of body; "" when not computed
    changed: bool = True  # False when the body hashes as it did last run (with --full)
    html_file: str = ""  # where save_html put the body, relative to the output folder


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The `error` part of a record: a kind from `ErrorKind` and a one-line message."""

    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class Validators:
    """What a fetch learnt of a URL, for a conditional request next time."""

    etag: str | None
    last_modified: str | None
    content_hash: str | None
    # Where the URL's last full record is ("<run>/<offset>/<length>" in that run's file,
    # output/previous.py): an unchanged page's record is completed from it.
    record_ref: str | None = None
    fetched_at: float | None = None  # unix time of its last fetch (from the state only)


@dataclass(frozen=True, slots=True)
class PageState:
    """What a finished record tells the state store about its URL (not written out)."""

    url: str  # normalised, password masked
    outcome: str
    status: int | None
    error: str | None
    validators: Validators | None  # None when the fetch failed
    changed: bool
    forget: bool = False  # the validators are of no use (the full record is gone): drop them
    fetched: bool = True  # False: not requested (sitemap lastmod): only record_ref is news


@dataclass(frozen=True, slots=True)
class Found:
    """What a page or a sitemap gives the frontier (not written out): URLs to queue (each
    with its sitemap lastmod, unix time, or None), sitemaps an index lists, and a
    sitemap's problems in words."""

    pages: tuple[str, ...] = ()
    lastmods: tuple[float | None, ...] = ()
    sitemaps: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    # (host, sitemap URL) of the Sitemap: lines of a robots.txt fetched for this URL's host
    robots_sitemaps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One record per input line or discovered URL: all a sink sees."""

    line_no: int
    url: str
    outcome: Outcome
    fields: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    attempts: int = 0
    state: PageState | None = None  # for the state store; not part of the output
    # An unchanged record's page fields as the JSON-lines text of its last full record, after
    # its "status" (output/previous.py): written as they are, not decoded and encoded again.
    raw_tail: bytes | None = None
    found_on: str | None = None  # a discovered URL's: written as `found_on`, with `depth`
    depth: int = 0
    found: Found | None = None  # links to follow, a sitemap's entries: for the frontier only

    def where(self) -> str:
        """How messages name it: "line 3: URL", or "URL (found on PAGE)"."""
        if self.found_on is not None:
            return f"{self.url} (found on {self.found_on})"
        return f"line {self.line_no}: {self.url}"

    def to_dict(self) -> dict[str, Any]:
        """The record as written: line, url, outcome, attempts, then fields or error. A
        discovered URL's has `line` null, then `found_on` and `depth` after `url`."""
        out: dict[str, Any] = {"line": self.line_no, "url": self.url}
        if self.found_on is not None:
            out["line"] = None
            out["found_on"] = self.found_on
            out["depth"] = self.depth
        out["outcome"] = self.outcome.value
        out["attempts"] = self.attempts
        out.update(self.fields)
        if self.error is not None:
            out["error"] = {"kind": self.error.kind.value, "message": self.error.message}
        return out


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """A list line that holds no usable URL; it becomes an `invalid` record."""

    line_no: int
    text: str  # the line, shortened, control characters escaped, credentials masked
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateLine:
    """A URL already seen on an earlier line (after normalising); fetched once only."""

    line_no: int
    url: str
    first_line_no: int
