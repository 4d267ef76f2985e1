"""One scrape from start to end: the output folder, the run lock and state, the sink, the
pipeline under signal handling, then the summary, state, metrics and retention.

Order matters: nothing is fetched before the lock is held, and a record is written before the
state learns of it, so a crash can lose state (the next run refetches) but never a record.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import logging.handlers
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from scraper.config.settings import Settings
from scraper.console import DEBUG, LOGGER_NAME, NORMAL, QUIET, Console
from scraper.errors import ConfigError
from scraper.exit_codes import ExitCode, exit_code
from scraper.output.folder import (
    Resumed,
    new_run_id,
    prepare_output_dir,
    prune_runs,
    read_partial,
    reopen_interrupted,
)
from scraper.output.metrics import write_metrics
from scraper.output.previous import PreviousRecords
from scraper.output.sinks import JsonLinesSink, RecordSink, StdoutSink, complete, open_sink
from scraper.pipeline.base import MakeEngine, RunCounts, RunEvents, run_summary
from scraper.pipeline.engine import Pipeline
from scraper.pipeline.frontier import Frontier
from scraper.records import Outcome, PageRecord
from scraper.state import RunLock, StateStore
from scraper.url_list import LineStream
from scraper.urls import mask_passwords

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # from glibc's malloc.h


@dataclass(frozen=True)
class RunOptions:
    """How this one run uses the state: flags, not settings."""

    resume: bool = False  # finish the killed run instead of starting a new one
    full: bool = False  # ignore stored validators: fetch and parse everything
    wait_lock_s: float = 0.0  # wait this long for another run to finish
    debug: bool = False
    use_state: bool = True  # False: no state, no lock, nothing incremental (--no-state)
    verbosity: int | None = None  # console.SILENT ... VERBOSE; None: the quiet setting's


def scrape(
    settings: Settings,
    lines: LineStream,
    list_name: str,
    stderr: TextIO,
    is_tty: bool | None,
    options: RunOptions = RunOptions(),
    count_path: Path | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    make_engine: MakeEngine | None = None,
    stdout: TextIO | None = None,
) -> ExitCode:
    """Run one scrape of the URL lines in `lines` and report it; returns the exit code.
    Raises ConfigError (nothing was fetched) or Locked (another run holds the state).
    `make_engine` replaces the engine the settings choose (the local pipeline, or the Dask
    cluster of `--cluster`). `output_dir` "-" writes the records to `stdout` (JSON lines)
    and keeps state only in an explicit `state_file`."""
    to_stdout = settings.output_dir == "-"
    if to_stdout:
        if settings.format != "jsonl":
            raise ConfigError(
                f"output_dir -: standard output takes JSON lines, not format {settings.format} "
                "(which needs a folder)"
            )
        if options.resume:
            raise ConfigError("--resume needs an output folder, not -o -")
    with (
        Console(stderr, verbosity=_verbosity(settings, options), is_tty=is_tty) as console,
        _log_file(settings),
        _engine_maker(settings, make_engine) as engine_for,
    ):
        run = functools.partial(_run, settings, lines, list_name, options, engine_for, console)
        if to_stdout:
            folder = None
            run = functools.partial(run, stdout=stdout if stdout is not None else sys.stdout)
        else:
            where = settings.origins.get("output_dir", "")
            folder = prepare_output_dir(Path(settings.output_dir), where)
        if not options.use_state or (folder is None and not settings.state_file):
            return run(folder, None, count_path, on_record)
        state_path = Path(settings.state_file or Path(str(folder)) / "state.sqlite")
        lock = RunLock(state_path.with_name(state_path.name + ".lock"))
        lock.acquire(options.wait_lock_s)
        try:
            state = StateStore(state_path)
            try:
                return run(folder, state, count_path, on_record)
            finally:
                state.close()
        finally:
            lock.release()


def _verbosity(settings: Settings, options: RunOptions) -> int:
    if options.debug:
        return DEBUG
    if options.verbosity is not None:
        return options.verbosity
    return QUIET if settings.quiet else NORMAL


@contextmanager
def _engine_maker(settings: Settings, given: MakeEngine | None) -> Iterator[MakeEngine]:
    """What builds this run's engine: `given`, the local pipeline, or for `--cluster` the
    connected cluster's (a cluster that cannot be used raises ConfigError: nothing fetched)."""
    if given is not None:
        yield given
        return
    if not settings.cluster:
        yield functools.partial(Pipeline, settings)
        return
    from scraper.cluster.client import Cluster, ClusterRun

    cluster = Cluster(settings.cluster, settings.connect_timeout_s)
    cluster.connect()
    try:
        log.info("cluster %s ready in %.1fs", settings.cluster, cluster.start_s)
        yield functools.partial(ClusterRun, settings, cluster)
    finally:
        cluster.close()


def _run(
    settings: Settings,
    lines: LineStream,
    list_name: str,
    options: RunOptions,
    engine_for: MakeEngine,
    console: Console,
    folder: Path | None,
    state: StateStore | None,
    count_path: Path | None,
    on_record: Callable[[dict[str, Any]], None] | None,
    stdout: TextIO | None = None,
) -> ExitCode:
    if console.verbosity > NORMAL:
        console.write(f"config: {settings.config_file or 'none (defaults and flags only)'}")
    if folder is None:
        assert stdout is not None
        if state is not None:
            state.abandon_unfinished()
        sink: RecordSink = StdoutSink(stdout, new_run_id())
        resumed = Resumed(active=False)
    else:
        sink, resumed = _open_run(settings, list_name, options, folder, state)
    limit_malloc_arenas()
    events = RunEvents()
    with _frontier(settings, state, resumed) as frontier:
        engine = engine_for(events, state, not options.full, frozenset(resumed.lines), frontier)
        _count_resumed(engine.counts, resumed)
        if state is not None:
            started_at = engine.counts.started_at.isoformat(timespec="seconds")
            state.begin_run(sink.run_id, list_name, started_at)
        console.start_bar(None)
        if count_path is not None and frontier is None:  # with discovery no total is known
            _count_lines_in_background(count_path, console, len(resumed.lines))

        previous = PreviousRecords(folder, settings.format) if folder is not None else None
        # Plain JSON lines, read by nobody in between: an unchanged record's text is spliced.
        splice = type(sink) is JsonLinesSink and on_record is None

        def write(record: PageRecord) -> None:
            page_state = record.state
            if not (settings.changed_only and record.outcome is Outcome.UNCHANGED):
                if record.outcome is Outcome.UNCHANGED and previous is not None:
                    record = completed(record, previous, splice)
                    page_state = record.state
                ref = sink.write(record)
                if isinstance(sink, StdoutSink) and sink.broken and not events.stop.is_set():
                    log.warning("standard output was closed: stopping")
                    events.stop.set()
                full = record.outcome is Outcome.OK or complete(record)
                if ref and full and page_state is not None and page_state.validators is not None:
                    validators = dataclasses.replace(page_state.validators, record_ref=ref)
                    page_state = dataclasses.replace(page_state, validators=validators)
            if state is not None and page_state is not None:
                state.update(page_state, time.time())
            failed = record.outcome in (Outcome.FAILED, Outcome.INVALID)
            console.advance(
                failed, record_line(record) if failed or console.verbosity > NORMAL else ""
            )
            if on_record is not None:
                on_record(record.to_dict())

        def flush() -> None:
            sink.flush()  # first the records, then the state that knows of them
            if state is not None:
                state.commit_due(time.time())

        started_ts = time.time()
        with _stops(events, settings.max_run_time_s) as stops:
            try:
                counts = engine.run(lines, write, flush=flush)
            except BaseException:
                sink.abandon()
                raise
            finally:
                if previous is not None:
                    previous.close()
        console.close_bar()
        if frontier is not None:
            counts.frontier = frontier.counts
        if counts.records == 0 and frontier is None:
            log.warning("%s: no URLs in the list (blank lines and # comments only)", list_name)
        elif counts.records == 0:
            log.warning("%s: no URLs in the list, and none discovered", list_name)
        stopped_by = stops[0] if stops else None
        code = exit_code(counts, stopped_by, settings.max_failure_ratio)
        summary = run_summary(counts, code, sink.run_id, list_name, stopped_by)
        if counts.aborted:
            sink.abandon()
            console.error(
                f"aborted; records so far are in {sink.part_path} "
                "(scrape --resume finishes the run)"
            )
            return code
        summary["config"] = settings.config_file or None
        summary["output"] = str(sink.finish(summary))
        if state is not None:
            state.end_run(summary)
        if settings.metrics_file:
            write_metrics(Path(settings.metrics_file), summary, started_ts, time.time())
        if settings.keep_runs and folder is not None:
            still_read = state.referenced_runs() if state is not None else set()
            prune_runs(folder, settings.keep_runs, sink.run_id, still_read)
        console.summary(summary)
        return code


@contextmanager
def _frontier(
    settings: Settings, state: StateStore | None, resumed: Resumed
) -> Iterator[Frontier | None]:
    """The run's frontier, in the state (or a temporary file), when it discovers URLs."""
    if not settings.discovers():
        yield None
        return
    where = state.path.with_name(state.path.name + "-frontier") if state is not None else None
    frontier = Frontier(where, settings.max_urls, resumed.active, resumed.urls)
    try:
        yield frontier
    finally:
        frontier.close()


def completed(record: PageRecord, previous: PreviousRecords, splice: bool) -> PageRecord:
    """An unchanged page's record with the fields and `data` of its last full record (with
    `splice`, as that record's JSON text: output/previous.py); when that record cannot be
    read (its file was deleted), as it is, with a warning, and the URL's validators
    forgotten so that the next run fetches and parses it in full."""
    validators = record.state.validators if record.state is not None else None
    if validators is None or not validators.record_ref:
        return record  # a state from before records were completed, or --changed-only ones
    if splice and (tail := previous.tail(validators.record_ref)) is not None:
        return dataclasses.replace(record, raw_tail=tail)
    old = previous.fields(validators.record_ref)
    if old is None:
        log.warning(
            "%s: unchanged, but its last full record (%s) is gone: written without "
            "its fields; the next run fetches it in full",
            mask_passwords(record.where()),
            validators.record_ref.split("/")[0],
        )
        assert record.state is not None
        return dataclasses.replace(record, state=dataclasses.replace(record.state, forget=True))
    return dataclasses.replace(record, fields={**old, **record.fields})


def record_line(record: PageRecord) -> str:
    """A record in words, as -v shows each and a failed quiet run its first failures:
    "line 3: https://a.example/x: failed: timeout: no response after 15 s"."""
    what = record.outcome.value
    if record.error is not None:
        what += f": {record.error.kind.value}: {record.error.message}"
    elif record.fields.get("status"):
        what += f" ({record.fields['status']})"
    return f"{mask_passwords(record.where())}: {what}"


def _open_run(
    settings: Settings,
    list_name: str,
    options: RunOptions,
    folder: Path,
    state: StateStore | None,
) -> tuple[RecordSink, Resumed]:
    """The sink of a new run, or of the killed run being resumed with what it holds."""
    if state is None and options.resume:
        raise ConfigError("--resume needs the state: drop --no-state")
    if state is None or not options.resume:
        if state is not None:
            state.abandon_unfinished()
        return open_sink(settings, folder, new_run_id()), Resumed(active=False)
    killed = state.unfinished_run()
    found = killed or state.interrupted_run()
    if found is None:
        raise ConfigError(f"--resume: no unfinished or interrupted run in {folder}")
    run_id, its_list = found
    if its_list != list_name:
        raise ConfigError(f"--resume: the unfinished run {run_id} read {its_list}, not {list_name}")
    ext = "csv" if settings.format == "csv" else "jsonl"
    part = folder / f"{run_id}.{ext}.part"
    if killed is None:  # interrupted: its file is finished, with skipped lines to fetch
        final = folder / f"{run_id}.{ext}"
        if not final.exists():
            raise ConfigError(f"--resume: {final} is gone; start a new run")
        reopen_interrupted(final, part, settings.format)
        state.reopen_run(run_id)
    if not part.exists():
        raise ConfigError(f"--resume: {part} is gone; start a new run")
    resumed = read_partial(part, settings.format)
    log.warning("resuming run %s: %d records already written", run_id, len(resumed.lines))
    return open_sink(settings, folder, run_id, append=True), resumed


def _count_resumed(counts: RunCounts, resumed: Resumed) -> None:
    for outcome, n in resumed.by_outcome.items():
        counts.by_outcome[outcome] += n
        counts.records += n
    counts.resumed_records = len(resumed.lines) + len(resumed.urls)
    counts.discovered += len(resumed.urls)
    counts.listed += len(resumed.lines)
    counts.resumed = resumed.active


def limit_malloc_arenas(count: int = 2) -> None:
    """Like MALLOC_ARENA_MAX=2, set before the download threads start (glibc only).

    glibc gives each thread its own malloc arena, up to 8 per core; with 32 download threads
    freeing page-sized buffers the arenas fragment and memory creeps up with the list's
    length (measured: +10.5 MB from 1,000 to 20,000 URLs; +6.1 MB with 2 arenas).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass  # not glibc (musl, for one): nothing to tune


@contextmanager
def _log_file(settings: Settings) -> Iterator[None]:
    """log_file: warnings, retries and errors with times, rotated by size (3 old files)."""
    if not settings.log_file:
        yield
        return
    handler = logging.handlers.RotatingFileHandler(
        settings.log_file, maxBytes=settings.log_max_bytes, backupCount=3, encoding="utf-8"
    )
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _count_lines_in_background(path: Path, console: Console, already: int) -> None:
    """Give the bar its total without delaying the first request: count in another thread."""
    if console.bar is None:
        return

    def count() -> None:
        from scraper.url_list import count_url_lines

        try:
            console.set_total(count_url_lines(path) - already)
        except OSError:
            pass

    threading.Thread(target=count, name="line-counter", daemon=True).start()


@contextmanager
def _stops(events: RunEvents, max_run_time_s: float) -> Iterator[list[str]]:
    """What may end the run early, in the order it came: SIGINT and SIGTERM set `stop` the
    first time and `abort` the second; max_run_time_s sets `time_up` and `stop`."""
    stops: list[str] = []
    timer = None
    if max_run_time_s:

        def time_up() -> None:
            stops.append("max_run_time")
            events.time_up.set()
            events.stop.set()

        timer = threading.Timer(max_run_time_s, time_up)
        timer.daemon = True
        timer.start()
    if threading.current_thread() is not threading.main_thread():
        try:
            yield stops
        finally:
            if timer is not None:
                timer.cancel()
        return

    def handler(signum: int, frame: Any) -> None:
        stops.append(signal.Signals(signum).name)
        (events.abort if events.stop.is_set() else events.stop).set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stops
    finally:
        if timer is not None:
            timer.cancel()
        for sig, old in saved.items():
            signal.signal(sig, old)
