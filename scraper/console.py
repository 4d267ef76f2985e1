"""The only writer to the terminal: the tqdm progress bar, log lines and the run's summary.

Everything goes through one write lock (`_LOCK`, which tqdm is told to use as its own), shared
by the bar, the log handler and the summary, so lines from many threads never interleave and
never cut the bar. The bar is shown only when the stream is a terminal and the run is not
quiet (cron sees no bar); tqdm is imported only then (20 ms of start-up, measured, mostly its
version lookup through importlib.metadata).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

LOGGER_NAME = "scraper"
_LOCK = threading.RLock()
SHOWN_FAILURES = 5  # in the report of a failed quiet run

# Verbosity: -qq, -q (cron: silent unless the run fails), default, -v (a line per page), --debug.
SILENT, QUIET, NORMAL, VERBOSE, DEBUG = -2, -1, 0, 1, 2


def _tqdm() -> Any:
    """tqdm's class, told to take our lock (done once, on the first bar)."""
    from tqdm import tqdm

    tqdm.set_lock(_LOCK)
    return tqdm


def _write(text: str, stream: TextIO) -> None:
    """A whole line under the shared lock; through tqdm (which lifts the bar) once it is used."""
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.write(text, file=stream)
        return
    with _LOCK:
        stream.write(text + "\n")
        stream.flush()


class _LockedHandler(logging.Handler):
    """Writes each log line whole through tqdm.write, under tqdm's lock."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def createLock(self) -> None:  # noqa: N802 (logging's name)
        self.lock = _LOCK

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write(self.format(record), self.stream)
        except Exception:
            self.handleError(record)


class Console:
    """Progress bar, logging and summary for one run; a context manager.

    `verbosity`: SILENT prints nothing at all; QUIET (cron) prints nothing while all is well
    and, when the run's exit status is not 0, a short report (the summary line and the first
    failures, as `chronic` and `curl -sS` do); NORMAL adds warnings, the bar on a terminal and
    the summary; VERBOSE a line per page and the retries; DEBUG details and tracebacks."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = NORMAL,
        is_tty: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if is_tty is None:
            is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.verbosity = verbosity
        self.quiet = verbosity < NORMAL
        self.show_bar = is_tty and not self.quiet
        self.debug = verbosity >= DEBUG
        self.bar: Any = None
        self.failures = 0
        self.first_failures: list[str] = []
        self._handler = _LockedHandler(self.stream)
        self._handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        self._saved_level = logging.NOTSET

    def __enter__(self) -> Console:
        logger = logging.getLogger(LOGGER_NAME)
        self._saved_level = logger.level
        # Quiet (cron): per-URL failures stay in the records and the report of a failed run.
        # The logger passes INFO on for a log_file; the terminal shows warnings and up.
        level = {SILENT: logging.CRITICAL + 1, QUIET: logging.ERROR, NORMAL: logging.WARNING}
        self._handler.setLevel(level.get(self.verbosity, logging.INFO))
        if self.debug:
            self._handler.setLevel(logging.DEBUG)
        logger.setLevel(logging.DEBUG if self.debug else logging.INFO)
        logger.addHandler(self._handler)
        logger.propagate = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_bar()
        logger = logging.getLogger(LOGGER_NAME)
        logger.removeHandler(self._handler)
        logger.setLevel(self._saved_level)

    def start_bar(self, total: int | None) -> None:
        """Show the bar (when on a terminal and not quiet); total may be unknown."""
        if self.show_bar and self.bar is None:
            # A terminal that reports no size (a bare pseudo-terminal, a serial console)
            # would get a bar of no columns and rows, that is none: 80 by 24 then.
            width = {"dynamic_ncols": True} if _columns(self.stream) else {"ncols": 80, "nrows": 24}
            self.bar = _tqdm()(
                total=total,
                file=self.stream,
                unit="url",
                smoothing=0.1,
                mininterval=0.2,
                **width,
            )

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def advance(self, failed: bool, line: str = "") -> None:
        """One more record done; `line` says it in words (`-v` shows it; the first failures
        are kept for the report of a failed quiet run)."""
        if failed:
            self.failures += 1
            if len(self.first_failures) < SHOWN_FAILURES:
                self.first_failures.append(line)
        if self.verbosity >= VERBOSE and line and not failed:  # failures are warnings already
            self.write(line)
        if self.bar is not None:
            if failed:
                self.bar.set_postfix_str(f"failed={self.failures}", refresh=False)
            self.bar.update(1)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def say(self, text: str) -> None:
        """A line for the user (not shown with --quiet)."""
        if not self.quiet:
            self.write(text)

    def write(self, text: str) -> None:
        """Write whole lines under the shared lock, whatever the bar is doing."""
        _write(text, self.stream)

    def error(self, text: str) -> None:
        """One error line; shown even with -q (not with -qq)."""
        if self.verbosity > SILENT:
            self.write(f"scrape: {text}")

    def summary(self, summary: Mapping[str, Any]) -> None:
        """The end-of-run summary, a few short lines; under -q only for a failed run, with
        its first failures."""
        counts = ", ".join(f"{n} {name}" for name, n in summary["counts"].items() if n)
        line = (
            f"{summary['records']} records ({counts or 'none'}) in {summary['elapsed_s']:.1f}s, "
            f"{summary['pages_per_s']:.1f} pages/s, {summary['body_bytes'] / 1e6:.1f} MB"
        )
        code = summary.get("exit_code", 0)
        if self.verbosity == QUIET and code:
            why = f"stopped by {summary['stopped_by']}" if summary.get("stopped_by") else "failed"
            self.write(f"scrape: run {why}, exit {code}: {line}")
            for failure in self.first_failures:
                self.write(f"  {failure}")
            if self.failures > len(self.first_failures):
                self.write(f"  ... and {self.failures - len(self.first_failures)} more failed")
            if summary.get("output"):
                self.write(f"  records: {_where(summary['output'])}")
            return
        self.say(line)
        if "urls" in summary:
            self.say(_discovery_line(summary))
        if summary.get("output"):
            self.say(f"records: {_where(summary['output'])}")


def _discovery_line(summary: Mapping[str, Any]) -> str:
    """ "20 listed, 340 discovered; 3 sitemaps read, 1 failed; 12 left out (max_urls)"."""
    urls, found = summary["urls"], summary["discovery"]
    line = f"{urls['listed']} listed, {urls['discovered']} discovered"
    if found["sitemaps_read"] or found["sitemaps_failed"]:
        line += f"; {found['sitemaps_read']} sitemaps read"
        if found["sitemaps_failed"]:
            line += f", {found['sitemaps_failed']} failed"
    if found["left_out_max_urls"]:
        line += f"; {found['left_out_max_urls']} left out (max_urls)"
    return line


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


def _where(output: str) -> str:
    return "standard output" if output == "-" else output
