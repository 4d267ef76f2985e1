"""The download layer's decisions, with `responses` standing in for the network.
Timeouts, resets, decompression and streaming are tested against the real server in
test_faults.py."""

import pytest
import requests
import responses

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.http import FetchLimits, fetch_page, new_session, page_error_from
from scraper.records import ErrorKind, UrlTask

LIMITS = FetchLimits(
    connect_timeout_s=1, read_timeout_s=1, deadline_s=5, max_body_bytes=10_000, max_redirects=3
)
URL = "http://site.test/start"


def fetch(url: str = URL, limits: FetchLimits = LIMITS):
    with new_session(Settings(user_agent="tester/1", headers={"X-Extra": "1"})) as session:
        return fetch_page(session, UrlTask(1, url, url), limits)


def kind_of(url: str = URL, limits: FetchLimits = LIMITS) -> ErrorKind:
    with pytest.raises(PageError) as caught:
        fetch(url, limits)
    return caught.value.kind


@responses.activate
def test_page_with_lowercased_headers_and_configured_request_headers() -> None:
    responses.get(
        URL, body=b"<title>x</title>", content_type="text/html", headers={"ETag": '"abc"'}
    )
    page = fetch()
    assert (page.status, page.final_url, page.body) == (200, URL, b"<title>x</title>")
    assert page.headers["etag"] == '"abc"' and page.attempts == 1
    sent = responses.calls[0].request.headers
    assert sent["User-Agent"] == "tester/1" and sent["X-Extra"] == "1"


@responses.activate
@pytest.mark.parametrize("status", [404, 410, 500, 503, 429])
def test_error_status_is_returned_without_its_body(status: int) -> None:
    responses.get(URL, status=status, body=b"error page")
    page = fetch()
    assert (page.status, page.body) == (status, b"")


@responses.activate
def test_redirects_are_followed_by_hand_to_the_final_url() -> None:
    responses.get(URL, status=301, headers={"Location": "/next"})
    responses.get("http://site.test/next", status=307, headers={"Location": "https://b.test/end"})
    responses.get("https://b.test/end", body=b"done")
    page = fetch()
    assert (page.final_url, page.body) == ("https://b.test/end", b"done")
    assert [c.request.url for c in responses.calls] == [
        URL,
        "http://site.test/next",
        "https://b.test/end",
    ]


@responses.activate
@pytest.mark.parametrize(
    "target", ["ftp://site.test/f", "file:///etc/passwd", "javascript:alert(1)", "data:text/html,x"]
)
def test_redirect_to_another_scheme_is_refused(target: str) -> None:
    responses.get(URL, status=302, headers={"Location": target})
    assert kind_of() is ErrorKind.BAD_SCHEME
    assert len(responses.calls) == 1


@responses.activate
def test_redirect_loop_is_caught() -> None:
    responses.get(URL, status=302, headers={"Location": "/b"})
    responses.get("http://site.test/b", status=302, headers={"Location": "/start"})
    assert kind_of() is ErrorKind.REDIRECTS


@responses.activate
def test_too_many_redirects() -> None:
    for n in range(6):
        responses.get(f"http://site.test/{n}", status=302, headers={"Location": f"/{n + 1}"})
    assert kind_of("http://site.test/0") is ErrorKind.REDIRECTS
    assert len(responses.calls) == LIMITS.max_redirects + 1


@responses.activate
def test_body_over_the_cap_is_too_large() -> None:
    responses.get(URL, body=b"x" * 20_000)
    assert kind_of() is ErrorKind.TOO_LARGE


@responses.activate
@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ConnectTimeout("slow connect"), ErrorKind.TIMEOUT),
        (requests.ReadTimeout("slow read"), ErrorKind.TIMEOUT),
        (requests.ConnectionError("reset"), ErrorKind.CONNECTION),
        (requests.exceptions.ChunkedEncodingError("bad chunk"), ErrorKind.CONNECTION),
        (requests.exceptions.ContentDecodingError("bad gzip"), ErrorKind.DECODE),
    ],
)
def test_transport_errors_become_page_errors_of_the_right_kind(
    exc: Exception, kind: ErrorKind
) -> None:
    responses.get(URL, body=exc)
    assert kind_of() is kind


def test_unknown_exceptions_are_internal() -> None:
    assert page_error_from(ValueError("boom")).kind is ErrorKind.INTERNAL


def test_the_session_keeps_cookies_and_sends_credentials_from_the_url() -> None:
    """The fast request path must send what requests' own preparation would."""
    from http.server import BaseHTTPRequestHandler

    from tests.servers import send, serve

    seen: list[tuple[str, str]] = []

    def set_cookie(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, b"<p>set</p>", headers={"Set-Cookie": "session=abc; Path=/"})

    def check(handler: BaseHTTPRequestHandler) -> None:
        cookie, auth = handler.headers.get("Cookie"), handler.headers.get("Authorization")
        seen.append((handler.path, f"{cookie}|{auth}"))
        send(handler, 200, b"<p>ok</p>")

    with serve({"/set": set_cookie, "/check": check, "/caf%C3%A9": check}) as served:
        session = new_session(Settings())
        for n, path in enumerate(("/set", "/check", "/café")):
            url = served.origin + path
            fetch_page(session, UrlTask(n, url, url), LIMITS)
        host = served.origin.removeprefix("http://")
        url = f"http://user:pw@{host}/check"
        fetch_page(session, UrlTask(9, url, url), LIMITS, conditional={"If-None-Match": '"x"'})
    assert seen[0] == ("/check", "session=abc|None")
    assert seen[1] == ("/caf%C3%A9", "session=abc|None")  # the non-ASCII path requoted
    assert seen[2][1].endswith("|Basic dXNlcjpwdw==")  # credentials from the URL


def test_one_session_over_more_origins_than_urllib3_keeps_pools_for() -> None:
    """The adapter remembers each origin's pool key, not its pool: urllib3 keeps 10 pools a
    session and closes the least recently used, so going round 12 servers twice must reach
    the right server every time, on a live pool."""
    from contextlib import ExitStack
    from http.server import BaseHTTPRequestHandler

    from tests.servers import send, serve

    def who(n: int):  # noqa: ANN202
        def route(handler: BaseHTTPRequestHandler) -> None:
            send(handler, 200, f"server {n}".encode())

        return route

    with ExitStack() as stack:
        servers = [stack.enter_context(serve({"/who": who(n)})) for n in range(12)]
        session = new_session(Settings())
        for _round in range(2):
            for n, served in enumerate(servers):
                url = served.origin + "/who"
                assert fetch_page(session, UrlTask(n, url, url), LIMITS).body == (
                    f"server {n}".encode()
                )
        assert [len(s.paths) for s in servers] == [2] * 12


def test_a_configured_proxy_gets_the_absolute_url() -> None:
    """With proxies the adapter takes requests' own way (proxy choice and the full URL)."""
    from tests.servers import ok, serve

    target = "http://proxied.test/page?q=1"
    with serve({"http://proxied.test/page": ok}) as proxy:
        session = new_session(Settings())
        session.proxies = {"http": proxy.origin}
        page = fetch_page(session, UrlTask(1, target, target), LIMITS)
        assert page.status == 200
        assert proxy.paths == [target]


def test_a_name_that_does_not_resolve_is_kind_dns_at_once_and_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resolver is stood in for (tests resolve no real names): it says the name is not
    known, as getaddrinfo does."""
    import socket

    from scraper.config.settings import Settings as _Settings
    from scraper.fetch.retry import decide_retry

    def unknown(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(PageError) as caught:
        fetch("http://no-such-host.test/")
    assert (caught.value.kind, str(caught.value)) == (ErrorKind.DNS, "name not resolved")
    assert decide_retry(caught.value.info(), None, {}, 1, _Settings()).delay_s is None


@responses.activate
def test_the_encodings_the_web_uses_are_asked_for() -> None:
    responses.get(URL, body=b"<title>x</title>", content_type="text/html")
    fetch()
    sent = responses.calls[0].request.headers
    assert sent["Accept-Encoding"] == "gzip, deflate, br, zstd"
