"""The frontier: URLs a run discovers (sitemaps, follow rules), waiting for their turn.

It lives in sqlite (a file beside the state database, `<state>-frontier`, or a temporary file
when the run keeps no state): the URLs, where each was found and what is left to take wait
on disk, and memory holds only the batch handed to the scheduler and the URL index, the
64-bit hash of each URL (url_list.DuplicateIndex, 24 bytes a URL at most; a collision among
a million URLs has odds of about 3e-8), mirrored by the table's unique key. Each page's
finds are committed before its record is written, so a killed crawl loses none; the file
is not synced to disk (synchronous=OFF: a process killed loses nothing, a power cut may lose
the frontier, never the state, which is another file). Rows are appended in the order found
(breadth first) and taken by id; a resumed run (--resume) takes again every discovered row
the killed run did not record.

Listed URLs are noted too (kind `listed`, never taken), so that a page found by a link is
not fetched again when the list has it, nor a list line when a link got there first. A
discovered URL keeps no credentials: it would be written to the state in clear.

Shared by the local engine's threads and the cluster client: one connection, one lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from scraper.records import Found, UrlTask
from scraper.url_list import DuplicateIndex
from scraper.urls import host_key, redact_url, state_key, strip_userinfo

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS frontier (
    id INTEGER PRIMARY KEY,
    key INTEGER NOT NULL UNIQUE,  -- 64-bit hash of url
    url TEXT NOT NULL,            -- normalised, without credentials (a seed's: masked)
    kind TEXT NOT NULL,           -- page, sitemap, listed (a list line), seed (--sitemap),
                                  -- over (found past max_urls: counted, not fetched)
    found_on TEXT,                -- the sitemap or page that gave it
    depth INTEGER NOT NULL DEFAULT 0,
    lastmod REAL,                 -- the sitemap's <lastmod>, unix time
    for_host TEXT NOT NULL DEFAULT '',
    recorded INTEGER NOT NULL DEFAULT 0, -- set when a run resumes: the killed run wrote it
    host TEXT NOT NULL DEFAULT ''  -- urls.host_key: rows are taken host by host, in turn
);
CREATE INDEX IF NOT EXISTS frontier_by_host ON frontier (host, id);
"""
# (key, url, kind, found_on, depth, lastmod, for_host): a frontier row to insert
Row = tuple[int, str, str, str, int, "float | None", str]
HostedRow = tuple[int, str, str, str, int, "float | None", str, str]  # and the URL's host
UNSIGNED = (1 << 64) - 1
MAX_SITEMAP_DEPTH = 3  # an index of indexes of sitemaps, and no deeper
BUSY_TIMEOUT_MS = 30_000


@dataclass
class FrontierCounts:
    """What the frontier did in this run, for the summary."""

    pages: int = 0  # discovered page URLs queued
    sitemaps: int = 0  # sitemaps queued (seeds included)
    left_out: int = 0  # new URLs not queued: max_urls reached
    too_deep: int = 0  # sitemaps an index listed past MAX_SITEMAP_DEPTH


class Frontier:
    """Discovered URLs: offered by the stages, taken by the reader; in sqlite."""

    def __init__(
        self,
        path: Path | None,
        max_urls: int,
        resume: bool = False,
        recorded: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        """`path`: the state database (None: a temporary file, removed at close). With
        `resume`, the killed run's rows are kept and those of `recorded` URLs passed over."""
        self.max_urls = max_urls
        self.counts = FrontierCounts()
        self._lock = threading.Lock()
        self._temp: str | None = None
        if path is None:
            fd, self._temp = tempfile.mkstemp(prefix="scrape-frontier-", suffix=".sqlite")
            os.close(fd)
            path = Path(self._temp)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        if not resume:  # a new run starts from nothing
            self._db.execute("DROP TABLE IF EXISTS frontier")
        self._db.executescript(SCHEMA)
        # Per host, the rows up to this id have been handed out; `_waiting`, the hosts that
        # may have more, in turn. One host's 50,000-URL sitemap must not hold back the rest.
        self._taken: dict[str, int] = {}
        self._waiting: dict[str, None] = {}
        # The keys of every row, in memory (24 bytes a URL at most): the crawl's links are
        # mostly known already, and a lookup in sqlite for each cost the writer thread 5%.
        self._keys = DuplicateIndex()
        self._hosts: set[str] = set()  # the listed URLs' hosts (sitemaps_from_robots)
        if resume:
            self._resume(recorded)
        self._discovered = self._db.execute(
            "SELECT count(*) FROM frontier WHERE kind IN ('page', 'sitemap')"
        ).fetchone()[0]
        for (key,) in self._db.execute("SELECT key FROM frontier"):  # a resumed crawl's
            self._seen(key)

    def _resume(self, recorded: frozenset[str] | set[str]) -> None:
        rows = self._db.execute("SELECT id, url FROM frontier WHERE kind = 'page'").fetchall()
        done = [(row_id,) for row_id, url in rows if url in recorded]
        self._db.execute("BEGIN")
        self._db.executemany("UPDATE frontier SET recorded = 1 WHERE id = ?", done)
        self._db.execute("COMMIT")
        hosts = self._db.execute(
            "SELECT DISTINCT host FROM frontier WHERE kind IN ('page', 'sitemap') AND recorded = 0"
        )
        self._waiting.update((host, None) for (host,) in hosts)
        log.info("resuming a crawl: %d discovered URLs, %d recorded", len(rows), len(done))

    # -- what goes in ----------------------------------------------------------------------

    def seed(self, sitemaps: list[str]) -> list[UrlTask]:
        """The sitemaps given (--sitemap, `sitemaps:`), as tasks to queue first."""
        tasks = []
        with self._lock:
            self._db.execute("BEGIN")
            for url in sitemaps:
                shown = redact_url(url)
                row = self._db.execute(
                    "INSERT INTO frontier (key, url, kind) VALUES (?, ?, 'seed') "
                    "ON CONFLICT(key) DO UPDATE SET kind = 'seed' RETURNING id",
                    (_key(shown), shown),
                ).fetchone()
                self._seen(_key(shown))
                task = UrlTask(-row[0], shown, url, found_on="", kind="sitemap")
                tasks.append(task)
                self._hosts.add(host_key(url))
            self._db.execute("COMMIT")
        self.counts.sitemaps += len(tasks)
        return tasks

    def listed(self, tasks: list[UrlTask]) -> list[bool]:
        """Note list URLs; for each, False when a link or sitemap got there first and its
        page is already being fetched (the line is then a duplicate), else True."""
        fetch = []
        with self._lock:
            self._db.execute("BEGIN")
            for task in tasks:
                self._hosts.add(host_key(task.normalized_url))
                url = state_key(task)
                self._seen(_key(url))
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO frontier (key, url, kind) VALUES (?, ?, 'listed')",
                    (_key(url), url),
                )
                if cursor.rowcount:
                    fetch.append(True)
                    continue
                row = self._db.execute(
                    "SELECT id, kind, recorded FROM frontier WHERE key = ?", (_key(url),)
                ).fetchone()
                if row[1] in ("listed", "seed", "over"):  # a resumed run's own line
                    fetch.append(True)
                elif row[0] > self._taken.get(host_key(url), 0) and not row[2]:  # not taken yet
                    self._db.execute("UPDATE frontier SET kind = 'listed' WHERE id = ?", (row[0],))
                    fetch.append(True)
                else:
                    fetch.append(False)
            self._db.execute("COMMIT")
        return fetch

    def offer(self, parent: UrlTask, found: Found) -> None:
        """Queue what a page or sitemap gave: each URL not seen yet in this run (nor listed),
        while max_urls allows."""
        depth = parent.depth + 1 if parent.kind == "page" else 0
        found_on = redact_url(parent.normalized_url)
        pages = [
            (_key(link := strip_userinfo(url)), link, "page", found_on, depth, lastmod, "")
            for url, lastmod in zip(
                found.pages, found.lastmods or (None,) * len(found.pages), strict=True
            )
        ]
        sitemaps = []
        if found.sitemaps:
            level = parent.depth + 1
            if level > MAX_SITEMAP_DEPTH:
                self.counts.too_deep += len(found.sitemaps)
                log.warning(
                    "%s: %d sitemaps left out: an index nested over %d deep",
                    parent.where(),
                    len(found.sitemaps),
                    MAX_SITEMAP_DEPTH,
                )
            else:
                sitemaps = [
                    (
                        _key(u := strip_userinfo(url)),
                        u,
                        "sitemap",
                        found_on,
                        level,
                        None,
                        parent.for_host,
                    )
                    for url in found.sitemaps
                ]
        sitemaps += [
            (_key(u := strip_userinfo(url)), u, "sitemap", f"{host}/robots.txt", 0, None, host)
            for host, url in found.robots_sitemaps
            if host in self._hosts
        ]
        if pages or sitemaps:
            self._insert(sitemaps + pages)

    def _insert(self, rows: list[Row]) -> None:
        """Insert what is new of `rows` (sitemaps first), while max_urls leaves room. Most
        links of a crawl are known already: they are looked up in memory first, and only
        new ones (if any) are written, in one transaction."""
        with self._lock:
            rows = self._new(rows)
            if not rows:
                return
            hosted = [(*row, host_key(row[1])) for row in rows]  # the host, for new rows only
            self._waiting.update((row[7], None) for row in hosted)
            self._db.execute("BEGIN")
            for kind in ("sitemap", "page"):
                todo = [row for row in hosted if row[2] == kind]
                room = max(0, self.max_urls - self._discovered)
                if todo[:room]:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO frontier (key, url, kind, found_on, depth,"
                        " lastmod, for_host, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        todo[:room],
                    )
                added = len(todo[:room])
                self._discovered += added
                if kind == "page":
                    self.counts.pages += added
                else:
                    self.counts.sitemaps += added
                if todo[room:]:
                    self._count_left_out(todo[room:])
            self._db.execute("COMMIT")

    def _new(self, rows: list[Row]) -> list[Row]:
        """The rows whose URL is not in the frontier yet, each once (now noted as known)."""
        fresh = []
        for row in rows:
            if self._seen(row[0]):
                fresh.append(row)
        return fresh

    def _seen(self, key: int) -> bool:
        """Note `key` as in the frontier; True if it was not yet."""
        before = self._keys.count
        self._keys.first_line(key & UNSIGNED, 1)
        return self._keys.count > before

    def _count_left_out(self, rows: list[HostedRow]) -> None:
        """Note `rows` (new URLs) as left out, max_urls reached: kept as rows of kind
        `over`, never taken, so that each is counted once; one warning per run."""
        self._db.executemany(
            "INSERT OR IGNORE INTO frontier (key, url, kind, found_on, depth)"
            " VALUES (?, ?, 'over', ?, ?)",
            [(row[0], row[1], row[3], row[4]) for row in rows],
        )
        new = len(rows)
        if new and not self.counts.left_out:
            log.warning(
                "max_urls (%d) reached: further discovered URLs are not queued in this run",
                self.max_urls,
            )
        self.counts.left_out += new

    # -- what comes out --------------------------------------------------------------------

    def take(self, n: int) -> list[UrlTask]:
        """Up to `n` discovered URLs not handed out yet: the hosts in turn, a share of `n`
        each, oldest first within a host."""
        with self._lock:
            rows: list[tuple[int, str, str, str, int, float | None, str]] = []
            while len(rows) < n and self._waiting:
                share = max(1, (n - len(rows)) // len(self._waiting))
                for host in list(self._waiting):
                    got = self._db.execute(
                        "SELECT id, url, kind, found_on, depth, lastmod, for_host FROM frontier"
                        " WHERE host = ? AND id > ? AND kind IN ('page', 'sitemap')"
                        " AND recorded = 0 ORDER BY id LIMIT ?",
                        (host, self._taken.get(host, 0), share),
                    ).fetchall()
                    if len(got) < share:  # none left of this host for now
                        del self._waiting[host]
                    if got:
                        self._taken[host] = got[-1][0]
                        rows += got
                    if len(rows) >= n:
                        break
        shared: dict[str, str] = {}  # a page's links share its found_on: one string for all
        return [
            UrlTask(
                -row_id,
                url,
                url,
                shared.setdefault(found_on, found_on),
                depth,
                lastmod,
                kind,
                for_host,
            )
            for row_id, url, kind, found_on, depth, lastmod, for_host in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._temp is None:
                self._db.close()
                return
            self._db.execute("DELETE FROM frontier")
            self._db.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self._temp + suffix)
                except FileNotFoundError:
                    pass


def _key(url: str) -> int:
    """The frontier's index of a URL: 64 bits of its BLAKE2b hash, as a signed SQLite int."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big", signed=True)
