"""What runs on each Dask worker: one long-lived Pipeline per run, fed batch after batch.

A batch task hands its URLs to the worker's engine and waits for their records. The engine is
the same Pipeline a local run uses (download threads sharing kept-alive connections, the host
scheduler, the robots.txt cache, spawned parse processes) and it lives across batches, so the
hosts this worker owns see one polite client, not one per batch. The validators the client
looked up in its state travel with the batch. An engine nobody feeds for IDLE_S ends itself,
so a client that vanished leaves nothing running. This module imports no Dask at top level:
`batch_task` secedes from the worker's thread pool while it waits (distributed's pattern for
tasks that wait), so a few batches per worker can be in flight on any --nthreads.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from scraper import __version__
from scraper.config.settings import Settings
from scraper.records import PageRecord, UrlTask, Validators

log = logging.getLogger(__name__)

IDLE_S = 120.0  # an engine unfed this long stops (the client died or forgot to close it)
POLL_S = 0.5

Item = tuple[UrlTask, str, Validators | None]  # the URL, its state key, its last validators
_ENGINES: dict[str, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


class _Batch:
    def __init__(self, size: int) -> None:
        self.left = size
        self.records: list[PageRecord] = []
        self.done = threading.Event()
        if size == 0:
            self.done.set()

    def add(self, record: PageRecord) -> None:
        self.records.append(record)
        self.left -= 1
        if self.left == 0:
            self.done.set()


class _Engine:
    """One run's Pipeline on this worker, its input queue and who waits for which line."""

    def __init__(self, token: str, settings: Settings, incremental: bool) -> None:
        from scraper.pipeline.base import RunEvents
        from scraper.pipeline.engine import Pipeline

        # Per-URL warnings are the client's to show (it knows -q); the worker keeps errors.
        logging.getLogger("scraper").setLevel(logging.ERROR)
        self.token = token
        self.inbox: queue.Queue[UrlTask | None] = queue.Queue()
        self.known: dict[str, Validators] = {}
        self.waiting: dict[int, _Batch] = {}
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.pipeline = Pipeline(settings, RunEvents(), state=self, incremental=incremental)
        self.thread = threading.Thread(target=self._run, name=f"engine-{token}", daemon=True)
        self.thread.start()

    def lookup(self, url: str) -> Validators | None:
        return self.known.get(url)

    def lookup_many(self, urls: list[str]) -> dict[str, Validators]:
        return {url: self.known[url] for url in urls if url in self.known}

    def run_batch(self, items: list[Item]) -> list[PageRecord]:
        batch = _Batch(len(items))
        with self.lock:
            self.last_used = time.monotonic()
            for task, key, known in items:
                self.waiting[task.line_no] = batch
                if known is not None:
                    self.known[key] = known
        for task, _, _ in items:
            self.inbox.put(task)
        while not batch.done.wait(POLL_S):
            self.last_used = time.monotonic()
            if not self.thread.is_alive():
                raise RuntimeError("the worker's pipeline stopped")
        with self.lock:
            for _, key, _ in items:
                self.known.pop(key, None)
        return batch.records

    def close(self) -> None:
        """Stop at once: after the run no batch waits for anything still queued here."""
        self.pipeline.events.stop.set()
        self.inbox.put(None)
        self.thread.join(15)

    def _entries(self) -> Iterator[UrlTask]:
        while True:
            try:
                task = self.inbox.get(timeout=POLL_S)
            except queue.Empty:
                if time.monotonic() - self.last_used > IDLE_S and not self.waiting:
                    log.warning("scrape engine %s unused for %gs; stopping it", self.token, IDLE_S)
                    with _ENGINES_LOCK:
                        _ENGINES.pop(self.token, None)
                    return
                continue
            if task is None:
                return
            yield task

    def _run(self) -> None:
        self.pipeline.run(self._entries(), self._write)

    def _write(self, record: PageRecord) -> None:
        with self.lock:
            batch = self.waiting.pop(record.line_no, None)
        if batch is not None:
            batch.add(record)


def batch_task(token: str, settings: Settings, incremental: bool, items: list[Item]) -> Any:
    """A Dask task: the records of one batch, fetched and parsed by this worker's engine."""
    from distributed import rejoin, secede

    engine = _engine(token, settings, incremental)
    secede()
    try:
        return engine.run_batch(items)
    finally:
        rejoin()


def _engine(token: str, settings: Settings, incremental: bool) -> _Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(token)
        if engine is None:
            engine = _ENGINES[token] = _Engine(token, settings, incremental)
        return engine


def close_engine(token: str) -> bool:
    """Run on every worker when the run ends: stop its engine (parse processes included)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(token, None)
    if engine is not None:
        engine.close()
    return engine is not None


def worker_check() -> dict[str, Any]:
    """What the client checks before sending work: same version, and may start processes."""
    return {
        "version": __version__,
        "daemon": bool(multiprocessing.current_process().daemon),
    }
