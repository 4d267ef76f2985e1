"""The process exit status: the codes, their help text, and the one function that picks a run's
code from its counts and the signals it received. A leaf: imports only the standard library."""

from __future__ import annotations

import collections
import enum
from typing import Protocol


class Counts(Protocol):
    """What exit_code reads of a run's counts (pipeline.base.RunCounts)."""

    by_outcome: collections.Counter[str]
    records: int
    interrupted: bool


class ExitCode(enum.IntEnum):
    """The process exit status; documented in --help and the README."""

    OK = 0  # every URL line fetched and parsed (duplicates count as fine)
    FAILED = 1  # some URLs failed or some lines were invalid
    USAGE = 2  # bad command line, unreadable list, or a config error: nothing was fetched
    LOCKED = 75  # EX_TEMPFAIL: another run holds the state; try again later
    TIME_LIMIT = 124  # max_run_time_s reached (as timeout(1) exits); every line recorded
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


EXIT_CODES_HELP = """exit status:
  0    every URL line was fetched and parsed (duplicates count as fine)
  1    some URLs failed or some lines were invalid (see the records)
  2    usage or config error: nothing was fetched
  75   another run holds the state's lock (EX_TEMPFAIL); nothing was fetched
  124  max_run_time_s (--max-run-time) was reached; every line has its record
  130  interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM
"""

# What ended a run early, as run.py names it: the exit status it gives.
STOPPED_BY = {
    "SIGINT": ExitCode.INTERRUPTED,
    "SIGTERM": ExitCode.TERMINATED,
    "max_run_time": ExitCode.TIME_LIMIT,
}


def exit_code(counts: Counts, stopped_by: str | None, max_failure_ratio: float) -> ExitCode:
    """0, 1 (past the failure ratio), or for a run ended early by `stopped_by` (the first of
    SIGINT, SIGTERM and max_run_time) 130, 143 or 124."""
    if stopped_by is not None:
        return STOPPED_BY[stopped_by]
    if counts.interrupted:
        return ExitCode.INTERRUPTED
    # A sitemap that could not be fetched is a failed input, as a failed list line is.
    sitemaps_failed = getattr(counts, "sitemaps_failed", 0)
    bad = counts.by_outcome["failed"] + counts.by_outcome["invalid"] + sitemaps_failed
    if bad and bad / max(1, counts.records + sitemaps_failed) > max_failure_ratio:
        return ExitCode.FAILED
    return ExitCode.OK
