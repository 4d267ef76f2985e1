"""What the engines do with discovered URLs, written once for the local pipeline and the
cluster client: a finished record's links and sitemap entries go to the frontier, a sitemap's
own record is counted, not written; the robots.txt Sitemap: lines are queued (with
sitemaps_from_robots); and a sitemap URL whose <lastmod> is not newer than its last fetch is
recorded unchanged without a request (sitemap_lastmod: trust, unless --full).

Without a frontier (a cluster worker's pipeline), what was found travels with the record to
the client, whose frontier it is.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from scraper.config.settings import Settings
from scraper.pipeline.base import RunCounts
from scraper.pipeline.frontier import Frontier
from scraper.pipeline.outcomes import found_first_record, lastmod_record
from scraper.records import Found, Outcome, PageRecord, UrlTask, Validators
from scraper.urls import InvalidUrl, normalize_url

log = logging.getLogger(__name__)
SHOWN_PROBLEMS = 3  # a sitemap's problems said per sitemap; the rest counted


class Discovery:
    """Shared by the stages of one engine; `takes` runs in the thread that writes records."""

    def __init__(self, settings: Settings, frontier: Frontier | None, incremental: bool) -> None:
        self.settings, self.frontier, self.incremental = settings, frontier, incremental
        self._robots: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def robots_named(self, host: str, urls: list[str]) -> None:
        """A robots.txt was read (a download thread): its Sitemap: lines, when asked for."""
        if not self.settings.sitemaps_from_robots:
            return
        found = []
        for url in urls:
            try:
                found.append((host, normalize_url(url.strip())))
            except InvalidUrl as exc:
                log.warning("%s/robots.txt: Sitemap: %s left out: %s", host, url[:100], exc)
        with self._lock:
            self._robots.extend(found)

    def takes(
        self, task: UrlTask | None, record: PageRecord, counts: RunCounts
    ) -> PageRecord | None:
        """The record to write (None for a sitemap's), once what it found is queued."""
        with self._lock:
            robots, self._robots = self._robots, []
        found = record.found
        if robots:
            found = dataclasses.replace(found or Found(), robots_sitemaps=tuple(robots))
        if self.frontier is None:  # a cluster worker: the client queues it
            return dataclasses.replace(record, found=found) if found is not record.found else record
        if task is not None and found is not None:
            self.frontier.offer(task, found)
        if task is not None and task.kind == "sitemap":
            self._count_sitemap(task, record, counts)
            return None
        return dataclasses.replace(record, found=None) if record.found is not None else record

    def _count_sitemap(self, task: UrlTask, record: PageRecord, counts: RunCounts) -> None:
        if record.outcome is Outcome.OK:
            counts.sitemaps_read += 1
            problems = record.found.problems if record.found is not None else ()
            for problem in problems[:SHOWN_PROBLEMS]:
                log.warning("%s: %s", task.where(), problem)
            if len(problems) > SHOWN_PROBLEMS:
                log.warning("%s: ... and %d more problems", task.where(), len(problems) - 3)
        elif record.outcome is Outcome.FAILED and record.error is not None:
            counts.sitemaps_failed += 1
            error = record.error
            log.warning("%s: failed: %s: %s", task.where(), error.kind.value, error.message)

    def claim(self, batch: list[UrlTask]) -> tuple[list[UrlTask], list[PageRecord]]:
        """The list URLs to fetch, and records for those a link or sitemap got to first."""
        assert self.frontier is not None
        keep, duplicates = [], []
        for task, fetch in zip(batch, self.frontier.listed(batch), strict=True):
            if fetch:
                keep.append(task)
            else:
                duplicates.append(found_first_record(task))
        return keep, duplicates

    def skip_by_lastmod(
        self, batch: list[UrlTask], known: Callable[[int], Validators | None]
    ) -> tuple[list[UrlTask], list[PageRecord]]:
        """The URLs to fetch, and the records of those whose sitemap lastmod says they did
        not change; `known(line)`: a URL's validators from the state."""
        keep, unchanged = [], []
        for task in batch:
            record = self.lastmod_record(task, known(task.line_no)) if task.lastmod else None
            if record is None:
                keep.append(task)
            else:
                unchanged.append(record)
        return keep, unchanged

    def lastmod_record(self, task: UrlTask, known: Validators | None) -> PageRecord | None:
        """The record of a sitemap URL not to request, or None to fetch it."""
        if (
            task.lastmod is None
            or known is None
            or known.fetched_at is None
            or not self.incremental
            or self.settings.sitemap_lastmod == "ignore"
            or task.lastmod > known.fetched_at
        ):
            return None
        return lastmod_record(task, known)
