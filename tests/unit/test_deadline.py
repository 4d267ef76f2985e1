"""The page deadline over the whole exchange, and kept-alive connections, against a real
server on 127.0.0.1: what socket timeouts alone cannot bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.http import FetchLimits, fetch_page, fetch_robots, new_session
from scraper.records import ErrorKind, UrlTask
from tests.conftest import run_in_process, write_list
from tests.servers import ok, one_per_connection, serve, trickle, trickle_headers

DEADLINE = FetchLimits(
    connect_timeout_s=1, read_timeout_s=1, deadline_s=1.5, max_body_bytes=100_000, max_redirects=3
)
ROUTES = {
    "/ok": ok,
    "/trickle-headers": trickle_headers,
    "/trickle": trickle,
    "/once": one_per_connection,
}


def session() -> object:
    return new_session(Settings(block_private_addresses=False))


def fetch(session: object, url: str, limits: FetchLimits = DEADLINE) -> object:
    return fetch_page(session, UrlTask(1, url, url), limits)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "phase"),
    [("/trickle-headers", "waiting for the response headers"), ("/trickle", "reading the body")],
)
def test_a_trickling_server_is_cut_at_the_page_deadline(path: str, phase: str) -> None:
    """Each byte comes long before the read timeout; only the deadline can end the page."""
    with serve(ROUTES) as site, session() as http:  # type: ignore[attr-defined]
        started = time.monotonic()
        with pytest.raises(PageError) as caught:
            fetch(http, site.origin + path)
        took = time.monotonic() - started
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert str(caught.value) == f"timed out after 1.5 s {phase} (page deadline)"
    assert 1.4 < took < 2.5


def test_robots_txt_is_under_the_deadline_too() -> None:
    with serve({"/robots.txt": trickle_headers}) as site, session() as http:  # type: ignore[attr-defined]
        started = time.monotonic()
        with pytest.raises(PageError) as caught:
            fetch_robots(http, site.origin + "/robots.txt", DEADLINE)  # type: ignore[arg-type]
        assert time.monotonic() - started < 2.5
    assert caught.value.kind is ErrorKind.TIMEOUT


def test_a_finished_page_leaves_its_connection_alone() -> None:
    """The deadline of a page that ended in time never touches its connection later, when
    the connection is back in the pool (or another page's)."""
    with serve(ROUTES) as site, session() as http:  # type: ignore[attr-defined]
        for _ in range(3):
            fetch(http, site.origin + "/ok", DEADLINE)
            time.sleep(0.3)
        short = FetchLimits(1, 1, 0.2, 100_000, 3)
        fetch(http, site.origin + "/ok", short)
        time.sleep(0.4)  # past that page's deadline
        page = fetch(http, site.origin + "/ok", DEADLINE)
    assert page.status == 200  # type: ignore[attr-defined]
    assert site.connections == 1  # kept alive throughout: nothing was shut down


def test_a_connection_closed_while_idle_is_sent_again_without_an_attempt() -> None:
    with serve(ROUTES) as site, session() as http:  # type: ignore[attr-defined]
        first = fetch(http, site.origin + "/once")
        second = fetch(http, site.origin + "/once")  # on the kept-alive connection: closed
    assert (first.status, second.status) == (200, 200)  # type: ignore[attr-defined]
    assert second.attempts == 1  # type: ignore[attr-defined]
    assert site.paths == ["/once"] * 3 and site.connections == 2


def test_a_run_with_trickling_pages_and_robots_ends_in_bounded_time(tmp_path: Path) -> None:
    """The whole run, robots.txt first: every page ends within its deadline."""
    with serve({"/robots.txt": trickle_headers, **ROUTES}) as slow_robots, serve(ROUTES) as site:
        lines = [
            slow_robots.origin + "/ok",
            site.origin + "/trickle-headers",
            site.origin + "/trickle",
            site.origin + "/ok",
        ]
        started = time.monotonic()
        run = run_in_process(
            [
                str(write_list(tmp_path / "urls.txt", lines)),
                *("--page-deadline", "2", "--read-timeout", "5", "--retries", "0"),
                *("--host-delay", "0", "--host-concurrency", "4"),
            ],
            tmp_path / "out",
        )
        took = time.monotonic() - started
    assert took < 2 + 2 + 3  # one deadline, robots.txt and the pages in parallel, start-up
    by_line = run.by_line()
    assert by_line[1]["error"] == {
        "kind": "timeout",
        "message": "timed out after 2 s waiting for the response headers (page deadline) "
        "(fetching robots.txt)",
    }
    assert [by_line[n]["error"]["kind"] for n in (2, 3)] == ["timeout", "timeout"]
    assert by_line[4]["outcome"] == "ok"


def test_finished_requests_leave_the_watchdog_heap_at_once() -> None:
    """A page done in time must not keep its entry (and its connection) until its deadline:
    at 300 pages/s and a 30 s deadline that was 9,000 entries alive in a long run."""
    import time

    from scraper.fetch import deadline

    class Connection:
        sock = None

    for _ in range(2000):
        scope = deadline.watch(time.monotonic() + 30)
        scope.guard(Connection())
        scope.close()
    assert len(deadline._WATCHDOG._heap) <= deadline.COMPACT_AT + 1
