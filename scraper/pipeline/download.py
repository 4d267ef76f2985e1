"""One URL's download as the pipeline decides it: fetch (conditionally when the last run left
validators), judge the status, retry or give up (fetch/retry.py), and say what goes on: a page
to parse, a record when there is nothing to parse, or nothing while a retry waits. Runs in the
download threads; the host's slot is released here, with what it learnt of the host."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.http import FetchLimits, conditional_headers, fetch_page, status_message
from scraper.fetch.politeness import HostScheduler, Lease, PoliteGate, TurnUsed
from scraper.fetch.retry import GIVE_UP, decide_retry
from scraper.output.folder import save_html
from scraper.parse.page import HTML_TYPES, media_type
from scraper.parse.sitemap import MAX_BYTES as SITEMAP_MAX_BYTES
from scraper.pipeline.outcomes import failed_record, unchanged_record, unfinished_record
from scraper.records import ErrorInfo, ErrorKind, FetchedPage, PageRecord, Validators
from scraper.urls import mask_passwords

log = logging.getLogger(__name__)


class Download:
    """The download stage's decisions for one leased URL; shared by the download threads."""

    def __init__(
        self,
        settings: Settings,
        limits: FetchLimits,
        scheduler: HostScheduler,
        incremental: bool,
    ) -> None:
        self.settings, self.limits = settings, limits
        self.scheduler, self.incremental = scheduler, incremental
        # A sitemap may hold 50 MB (the protocol's cap, which parse/sitemap.py applies
        # again after gunzip): kept up to that, whatever max_body_bytes says of pages.
        self.sitemap_limits = dataclasses.replace(
            limits, max_body_bytes=max(limits.max_body_bytes, SITEMAP_MAX_BYTES), truncate_body=True
        )

    def __call__(
        self, session: Any, lease: Lease, gate: PoliteGate, known: Validators | None
    ) -> FetchedPage | PageRecord | None:
        """The fetched page, the record when there is nothing to parse, or None when the URL
        was queued for a retry. `known`: its validators from the last run, if any."""
        task, attempt = lease.queued.task, lease.queued.attempt
        started = time.monotonic()
        page: FetchedPage | None = None
        retryable = True
        try:
            conditional = conditional_headers(known) if self.incremental else None
            limits = self.sitemap_limits if task.kind == "sitemap" else self.limits
            page = fetch_page(session, task, limits, gate, attempt, conditional, known is not None)
            error = None
            if page.status >= 400:
                error = ErrorInfo(ErrorKind.HTTP_STATUS, status_message(page.status))
        except TurnUsed:  # robots.txt took the host's turn: the URL waits for the next one
            if self.scheduler.put_back(lease):
                return None
            return unfinished_record(task, lease.queued.last_error, attempt)
        except PageError as exc:
            error, retryable = exc.info(), exc.retryable
            if exc.__cause__ is not None:  # the words are the record's; --debug gets the detail
                detail = mask_passwords(repr(exc.__cause__))
                log.debug("%s: %s", task.where(), detail)
        except Exception as exc:  # a bug: record it as internal, keep the run going
            log.debug("internal error fetching %s", task.url, exc_info=True)
            error = ErrorInfo(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        status = page.status if page is not None else None
        decision = GIVE_UP
        if error is not None and retryable:
            headers = page.headers if page is not None else {}
            decision = decide_retry(error, status, headers, attempt, self.settings)
        wait_s = decision.host_wait_s
        if (
            error is not None
            and decision.delay_s is not None
            and self.scheduler.retry(lease, decision.delay_s, error)
        ):
            log.info(
                "%s: %s; retry %d in %.1fs",
                task.where(),
                error.message,
                attempt,
                decision.delay_s,
            )
            self.scheduler.release(lease, None, status, wait_s)
            return None
        latency_s = time.monotonic() - started
        self.scheduler.release(lease, latency_s, status, wait_s, sent=gate.requests > 0)
        if error is not None or page is None:
            assert error is not None
            fields = {"final_url": page.final_url, "status": page.status} if page else {}
            return failed_record(task, error, fields, attempt)
        same = known is not None and page.content_hash == known.content_hash
        if page.status == 304 or (same and self.incremental):
            return unchanged_record(task, page, known)
        if self.settings.save_html and task.kind == "page":
            page = self._save_html(page)
        return dataclasses.replace(page, changed=False) if same else page

    def _save_html(self, page: FetchedPage) -> FetchedPage:
        if media_type(page.headers.get("content-type", "")) not in HTML_TYPES:
            return page
        try:
            name = save_html(Path(self.settings.output_dir), page.task.normalized_url, page.body)
        except OSError as exc:  # a full disk loses the copy, not the record
            log.warning("%s: cannot save HTML: %s", page.task.where(), exc)
            return page
        return dataclasses.replace(page, html_file=name)
