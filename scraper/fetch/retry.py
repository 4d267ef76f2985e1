"""The retry decision, in one pure function: from what went wrong (an error kind, a status, the
response headers), the attempt number and the settings, to "retry in N seconds" or "give up".

Timeouts and dropped connections are retried, and the statuses of `retry_statuses`; nothing
else is (a 404 will be a 404 again; a TLS or policy failure needs a person). A 429 or 503 may
say when to come back (Retry-After, RFC 9110 §10.2.3): the retry waits at least that long, and
so does the host's next request, both capped at `max_retry_wait_s`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from urllib3.util import Retry

from scraper.config.settings import Settings
from scraper.records import ErrorInfo, ErrorKind

RETRIED_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECTION})
RETRY_AFTER_STATUSES = frozenset({429, 503})
JITTER = (1.0, 1.5)  # backoff is multiplied by a factor drawn from this range


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """`delay_s`: retry after this many seconds, or None to give up. `host_wait_s`: what the
    server asked its host to be left alone for (capped), or None."""

    delay_s: float | None
    host_wait_s: float | None = None


GIVE_UP = RetryDecision(None)


def decide_retry(
    error: ErrorInfo,
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    settings: Settings,
    jitter: float | None = None,
) -> RetryDecision:
    """Whether attempt `attempt` (from 1) that failed with `error` is tried again, and when.
    `jitter` (from JITTER) is drawn at random unless given."""
    host_wait = None
    if status in RETRY_AFTER_STATUSES:
        host_wait = retry_after_s(headers)
        host_wait = min(host_wait, settings.max_retry_wait_s) if host_wait is not None else None
    if attempt > settings.retries or not _retryable(error, status, settings):
        return RetryDecision(None, host_wait)
    factor = random.uniform(*JITTER) if jitter is None else jitter
    return RetryDecision(retry_delay_s(attempt, host_wait, settings, factor), host_wait)


def _retryable(error: ErrorInfo, status: int | None, settings: Settings) -> bool:
    if error.kind is ErrorKind.HTTP_STATUS:
        return status in settings.retry_statuses
    return error.kind in RETRIED_KINDS


def retry_delay_s(
    attempt: int, retry_after: float | None, settings: Settings, jitter: float
) -> float:
    """Wait before attempt `attempt + 1`: exponential backoff times `jitter`, or the server's
    Retry-After if longer; capped at max_retry_wait_s."""
    backoff = settings.retry_backoff_s * 2 ** (attempt - 1) * jitter
    return min(settings.max_retry_wait_s, max(backoff, retry_after or 0.0))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (seconds or HTTP-date); None when absent or invalid."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except urllib3.exceptions.InvalidHeader:
        return None
