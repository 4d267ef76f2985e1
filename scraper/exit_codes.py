"""The process exit status: the codes, their help text, and the one function that picks a run's
code from its counts and the signals it received. A leaf: imports only the standard library."""

from __future__ import annotations

import collections
import enum
import signal
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
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


EXIT_CODES_HELP = """exit status:
  0    every URL line was fetched and parsed (duplicates count as fine)
  1    some URLs failed or some lines were invalid (see the records)
  2    usage or config error: nothing was fetched
  75   another run holds the state's lock (EX_TEMPFAIL); nothing was fetched
  130  interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM
"""


def exit_code(counts: Counts, received: list[int], max_failure_ratio: float) -> ExitCode:
    """0, 1 (past the failure ratio), or 130/143 for an interrupted run."""
    if received:
        return ExitCode.TERMINATED if received[0] == signal.SIGTERM else ExitCode.INTERRUPTED
    if counts.interrupted:
        return ExitCode.INTERRUPTED
    bad = counts.by_outcome["failed"] + counts.by_outcome["invalid"]
    if bad and bad / max(1, counts.records) > max_failure_ratio:
        return ExitCode.FAILED
    return ExitCode.OK
