"""What every engine shares: the events that end a run, the counts it returns, the summary
built from them, and the Engine protocol that the local pipeline (pipeline/engine.py) and the
Dask client (cluster/client.py) both implement, so that a run (run.py) is written once.

An engine reads URL lines, calls `write(record)` once per line in the calling thread, calls
`flush()` whenever no record waits, watches `events` (stop: finish what is in flight; abort:
leave now) and returns its `counts`."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from scraper.records import Outcome, PageRecord, Validators

if TYPE_CHECKING:
    from scraper.pipeline.frontier import Frontier
from scraper.url_list import LineStream, ListEntry


class ValidatorSource(Protocol):
    """Where a run finds each URL's validators from last time: the state store, or on a
    cluster worker the validators the client sent with the batch."""

    def lookup(self, url: str) -> Validators | None: ...

    def lookup_many(self, urls: list[str]) -> dict[str, Validators]: ...


Source = LineStream | Iterable[ListEntry]  # the list's bytes, or entries already read
Write = Callable[[PageRecord], None]


@dataclass
class RunEvents:
    """How the outside world (signals, tests) asks a run to end."""

    stop: threading.Event = field(default_factory=threading.Event)  # finish in-flight, read no more
    abort: threading.Event = field(default_factory=threading.Event)  # leave now
    time_up: threading.Event = field(default_factory=threading.Event)  # max_run_time_s: cut now


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
    changed: int = 0  # new or changed pages
    resumed: bool = False  # this run finishes a killed one (--resume)
    resumed_records: int = 0  # records the killed run had already written
    cluster_start_s: float | None = None  # connecting to (or starting) the Dask cluster
    listed: int = 0  # records of list lines
    discovered: int = 0  # records of discovered URLs (sitemaps, follow rules)
    sitemaps_read: int = 0
    sitemaps_failed: int = 0
    frontier: Any = None  # the frontier's FrontierCounts, when the run discovers URLs

    def add(self, record: PageRecord) -> None:
        self.records += 1
        if record.found_on is not None:
            self.discovered += 1
        else:
            self.listed += 1
        self.by_outcome[record.outcome.value] += 1
        if record.error is not None and record.outcome is Outcome.FAILED:
            self.failed_by_kind[record.error.kind.value] += 1
        if record.outcome in (Outcome.OK, Outcome.FAILED, Outcome.UNCHANGED) and record.attempts:
            self.fetched += 1
        if record.outcome is Outcome.OK and record.state is not None and record.state.changed:
            self.changed += 1
        self.body_bytes += int(record.fields.get("body_bytes") or 0)


OUTCOMES = ("ok", "unchanged", "failed", "invalid", "duplicate", "skipped")


class Engine(Protocol):
    """Records in (through `write`), counts out; ended early by `events`."""

    events: RunEvents
    counts: RunCounts

    def run(
        self,
        lines: Source,
        write: Write,
        grace_s: float = 10.0,
        flush: Callable[[], None] = lambda: None,
    ) -> RunCounts:
        """Read `lines`; call `write(record)` once per URL line, in this thread, and `flush()`
        whenever no record waits and at the end; return the counts."""
        ...


# Builds a run's engine: (events, validator source, incremental, lines to pass over, the
# frontier of discovered URLs or None) -> engine.
MakeEngine = Callable[
    [RunEvents, ValidatorSource | None, bool, frozenset[int], "Frontier | None"], Engine
]


def run_summary(
    counts: RunCounts, code: int, run_id: str, list_name: str, stopped_by: str | None = None
) -> dict[str, Any]:
    """The machine-readable summary written beside the records and printed at the end."""
    elapsed = counts.ended - counts.started
    active = elapsed - (counts.first_request_s or 0.0)
    return {
        "run": run_id,
        "list": list_name,
        "started_at": counts.started_at.isoformat(timespec="seconds"),
        "ended_at": (counts.started_at + timedelta(seconds=elapsed)).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 3),
        "records": counts.records,
        "counts": {name: counts.by_outcome[name] for name in OUTCOMES},
        "changed": counts.changed,
        "failed_by_kind": dict(counts.failed_by_kind),
        "pages_per_s": round(counts.fetched / active, 2) if active > 0 else 0.0,
        "body_bytes": counts.body_bytes,
        "first_request_s": counts.first_request_s,
        **_discovery_summary(counts),
        "parse_workers_replaced": counts.workers_replaced,
        "resumed": counts.resumed,
        "resumed_records": counts.resumed_records,
        "interrupted": counts.interrupted,
        "stopped_by": stopped_by,  # SIGINT, SIGTERM or max_run_time; null: ran to the end
        "exit_code": int(code),
    } | ({"cluster_start_s": round(counts.cluster_start_s, 3)} if counts.cluster_start_s else {})


def _discovery_summary(counts: RunCounts) -> dict[str, Any]:
    """Listed and discovered records apart (they add up to `records`), and the sitemaps."""
    if counts.frontier is None:
        return {}
    frontier = counts.frontier
    return {
        "urls": {"listed": counts.listed, "discovered": counts.discovered},
        "discovery": {
            "sitemaps_read": counts.sitemaps_read,
            "sitemaps_failed": counts.sitemaps_failed,
            "queued": frontier.pages,
            "left_out_max_urls": frontier.left_out,
        },
    }
