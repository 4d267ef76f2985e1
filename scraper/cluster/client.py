"""`--cluster`: the same scrape with the downloads and parsing on Dask workers (dask.distributed).

The client (this process) streams the list, keeps the state, writes the output, exactly as a
local run; the workers each run a local run's pipeline (cluster/worker.py) on the batches they
are sent. Each host is owned by one worker at a time: a new host goes to the live worker with
the fewest URLs so far, and all its URLs follow it (strict worker restrictions: Dask neither
steals nor moves them), so per-host limits and the robots.txt cache hold cluster-wide; the
frontier of discovered URLs is the client's, and its URLs are sharded so too. Batches are
bounded (BATCH_DEPTH in flight per worker), so the client holds a window of the list.

A worker that leaves (crash, kill, lost network) has its hosts handed to live workers, and its
unfinished batches are cancelled and sent again; records come back only with a finished batch,
so none is written twice. A batch whose worker died MAX_TRIES times gets failed records.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scraper import __version__
from scraper.config.settings import Settings
from scraper.errors import ConfigError
from scraper.pipeline.base import RunCounts, RunEvents, ValidatorSource
from scraper.pipeline.discovery import Discovery
from scraper.pipeline.frontier import Frontier
from scraper.pipeline.outcomes import failed_record, line_record, skipped_record
from scraper.records import ErrorInfo, ErrorKind, PageRecord, UrlTask
from scraper.url_list import read_url_list
from scraper.urls import host_key, state_key

log = logging.getLogger(__name__)

BATCH_DEPTH = 3  # batches in flight per worker: one running, two queued behind it
MAX_TRIES = 3  # a batch whose worker dies this many times is given up
LOCAL_START_S = 60.0  # a LocalCluster starting its worker processes on a busy machine
MEMBERSHIP_EVERY_S = 1.0
# All workers gone: wait this many connect timeouts for one to come back (a nanny restarts a
# killed worker in about a second; 30 s with the default connect_timeout_s of 5).
NO_WORKERS_WAIT_TIMEOUTS = 6
WAIT_S = 0.2
RESULT_WAIT_S = 2.0  # fetching one finished batch's records; longer and it is looked at again


def batch_urls(settings: Settings) -> int:
    """URLs per batch: enough to keep a worker's download threads busy twice over."""
    return max(8, min(1000, settings.threads * 2))


class Cluster:
    """A connected Dask client (and the LocalCluster it started, for `local:N`)."""

    def __init__(self, address: str, timeout_s: float = 5.0) -> None:
        """`timeout_s`: to reach the scheduler and to see a first worker (connect_timeout_s)."""
        self.address, self.timeout_s = address, timeout_s
        self.client: Any = None
        self.local: Any = None
        self.start_s = 0.0

    def connect(self) -> Cluster:
        """Connect and check the workers; raises ConfigError (exit 2) before any request."""
        started = time.monotonic()
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "cluster: dask.distributed is not installed (pip install 'scraper[dask]')"
            ) from None
        try:
            if self.address.startswith("local:"):
                # Workers start parse processes: they must not be daemonic processes.
                dask.config.set({"distributed.worker.daemon": False})
                self.local = LocalCluster(
                    n_workers=_local_workers(self.address),
                    threads_per_worker=BATCH_DEPTH + 1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.local, timeout=LOCAL_START_S)
                self.client.wait_for_workers(1, timeout=LOCAL_START_S)
            else:
                self.client = Client(self.address, timeout=self.timeout_s)
                self.client.wait_for_workers(1, timeout=self.timeout_s)
        except ConfigError:
            raise
        except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
            self.close()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"cluster {self.address}: cannot use it: {reason}") from None
        self._check_workers()
        self.start_s = time.monotonic() - started
        return self

    def _check_workers(self) -> None:
        from scraper.cluster.worker import worker_check

        try:
            found = self.client.run(worker_check)
        except Exception as exc:  # noqa: BLE001 (a worker that cannot import scraper)
            self.close()
            raise ConfigError(
                f"cluster {self.address}: workers cannot run scraper ({exc}); install the "
                "same scraper on every worker"
            ) from None
        for address, info in found.items():
            if info["version"] != __version__:
                self.close()
                raise ConfigError(
                    f"cluster {self.address}: worker {address} runs scraper "
                    f"{info['version']}, this client {__version__}"
                )
            if info["daemon"]:
                self.close()
                raise ConfigError(
                    f"cluster {self.address}: worker {address} is a daemonic process and "
                    "cannot start parse processes; start workers with "
                    "DASK_DISTRIBUTED__WORKER__DAEMON=False"
                )

    def workers(self) -> list[str]:
        return sorted(self.client.nthreads())

    def close(self) -> None:
        for thing in (self.client, self.local):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 (closing a broken connection; nothing to save)
                    pass
        self.client = self.local = None


def _local_workers(address: str) -> int:
    text = address.removeprefix("local:")
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ConfigError(f"cluster {address}: expected local:N with N from 1 to 64")
    return int(text)


@dataclass
class _Sent:
    worker: str
    items: list[Any]


@dataclass
class _Dispatch:
    """Who owns which host, and what waits for each worker."""

    owners: dict[str, str] = field(default_factory=dict)
    load: collections.Counter[str] = field(default_factory=collections.Counter)
    buffers: dict[str, collections.deque[Any]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    tries: collections.Counter[int] = field(default_factory=collections.Counter)

    def owner(self, host: str, live: list[str]) -> str:
        owner = self.owners.get(host)
        if owner not in live:
            owner = min(live, key=lambda w: (self.load[w], w))
            self.owners[host] = owner
        self.load[owner] += 1
        return owner

    def buffered(self) -> int:
        return sum(len(b) for b in self.buffers.values())


class ClusterRun:
    """One run on a cluster; the same interface as Pipeline (`run`, `counts`)."""

    def __init__(
        self,
        settings: Settings,
        cluster: Cluster,
        events: RunEvents | None = None,
        state: ValidatorSource | None = None,
        incremental: bool = True,
        skip_lines: frozenset[int] = frozenset(),
        frontier: Frontier | None = None,
    ) -> None:
        from datetime import datetime, timezone

        self.settings, self.cluster = settings, cluster
        self.events = events or RunEvents()
        self.state, self.incremental, self.skip_lines = state, incremental, skip_lines
        self.counts = RunCounts(datetime.now(timezone.utc), time.monotonic())
        self.counts.cluster_start_s = cluster.start_s
        self.token = uuid.uuid4().hex
        self.size = batch_urls(settings)
        self.dispatch = _Dispatch()
        self.sent: dict[Any, _Sent] = {}
        self.live: list[str] = []
        self.checked_at = 0.0
        self.lost = False  # no worker left, none came back
        # Discovered URLs are the client's: the workers send back what pages and sitemaps
        # found, and the frontier's URLs are sharded by host as listed ones are.
        self.frontier = frontier
        self.discovery = Discovery(settings, frontier, incremental)
        self._tasks: dict[int, UrlTask] = {}  # sent or buffered, by line, until recorded
        self._list_done = False

    def run(
        self,
        lines: Any,
        write: Callable[[PageRecord], None],
        grace_s: float = 10.0,
        flush: Callable[[], None] = lambda: None,
    ) -> RunCounts:
        """Read `lines`, and call `write(record)` once per record, in this thread; `flush()`
        after each round of finished batches and at the end (as Pipeline.run)."""
        self.live = self.cluster.workers()
        entries = read_url_list(lines)
        if self.frontier is not None:
            for task in self.frontier.seed(self.settings.sitemaps):
                self._buffer(task)
        try:
            self._loop(entries, write, grace_s, flush)
        finally:
            flush()
            self._close_engines()
        self.counts.ended = time.monotonic()
        return self.counts

    def _loop(
        self,
        entries: Iterator[Any],
        write: Callable[[PageRecord], None],
        grace_s: float,
        flush: Callable[[], None],
    ) -> None:
        from distributed import wait

        def emit(record: PageRecord) -> None:
            task = self._tasks.pop(record.line_no, None)
            if (kept := self.discovery.takes(task, record, self.counts)) is None:
                return  # a sitemap's: counted, not written
            record = kept
            if record.error is not None and record.outcome.value == "failed":
                # Logged here, not on the worker: the client's console knows -q and the bar.
                message = f"{record.error.kind.value}: {record.error.message}"
                log.warning("%s: %s", record.where(), message)
            write(record)
            self.counts.add(record)

        exhausted = False
        stop_seen_at: float | None = None
        while True:
            if self.events.abort.is_set():
                self.counts.aborted = self.counts.interrupted = True
                self.cluster.client.cancel(list(self.sent))
                return
            if self.events.stop.is_set() and stop_seen_at is None:
                stop_seen_at = time.monotonic()
                self.counts.interrupted = True
                if self.events.time_up.is_set():
                    grace_s = 0.0
                    log.warning("time limit reached: stopping now")
                else:
                    log.warning("stopping: finishing batches in flight (up to %gs)", grace_s)
                self._skip_buffered(emit)
            if stop_seen_at is not None:
                if not exhausted:
                    self._skip_rest(entries, emit)
                    exhausted = True
                if time.monotonic() - stop_seen_at >= grace_s:
                    self._skip_in_flight(emit, grace_s)
                    return
            self._check_membership(emit)
            if self.lost:
                self._fail_the_rest(entries, emit)
                return
            if not exhausted:
                exhausted = self._read(entries, emit)
            self._top_up()
            if not self.sent and not self.dispatch.buffered() and exhausted:
                return
            try:
                done, _ = wait(list(self.sent), timeout=WAIT_S, return_when="FIRST_COMPLETED")
            except TimeoutError:  # distributed's wait raises where concurrent.futures returns
                continue
            for future in done:
                self._collect(future, emit)
            flush()

    def _read(self, entries: Iterator[Any], emit: Callable[[PageRecord], None]) -> bool:
        """Read until every worker has a full pipeline of batches; True at the list's end."""
        window = self.size * (BATCH_DEPTH + 1) * max(1, len(self.live))
        while self.dispatch.buffered() < window:
            if self._list_done:
                return self._read_frontier(emit)
            entry = next(entries, None)
            if entry is None:
                self._list_done = True
                continue
            if entry.line_no in self.skip_lines:
                continue
            if not isinstance(entry, UrlTask):
                emit(line_record(entry))
                continue
            if self.frontier is not None:
                kept, duplicates = self.discovery.claim([entry])
                for record in duplicates:
                    emit(record)
                if not kept:
                    continue
            self._buffer(entry)
        return False

    def _read_frontier(self, emit: Callable[[PageRecord], None]) -> bool:
        """Buffer discovered URLs; True when none is left and none in flight could find more."""
        if self.frontier is None:
            return True
        idle = not self.sent and not self.dispatch.buffered()
        batch = self.frontier.take(self.size)
        if not batch:
            return idle
        dated = [task for task in batch if task.lastmod is not None]
        known = (
            self.state.lookup_many([state_key(t) for t in dated]) if self.state and dated else {}
        )
        for task in batch:
            record = self.discovery.lastmod_record(task, known.get(state_key(task)))
            if record is not None:
                emit(record)
            else:
                self._buffer(task)
        return False

    def _buffer(self, task: UrlTask) -> None:
        self._tasks[task.line_no] = task
        worker = self.dispatch.owner(host_key(task.normalized_url), self.live)
        self.dispatch.buffers[worker].append((task, state_key(task), None))
        if len(self.dispatch.buffers[worker]) >= self.size:
            self._submit(worker)

    def _in_flight(self, worker: str) -> int:
        return sum(1 for sent in self.sent.values() if sent.worker == worker)

    def _top_up(self) -> None:
        """Send partial batches to workers that would otherwise run out of work."""
        for worker in list(self.dispatch.buffers):
            while self.dispatch.buffers[worker] and self._in_flight(worker) < BATCH_DEPTH:
                self._submit(worker, force=True)

    def _submit(self, worker: str, force: bool = False) -> None:
        buffer = self.dispatch.buffers[worker]
        if (len(buffer) < self.size and not force) or self._in_flight(worker) >= BATCH_DEPTH:
            return
        items = [buffer.popleft() for _ in range(min(self.size, len(buffer)))]
        if self.state is not None:  # the batch's validators in one query, as Pipeline does
            known = self.state.lookup_many([key for _, key, _ in items])
            # A sitemap is read in full each run: no validators, no conditional request.
            items = [
                (task, key, known.get(key) if task.kind == "page" else None)
                for task, key, _ in items
            ]
        from scraper.cluster.worker import batch_task

        future = self.cluster.client.submit(
            batch_task,
            self.token,
            self.settings,
            self.incremental,
            items,
            workers=[worker],
            allow_other_workers=False,  # loose restrictions may be stolen: the host would move
            pure=False,
            key=f"scrape-batch-{self.token}-{items[0][0].line_no}-{uuid.uuid4().hex[:8]}",
        )
        self.sent[future] = _Sent(worker, items)
        if self.counts.first_request_s is None:
            self.counts.first_request_s = time.monotonic() - self.counts.started

    def _collect(self, future: Any, emit: Callable[[PageRecord], None]) -> None:
        sent = self.sent.pop(future)
        try:
            # A finished batch whose worker dies before the client fetched its result goes back
            # to waiting (distributed reschedules it, on that worker only): never block on it.
            records = future.result(timeout=RESULT_WAIT_S)
        except TimeoutError:
            self.sent[future] = sent  # the membership check resends it if its worker is gone
            return
        except Exception as exc:  # noqa: BLE001 (KilledWorker, a lost worker, or a bug there)
            if sent.worker not in self.cluster.workers():
                self._resend(sent, emit, f"worker {sent.worker} left")
                return
            log.error("a batch failed on %s: %s", sent.worker, exc)
            info = ErrorInfo(ErrorKind.INTERNAL, f"batch failed on a cluster worker: {exc}"[:300])
            for task, _, _ in sent.items:
                emit(_failed(task, info))
            return
        for record in records:
            emit(record)

    def _check_membership(self, emit: Callable[[PageRecord], None]) -> None:
        if time.monotonic() - self.checked_at < MEMBERSHIP_EVERY_S:
            return
        self.checked_at = time.monotonic()
        live = self.cluster.workers()
        if not live:
            wait_s = NO_WORKERS_WAIT_TIMEOUTS * self.cluster.timeout_s
            log.warning("no cluster workers left; waiting up to %gs for one", wait_s)
            try:
                self.cluster.client.wait_for_workers(1, timeout=wait_s)
                live = self.cluster.workers()
            except Exception:  # noqa: BLE001 (TimeoutError, or the scheduler is gone too)
                live = []
        gone = set(self.live) - set(live)
        self.live = live
        if not live:
            self.lost = True  # _loop fails every URL left, so each line still gets a record
            return
        for worker in gone:
            log.warning("cluster worker %s left; its hosts move to other workers", worker)
            for future, sent in list(self.sent.items()):
                if sent.worker == worker and not future.done():
                    future.cancel()
                    del self.sent[future]
                    self._resend(sent, emit, f"worker {worker} left")
            self._rebuffer(list(self.dispatch.buffers.pop(worker, ())))

    def _resend(self, sent: _Sent, emit: Callable[[PageRecord], None], why: str) -> None:
        keep = []
        for item in sent.items:
            self.dispatch.tries[item[0].line_no] += 1
            if self.dispatch.tries[item[0].line_no] >= MAX_TRIES:
                message = f"{why}; the batch of this URL lost its worker {MAX_TRIES} times"
                emit(_failed(item[0], ErrorInfo(ErrorKind.INTERNAL, message)))
            else:
                keep.append(item)
        self._rebuffer(keep)

    def _rebuffer(self, items: list[Any]) -> None:
        for item in reversed(items):  # to the front: these were due first
            worker = self.dispatch.owner(host_key(item[0].normalized_url), self.live)
            self.dispatch.buffers[worker].appendleft(item)

    def _skip_buffered(self, emit: Callable[[PageRecord], None]) -> None:
        for buffer in self.dispatch.buffers.values():
            while buffer:
                emit(skipped_record(buffer.popleft()[0]))

    def _skip_rest(self, entries: Iterator[Any], emit: Callable[[PageRecord], None]) -> None:
        for entry in entries:
            if entry.line_no in self.skip_lines:
                continue
            emit(skipped_record(entry) if isinstance(entry, UrlTask) else line_record(entry))

    def _fail_the_rest(self, entries: Iterator[Any], emit: Callable[[PageRecord], None]) -> None:
        """No worker is left: every URL not yet recorded fails, in flight, buffered or unread."""
        message = f"cluster {self.cluster.address}: no workers left"
        log.error("%s; the remaining URLs are recorded as failed", message)
        info = ErrorInfo(ErrorKind.INTERNAL, message)
        self.cluster.client.cancel(list(self.sent))
        pending = [item[0] for sent in self.sent.values() for item in sent.items]
        pending += [item[0] for buffer in self.dispatch.buffers.values() for item in buffer]
        self.sent.clear()
        self.dispatch.buffers.clear()
        for task in pending:
            emit(_failed(task, info))
        for entry in entries:
            if entry.line_no in self.skip_lines:
                continue
            emit(_failed(entry, info) if isinstance(entry, UrlTask) else line_record(entry))

    def _skip_in_flight(self, emit: Callable[[PageRecord], None], grace_s: float) -> None:
        if not self.sent:
            return
        why = (
            "in flight when the run's time limit was reached"
            if self.events.time_up.is_set()
            else f"still in flight {grace_s:g} s after the stop"
        )
        log.warning("batches %s: their pages are recorded as skipped", why)
        self.cluster.client.cancel(list(self.sent))
        for sent in self.sent.values():
            for task, _, _ in sent.items:
                emit(skipped_record(task, why))
        self.sent.clear()

    def _close_engines(self) -> None:
        from scraper.cluster.worker import close_engine

        try:
            self.cluster.client.run(close_engine, self.token, wait=True)
        except Exception as exc:  # noqa: BLE001 (a worker gone; its engine went with it)
            log.debug("closing the workers' engines: %s", exc)


def _failed(task: UrlTask, info: ErrorInfo) -> PageRecord:
    return failed_record(task, info, {}, 0)
