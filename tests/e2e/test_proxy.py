"""Proxies through a real proxy on 127.0.0.1: --proxy for https (CONNECT, the certificate still
verified) and http, the environment's HTTP(S)_PROXY and NO_PROXY as curl reads them, and a
proxy's password never printed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.conftest import run_in_process, write_list
from tests.servers import ok, proxy, serve

ROUTES = {f"/p{n}": ok for n in range(3)}
QUICK = ["--retries", "0", "--host-delay", "0", "--no-obey-robots"]


def test_https_through_connect_with_the_certificate_verified(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with serve(ROUTES, tls=context) as site, proxy() as seen:
        authed = seen.url.replace("http://", "http://scraper:s3cret@")
        urls = write_list(tmp_path / "urls.txt", [f"{site.origin}/p{n}" for n in range(3)])
        run = run_in_process(
            [str(urls), *QUICK, "--proxy", authed, "--ca-bundle", str(tmp_path / "ca.pem")],
            tmp_path / "out",
        )
    assert run.code == 0, run.stderr
    assert [r["outcome"] for r in run.records] == ["ok"] * 3
    target = site.origin.removeprefix("https://")
    assert {(method, where) for method, where, _ in seen.requests} == {("CONNECT", target)}
    assert all(auth and auth.startswith("Basic ") for _, _, auth in seen.requests)
    assert sorted(site.paths) == ["/p0", "/p1", "/p2"]  # in any order: two threads


def test_http_through_the_environments_proxy_and_no_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(ROUTES) as proxied, serve(ROUTES, host="127.0.0.2") as direct, proxy() as seen:
        monkeypatch.setenv("HTTP_PROXY", seen.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.2")
        lines = [f"{proxied.origin}/p0", f"{proxied.origin}/p1", f"{direct.origin}/p2"]
        run = run_in_process([str(write_list(tmp_path / "u.txt", lines)), *QUICK], tmp_path / "out")
    assert run.code == 0, run.stderr
    assert [method for method, _, _ in seen.requests] == ["GET", "GET"]
    assert {where for _, where, _ in seen.requests} == {
        f"{proxied.origin}/p0",
        f"{proxied.origin}/p1",
    }
    assert direct.paths == ["/p2"]  # NO_PROXY: straight to the host


def test_an_unreachable_proxy_is_said_and_its_password_is_not(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with serve(ROUTES) as site:
        urls = write_list(tmp_path / "urls.txt", [f"{site.origin}/p0"])
        run = run_in_process(
            [str(urls), *QUICK, "--proxy", f"http://scraper:s3cret@127.0.0.1:{port}"],
            tmp_path / "out",
        )
    (record,) = run.records
    assert record["error"] == {"kind": "connection", "message": "proxy: connection refused"}
    assert "s3cret" not in run.stderr
    assert site.paths == []


def test_a_proxy_that_is_not_http_is_a_config_error(tmp_path: Path) -> None:
    run = run_in_process(
        [str(write_list(tmp_path / "u.txt", ["http://127.0.0.1:9/"])), "--proxy", "socks5://x:1"],
        tmp_path / "out",
    )
    assert run.code == 2
    assert (
        run.stderr.strip()
        == "scrape: command line: --proxy: expected an http:// or https:// proxy URL"
    )
