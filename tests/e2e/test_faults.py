"""Every fault the loopback server can serve, in one run through the CLI: each URL gets the
right outcome and error kind, the others are still processed, and the run ends in bounded time."""

import re
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, Run, run_in_process, write_list

EXPECTED = {  # path: (outcome, error kind or None)
    "/ok": ("ok", None),
    "/slow-first-byte": ("failed", "timeout"),
    "/trickle": ("failed", "timeout"),
    "/reset-mid-body": ("failed", "connection"),
    "/close-before-headers": ("failed", "connection"),
    "/trickle-headers": ("failed", "timeout"),
    "/conflicting-length": ("failed", "protocol"),
    "/bad-location": ("failed", "http_status"),  # followed, percent-encoded: a 404 here
    "/two-content-types": ("ok", None),
    "/short-body": ("failed", "connection"),
    "/long-body": ("ok", None),
    "/loop-a": ("failed", "redirects"),
    "/chain/30": ("failed", "redirects"),
    "/chain/5": ("ok", None),
    "/to-file": ("failed", "bad_scheme"),
    "/to-ftp": ("failed", "bad_scheme"),
    "/to-javascript": ("failed", "bad_scheme"),
    "/gzip-bomb": ("failed", "too_large"),
    "/deflate-bomb": ("failed", "too_large"),
    "/brotli": ("ok", None),
    "/zstd": ("ok", None),
    "/brotli-bomb": ("failed", "too_large"),
    "/zstd-bomb": ("failed", "too_large"),
    "/huge": ("failed", "too_large"),
    "/pdf": ("ok", None),
    "/image": ("ok", None),
    "/bad-charset": ("ok", None),
    "/nul": ("ok", None),
    "/deep": ("ok", None),
    "/long-attr": ("ok", None),
    "/malformed": ("ok", None),
    "/cp1252-undeclared": ("ok", None),
    "/empty": ("ok", None),
    "/status/500": ("failed", "http_status"),
    "/status/502": ("failed", "http_status"),
    "/status/503": ("failed", "http_status"),
    "/status/429": ("failed", "http_status"),
    "/status/404": ("failed", "http_status"),
}
# These servers cut connections mid-read on purpose; a socket urllib3 then drops is closed
# by the garbage collector, whose ResourceWarning can land in any test of this module. What
# these tests check is each page's outcome, not urllib3's bookkeeping.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
BAD_LINES = ["ftp://example.com/x", "not a url", "http://127.0.0.1:70000/", "javascript:x()"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def fault_run(faults, tmp_path_factory) -> tuple[Run, str, float]:
    origin, _ = faults
    tmp = tmp_path_factory.mktemp("faults")
    lines = ["# every fault", ""] + [origin + path for path in EXPECTED] + BAD_LINES
    lines.append(origin + "/ok#again")  # a duplicate of /ok after normalisation
    lines.append(f"http://127.0.0.1:{closed_port()}/refused")
    urls = write_list(tmp / "urls.txt", lines)
    started = time.monotonic()
    # --max-retry-wait 0: the 429's and 503's Retry-After (1 s) would hold the whole host,
    # and a 30-hop chain that meets it runs out of its 2 s deadline instead of its hops.
    flags = [*FAST, "--max-body-bytes", "2000000", "--max-retry-wait", "0"]
    run = run_in_process([str(urls), *flags], tmp / "out")
    return run, origin, time.monotonic() - started


def test_every_fault_gets_its_outcome_and_kind(fault_run) -> None:
    run, origin, _ = fault_run
    by_url = {r["url"]: r for r in run.records}
    for path, (outcome, kind) in EXPECTED.items():
        record = by_url[origin + path]
        got_kind = record["error"]["kind"] if "error" in record else None
        assert (record["outcome"], got_kind) == (outcome, kind), (path, record.get("error"))


def test_records_add_up_to_the_url_lines_and_name_their_line(fault_run) -> None:
    run, origin, _ = fault_run
    records = run.records
    url_lines = len(EXPECTED) + len(BAD_LINES) + 2
    assert len(records) == url_lines
    assert sorted(r["line"] for r in records) == list(range(3, 3 + url_lines))
    counts = run.summary["counts"]
    assert sum(counts.values()) == url_lines == run.summary["records"]
    assert counts["invalid"] == len(BAD_LINES) and counts["duplicate"] == 1
    duplicate = next(r for r in records if r["outcome"] == "duplicate")
    assert duplicate["duplicate_of"] == 3
    assert run.code == 1


def test_each_failure_is_one_stderr_line_naming_line_and_url(fault_run) -> None:
    run, origin, _ = fault_run
    for record in run.records:
        if record["outcome"] in ("failed", "invalid"):
            matching = [
                ln
                for ln in run.stderr.splitlines()
                if ln.startswith(f"WARNING: line {record['line']}:")
            ]
            assert len(matching) == 1, record
            if record["outcome"] == "failed":
                assert record["url"] in matching[0]


def test_the_run_finishes_in_bounded_time(fault_run) -> None:
    _, _, elapsed = fault_run
    assert elapsed < 20  # deadline 2 s per page, 8 threads: far below one page at a time


def test_hostile_pages_still_give_fields(fault_run) -> None:
    run, origin, _ = fault_run
    by_url = {r["url"]: r for r in run.records}
    assert by_url[origin + "/pdf"]["content_type"] == "application/pdf"
    assert by_url[origin + "/pdf"]["title"] is None
    assert by_url[origin + "/long-body"]["title"] == "Short"
    assert by_url[origin + "/chain/5"]["final_url"] == origin + "/chain/0"
    assert by_url[origin + "/cp1252-undeclared"]["title"] == "Café crème brûlée"
    assert by_url[origin + "/malformed"]["links"] == [origin + "/ok"]
    assert by_url[origin + "/long-attr"]["title"] == "Long"
    assert by_url[origin + "/status/503"]["status"] == 503
    assert by_url[origin + "/trickle"]["error"]["message"] == (
        "timed out after 2 s reading the body (page deadline)"
    )
    assert by_url[origin + "/trickle-headers"]["error"]["message"] == (
        "timed out after 2 s waiting for the response headers (page deadline)"
    )
    two = by_url[origin + "/two-content-types"]
    assert two["content_type"] == "text/html" and two["title"] == "Fault server page"
    assert by_url[origin + "/deep"]["word_count"] == 1  # the text 100,000 levels down
    for encoded in ("/brotli", "/zstd"):  # asked for (Accept-Encoding) and decoded
        assert by_url[origin + encoded]["title"] == "Fault server page"


MESSAGES = {
    "/close-before-headers": "server closed the connection before answering",
    "/reset-mid-body": "connection reset by peer",
    "/short-body": "server closed the connection after 1000 of 5000 body bytes",
    "/slow-first-byte": "timed out after 1 s waiting for the response headers",
    "/status/404": "404 Not Found",
}


def test_failures_say_what_happened_in_words(fault_run) -> None:
    run, origin, _ = fault_run
    by_url = {r["url"]: r for r in run.records}
    for path, message in MESSAGES.items():
        assert by_url[origin + path]["error"]["message"] == message
    refused = next(r for r in run.records if r["url"].endswith("/refused"))
    assert refused["error"] == {
        "kind": "connection",
        "message": "connection refused (fetching robots.txt)",  # met first, named as it is
    }
    assert by_url[origin + "/conflicting-length"]["error"]["message"].startswith(
        "malformed response: "
    )
    for record in run.records:
        if record["outcome"] == "failed":
            message = record["error"]["message"]
            assert "\n" not in message and len(message) < 200, message
            assert not re.search(r"[A-Z]\w+(Error|Exception)\b|\('|Max retries", message), message


def test_no_fault_of_the_catalogue_is_an_internal_error(fault_run) -> None:
    run, _, _ = fault_run
    assert not [r for r in run.records if r.get("error", {}).get("kind") == "internal"]


def test_output_has_only_finished_files(fault_run) -> None:
    run, _, _ = fault_run
    names = sorted(p.name for p in Path(run.out_dir).iterdir())
    assert not [n for n in names if n.endswith(".part")]
    assert "latest.jsonl" in names and ".scraper-output" in names


def test_debug_shows_the_detail_behind_the_words(faults, tmp_path) -> None:
    origin, _ = faults
    urls = write_list(tmp_path / "urls.txt", [origin + "/close-before-headers"])
    run = run_in_process([str(urls), *FAST, "--debug"], tmp_path / "out")
    (record,) = run.records
    assert record["error"]["message"] == "server closed the connection before answering"
    assert "RemoteDisconnected" in run.stderr  # the exception chain, for a developer
