"""The retry decision, built from objects: no server, no scheduler."""

from __future__ import annotations

import dataclasses

import pytest

from scraper.config.settings import Settings
from scraper.fetch.retry import JITTER, decide_retry
from scraper.records import ErrorInfo, ErrorKind

SETTINGS = Settings(retries=2, retry_backoff_s=0.5, max_retry_wait_s=30.0)
TIMEOUT = ErrorInfo(ErrorKind.TIMEOUT, "read timed out")
STATUS = ErrorInfo(ErrorKind.HTTP_STATUS, "HTTP 503 Service Unavailable")


def test_a_timeout_is_retried_with_exponential_backoff() -> None:
    delays = [decide_retry(TIMEOUT, None, {}, n, SETTINGS, jitter=1.0).delay_s for n in (1, 2)]
    assert delays == [0.5, 1.0]


def test_attempts_are_retries_plus_one() -> None:
    assert decide_retry(TIMEOUT, None, {}, 3, SETTINGS, jitter=1.0).delay_s is None
    assert decide_retry(TIMEOUT, None, {}, 1, Settings(retries=0)).delay_s is None


@pytest.mark.parametrize(
    "kind",
    [kind for kind in ErrorKind if kind not in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION)],
)
def test_only_timeouts_connections_and_listed_statuses_are_retried(kind: ErrorKind) -> None:
    status = 404 if kind is ErrorKind.HTTP_STATUS else None
    assert decide_retry(ErrorInfo(kind, "x"), status, {}, 1, SETTINGS).delay_s is None


def test_a_dropped_connection_is_retried() -> None:
    error = ErrorInfo(ErrorKind.CONNECTION, "connection reset")
    assert decide_retry(error, None, {}, 1, SETTINGS, jitter=1.0).delay_s == 0.5


def test_listed_statuses_are_retried_and_others_not() -> None:
    assert 503 in SETTINGS.retry_statuses and 404 not in SETTINGS.retry_statuses
    assert decide_retry(STATUS, 503, {}, 1, SETTINGS, jitter=1.0).delay_s == 0.5
    assert decide_retry(STATUS, 503, {}, 1, Settings(retry_statuses=[502])).delay_s is None


def test_retry_after_is_waited_for_by_the_retry_and_the_host() -> None:
    decision = decide_retry(STATUS, 503, {"retry-after": "7"}, 1, SETTINGS, jitter=1.0)
    assert decision.delay_s == 7.0 and decision.host_wait_s == 7.0


def test_retry_after_is_capped() -> None:
    decision = decide_retry(STATUS, 429, {"retry-after": "3600"}, 1, SETTINGS, jitter=1.0)
    assert decision.delay_s == 30.0 and decision.host_wait_s == 30.0


def test_the_host_waits_even_when_the_page_is_given_up() -> None:
    decision = decide_retry(STATUS, 429, {"retry-after": "5"}, 3, SETTINGS)
    assert decision.delay_s is None and decision.host_wait_s == 5.0


def test_retry_after_only_counts_on_429_and_503() -> None:
    decision = decide_retry(STATUS, 502, {"retry-after": "9"}, 1, SETTINGS, jitter=1.0)
    assert decision.delay_s == 0.5 and decision.host_wait_s is None


def test_backoff_is_capped_and_jittered() -> None:
    slow = dataclasses.replace(SETTINGS, retries=20, retry_backoff_s=100.0)
    assert decide_retry(TIMEOUT, None, {}, 2, slow).delay_s == 30.0
    low, high = JITTER
    delays = {decide_retry(TIMEOUT, None, {}, 1, SETTINGS).delay_s for _ in range(50)}
    assert all(d is not None and 0.5 * low <= d <= 0.5 * high for d in delays)
    assert len(delays) > 1  # drawn, not fixed: retries of many URLs do not arrive together
