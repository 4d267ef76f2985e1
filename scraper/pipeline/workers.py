"""Supervised worker processes for CPU-bound work (the parse stage).

Each worker is a `spawn`ed process (never `fork`: this process runs threads, and forking a
threaded process can deadlock) with two private pipes, so one worker's death corrupts nothing
shared. A feeder thread in this process owns each worker and keeps `DEPTH` pages in flight, so
the worker never waits on this process's GIL between pages. A worker that dies or overruns the
per-page time limit is killed and replaced; the page it was on gets an error, the pages queued
behind it are sent to the replacement. This module knows nothing of HTTP or output.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from scraper.errors import PageError
from scraper.records import ErrorInfo, ErrorKind

log = logging.getLogger(__name__)

DEPTH = 2  # pages in flight per worker: one being parsed, one waiting in the worker
POLL_S = 0.25  # how often a waiting feeder looks at the stop event
START_METHOD = "spawn"
MAX_DEATHS_IN_A_ROW = 3

Reply = tuple[int, Any, ErrorInfo | None]  # (sequence number, result, error)


class WorkerDied(Exception):
    """The worker process ended (crashed, was killed, or its pipe broke)."""


@dataclass(frozen=True)
class Job:
    """What a worker runs: `fn(item, options)`; both must pickle (module-level names)."""

    fn: Callable[[Any, Any], Any]
    options: Any


class Worker:
    """One worker process and its two pipes; owned by exactly one feeder thread."""

    def __init__(self, job: Job, name: str) -> None:
        self.job, self.name = job, name
        self.process: Any = None
        self.tasks: Connection | None = None
        self.results: Connection | None = None
        self._poller: Any = None
        self.replaced = 0

    def start(self) -> None:
        ctx: Any = multiprocessing.get_context(START_METHOD)
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_worker_main, args=(self.job, task_r, result_w), name=self.name, daemon=True
        )
        self.process.start()
        task_r.close()  # the child holds its own copies: EOF and EPIPE now mean it is gone
        result_w.close()
        self.tasks, self.results = task_w, result_r
        # Connection.poll builds a new selector on every call (~30 µs, measured); one poll
        # object per worker does the same wait for a fraction of that.
        self._poller = select.poll()
        self._poller.register(result_r.fileno(), select.POLLIN)

    def send(self, seq: int, item: Any) -> None:
        assert self.tasks is not None
        try:
            self.tasks.send((seq, item))
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError) as exc:
            raise WorkerDied(str(exc)) from exc

    def receive(self, timeout_s: float) -> Reply | None:
        """The next reply, or None after `timeout_s`; raises WorkerDied."""
        assert self.results is not None and self._poller is not None
        try:
            if not self._poller.poll(max(0, int(timeout_s * 1000))):
                return None
            reply: Reply = self.results.recv()
            return reply
        except (EOFError, ConnectionResetError, OSError) as exc:
            raise WorkerDied(self._death()) from exc

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def _death(self) -> str:
        if self.process is None:
            return "worker not started"
        self.process.join(1)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"parse worker killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"parse worker killed by signal {-code}"
        return f"parse worker exited with status {code}"

    def stop(self, kill: bool = False) -> None:
        """Close the pipes and end the process (at once with kill=True)."""
        for conn in (self.tasks, self.results):
            if conn is not None:
                conn.close()
        self.tasks = self.results = None
        if self.process is not None:
            if kill:
                self.process.kill()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process.close()
            self.process = None

    def restart(self) -> None:
        self.stop(kill=True)
        self.replaced += 1
        self.start()


def feed_worker(
    worker: Worker,
    inbox: queue.Queue[Any],
    emit: Callable[[Any, Any, ErrorInfo | None], None],
    time_limit_s: float,
    abort: threading.Event,
    end: object,
) -> None:
    """Feed items from `inbox` to `worker` until `end` arrives; `emit(item, result, error)`.

    Returns once every item taken has been emitted, or at once when `abort` is set.
    """
    inflight: deque[_InFlight] = deque()
    seq = 0
    deaths_in_a_row = 0
    input_done = False
    head_since = time.monotonic()
    while not abort.is_set():
        while not input_done and len(inflight) < DEPTH:
            try:
                item = inbox.get(timeout=POLL_S) if not inflight else inbox.get_nowait()
            except queue.Empty:
                break
            if item is end:
                input_done = True
                break
            if not inflight:
                if worker.process is None:
                    # Started on the first page, not before: a re-run where every page is
                    # unchanged (304) then spawns no parser at all.
                    worker.start()
                head_since = time.monotonic()
                if not worker.alive():  # died while idle: no page of ours was in it
                    log.warning("parse worker %s ended while idle; restarting it", worker.name)
                    worker.restart()
            seq += 1
            inflight.append(_InFlight(seq, item))
            _deliver(worker, inflight[-1])
        if not inflight:
            if input_done:
                return
            continue
        head = inflight[0]
        remaining = time_limit_s - (time.monotonic() - head_since)
        try:
            reply = worker.receive(min(remaining, POLL_S))
        except WorkerDied as exc:
            deaths_in_a_row += 1
            # A delivered head may be the page that killed the worker. An undelivered one is
            # resent, unless workers keep dying before they can take anything.
            if head.delivered or deaths_in_a_row > MAX_DEATHS_IN_A_ROW:
                inflight.popleft()
                log.warning("%s; restarting it", exc)
                emit(head.item, None, ErrorInfo(ErrorKind.PARSE, str(exc)))
            _restart(worker, inflight)
            head_since = time.monotonic()
            continue
        if reply is None:
            if time.monotonic() - head_since >= time_limit_s:
                inflight.popleft()
                log.warning("parse of one page took over %gs; replacing its worker", time_limit_s)
                message = f"parsing took over {time_limit_s:g}s"
                emit(head.item, None, ErrorInfo(ErrorKind.PARSE_TIMEOUT, message))
                _restart(worker, inflight)
                head_since = time.monotonic()
            continue
        got_seq, result, error = reply
        if got_seq != head.seq:  # cannot happen: one pipe, in order; a bug if it does
            raise RuntimeError(f"worker reply {got_seq} out of order (expected {head.seq})")
        inflight.popleft()
        head_since = time.monotonic()
        deaths_in_a_row = 0
        emit(head.item, result, error)


@dataclass
class _InFlight:
    seq: int
    item: Any
    delivered: bool = False  # False when the send failed: the worker never saw the item


def _deliver(worker: Worker, entry: _InFlight) -> None:
    try:
        worker.send(entry.seq, entry.item)
        entry.delivered = True
    except WorkerDied:
        entry.delivered = False  # the next receive notices the death and resends


def _restart(worker: Worker, inflight: deque[_InFlight]) -> None:
    """Replace a dead or stuck worker and resend the items that were queued behind it."""
    worker.restart()
    for entry in inflight:
        _deliver(worker, entry)


def _worker_main(job: Job, tasks: Connection, results: Connection) -> None:
    """Entry point of a worker process: parse items until the task pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how a run stops
    inbox: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()

    def read_tasks() -> None:
        # A reader thread, so the parent's send never waits while this worker parses.
        try:
            while True:
                inbox.put(tasks.recv())
        except (EOFError, OSError):
            inbox.put(None)

    threading.Thread(target=read_tasks, name="task-reader", daemon=True).start()
    while (task := inbox.get()) is not None:
        seq, item = task
        try:
            reply: Reply = (seq, job.fn(item, job.options), None)
        except PageError as exc:
            reply = (seq, exc.fields, exc.info())
        except Exception as exc:  # a bug in the parse stage: record it, keep the worker
            reply = (seq, None, ErrorInfo(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"))
        try:
            results.send(reply)
        except (BrokenPipeError, OSError):
            return
