"""HTTPS against real TLS servers on 127.0.0.1 with certificates made by trustme: verified by
default, a private CA through --ca-bundle, failures of kind `tls` in words and not retried,
--no-verify-tls with one warning, connections kept alive."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import Run, run_in_process, write_list
from tests.servers import ok, serve

ROUTES = {f"/p{n}": ok for n in range(6)}
QUICK = ["--retries", "2", "--retry-backoff", "0", "--host-delay", "0", "--no-obey-robots"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def context_for(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture
def bundle(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def scrape(tmp_path: Path, origin: str, *flags: str, pages: int = 1) -> Run:
    urls = write_list(tmp_path / "urls.txt", [f"{origin}/p{n}" for n in range(pages)])
    return run_in_process([str(urls), *QUICK, *flags], tmp_path / "out")


@pytest.fixture
def good_site(ca: trustme.CA) -> Iterator[str]:
    with serve(ROUTES, tls=context_for(ca.issue_cert("127.0.0.1"))) as site:
        yield site.origin


def test_a_private_ca_is_trusted_through_ca_bundle_and_connections_are_kept(
    ca: trustme.CA, bundle: Path, tmp_path: Path
) -> None:
    with serve(ROUTES, tls=context_for(ca.issue_cert("127.0.0.1"))) as site:
        run = scrape(
            tmp_path,
            site.origin,
            "--ca-bundle",
            str(bundle),
            "--threads",
            "4",
            "--host-concurrency",
            "1",
            pages=6,
        )
    assert run.code == 0, run.stderr
    assert [r["outcome"] for r in run.records] == ["ok"] * 6
    assert run.records[0]["title"] == "Fault server page"
    assert site.connections == 1  # one TLS handshake for six pages, across four threads


def test_an_unknown_ca_is_refused_by_default_as_tls_and_not_retried(
    good_site: str, tmp_path: Path
) -> None:
    run = scrape(tmp_path, good_site)
    (record,) = run.records
    assert record["error"] == {
        "kind": "tls",
        "message": "TLS certificate not accepted: unable to get local issuer certificate",
    }
    assert record["attempts"] == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda ca: ca.issue_cert("other.test", "*.example.org"),
            "TLS certificate not accepted: IP address mismatch: cert is for other.test, "
            "*.example.org (not 127.0.0.1)",
        ),
        (
            lambda ca: ca.issue_cert(
                "127.0.0.1",
                not_before=datetime.datetime(2020, 1, 1),
                not_after=datetime.datetime(2021, 1, 1),
            ),
            "TLS certificate not accepted: certificate has expired",
        ),
    ],
    ids=["hostname-mismatch", "expired"],
)
def test_bad_certificates_say_what_is_wrong(
    ca: trustme.CA, bundle: Path, tmp_path: Path, make: object, message: str
) -> None:
    with serve(ROUTES, tls=context_for(make(ca))) as site:  # type: ignore[operator]
        run = scrape(tmp_path, site.origin, "--ca-bundle", str(bundle))
    (record,) = run.records
    assert record["error"] == {"kind": "tls", "message": message}
    assert f"tls: {message}" in run.stderr


def test_a_self_signed_certificate_is_named_so(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # the CA's own certificate, self-signed, served as the site's
    ca.cert_pem.write_to_path(str(tmp_path / "self.pem"))
    ca.private_key_pem.write_to_path(str(tmp_path / "self.key"))
    context.load_cert_chain(tmp_path / "self.pem", tmp_path / "self.key")
    with serve(ROUTES, tls=context) as site:
        run = scrape(tmp_path, site.origin)
    (record,) = run.records
    assert record["error"]["kind"] == "tls"
    assert "self-signed certificate" in record["error"]["message"]


def test_no_verify_tls_accepts_any_certificate_with_one_warning(
    good_site: str, tmp_path: Path
) -> None:
    run = scrape(tmp_path, good_site, "--no-verify-tls", pages=3)
    assert run.code == 0 and [r["outcome"] for r in run.records] == ["ok"] * 3
    assert run.stderr.count("TLS certificates are not verified") == 1


def test_a_ca_bundle_that_is_not_one_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "not.pem").write_text("hello")
    run = run_in_process(
        [
            str(write_list(tmp_path / "u.txt", ["https://127.0.0.1:9/"])),
            "--ca-bundle",
            str(tmp_path / "not.pem"),
        ],
        tmp_path / "out",
    )
    assert run.code == 2
    assert run.stderr.strip() == (
        f"scrape: command line: --ca-bundle: {tmp_path / 'not.pem'}: no PEM certificate in it"
    )


def test_a_hostname_mismatch_names_what_the_certificate_is_for(
    ca: trustme.CA, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name, resolved by a stand-in (no real name is looked up): the message lists the
    certificate's names, as curl's "subjectAltName does not match" does not."""
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        assert host == "shop.test", f"tried to resolve {host}"
        return real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    names = ["*.example.org", "example.org", "a.example.net", "b.example.net"]
    with serve(ROUTES, tls=context_for(ca.issue_cert(*names))) as site:
        origin = site.origin.replace("127.0.0.1", "shop.test")
        run = scrape(tmp_path, origin, "--ca-bundle", str(bundle), "--threads", "1", pages=2)
    assert [r["error"] for r in run.records] == [
        {
            "kind": "tls",
            "message": "TLS certificate not accepted: hostname mismatch: cert is for "
            "*.example.org, example.org, a.example.net and 1 more (not shop.test)",
        }
    ] * 2
    assert site.connections == 3  # two refused handshakes and the one that read the names


def test_the_system_ca_store_is_used_when_asked(
    ca: trustme.CA, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSL's default paths honour SSL_CERT_FILE: the private CA stands for the system's
    store. requests' bundle (the default) does not know it; --system-ca trusts it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with serve(ROUTES, tls=context_for(ca.issue_cert("127.0.0.1"))) as site:
        (tmp_path / "bundled").mkdir()
        (tmp_path / "system").mkdir()
        bundled = scrape(tmp_path / "bundled", site.origin)
        system = scrape(tmp_path / "system", site.origin, "--system-ca")
    assert bundled.records[0]["error"]["kind"] == "tls"
    assert system.code == 0 and system.records[0]["outcome"] == "ok"
