"""Many HTTPS hosts, as a real list spans: the demo server plays each host on a loopback address
of its own (127.0.0.2, 127.0.0.3, ...), with a trustme certificate for all of them, and counts
requests and connections per host. The `scrape` console script runs as a user runs it."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from scraper.bench.web import WebHost, host_bound_s
from scraper.demo.server import DemoServer, Listener
from tests.conftest import run_script

HOSTS = 80  # more hosts than the 64 pools two threads used to keep (4 per thread, 64 at least)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, tuple[str, str]]]:
    folder = tmp_path_factory.mktemp("many-hosts-ca")
    ca = trustme.CA()
    cert = ca.issue_cert(*(f"127.0.0.{n}" for n in range(2, 2 + HOSTS)))
    ca_file, chain, key = folder / "ca.pem", folder / "chain.pem", folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    yield ca_file, (str(chain), str(key))


def records_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "latest.jsonl").read_text().splitlines()]


def test_each_host_keeps_one_connection_for_all_its_requests_across_many_hosts(
    tmp_path: Path, tls_files: tuple[Path, tuple[str, str]]
) -> None:
    ca_file, chain = tls_files
    listeners = [Listener(f"127.0.0.{n}") for n in range(2, 2 + HOSTS)]
    with DemoServer(50, listeners=listeners, tls=chain) as server:
        lines = [f"{origin}/page/{n}\n" for origin in server.urls for n in range(3)]
        random.Random(3).shuffle(lines)  # hosts interleaved, as in a real list
        (tmp_path / "urls.txt").write_text("".join(lines))
        done = run_script(
            ["urls.txt", "-o", "out", "--threads", "2", "--processes", "1"]
            + ["--host-concurrency", "1", "--host-delay", "0", "--ca-bundle", str(ca_file)],
            tmp_path,
            polite=True,
        )
        stats = server.stats()
    assert done.returncode == 0, done.stderr
    records = records_of(tmp_path / "out")
    assert len(records) == 3 * HOSTS and {r["outcome"] for r in records} == {"ok"}
    # robots.txt and three pages per host, all over one TLS connection per host.
    assert [h["requests"] for h in stats["hosts"]] == [4] * HOSTS
    assert [h["connections"] for h in stats["hosts"]] == [1] * HOSTS


def test_a_refusing_hosts_pages_fail_at_once_without_using_its_turns(
    tmp_path: Path, tls_files: tuple[Path, tuple[str, str]]
) -> None:
    ca_file, chain = tls_files
    listeners = [Listener("127.0.0.2", refuse=True), Listener("127.0.0.3")]
    with DemoServer(50, listeners=listeners, tls=chain) as server:
        refusing, served = server.urls
        lines = [f"{refusing}/page/{n}\n" for n in range(12)] + [f"{served}/page/1\n"]
        (tmp_path / "urls.txt").write_text("".join(lines))
        started = time.monotonic()
        # The default politeness: 0.5 s between a host's requests, robots.txt obeyed, and
        # two retries for a refused connection.
        done = run_script(
            ["urls.txt", "-o", "out", "--ca-bundle", str(ca_file)], tmp_path, polite=True
        )
        elapsed = time.monotonic() - started
    records = records_of(tmp_path / "out")
    failed = [r for r in records if r["url"].startswith(refusing)]
    assert len(failed) == 12 and done.returncode == 1
    for record in failed:
        assert record["outcome"] == "failed" and record["attempts"] == 1
        assert record["error"]["kind"] == "connection"
        assert record["error"]["message"] == "connection refused (fetching robots.txt)"
    assert [r["outcome"] for r in records if r["url"].startswith(served)] == ["ok"]
    # 12 pages x 0.5 s x 3 attempts was the old cost; now nothing waits for the host's turn.
    assert elapsed < 12 * 0.5, f"took {elapsed:.1f}s"


def test_a_thread_does_not_sleep_out_a_host_delay_after_fetching_its_robots_txt(
    tmp_path: Path, tls_files: tuple[Path, tuple[str, str]]
) -> None:
    """One thread, two hosts, 1 s between a host's requests: the thread asks host B for its
    robots.txt while host A's first page waits for A's turn (it used to sleep it out)."""
    ca_file, chain = tls_files
    listeners = [Listener("127.0.0.2"), Listener("127.0.0.3")]
    with DemoServer(50, listeners=listeners, tls=chain) as server:
        first, second = server.urls
        (tmp_path / "urls.txt").write_text(f"{first}/page/1\n{second}/page/2\n")
        done = run_script(
            ["urls.txt", "-o", "out", "--threads", "1", "--host-delay", "1"]
            + ["--ca-bundle", str(ca_file)],
            tmp_path,
            polite=True,
        )
        a, b = server.stats()["hosts"]
    assert done.returncode == 0, done.stderr
    assert a["requests"] == b["requests"] == 2  # robots.txt and the page
    assert b["first_request_at"] < a["last_response_at"]


def test_the_politeness_bound_plays_robots_txt_delay_and_slots() -> None:
    fast = WebHost(Listener("127.0.0.2", 0.1), ("/page/1", "/page/2", "/page/3"))
    # robots.txt at 0, then starts 0.5 s apart: 0.5, 1.0, 1.5; the last answered at 1.6.
    assert host_bound_s(fast, 0.5, 2) == pytest.approx(1.6)
    slow = WebHost(Listener("127.0.0.3", 1.5), tuple(f"/page/{n}" for n in range(4)))
    # robots.txt until 1.5; two slots: 1.5 and 2.0, then 3.0 and 3.5, the last done at 5.0.
    assert host_bound_s(slow, 0.5, 2) == pytest.approx(5.0)
    moved = WebHost(Listener("127.0.0.4", 0.1), ("/moved/7",))
    # a redirect is two requests in one slot: 0.5 and 1.0, done at 1.1.
    assert host_bound_s(moved, 0.5, 2) == pytest.approx(1.1)
    assert host_bound_s(WebHost(Listener(refuse=True), ("/page/1",)), 0.5, 2) == 0
