"""robots.txt (RFC 9309) with protego: one cached entry per host (scheme, host, port), fetched
by whichever download thread first needs it while the others wait for it. Never does
network I/O itself: it is handed a function that fetches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scraper.errors import PageError
from scraper.records import ErrorKind
from scraper.urls import host_key

RETRY_S = 60.0  # an unreachable or failing robots.txt is asked for again after this long

# robots URL -> (status, body); raises PageError when the host cannot be reached at all
RobotsFetch = Callable[[str], "tuple[int, bytes]"]


@dataclass
class _RobotsEntry:
    ready: threading.Event = field(default_factory=threading.Event)
    error: PageError | None = None  # the host could not be reached: each page gets this
    parser: object | None = None  # a Protego instance; None with a verdict below
    allow_all: bool = False
    reason: str = ""
    retry_at: float | None = None  # time.monotonic() from which robots.txt is fetched again


class RobotsCache:
    """robots.txt per host, fetched once per run (or again later, after a failure), read as
    RFC 9309 says, as Google reads it:

    - 2xx: parsed by Protego (Scrapy's parser; lines it cannot read are ignored, so garbage
      allows everything);
    - 4xx but 429 (404 most often), and a redirect loop or more than 5 redirects
      ("unavailable", §2.3.1.2-3): no rules, everything allowed;
    - 429 and 5xx ("unreachable", §2.3.1.4): everything disallowed for now, and robots.txt
      asked for again after `retry_s`;
    - the host cannot be reached (refused, timed out, TLS): each of its pages fails with that
      error, its own kind and message, and robots.txt is asked for again after `retry_s`.

    At most 512 KiB is read (http.fetch_robots' cap, RFC 9309 §2.5: at least 500 KiB).
    """

    def __init__(
        self,
        user_agent: str,
        retry_s: float = RETRY_S,
        on_sitemaps: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        """`on_sitemaps(host, urls)`: told the Sitemap: lines of each robots.txt read."""
        self.user_agent = user_agent
        self.retry_s = retry_s
        self.on_sitemaps = on_sitemaps
        self._lock = threading.Lock()
        self._entries: dict[str, _RobotsEntry] = {}

    def check(self, url: str, fetch: RobotsFetch) -> tuple[float | None, bool]:
        """Raise PageError when `url` may not or cannot be fetched; else (Crawl-delay or None,
        whether this call fetched robots.txt). The first thread to ask about a host fetches
        its robots.txt; others wait for it."""
        key = host_key(url)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None or _due(entry)
            if owner:
                entry = self._entries[key] = _RobotsEntry()
        assert entry is not None
        if owner:
            self._load(entry, key, fetch)
        elif not entry.ready.wait(120):
            raise PageError(ErrorKind.ROBOTS, "robots.txt of this host is still loading")
        if entry.error is not None:
            raise RobotsFetchFailed(entry.error.kind, f"{entry.error} (fetching robots.txt)", owner)
        if entry.allow_all:
            return None, owner
        if entry.parser is None:
            raise PageError(
                ErrorKind.ROBOTS,
                f"robots.txt unavailable ({entry.reason}): everything disallowed for now "
                "(RFC 9309)",
            )
        if not entry.parser.can_fetch(url, self.user_agent):  # type: ignore[attr-defined]
            raise PageError(ErrorKind.ROBOTS, "disallowed by robots.txt")
        delay = entry.parser.crawl_delay(self.user_agent)  # type: ignore[attr-defined]
        return (float(delay) if delay else None), owner

    def _load(self, entry: _RobotsEntry, key: str, fetch: RobotsFetch) -> None:
        try:
            status, body = fetch(key + "/robots.txt")
            if 200 <= status < 300:
                from protego import Protego

                text = body.decode("utf-8", errors="replace")
                entry.parser = Protego.parse(text)
                if self.on_sitemaps is not None:
                    sitemaps = list(entry.parser.sitemaps)
                    if sitemaps:
                        self.on_sitemaps(key, sitemaps)
            elif 400 <= status < 500 and status != 429:
                entry.allow_all = True
            else:  # 429 (as Google reads it) and 5xx: the host is unreachable for now
                entry.reason = f"status {status}"
                entry.retry_at = time.monotonic() + self.retry_s
        except PageError as exc:
            entry.error = exc
            if exc.kind is not ErrorKind.BLOCKED_ADDRESS:  # that one will not change
                entry.retry_at = time.monotonic() + self.retry_s
        finally:
            entry.ready.set()


class RobotsFetchFailed(PageError):
    """The host's robots.txt could not be fetched (refused, timed out, TLS...): its pages fail
    with that error until robots.txt is asked for again (`retry_s`), so such a page is not
    retried. `fetched`: this call sent the robots.txt request; otherwise nothing was sent."""

    retryable = False

    def __init__(self, kind: ErrorKind, message: str, fetched: bool) -> None:
        super().__init__(kind, message)
        self.fetched = fetched


def _due(entry: _RobotsEntry) -> bool:
    """A failed robots.txt whose time to be asked for again has come."""
    return (
        entry.ready.is_set() and entry.retry_at is not None and time.monotonic() >= entry.retry_at
    )
