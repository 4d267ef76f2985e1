"""The only wiring: bounded queues between the list reader, the download threads, the parse
workers and the record writer; start-up, shutdown and counts.

    reader thread ─url_q─▶ download threads (one Session each) ─parse_q─▶ feeder threads ⇄ parse
          │                      │                                          processes
          └──── invalid, duplicate, failed ──────────▶ record_q ◀── parsed ──┘
                                                          │
                                         main thread: sink.write + progress bar

Every queue has a maxsize, so memory stays flat however long the list is; every blocking call
has a timeout or watches the run's events. Signal handlers only set `stop` (finish what is in
flight, read no more) or `abort` (leave now); this module's main loop does the rest.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

from scraper.config import Settings
from scraper.errors import PageError
from scraper.fetch import FetchLimits, fetch_page, new_session, status_message
from scraper.parse import ParseOptions, parse_page
from scraper.parse_pool import Job, Worker, feed_worker
from scraper.records import (
    DuplicateLine,
    ErrorInfo,
    ErrorKind,
    FetchedPage,
    InvalidLine,
    Outcome,
    PageRecord,
    UrlTask,
)
from scraper.urls import read_url_list

log = logging.getLogger(__name__)

END = object()  # end-of-stream marker passed along every queue
POLL_S = 0.2


@dataclass
class RunEvents:
    """How the outside world (signals, tests) asks a run to end."""

    stop: threading.Event = field(default_factory=threading.Event)  # finish in-flight, read no more
    abort: threading.Event = field(default_factory=threading.Event)  # leave now


@dataclass
class RunCounts:
    """What the run did; the summary is built from this."""

    started_at: datetime
    started: float  # time.monotonic()
    by_outcome: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    records: int = 0
    body_bytes: int = 0
    fetched: int = 0
    first_request_s: float | None = None  # seconds from start to the first request sent
    ended: float = 0.0
    interrupted: bool = False
    aborted: bool = False
    workers_replaced: int = 0

    def add(self, record: PageRecord) -> None:
        self.records += 1
        self.by_outcome[record.outcome.value] += 1
        if record.error is not None and record.outcome is Outcome.FAILED:
            self.failed_by_kind[record.error.kind.value] += 1
        if record.outcome in (Outcome.OK, Outcome.FAILED) and record.attempts:
            self.fetched += 1
        self.body_bytes += int(record.fields.get("body_bytes") or 0)


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

    def __init__(self, settings: Settings, events: RunEvents | None = None) -> None:
        self.settings = settings
        self.events = events or RunEvents()
        self.threads = settings.threads
        self.processes = settings.effective_processes()
        self.limits = FetchLimits.from_settings(settings)
        self.url_q: queue.Queue[Any] = queue.Queue(maxsize=self.threads * 2)
        self.parse_q: queue.Queue[Any] = queue.Queue(maxsize=self.processes * 4)
        self.record_q: queue.Queue[Any] = queue.Queue(maxsize=self.threads * 4)
        self.workers: list[Worker] = []
        self.counts = RunCounts(datetime.now(timezone.utc), time.monotonic())

    # -- the main thread --------------------------------------------------------------------

    def run(
        self,
        lines: BinaryIO,
        write: Callable[[PageRecord], None],
        grace_s: float = 10.0,
    ) -> RunCounts:
        """Read `lines`, and call `write(record)` once per record, in this thread."""
        threads = self._start(lines)
        try:
            self._drain_records(write, grace_s)
        finally:
            self._shutdown(threads)
        self.counts.ended = time.monotonic()
        return self.counts

    def _start(self, lines: BinaryIO) -> list[threading.Thread]:
        downloads_done = _Countdown(
            self.threads, lambda: self._put_all(self.parse_q, END, self.processes)
        )
        parsers_done = _Countdown(self.processes, lambda: self._put_all(self.record_q, END, 1))
        threads = [threading.Thread(target=self._read_list, args=(lines,), name="list-reader")]
        threads += [
            threading.Thread(target=self._download, args=(downloads_done,), name=f"download-{n}")
            for n in range(self.threads)
        ]
        job = Job(parse_page, ParseOptions(self.settings.parser, self.settings.max_text_chars))
        self.workers = [Worker(job, f"parse-{n}") for n in range(self.processes)]
        threads += [
            threading.Thread(target=self._feed, args=(w, parsers_done), name=f"feed-{w.name}")
            for w in self.workers
        ]
        for thread in threads:
            thread.daemon = True  # a thread stuck in a socket call must not keep an abort alive
            thread.start()
        return threads

    def _drain_records(self, write: Callable[[PageRecord], None], grace_s: float) -> None:
        stop_seen_at: float | None = None
        while True:
            if self.events.abort.is_set():
                self.counts.aborted = self.counts.interrupted = True
                return
            if self.events.stop.is_set() and stop_seen_at is None:
                stop_seen_at = time.monotonic()
                self.counts.interrupted = True
                log.warning("stopping: finishing pages in flight (up to %gs)", grace_s)
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

    def _read_list(self, lines: BinaryIO) -> None:
        try:
            for entry in read_url_list(lines):
                if self.events.stop.is_set() or self.events.abort.is_set():
                    break
                if isinstance(entry, UrlTask):
                    ok = self._put(self.url_q, entry)
                else:
                    ok = self._put(self.record_q, _line_record(entry))
                if not ok:
                    break
        except OSError as exc:
            log.error("reading the URL list failed: %s", exc)
        finally:
            self._put_all(self.url_q, END, self.threads)

    def _download(self, done: _Countdown) -> None:
        session = new_session(self.settings)
        try:
            while (task := self._get(self.url_q)) is not END:
                if self.events.stop.is_set():
                    self._put(self.record_q, _skipped(task))
                    continue
                if self.counts.first_request_s is None:
                    self.counts.first_request_s = time.monotonic() - self.counts.started
                item = self._fetch(session, task)
                queue_for = self.parse_q if isinstance(item, FetchedPage) else self.record_q
                self._put(queue_for, item)
        finally:
            session.close()
            done.done()

    def _fetch(self, session: Any, task: UrlTask) -> FetchedPage | PageRecord:
        """The fetched page, or the failure record when there is nothing to parse."""
        try:
            page = fetch_page(session, task, self.limits)
        except PageError as exc:
            return _failed(task, exc.info(), {}, attempts=1)
        except Exception as exc:  # a bug: record it as internal, keep the run going
            log.debug("internal error fetching %s", task.url, exc_info=True)
            info = ErrorInfo(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
            return _failed(task, info, {}, attempts=1)
        if page.status >= 400:
            info = ErrorInfo(ErrorKind.HTTP_STATUS, status_message(page.status))
            fields = {"final_url": page.final_url, "status": page.status}
            return _failed(task, info, fields, page.attempts)
        return page

    def _feed(self, worker: Worker, done: _Countdown) -> None:
        def emit(page: FetchedPage, fields: Any, error: ErrorInfo | None) -> None:
            if error is None:
                record = PageRecord(
                    page.task.line_no, page.task.url, Outcome.OK, fields, None, page.attempts
                )
            else:
                known = {"final_url": page.final_url, "status": page.status}
                record = _failed(page.task, error, known, page.attempts)
            self._put(self.record_q, record)

        try:
            worker.start()
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


def _failed(task: UrlTask, info: ErrorInfo, fields: dict[str, Any], attempts: int) -> PageRecord:
    log.warning("line %d: %s: %s: %s", task.line_no, task.url, info.kind.value, info.message)
    return PageRecord(task.line_no, task.url, Outcome.FAILED, fields, info, attempts)


def _skipped(task: UrlTask) -> PageRecord:
    return PageRecord(task.line_no, task.url, Outcome.SKIPPED, {}, None, 0)


def _line_record(entry: InvalidLine | DuplicateLine) -> PageRecord:
    if isinstance(entry, InvalidLine):
        log.warning("line %d: invalid: %s", entry.line_no, entry.reason)
        info = ErrorInfo(ErrorKind.INVALID_URL, entry.reason)
        return PageRecord(entry.line_no, entry.text, Outcome.INVALID, {}, info, 0)
    fields = {"duplicate_of": entry.first_line_no}
    return PageRecord(entry.line_no, entry.url, Outcome.DUPLICATE, fields, None, 0)
