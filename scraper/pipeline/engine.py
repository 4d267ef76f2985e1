"""The local engine: bounded queues between the list reader, the download threads, the parse
workers and the record writer; start-up, shutdown and counts (an Engine of pipeline/base.py).

    reader ─▶ HostScheduler ─▶ download threads (one Session each) ─parse_q─▶ feeders ⇄ parse
      │      (per-host queues,        │       ▲ retries go back                      processes
      │       slots and delays)       │       │ to the scheduler                         │
      └──── invalid, duplicate ─────────── failed ──────────▶ record_q ◀── parsed ───────┘
                                                          │
                                         main thread: sink.write + progress bar

Every queue has a maxsize, so memory stays flat however long the list is; every blocking call
has a timeout or watches the run's events. Signal handlers only set `stop` (finish what is in
flight, read no more) or `abort` (leave now); this module's main loop does the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.http import (
    FetchLimits,
    conditional_headers,
    fetch_page,
    fetch_robots,
    new_session,
    status_message,
)
from scraper.fetch.politeness import HostScheduler, Lease, PoliteGate, Queued
from scraper.fetch.retry import GIVE_UP, decide_retry
from scraper.fetch.robots import RobotsCache
from scraper.output.folder import save_html
from scraper.parse.page import HTML_TYPES, media_type, parse_options, parse_page
from scraper.pipeline.base import RunCounts, RunEvents, Source, ValidatorSource
from scraper.pipeline.outcomes import (
    failed_record,
    line_record,
    parsed_record,
    skipped_record,
    unchanged_record,
    unfinished_record,
)
from scraper.pipeline.workers import Job, Worker, feed_worker
from scraper.records import (
    ErrorInfo,
    ErrorKind,
    FetchedPage,
    PageRecord,
    UrlTask,
    Validators,
)
from scraper.url_list import ListEntry, read_url_list
from scraper.urls import state_key

log = logging.getLogger(__name__)


END = object()  # end-of-stream marker passed along every queue
POLL_S = 0.2
# URLs the reader looks up in the state at once (one query) before queueing them, when the list
# is a file; a pipe is taken line by line, so that a slow writer's URLs are not held back.
# A re-run of 2000 304s: per-URL lookups in 32 threads cost 2 GIL hand-offs each.
LOOKUP_BATCH = 256
FLUSH_EVERY = 256  # records written between two flushes at most, when they keep coming


class _Countdown:
    """The last of `n` threads to finish runs `on_zero` (passes END to the next stage)."""

    def __init__(self, n: int, on_zero: Callable[[], None]) -> None:
        self.n, self.on_zero, self.lock = n, on_zero, threading.Lock()

    def done(self) -> None:
        with self.lock:
            self.n -= 1
            last = self.n == 0
        if last:
            self.on_zero()


class Pipeline:
    """One run: `run(lines, write)` returns the counts once every record has been written."""

    def __init__(
        self,
        settings: Settings,
        events: RunEvents | None = None,
        state: ValidatorSource | None = None,
        incremental: bool = True,
        skip_lines: frozenset[int] = frozenset(),
    ) -> None:
        """`state` gives each URL's last validators; with `incremental` they make conditional
        requests and spare unchanged pages the parser. Lines in `skip_lines` already have
        their records (a resumed run) and are passed over."""
        self.settings = settings
        self.events = events or RunEvents()
        self.state = state
        self.incremental = incremental
        self.skip_lines = skip_lines
        self.threads = settings.threads
        self.processes = settings.effective_processes()
        self.limits = FetchLimits.from_settings(settings)
        self.scheduler = HostScheduler(settings, self.events.stop, self.events.abort)
        self.robots = RobotsCache(settings.user_agent) if settings.obey_robots else None
        self.parse_q: queue.Queue[Any] = queue.Queue(maxsize=self.processes * 4)
        self.record_q: queue.Queue[Any] = queue.Queue(maxsize=self.threads * 4)
        self.workers: list[Worker] = []
        self.counts = RunCounts(datetime.now(timezone.utc), time.monotonic())
        # Validators the reader looked up, by line, until the URL's first fetch takes them.
        self._prefetched: dict[int, Validators | None] = {}

    # -- the main thread --------------------------------------------------------------------

    def run(
        self,
        lines: Source,
        write: Callable[[PageRecord], None],
        grace_s: float = 10.0,
        flush: Callable[[], None] = lambda: None,
    ) -> RunCounts:
        """Read `lines`, and call `write(record)` once per record, in this thread; `flush()`
        whenever no record waits (and at least every FLUSH_EVERY records), and at the end."""
        threads = self._start(lines)
        try:
            self._drain_records(write, grace_s, flush)
        finally:
            flush()
            self._shutdown(threads)
        self.counts.ended = time.monotonic()
        return self.counts

    def _start(self, lines: Source) -> list[threading.Thread]:
        downloads_done = _Countdown(
            self.threads, lambda: self._put_all(self.parse_q, END, self.processes)
        )
        parsers_done = _Countdown(self.processes, lambda: self._put_all(self.record_q, END, 1))
        threads = [threading.Thread(target=self._read_list, args=(lines,), name="list-reader")]
        threads += [
            threading.Thread(target=self._download, args=(downloads_done,), name=f"download-{n}")
            for n in range(self.threads)
        ]
        job = Job(parse_page, parse_options(self.settings))
        self.workers = [Worker(job, f"parse-{n}") for n in range(self.processes)]
        threads += [
            threading.Thread(target=self._feed, args=(w, parsers_done), name=f"feed-{w.name}")
            for w in self.workers
        ]
        for thread in threads:
            thread.daemon = True  # a thread stuck in a socket call must not keep an abort alive
            thread.start()
        return threads

    def _drain_records(
        self, write: Callable[[PageRecord], None], grace_s: float, flush: Callable[[], None]
    ) -> None:
        stop_seen_at: float | None = None
        unflushed = 0
        while True:
            if self.events.abort.is_set():
                self.counts.aborted = self.counts.interrupted = True
                return
            if self.events.stop.is_set() and stop_seen_at is None:
                stop_seen_at = time.monotonic()
                self.counts.interrupted = True
                log.warning("stopping: finishing pages in flight (up to %gs)", grace_s)
                for record in map(_unfinished, self.scheduler.stop()):
                    write(record)
                    self.counts.add(record)
            if stop_seen_at is not None and time.monotonic() - stop_seen_at > grace_s:
                log.warning("pages still in flight after %gs; leaving them", grace_s)
                self.counts.aborted = True
                self.events.abort.set()
                return
            try:
                item = self.record_q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is END:
                return
            write(item)
            self.counts.add(item)
            unflushed += 1
            # One flush for all the records that arrived together: a write() per record made
            # the main thread hand the GIL away once more per URL (a re-run of 304s: -7%).
            if unflushed >= FLUSH_EVERY or self.record_q.empty():
                flush()
                unflushed = 0

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        if self.counts.aborted:
            self.events.abort.set()
        for worker in self.workers:
            self.counts.workers_replaced += worker.replaced
        deadline = time.monotonic() + (0.5 if self.counts.aborted else 30)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.stop(kill=self.counts.aborted)

    # -- queue helpers ----------------------------------------------------------------------

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Put, waiting while the queue is full; False if the run was aborted meanwhile."""
        while not self.events.abort.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _put_all(self, q: queue.Queue[Any], item: Any, n: int) -> None:
        for _ in range(n):
            self._put(q, item)

    def _get(self, q: queue.Queue[Any]) -> Any:
        """Get, waiting while the queue is empty; END if the run was aborted meanwhile."""
        while not self.events.abort.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return END

    # -- stage threads ----------------------------------------------------------------------

    def _read_list(self, lines: Source) -> None:
        """Queue each URL line for its host; after a stop, read on and record the rest as
        skipped, so that every URL line of the list still gets its record."""
        skipping = False
        batch: list[UrlTask] = []
        size, limit = 1, (LOOKUP_BATCH if _seekable(lines) and self.state is not None else 1)
        try:
            entries: Iterable[ListEntry] = (
                lines if not hasattr(lines, "read") else read_url_list(lines)  # type: ignore[arg-type]
            )
            for entry in entries:
                if self.events.abort.is_set():
                    return
                if entry.line_no in self.skip_lines:
                    continue
                if not isinstance(entry, UrlTask):
                    self._put(self.record_q, line_record(entry))
                    continue
                batch.append(entry)
                if len(batch) >= size:
                    skipping = self._queue_batch(batch, skipping)
                    batch = []
                    # 1, 2, 4... up to the limit: the first URLs go out at once, however many
                    # lines (comments, say) the list has before the next ones.
                    size = min(size * 2, limit)
            skipping = self._queue_batch(batch, skipping)
        except OSError as exc:
            log.error("reading the URL list failed: %s", exc)
        finally:
            if self.events.stop.is_set() and not skipping:
                self._record_unfinished(self.scheduler.stop())
            self.scheduler.close()

    def _queue_batch(self, batch: list[UrlTask], skipping: bool) -> bool:
        """Look the batch up in the state, then hand it to the scheduler; returns whether the
        run is skipping (stopped): URLs it cannot take get skipped records."""
        if not skipping and self.state is not None and batch:
            keys = [state_key(task) for task in batch]
            known = self.state.lookup_many(keys)
            for task, key in zip(batch, keys, strict=True):
                self._prefetched[task.line_no] = known.get(key)
        for task in batch:
            if skipping or not self.scheduler.add(task):
                if not skipping:
                    skipping = True
                    self._record_unfinished(self.scheduler.stop())
                self._prefetched.pop(task.line_no, None)
                self._put(self.record_q, skipped_record(task))
        return skipping

    def _record_unfinished(self, left: list[Queued]) -> None:
        for queued in left:
            self._put(self.record_q, _unfinished(queued))

    def _download(self, done: _Countdown) -> None:
        session = new_session(self.settings)

        def robots_fetch(url: str) -> tuple[int, bytes] | None:
            return fetch_robots(session, url, self.limits)

        try:
            while (lease := self.scheduler.next_ready()) is not None:
                if self.counts.first_request_s is None:
                    self.counts.first_request_s = time.monotonic() - self.counts.started
                gate = PoliteGate(self.scheduler, lease, self.robots, robots_fetch)
                item = self._fetch(session, lease, gate)
                if item is not None:
                    queue_for = self.parse_q if isinstance(item, FetchedPage) else self.record_q
                    self._put(queue_for, item)
        finally:
            session.close()
            done.done()

    def _fetch(
        self, session: Any, lease: Lease, gate: PoliteGate
    ) -> FetchedPage | PageRecord | None:
        """The fetched page, the record when there is nothing to parse, or None when the URL
        was queued for a retry."""
        task, attempt = lease.queued.task, lease.queued.attempt
        known = self._known(task)
        started = time.monotonic()
        page: FetchedPage | None = None
        try:
            conditional = conditional_headers(known) if self.incremental else None
            page = fetch_page(
                session, task, self.limits, gate, attempt, conditional, known is not None
            )
            error = None
            if page.status >= 400:
                error = ErrorInfo(ErrorKind.HTTP_STATUS, status_message(page.status))
        except PageError as exc:
            error = exc.info()
        except Exception as exc:  # a bug: record it as internal, keep the run going
            log.debug("internal error fetching %s", task.url, exc_info=True)
            error = ErrorInfo(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        status = page.status if page is not None else None
        decision = GIVE_UP
        if error is not None:
            headers = page.headers if page is not None else {}
            decision = decide_retry(error, status, headers, attempt, self.settings)
        wait_s = decision.host_wait_s
        if (
            error is not None
            and decision.delay_s is not None
            and self.scheduler.retry(lease, decision.delay_s, error)
        ):
            log.info(
                "line %d: %s: %s; retry %d in %.1fs",
                task.line_no,
                task.url,
                error.message,
                attempt,
                decision.delay_s,
            )
            self.scheduler.release(lease, None, status, wait_s)
            return None
        self.scheduler.release(lease, time.monotonic() - started, status, wait_s)
        if error is not None or page is None:
            assert error is not None
            fields = {"final_url": page.final_url, "status": page.status} if page else {}
            return failed_record(task, error, fields, attempt)
        same = known is not None and page.content_hash == known.content_hash
        if page.status == 304 or (same and self.incremental):
            return unchanged_record(task, page, known)
        if self.settings.save_html:
            page = self._save_html(page)
        return dataclasses.replace(page, changed=False) if same else page

    def _save_html(self, page: FetchedPage) -> FetchedPage:
        if media_type(page.headers.get("content-type", "")) not in HTML_TYPES:
            return page
        try:
            name = save_html(Path(self.settings.output_dir), page.task.normalized_url, page.body)
        except OSError as exc:  # a full disk loses the copy, not the record
            log.warning("line %d: cannot save HTML: %s", page.task.line_no, exc)
            return page
        return dataclasses.replace(page, html_file=name)

    def _known(self, task: UrlTask) -> Validators | None:
        if self.state is None:
            return None
        if task.line_no in self._prefetched:  # looked up by the reader (first attempt)
            return self._prefetched.pop(task.line_no)
        return self.state.lookup(state_key(task))

    def _feed(self, worker: Worker, done: _Countdown) -> None:
        def emit(page: FetchedPage, fields: Any, error: ErrorInfo | None) -> None:
            if error is None:
                record = parsed_record(page, fields)
            else:
                known = fields or {"final_url": page.final_url, "status": page.status}
                record = failed_record(page.task, error, known, page.attempts)
            self._put(self.record_q, record)

        try:
            feed_worker(
                worker, self.parse_q, emit, self.settings.parse_timeout_s, self.events.abort, END
            )
        except Exception as exc:  # cannot start workers, or a bug: pages must still get records
            log.error("parse worker %s failed: %s", worker.name, exc)
            log.debug("parse worker failure", exc_info=True)
            info = ErrorInfo(ErrorKind.INTERNAL, f"parse worker failed: {exc}")
            while (page := self._get(self.parse_q)) is not END:
                emit(page, None, info)
        finally:
            done.done()


def _unfinished(queued: Queued) -> PageRecord:
    return unfinished_record(queued.task, queued.last_error, queued.attempt)


def _seekable(lines: Source) -> bool:
    try:
        return bool(lines.seekable())  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return False
