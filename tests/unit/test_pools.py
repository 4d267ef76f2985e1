"""Connections shared by the download threads and kept alive per host, against real servers
on distinct loopback addresses (127.0.0.x are all this machine)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_in_process, write_list
from tests.servers import ok, serve


def test_threads_share_one_pool_per_host_and_keep_its_connections(tmp_path: Path) -> None:
    """Eight threads, three hosts, two requests in flight per host: each host sees at most its
    two connections for its 15 pages, whichever thread takes its next URL."""
    routes = {f"/p{n}": ok for n in range(15)}
    with contextlib.ExitStack() as stack:
        sites = [stack.enter_context(serve(routes, host=f"127.0.0.{n}")) for n in (1, 2, 3)]
        lines = [f"{site.origin}/p{n}" for n in range(15) for site in sites]
        run = run_in_process(
            [
                str(write_list(tmp_path / "urls.txt", lines)),
                *("--threads", "8", "--host-concurrency", "2", "--host-delay", "0"),
                "--no-obey-robots",
            ],
            tmp_path / "out",
        )
    assert run.code == 0
    assert len(run.records) == 45 and {r["outcome"] for r in run.records} == {"ok"}
    for site in sites:
        assert len(site.paths) == 15
        assert site.max_in_flight <= 2
        assert site.connections <= 2, site.connections  # was up to 8: one per thread


def test_a_host_name_is_looked_up_once_per_connection_not_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in resolver (no real name is ever looked up) answers for `pooled.test` and
    counts: five pages over one kept-alive connection make one lookup."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        assert host == "pooled.test", f"tried to resolve {host}"
        return real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    routes = {f"/p{n}": ok for n in range(5)}
    with serve(routes) as site:
        port = site.origin.rsplit(":", 1)[1]
        lines = [f"http://pooled.test:{port}/p{n}" for n in range(5)]
        run = run_in_process(
            [
                str(write_list(tmp_path / "urls.txt", lines)),
                *("--threads", "2", "--host-concurrency", "1", "--host-delay", "0"),
                *("--no-obey-robots", "--processes", "1"),
            ],
            tmp_path / "out",
        )
    assert run.code == 0 and {r["outcome"] for r in run.records} == {"ok"}
    assert site.connections == 1
    assert lookups == ["pooled.test"]
