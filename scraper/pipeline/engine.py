"""The local engine: bounded queues between the list reader, the download threads, the parse
workers and the record writer; start-up, shutdown and counts (an Engine of pipeline/base.py).

    reader ─▶ HostScheduler ─▶ download threads (shared pools)  ─parse_q─▶ feeders ⇄ parse
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
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from scraper.config.settings import Settings
from scraper.fetch.http import (
    FetchLimits,
    fetch_robots,
    new_session,
    shared_adapter,
)
from scraper.fetch.politeness import HostScheduler, PoliteGate, Queued
from scraper.fetch.robots import RobotsCache
from scraper.parse.page import FOUND, parse_options, parse_page
from scraper.pipeline.base import RunCounts, RunEvents, Source, ValidatorSource
from scraper.pipeline.discovery import Discovery
from scraper.pipeline.download import Download
from scraper.pipeline.frontier import Frontier
from scraper.pipeline.outcomes import (
    failed_record,
    line_record,
    parsed_record,
    skipped_record,
    unfinished_record,
    unread_record,
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
from scraper.url_list import ListEntry, UrlListReader
from scraper.urls import state_key

log = logging.getLogger(__name__)


END = object()  # end-of-stream marker passed along every queue
POLL_S = 0.2
# URLs the reader looks up in the state at once (one query) before queueing them, when the list
# is a file; a pipe is taken line by line, so that a slow writer's URLs are not held back.
# A re-run of 2000 304s: per-URL lookups in 32 threads cost 2 GIL hand-offs each.
LOOKUP_BATCH = 256
FLUSH_EVERY = 256  # records written between two flushes at most, when they keep coming
SKIP_BATCH = 1024  # skipped records of unread lines per queue item, after a stop
FRONTIER_POLL_S = 0.02  # the frontier is empty but pages in flight may still find URLs


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
        frontier: Frontier | None = None,
    ) -> None:
        """`state` gives each URL's last validators; with `incremental` they make conditional
        requests and spare unchanged pages the parser. Lines in `skip_lines` already have
        their records (a resumed run) and are passed over. With a `frontier`, the sitemaps
        and the links that follow rules select are fetched too, once the list is read."""
        self.settings = settings
        self.events = events or RunEvents()
        self.state = state
        self.incremental = incremental
        self.skip_lines = skip_lines
        self.threads = settings.threads
        self.processes = settings.effective_processes()
        self.limits = FetchLimits.from_settings(settings)
        self.scheduler = HostScheduler(settings, self.events.stop, self.events.abort)
        self.frontier = frontier
        self.discovery = Discovery(settings, frontier, incremental)
        self.robots = (
            RobotsCache(settings.user_agent, on_sitemaps=self.discovery.robots_named)
            if settings.obey_robots
            else None
        )
        self.download = Download(settings, self.limits, self.scheduler, incremental)
        self.adapter = shared_adapter(settings)  # every thread's session: pools per host
        if not settings.verify_tls:
            log.warning(
                "TLS certificates are not verified (verify_tls: false): anyone on the way "
                "can read and change the pages"
            )
        self.parse_q: queue.Queue[Any] = queue.Queue(maxsize=self.processes * 4)
        self.record_q: queue.Queue[Any] = queue.Queue(maxsize=self.threads * 4)
        self.workers: list[Worker] = []
        self.counts = RunCounts(datetime.now(timezone.utc), time.monotonic())
        # Validators the reader looked up, by line, until the URL's first fetch takes them.
        self._prefetched: dict[int, Validators | None] = {}
        # URLs handed to the scheduler whose record has not been written yet, by line.
        self._open: dict[int, UrlTask] = {}
        self._cut = False  # the grace period ran out: the pages in flight were recorded
        self._downstream_done = False  # the parse stage passed END: no more pages
        self._cut_lines: set[int] = set()
        self._reader_done = threading.Event()

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
        grace = grace_s
        unflushed = 0
        while True:
            if self.events.abort.is_set() and not self._cut:  # a second Ctrl-C: leave now
                self.counts.aborted = self.counts.interrupted = True
                return
            if self.events.stop.is_set() and stop_seen_at is None:
                stop_seen_at = time.monotonic()
                self.counts.interrupted = True
                grace = 0.0 if self.events.time_up.is_set() else grace_s
                if grace:
                    log.warning("stopping: finishing pages in flight (up to %gs)", grace)
                else:
                    log.warning("time limit reached: stopping now")
                for record in map(_unfinished, self.scheduler.stop()):
                    self._emit(write, record)
            late = stop_seen_at is not None and time.monotonic() - stop_seen_at >= grace
            if late and not self._cut:
                self._cut_in_flight(write, grace)
            # Downloads and parsers are done (or were cut): once the reader has recorded the
            # rest of a stopped list too, every line has its record.
            over = self._downstream_done or self._cut
            if over and self._reader_done.is_set() and self.record_q.empty():
                return
            try:
                item = self.record_q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is END:
                self._downstream_done = True
                continue
            unflushed += self._write_item(write, item)
            # One flush for all the records that arrived together: a write() per record made
            # the main thread hand the GIL away once more per URL (a re-run of 304s: -7%).
            if unflushed >= FLUSH_EVERY or self.record_q.empty():
                flush()
                unflushed = 0

    def _write_item(self, write: Callable[[PageRecord], None], item: Any) -> int:
        """Write a record, or a batch of skipped ones; returns how many were written."""
        records = item if isinstance(item, list) else (item,)
        written = 0
        for record in records:
            if record.line_no in self._cut_lines:
                continue  # it came after all: its line was recorded as skipped when cut
            self._emit(write, record)
            written += 1
        return written

    def _emit(self, write: Callable[[PageRecord], None], record: PageRecord) -> None:
        task = self._open.get(record.line_no)
        # What it found is queued before the URL stops being open: the reader ends the run
        # only when no URL is open and the frontier is empty.
        written = self.discovery.takes(task, record, self.counts)
        if written is not None:
            write(written)
            self.counts.add(written)
        self._open.pop(record.line_no, None)

    def _cut_in_flight(self, write: Callable[[PageRecord], None], grace_s: float) -> None:
        """The grace period is over: record the pages still in flight as skipped, and say
        why. Records that arrived meanwhile are written first."""
        while True:
            try:
                item = self.record_q.get_nowait()
            except queue.Empty:
                break
            if item is END:
                self._downstream_done = True
                continue
            self._write_item(write, item)
        self._cut = True
        why = (
            "in flight when the run's time limit was reached"
            if self.events.time_up.is_set()
            else f"still in flight {grace_s:g} s after the stop"
        )
        left = sorted(self._open.items())
        if left:
            log.warning("%d pages %s: recorded as skipped", len(left), why)
        for line_no, task in left:
            self._cut_lines.add(line_no)
            self._emit(write, skipped_record(task, why))

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        hurry = self.counts.aborted or self._cut  # threads still in a page: leave them
        if hurry:
            self.events.abort.set()
        for worker in self.workers:
            self.counts.workers_replaced += worker.replaced
        deadline = time.monotonic() + (0.5 if hurry else 30)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.stop(kill=hurry)
        self.adapter.close()

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

    def _put_many(self, records: list[PageRecord]) -> None:
        if records:
            self._put(self.record_q, records)

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
        """Queue each URL line for its host. After a stop the lines not yet read get skipped
        records at full speed, not checked as URLs (--resume does that): on a long list a
        Ctrl-C ends the run in seconds, and every line of the list still has its record."""
        reader = UrlListReader(lines) if hasattr(lines, "readline") else None  # type: ignore[arg-type]
        entries: Iterator[ListEntry] = iter(reader if reader is not None else lines)  # type: ignore[arg-type]
        batch: list[UrlTask] = []
        size, limit = 1, (LOOKUP_BATCH if _seekable(lines) and self.state is not None else 1)
        try:
            if self.frontier is not None:
                self._queue_batch(self.frontier.seed(self.settings.sitemaps))
            for entry in entries:
                if self.events.abort.is_set():
                    return
                if entry.line_no in self.skip_lines:
                    continue
                if self.events.stop.is_set():
                    if isinstance(entry, UrlTask):
                        batch.append(entry)
                    else:
                        self._put(self.record_q, line_record(entry))
                    break
                if not isinstance(entry, UrlTask):
                    self._put(self.record_q, line_record(entry))
                    continue
                batch.append(entry)
                if len(batch) >= size:
                    if not self._queue_batch(batch):
                        batch = []
                        break
                    batch = []
                    # 1, 2, 4... up to the limit: the first URLs go out at once, however many
                    # lines (comments, say) the list has before the next ones.
                    size = min(size * 2, limit)
            else:
                self._queue_batch(batch)
                batch = []
                self._read_frontier()
            if self.events.stop.is_set():
                self._skip_rest(batch, entries, reader)
        except OSError as exc:
            log.error("reading the URL list failed: %s", exc)
        finally:
            if self.events.stop.is_set():
                self._record_unfinished(self.scheduler.stop())
            self._reader_done.set()
            self.scheduler.close()

    def _read_frontier(self) -> None:
        """Queue discovered URLs until none is left and no URL is open that could find more
        (in that order: a URL is open until what it found is in the frontier)."""
        if self.frontier is None:
            return
        while not self.events.stop.is_set():
            idle = not self._open
            batch = self.frontier.take(LOOKUP_BATCH)
            if batch:
                if not self._queue_batch(batch):
                    return
            elif idle:
                return
            else:
                self.events.stop.wait(FRONTIER_POLL_S)

    def _queue_batch(self, batch: list[UrlTask]) -> bool:
        """Look the batch up in the state, then hand it to the scheduler; False when the run
        stopped meanwhile (the URLs it could not take get skipped records). A listed URL a
        link got to first is a duplicate; a sitemap URL whose lastmod is not newer than its
        last fetch is recorded unchanged without a request."""
        if self.frontier is not None and batch and not batch[0].discovered:
            batch, duplicates = self.discovery.claim(batch)
            self._put_many(duplicates)
        if self.state is not None and batch:
            pages = [task for task in batch if task.kind == "page"]
            keys = [state_key(task) for task in pages]
            known = self.state.lookup_many(keys)
            for task, key in zip(pages, keys, strict=True):
                self._prefetched[task.line_no] = known.get(key)
            batch, unchanged = self.discovery.skip_by_lastmod(batch, self._prefetched.get)
            for record in unchanged:
                self._prefetched.pop(record.line_no, None)
            self._put_many(unchanged)
        for n, task in enumerate(batch):
            self._open[task.line_no] = task  # before add: its record may come at once
            if not self.scheduler.add(task):
                for left in batch[n:]:
                    self._open.pop(left.line_no, None)
                    self._prefetched.pop(left.line_no, None)
                self._put(self.record_q, [skipped_record(left) for left in batch[n:]])
                return False
        return True

    def _skip_rest(
        self, pending: list[UrlTask], entries: Iterator[ListEntry], reader: UrlListReader | None
    ) -> None:
        """Skipped records for `pending` and every line not read yet, in batches."""
        records = [skipped_record(task) for task in pending]
        for task in pending:
            self._prefetched.pop(task.line_no, None)
        rest: Iterator[PageRecord]
        if reader is not None:
            rest = (
                unread_record(line_no, text)
                for line_no, text in reader.rest()
                if line_no not in self.skip_lines
            )
        else:
            rest = (
                skipped_record(e) if isinstance(e, UrlTask) else line_record(e)
                for e in entries
                if e.line_no not in self.skip_lines
            )
        for record in rest:
            records.append(record)
            if len(records) >= SKIP_BATCH:
                if not self._put(self.record_q, records):
                    return
                records = []
        if records:
            self._put(self.record_q, records)

    def _record_unfinished(self, left: list[Queued]) -> None:
        for queued in left:
            self._put(self.record_q, _unfinished(queued))

    def _download(self, done: _Countdown) -> None:
        session = new_session(self.settings, self.adapter)

        def robots_fetch(url: str) -> tuple[int, bytes]:
            return fetch_robots(session, url, self.limits)

        try:
            while (lease := self.scheduler.next_ready()) is not None:
                if self.counts.first_request_s is None:
                    self.counts.first_request_s = time.monotonic() - self.counts.started
                gate = PoliteGate(self.scheduler, lease, self.robots, robots_fetch)
                item = self.download(session, lease, gate, self._known(lease.queued.task))
                if item is not None:
                    queue_for = self.parse_q if isinstance(item, FetchedPage) else self.record_q
                    self._put(queue_for, item)
        finally:
            session.cookies.clear()  # not close(): the adapter is shared, closed at shutdown
            done.done()

    def _known(self, task: UrlTask) -> Validators | None:
        if self.state is None or task.kind == "sitemap":  # a sitemap is read in full each run
            return None
        if task.line_no in self._prefetched:  # looked up by the reader (first attempt)
            return self._prefetched.pop(task.line_no)
        return self.state.lookup(state_key(task))

    def _feed(self, worker: Worker, done: _Countdown) -> None:
        def emit(page: FetchedPage, fields: Any, error: ErrorInfo | None) -> None:
            found = fields.pop(FOUND, None) if fields else None
            if error is None:
                record = parsed_record(page, fields, found)
            else:
                known = fields or {"final_url": page.final_url, "status": page.status}
                record = failed_record(page.task, error, known, page.attempts)
                if found is not None:
                    record = dataclasses.replace(record, found=found)
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
