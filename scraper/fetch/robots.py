"""robots.txt (RFC 9309) with protego: one cached entry per host (scheme, host, port), fetched
once by whichever download thread first needs it while the others wait for it. Never does
network I/O itself: it is handed a function that fetches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from scraper.errors import PageError
from scraper.records import ErrorKind
from scraper.urls import host_key

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 §2.5: parse at least 500 KiB


RobotsFetch = Callable[[str], "tuple[int, bytes] | None"]  # robots URL → (status, body) or None


@dataclass
class _RobotsEntry:
    ready: threading.Event = field(default_factory=threading.Event)
    error: PageError | None = None  # the host itself is refused (block_private_addresses)
    parser: object | None = None  # a Protego instance; None with a verdict below
    allow_all: bool = False
    reason: str = ""


class RobotsCache:
    """robots.txt per host, fetched once per run, as RFC 9309 says to read it:

    2xx: parsed by Protego (Scrapy's parser; lines it cannot read are ignored, so garbage
    allows everything); 4xx (404 most often): no rules, all allowed; 5xx, an unreachable host,
    a timeout: everything disallowed for this run (§2.3.1.4), as Google does. Redirects are
    followed by the fetch function (up to its limit); at most 512 KiB is parsed.
    """

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._entries: dict[str, _RobotsEntry] = {}

    def check(self, url: str, fetch: RobotsFetch) -> tuple[float | None, bool]:
        """Raise PageError(robots) when `url` is disallowed; else (Crawl-delay or None, whether
        this call fetched robots.txt). The first thread to ask about a host fetches its
        robots.txt; others wait for it."""
        key = host_key(url)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if owner:
                entry = self._entries[key] = _RobotsEntry()
        assert entry is not None
        if owner:
            self._load(entry, key, fetch)
        elif not entry.ready.wait(120):
            raise PageError(ErrorKind.ROBOTS, "robots.txt of this host is still loading")
        if entry.error is not None:
            raise PageError(entry.error.kind, str(entry.error))
        if entry.allow_all:
            return None, owner
        if entry.parser is None:
            raise PageError(
                ErrorKind.ROBOTS,
                f"robots.txt unavailable ({entry.reason}): everything disallowed (RFC 9309)",
            )
        if not entry.parser.can_fetch(url, self.user_agent):  # type: ignore[attr-defined]
            raise PageError(ErrorKind.ROBOTS, "disallowed by robots.txt")
        delay = entry.parser.crawl_delay(self.user_agent)  # type: ignore[attr-defined]
        return (float(delay) if delay else None), owner

    def _load(self, entry: _RobotsEntry, key: str, fetch: RobotsFetch) -> None:
        try:
            got = fetch(key + "/robots.txt")
        except PageError as exc:
            entry.error = exc
            entry.ready.set()
            raise
        try:
            if got is None:
                entry.reason = "unreachable or timed out"
            elif 200 <= got[0] < 300:
                from protego import Protego

                text = got[1][:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace")
                entry.parser = Protego.parse(text)
            elif 400 <= got[0] < 500:
                entry.allow_all = True
            else:
                entry.reason = f"status {got[0]}"
        finally:
            entry.ready.set()
