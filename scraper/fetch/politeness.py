"""Politeness: which URL may be fetched now, per-host slots and delays, and the gate every
request (redirect hops and robots.txt included) passes through.

`HostScheduler` hands download threads only URLs whose host has a free slot and whose delay
has passed, so a slow or busy host never holds a thread that a fast host could use; URLs for
busy hosts wait in per-host queues (at most `max_pending_urls` in all). Redirect hops and
robots.txt requests take the same slots and delays. Never does network I/O itself: the gate
is handed a function that fetches robots.txt (robots.py caches it).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.robots import RobotsCache, RobotsFetch, RobotsFetchFailed
from scraper.records import ErrorInfo, ErrorKind, UrlTask
from scraper.urls import host_key

POLL_S = 0.2  # how often a waiting thread looks at the stop events
MAX_AUTO_DELAY_S = 60.0
SWEEP_EVERY = 4096  # forget idle hosts every so many additions, so memory follows the queue


@dataclass
class Queued:
    """A URL waiting for its host's turn; `attempt` counts from 1."""

    task: UrlTask
    attempt: int = 1
    not_before: float = 0.0  # time.monotonic(); later for a retry
    last_error: ErrorInfo | None = None


@dataclass
class _Host:
    key: str
    delay_s: float  # current delay between request starts
    floor_s: float  # never below: host_delay_s, or the robots.txt Crawl-delay
    pending: deque[Queued] = field(default_factory=deque)
    in_flight: int = 0
    next_start: float = 0.0  # time.monotonic() before which no request may start
    in_heap: bool = False


@dataclass
class Lease:
    """A URL handed to a download thread with a slot of its host already taken."""

    queued: Queued
    host: str
    leased_at: float = 0.0  # time.monotonic() of the lease
    turn_until: float = 0.0  # the host's next_start the lease set


class TurnUsed(Exception):  # noqa: N818 (a signal, not an error)
    """The lease's turn went to its host's robots.txt: the URL goes back to the front of the
    host's queue (`HostScheduler.put_back`) and the thread takes other work, instead of
    sleeping out the host delay (250 new hosts at 0.5 s held 32 threads for 4 s)."""


class HostScheduler:
    """Per-host in-flight limits and start delays; thread-safe. Blocking calls poll `abort`."""

    def __init__(self, settings: Settings, stop: threading.Event, abort: threading.Event) -> None:
        self.limit = settings.host_concurrency
        self.base_delay_s = settings.host_delay_s
        self.jitter_s = settings.host_delay_jitter_s
        self.auto_throttle = settings.auto_throttle
        self.max_pending = settings.max_pending_urls
        self.stop_event, self.abort = stop, abort
        self._cond = threading.Condition()
        self._hosts: dict[str, _Host] = {}
        self._heap: list[tuple[float, int, str]] = []  # (when the host may be ready, tie, key)
        self._tie = itertools.count()
        self._pending = 0
        self._leased = 0
        self._closed = False
        self._stopped = False
        self._added = 0

    # -- the list reader ------------------------------------------------------------------

    def add(self, task: UrlTask) -> bool:
        """Queue a new URL, waiting while `max_pending_urls` wait; False once stopped."""
        with self._cond:
            while self._pending >= self.max_pending and not self._halted():
                self._cond.wait(POLL_S)
            if self._halted():
                return False
            self._enqueue(Queued(task))
            self._added += 1
            if self._added % SWEEP_EVERY == 0:
                self._forget_idle_hosts()
            return True

    def close(self) -> None:
        """No more URLs will be added; `next_ready` returns None once all are done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stop(self) -> list[Queued]:
        """Hand out nothing more; returns the URLs still waiting, for skipped records."""
        with self._cond:
            self._stopped = True
            left = [q for host in self._hosts.values() for q in host.pending]
            for host in self._hosts.values():
                host.pending.clear()
            self._pending = 0
            self._cond.notify_all()
            return left

    # -- download threads -------------------------------------------------------------------

    def next_ready(self) -> Lease | None:
        """The next URL whose host may be asked now; None when there is no more work."""
        with self._cond:
            while not self._halted():
                now = time.monotonic()
                lease = self._pop_ready(now)
                if lease is not None:
                    return lease
                if self._closed and self._pending == 0 and self._leased == 0:
                    return None
                wait = self._heap[0][0] - now if self._heap else POLL_S
                self._cond.wait(min(max(wait, 0.001), POLL_S))
            return None

    def retry(self, lease: Lease, delay_s: float, error: ErrorInfo) -> bool:
        """Queue the lease's URL again, not before `delay_s` from now (call before release).

        False once the run is stopping: the caller records the failure instead.
        """
        with self._cond:
            if self._halted():
                return False
            queued = lease.queued
            again = Queued(queued.task, queued.attempt + 1, time.monotonic() + delay_s, error)
            self._enqueue(again)
            return True

    def put_back(self, lease: Lease) -> bool:
        """The lease's URL goes back to the front of its host's queue, its attempt unchanged,
        and the slot is freed (the host's turn stays used). False once the run is stopping:
        the caller records the URL instead."""
        with self._cond:
            self._leased -= 1
            host = self._host(lease.host)
            host.in_flight -= 1
            if self._halted():
                self._cond.notify_all()
                return False
            host.pending.appendleft(lease.queued)
            self._pending += 1
            self._schedule(host)
            self._cond.notify_all()
            return True

    def slow_down(self, key: str, delay_s: float) -> None:
        """Make a host's delay at least `delay_s` (robots.txt Crawl-delay), capped at 60 s."""
        with self._cond:
            host = self._host(key)
            host.floor_s = max(host.floor_s, min(delay_s, MAX_AUTO_DELAY_S))
            host.delay_s = max(host.delay_s, host.floor_s)

    def release(
        self,
        lease: Lease,
        latency_s: float | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        sent: bool = True,
    ) -> None:
        """The lease's request is over; frees its host slot and adapts the host's delay.

        Not `sent` (the page failed before any request, on its host's cached robots.txt
        failure): the host's turn is given back, so the host's other such pages fail at once
        instead of one per delay, and the next real request still keeps the delay from the
        last one that was sent."""
        with self._cond:
            self._leased -= 1
            if not sent:
                host = self._host(lease.host)
                if host.next_start == lease.turn_until:  # no later lease moved it on
                    host.next_start = lease.leased_at
            self._free_slot(lease.host, latency_s, status, retry_after_s)

    def acquire_hop(self, key: str, deadline: float) -> None:
        """Take a slot of another host for a redirect hop; raises PageError past `deadline`."""
        with self._cond:
            host = self._host(key)
            while True:
                now = time.monotonic()
                if host.in_flight < self.limit and host.next_start <= now:
                    host.in_flight += 1
                    host.next_start = now + self._delay(host)
                    return
                self._wait_or_timeout(min(max(host.next_start - now, 0.001), POLL_S), deadline)

    def release_hop(self, key: str) -> None:
        with self._cond:
            self._free_slot(key, None, None, None)

    def wait_turn(self, key: str, deadline: float) -> None:
        """For a slot already held: wait out the host's delay before its next request."""
        with self._cond:
            host = self._host(key)
            while (now := time.monotonic()) < host.next_start:
                self._wait_or_timeout(min(host.next_start - now, POLL_S), deadline)
            host.next_start = now + self._delay(host)

    # -- inside the lock --------------------------------------------------------------------

    def _halted(self) -> bool:
        return self._stopped or self.stop_event.is_set() or self.abort.is_set()

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(key, self.base_delay_s, self.base_delay_s)
        return host

    def _enqueue(self, queued: Queued) -> None:
        host = self._host(host_key(queued.task.normalized_url))
        host.pending.append(queued)
        self._pending += 1
        self._schedule(host)
        self._cond.notify()

    def _schedule(self, host: _Host) -> None:
        if host.pending and not host.in_heap and host.in_flight < self.limit:
            when = max(host.next_start, host.pending[0].not_before)
            heapq.heappush(self._heap, (when, next(self._tie), host.key))
            host.in_heap = True

    def _pop_ready(self, now: float) -> Lease | None:
        while self._heap and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            host = self._hosts[key]
            host.in_heap = False
            if not host.pending or host.in_flight >= self.limit:
                continue  # scheduled again when a slot frees or work arrives
            if max(host.next_start, host.pending[0].not_before) > now:
                self._schedule(host)
                continue
            queued = host.pending.popleft()
            self._pending -= 1
            self._leased += 1
            host.in_flight += 1
            host.next_start = now + self._delay(host)
            self._schedule(host)
            if self._pending == self.max_pending - 1:
                self._cond.notify_all()  # the reader waits for room only at max_pending
            return Lease(queued, key, now, host.next_start)
        return None

    def _free_slot(
        self, key: str, latency_s: float | None, status: int | None, retry_after_s: float | None
    ) -> None:
        host = self._host(key)
        host.in_flight -= 1
        if self.auto_throttle:
            self._adapt(host, latency_s, status)
        if retry_after_s:
            host.next_start = max(host.next_start, time.monotonic() + retry_after_s)
        self._schedule(host)
        self._cond.notify_all()

    def _adapt(self, host: _Host, latency_s: float | None, status: int | None) -> None:
        """AutoThrottle's rule: move the delay halfway towards the latency; double on 429/503;
        never below the host's floor."""
        if status in (429, 503):
            host.delay_s = min(MAX_AUTO_DELAY_S, max(host.delay_s, 0.1) * 2)
        elif latency_s is not None:
            host.delay_s = (host.delay_s + latency_s) / 2
        host.delay_s = min(MAX_AUTO_DELAY_S, max(host.floor_s, host.delay_s))

    def _delay(self, host: _Host) -> float:
        return host.delay_s + (random.uniform(0, self.jitter_s) if self.jitter_s else 0.0)

    def _wait_or_timeout(self, wait_s: float, deadline: float) -> None:
        if self.abort.is_set():
            raise PageError(ErrorKind.TIMEOUT, "run aborted while waiting for the host")
        if time.monotonic() + wait_s > deadline:
            raise PageError(ErrorKind.TIMEOUT, "page deadline passed waiting for the host's turn")
        self._cond.wait(wait_s)

    def _forget_idle_hosts(self) -> None:
        now = time.monotonic()
        idle = [
            k
            for k, h in self._hosts.items()
            if not h.pending and not h.in_flight and h.next_start < now and not h.in_heap
        ]
        for key in idle:
            del self._hosts[key]


# -- robots.txt --------------------------------------------------------------------------------


class PoliteGate:
    """The RequestGate of one leased URL: robots.txt, then the host's turn, for every hop.

    The lease already holds a slot of the URL's own host. A redirect to the same host waits
    out the host's delay; one to another host takes a slot there too, for that request.
    """

    def __init__(
        self,
        scheduler: HostScheduler,
        lease: Lease,
        robots: RobotsCache | None,
        robots_fetch: RobotsFetch,
    ) -> None:
        self.scheduler, self.lease = scheduler, lease
        self.robots, self.robots_fetch = robots, robots_fetch
        self.requests = 0  # requests sent (robots.txt ones included)
        self.held_hop: str | None = None

    def enter(self, url: str, deadline: float) -> None:
        key = host_key(url)
        if key != self.lease.host:
            self.scheduler.acquire_hop(key, deadline)
            self.held_hop = key
        elif self.requests > 0:
            self.scheduler.wait_turn(key, deadline)  # the previous hop used this host's turn
        try:
            if self.robots is not None:
                try:
                    crawl_delay, fetched = self.robots.check(url, self.robots_fetch)
                except RobotsFetchFailed as exc:
                    if exc.fetched:
                        self.requests += 1
                    raise
                if crawl_delay:
                    self.scheduler.slow_down(key, crawl_delay)
                if fetched:
                    self.requests += 1
                    if self.requests == 1 and key == self.lease.host:
                        raise TurnUsed  # robots.txt used this turn: the URL waits for the next
                    self.scheduler.wait_turn(key, deadline)  # a hop's robots.txt used it
        except BaseException:
            self.leave(url)
            raise
        self.requests += 1

    def leave(self, url: str) -> None:
        if self.held_hop is not None:
            self.scheduler.release_hop(self.held_hop)
            self.held_hop = None
