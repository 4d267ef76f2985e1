"""The page deadline over the whole exchange: connect, TLS, status line, headers and body.

Socket timeouts bound each read, not their sum: a server that sends its headers a byte a
second, each byte before the read timeout, would hold a download thread for as long as it
likes. So every connection a page uses is registered, for as long as the page's fetch lasts,
with one watchdog thread per process; at the page's deadline the watchdog shuts the socket
down, the blocked read returns at once, and the fetch reports a timeout. On the normal path
this costs a heap push and a cancel per request, under one lock (no thread per request, no
timer per read).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_CURRENT = threading.local()  # the Scope of the page this thread is fetching, if any
COMPACT_AT = 256  # cancelled entries in the heap before it may be rebuilt without them


@dataclass(eq=False)
class _Entry:
    at: float
    scope: Scope
    connection: Any
    cancelled: bool = False


class _Watchdog:
    """Shuts down the sockets of entries whose time has come; started on first use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._cancelled = 0  # cancelled entries still in the heap

    def add(self, entry: _Entry) -> None:
        with self._cond:
            heapq.heappush(self._heap, (entry.at, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadline", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is entry:  # earlier than what the watchdog waits for
                self._cond.notify()

    def cancel(self, entries: list[_Entry]) -> None:
        """Drop the entries of a request that finished in time. They leave the heap when
        they reach its top, or all at once when they are most of it: a page done in 50 ms
        must not keep its entry (and its connection) for the 30 s until its deadline
        (measured: 9,000 of them, several MB, in a long run at 300 pages/s)."""
        with self._cond:
            for entry in entries:
                entry.cancelled = True
                entry.connection = None
            self._cancelled += len(entries)
            heap = self._heap
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)
                self._cancelled -= 1
            if self._cancelled > COMPACT_AT and self._cancelled * 2 > len(heap):
                self._heap = [item for item in heap if not item[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)  # finished in time: the usual case
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                wait_s = self._heap[0][0] - time.monotonic()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                entry = heapq.heappop(self._heap)[2]
                entry.scope.expired_while = entry.scope.phase
                entry.scope.expired = True
                # Under the lock: a page that finished meanwhile has cancelled its entries,
                # so a connection back in its pool is never touched.
                _shut_down(entry.connection)


def _shut_down(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        # socket.socket's own shutdown, also for an SSLSocket: ssl's would drop the TLS state
        # under the thread that is reading from it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


_WATCHDOG = _Watchdog()


@dataclass(eq=False)
class Scope:
    """One request's watch: its deadline (time.monotonic()) and the connections it used."""

    at: float
    expired: bool = False
    phase: str = "connecting"  # what the request is doing: for the timeout's message
    expired_while: str = ""  # what it was doing when the deadline came
    reused: bool = False  # the request went out on a connection an earlier request used
    entries: list[_Entry] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    closed: bool = False

    def guard(self, connection: Any) -> None:
        if id(connection) in self.connections or self.closed:
            return
        self.connections.add(id(connection))
        entry = _Entry(self.at, self, connection)
        self.entries.append(entry)
        _WATCHDOG.add(entry)

    def close(self) -> None:
        """End the watch. Call it before the response is closed: a connection back in its
        pool may be another thread's a moment later."""
        if self.closed:
            return
        self.closed = True
        _WATCHDOG.cancel(self.entries)
        if getattr(_CURRENT, "scope", None) is self:
            _CURRENT.scope = None


def watch(at: float) -> Scope:
    """Every connection this thread uses from now until `close()` is shut down at `at`."""
    scope = Scope(at)
    _CURRENT.scope = scope
    return scope


def guard(connection: Any, phase: str, reused: bool | None = None) -> None:
    """Called by the transport's connections before they connect, send and read: put
    `connection` under the current request's deadline, if there is one, and note what the
    request is doing (`phase`) and whether it went out on a `reused` connection."""
    scope = getattr(_CURRENT, "scope", None)
    if scope is not None:
        scope.phase = phase
        if reused is not None:
            scope.reused = reused
        scope.guard(connection)


def current_phase() -> str:
    """What the current request was doing, for messages."""
    scope = getattr(_CURRENT, "scope", None)
    return scope.phase if scope is not None else "waiting for the server"


def on_reused_connection() -> bool:
    """Whether the current request went out on a connection an earlier request used."""
    scope = getattr(_CURRENT, "scope", None)
    return scope is not None and scope.reused
