"""Download stage: one page per call, every byte under the size cap and the page deadline.

Owns the HTTP stack: the fetch package is the only one that imports requests/urllib3, and
this module the only place their exceptions are translated into `PageError`.
Knows nothing of parsing, queues or output. Each download thread owns one `requests.Session`
(connection reuse; sessions are not thread-safe to share).
"""

from __future__ import annotations

import hashlib
import http
import os
import time
import warnings
from dataclasses import dataclass
from typing import Protocol

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util import make_headers

from scraper.config.settings import Settings
from scraper.errors import PageError
from scraper.fetch.deadline import current_phase, on_reused_connection, watch
from scraper.fetch.failures import TRANSPORT_ERRORS, describe, page_error_from, verify_error
from scraper.fetch.peer_cert import MISMATCH_CODES, mismatch_message
from scraper.fetch.transport import Adapter, GuardedAdapter
from scraper.records import (
    ErrorKind,
    FetchedPage,
    UrlTask,
    Validators,
)
from scraper.urls import InvalidUrl, normalize_url, redact_url, web_url

CHUNK_BYTES = 64 * 1024
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 §2.5: parse at least 500 KiB
ROBOTS_MAX_REDIRECTS = 5
DRAIN_BYTES = 64 * 1024  # read at most this much of a redirect or error body to keep the socket
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Sends again of one request that met kept-alive connections the server closed while idle.
STALE_RETRIES = 3
ACCEPT_ENCODING = ", ".join(make_headers(accept_encoding=True)["accept-encoding"].split(","))
# Hosts whose connections are kept alive. A host's pool must outlive the wait for its next
# turn: in one host delay (0.5 s) 32 threads at 60 ms make ~270 requests, each maybe to
# another host, so pools are kept for 32 hosts per thread (enough down to 15 ms round trips);
# with 4 per thread, 250 hosts measured 1.3 requests per connection, with 32: 13.5. Few
# threads can still cycle through many hosts (no delay, a shuffled list): 512 at least.
MIN_POOLS = 512
POOLS_PER_THREAD = 32
FDS_KEPT_FREE = 256  # file descriptors left for the state, output, workers and new sockets


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """What bounds one page's download; built once from Settings."""

    connect_timeout_s: float
    read_timeout_s: float
    deadline_s: float
    max_body_bytes: int
    max_redirects: int
    truncate_body: bool = False  # keep the first max_body_bytes instead of failing (robots.txt)

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchLimits:
        return cls(
            settings.connect_timeout_s,
            settings.read_timeout_s,
            settings.page_deadline_s,
            settings.max_body_bytes,
            settings.max_redirects,
        )


class _Session(requests.Session):
    """A Session that leaves redirects to fetch_page.

    Even with allow_redirects=False, Session.send works out where a redirect would go, and
    decodes the Location header as UTF-8 to do so: a Location with a raw 0xFF byte then
    raised UnicodeDecodeError past every transport handler. fetch_page follows redirects by
    hand, so there is nothing for requests to work out."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def new_session(settings: Settings, adapter: Adapter | None = None) -> requests.Session:
    """A session for one download thread, with the configured User-Agent and headers, on
    `adapter` (the run's shared pools) or one of its own."""
    session = _Session()
    session.headers["User-Agent"] = settings.user_agent
    # What this install decodes: gzip, deflate, br, zstd (the decoded-size cap holds for each).
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    session.headers.update(settings.headers)
    if settings.proxy:  # the setting wins over the environment, as curl's -x does
        session.trust_env = False
        session.proxies = {"http": settings.proxy, "https": settings.proxy}
    else:
        _apply_environment(session)
    if settings.ca_bundle:
        session.verify = settings.ca_bundle
    if not settings.verify_tls:
        session.verify = False
        # The run says it once (pipeline/engine.py); urllib3 would warn on every request.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    adapter = adapter or shared_adapter(settings)
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return session


def shared_adapter(settings: Settings) -> Adapter:
    """The connection pools of a run, shared by all its download threads: one pool per host
    (scheme, host, port: the scheduler's host key), at most `host_concurrency` connections kept
    alive in each, and pools for POOLS_PER_THREAD hosts per thread, the least recently used
    closed first. Per-thread pools made a connection almost never serve a host twice: any
    free thread takes a host's next URL (1.1 requests per connection on many hosts)."""
    kind = GuardedAdapter if settings.block_private_addresses else Adapter
    pools = max(MIN_POOLS, POOLS_PER_THREAD * settings.threads)
    idle_budget = (_open_files_limit() - FDS_KEPT_FREE) // settings.host_concurrency
    adapter = kind(
        pool_connections=max(64, min(pools, idle_budget)),
        pool_maxsize=settings.host_concurrency,
        pool_block=False,  # never wait for a connection: the scheduler already bounds them
    )
    adapter.system_store = settings.system_ca and not settings.ca_bundle
    return adapter


def _open_files_limit() -> int:
    """The process's open-files limit, raised to the hard limit (at most 65,536) first, as Go
    programs do: idle kept-alive connections are file descriptors, and the usual soft limit
    of 1,024 would otherwise cap the pools below what many hosts need."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65_536 if hard == resource.RLIM_INFINITY else min(hard, 65_536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError):
            pass
    return 65_536 if soft == resource.RLIM_INFINITY else soft


def plain_session(trust_env: bool = True) -> requests.Session:
    """A bare requests.Session: none of scrape's adapters, headers or limits. What the
    benchmark's hand-written comparison programs use, so that requests stays in this package."""
    session = requests.Session()
    session.trust_env = trust_env
    return session


def fetch_robots(session: requests.Session, url: str, limits: FetchLimits) -> tuple[int, bytes]:
    """(status, body) of a robots.txt, up to five redirects followed (RFC 9309 §2.3.1.2, as
    Google does). A redirect loop or longer chain, or a redirect off http(s), is "unavailable":
    404.
    Raises PageError when the host cannot be reached (refused, timed out, TLS...)."""
    robots_limits = FetchLimits(
        limits.connect_timeout_s,
        limits.read_timeout_s,
        limits.deadline_s,
        ROBOTS_MAX_BYTES,
        ROBOTS_MAX_REDIRECTS,
        truncate_body=True,  # RFC 9309 §2.5: parse the first 500 KiB at least
    )
    try:
        page = fetch_page(session, UrlTask(0, url, url), robots_limits)
    except PageError as exc:
        if exc.kind in (ErrorKind.REDIRECTS, ErrorKind.BAD_SCHEME):
            return 404, b""
        raise
    return page.status, page.body


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _apply_environment(session: requests.Session) -> None:
    """Read the environment once per session instead of once per request.

    With trust_env, requests re-reads proxy variables and ~/.netrc on every request: 0.22 ms
    of CPU per GET, measured, a quarter of the GET itself. Where proxies or a netrc file exist
    their per-URL rules matter, so requests keeps doing it; otherwise the only setting left,
    the CA bundle variables, is applied here the way requests would.
    """
    names = {name.lower() for name in os.environ}
    home = os.path.expanduser("~")
    netrc = "netrc" in names or any(
        os.path.exists(os.path.join(home, n)) for n in (".netrc", "_netrc")
    )
    if netrc or names & set(PROXY_VARIABLES):
        return
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


class RequestGate(Protocol):
    """Politeness around each request of a page (redirect hops included)."""

    def enter(self, url: str, deadline: float) -> None:
        """Wait for the host's turn; raises PageError (robots, blocked, deadline)."""

    def leave(self, url: str) -> None:
        """The request to `url` is over."""


class _OpenGate:
    def enter(self, url: str, deadline: float) -> None:
        pass

    def leave(self, url: str) -> None:
        pass


def fetch_page(
    session: requests.Session,
    task: UrlTask,
    limits: FetchLimits,
    gate: RequestGate | None = None,
    attempts: int = 1,
    conditional: dict[str, str] | None = None,
    hash_body: bool = False,
) -> FetchedPage:
    """GET one URL, following redirects by hand; raises PageError.

    A final 4xx/5xx (and a 304 to the `conditional` headers, sent with every hop) is
    returned, with an empty body, for the caller to judge. `limits.deadline_s` bounds the
    whole exchange, however slowly the server sends (deadline.py).
    """
    started = time.monotonic()
    url = task.normalized_url
    gate = gate or _OpenGate()
    seen = {url}
    for _hop in range(limits.max_redirects + 1):
        gate.enter(url, started + limits.deadline_s)
        scope = watch(started + limits.deadline_s)
        try:
            resp = _get(session, url, started, limits, conditional)
            try:
                if scope.expired:  # the headers came, cut short by the watchdog
                    raise PageError(
                        ErrorKind.TIMEOUT, deadline_message(limits, scope.expired_while)
                    )
                if resp.status_code in REDIRECT_STATUSES and "location" in resp.headers:
                    url = _next_hop(url, resp.headers["location"], seen)
                    _drain(resp)
                    continue
                ok = 200 <= resp.status_code < 300
                body = _read_body(resp, started, limits) if ok else _drain(resp)
                if scope.expired:  # the body ended because the watchdog shut the socket
                    raise PageError(
                        ErrorKind.TIMEOUT, deadline_message(limits, scope.expired_while)
                    )
                return FetchedPage(
                    task=task,
                    final_url=url,
                    status=resp.status_code,
                    headers={k.lower(): v for k, v in resp.headers.items()},
                    body=body,
                    attempts=attempts,
                    elapsed_s=time.monotonic() - started,
                    # Hashed here only when there is a stored hash to compare (an unchanged
                    # page then never reaches a parser); otherwise the parse worker hashes it.
                    content_hash=("sha256:" + hashlib.sha256(body).hexdigest())
                    if ok and hash_body
                    else "",
                )
            except TRANSPORT_ERRORS as exc:
                raise page_error_from(exc, None, limits.read_timeout_s, scope.phase) from exc
            finally:
                scope.close()  # before the connection can go back to its pool
                resp.close()
        except PageError as exc:
            if not scope.expired or exc.kind is ErrorKind.TIMEOUT:
                raise
            # The watchdog shut the socket: whatever the read then saw, time ran out.
            raise PageError(
                ErrorKind.TIMEOUT, deadline_message(limits, scope.expired_while)
            ) from exc
        finally:
            scope.close()
            gate.leave(url)
    raise PageError(ErrorKind.REDIRECTS, f"more than {limits.max_redirects} redirects")


def deadline_message(limits: FetchLimits, phase: str) -> str:
    return f"timed out after {limits.deadline_s:g} s {phase} (page deadline)"


def status_message(status: int) -> str:
    """`404 Not Found` for a status code, the number alone when it has no standard phrase."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _get(
    session: requests.Session,
    url: str,
    started: float,
    limits: FetchLimits,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    remaining = limits.deadline_s - (time.monotonic() - started)
    if remaining <= 0:
        raise PageError(ErrorKind.TIMEOUT, deadline_message(limits, "following redirects"))
    timeouts = (min(limits.connect_timeout_s, remaining), min(limits.read_timeout_s, remaining))
    sends = 0
    while True:
        sends += 1
        try:
            return _send(session, url, timeouts, headers)
        except TRANSPORT_ERRORS as exc:
            if sends > STALE_RETRIES or not (on_reused_connection() and _stale(exc)):
                error = _get_error(exc, started, limits, timeouts)
                if error.kind is ErrorKind.TLS and _direct(session, url):
                    guarded = getattr(session.get_adapter(url), "guarded", False)
                    error = _named_mismatch(error, exc, url, timeouts[0], guarded)
                raise error from exc
            # A kept-alive connection the server had closed while it sat idle: nothing was
            # answered, so send again (on a fresh connection, in the end); not an attempt.


def _send(
    session: requests.Session,
    url: str,
    timeouts: tuple[float, float],
    headers: dict[str, str] | None,
) -> requests.Response:
    if session.trust_env:  # proxies or netrc in play: let requests apply them per URL
        return session.get(
            url, stream=True, allow_redirects=False, timeout=timeouts, headers=headers
        )
    # Session.request merges headers and environment settings on every call: 15% of a
    # GET's CPU (measured on 304s: 0.91 -> 0.78 ms). Without trust_env the outcome of
    # that merge is the session's own settings, so prepare and send directly.
    prepared = _prepared(session, url, headers)
    # verify only matters for https; a CA-bundle path there costs requests a stat() (and a
    # GIL hand-off) on every call, for plain http too.
    verify = session.verify if url.startswith("https:") else True
    return session.send(
        prepared,
        stream=True,
        allow_redirects=False,
        timeout=timeouts,
        verify=verify,
        proxies=session.proxies,
        cert=session.cert,
    )


def _direct(session: requests.Session, url: str) -> bool:
    """No proxy stands between this session and `url` (the setting's, or the environment's
    when requests reads it)."""
    proxies = dict(session.proxies)
    if session.trust_env:
        proxies = requests.utils.get_environ_proxies(url) | proxies
    return requests.utils.select_proxy(url, proxies) is None


def _named_mismatch(
    error: PageError, exc: BaseException, url: str, timeout_s: float, guarded: bool
) -> PageError:
    """A certificate refused for its name: say which names it is for (peer_cert.py)."""
    cause = verify_error(exc)
    if cause is None or cause.verify_code not in MISMATCH_CODES:
        return error
    parts = urllib3.util.parse_url(url)
    if not parts.host:
        return error
    message = mismatch_message(parts.host.strip("[]"), parts.port or 443, timeout_s, guarded)
    if message is None:
        return error
    return PageError(ErrorKind.TLS, f"TLS certificate not accepted: {message}")


def _stale(exc: BaseException) -> bool:
    """The request met a closed connection before any byte of an answer."""
    kind, _ = describe(exc)
    return kind is ErrorKind.CONNECTION and current_phase() in (
        "sending the request",
        "waiting for the response headers",
    )


def _get_error(
    exc: BaseException, started: float, limits: FetchLimits, timeouts: tuple[float, float]
) -> PageError:
    phase = current_phase()
    error = page_error_from(exc, timeouts[0], timeouts[1], phase)
    if error.kind is ErrorKind.TIMEOUT and time.monotonic() - started >= limits.deadline_s:
        error = PageError(ErrorKind.TIMEOUT, deadline_message(limits, phase))
    return error


def _prepared(
    session: requests.Session, url: str, headers: dict[str, str] | None
) -> requests.PreparedRequest:
    """The GET that session.prepare_request would build, for a plain ASCII URL without
    credentials: the session's headers, the extra ones, its cookies.

    prepare_request copies the cookie jar and merges every setting through generic helpers
    on each call: a re-run of 304s spent 0.95 ms of CPU per GET with it, 0.65 ms with this
    (measured on the demo site). URLs it would change (IDNA hosts, user:password@) go through
    prepare_request as before.
    """
    authority = url.split("/", 3)[2] if url.count("/") >= 2 else ""
    if not url.isascii() or "@" in authority or session.auth is not None:
        prepared = session.prepare_request(requests.Request("GET", url))
        if headers:
            prepared.headers.update(headers)
        return prepared
    prepared = requests.PreparedRequest()
    prepared.method = "GET"
    prepared.url = requote_uri(url)
    prepared.headers = CaseInsensitiveDict(session.headers)  # type: ignore[arg-type]
    if headers:
        prepared.headers.update(headers)
    prepared.body = None
    prepared.hooks = {"response": []}
    prepared._cookies = session.cookies  # type: ignore[attr-defined]
    if len(session.cookies):
        prepared.prepare_cookies(session.cookies)
    return prepared


def _next_hop(url: str, location: str, seen: set[str]) -> str:
    """The redirect's target, resolved as a browser resolves Location (WHATWG)."""
    target = web_url(location.strip(), url)
    if target is None:
        shown = redact_url(location.strip())[:200]
        raise PageError(ErrorKind.REDIRECTS, f"redirect to {shown}: not a valid URL")
    try:
        target = normalize_url(target)
    except InvalidUrl as exc:
        kind = ErrorKind.BAD_SCHEME if "scheme" in str(exc) else ErrorKind.REDIRECTS
        raise PageError(kind, f"redirect to {redact_url(target)[:200]}: {exc}") from None
    if target in seen:
        raise PageError(ErrorKind.REDIRECTS, f"redirect loop at {redact_url(target)[:200]}")
    seen.add(target)
    return target


def _read_body(resp: requests.Response, started: float, limits: FetchLimits) -> bytes:
    body = bytearray()
    # read1 returns as soon as bytes arrive (iter_content(n) waits for n), so a body trickling
    # in below the read timeout still reaches the deadline check; decoded, so bombs hit the cap.
    while chunk := resp.raw.read1(CHUNK_BYTES, decode_content=True):
        body += chunk
        if len(body) > limits.max_body_bytes:
            if limits.truncate_body:
                return bytes(body[: limits.max_body_bytes])
            raise PageError(ErrorKind.TOO_LARGE, f"body over {limits.max_body_bytes} bytes")
        if time.monotonic() - started > limits.deadline_s:
            raise PageError(ErrorKind.TIMEOUT, deadline_message(limits, "reading the body"))
    return bytes(body)


def _drain(resp: requests.Response) -> bytes:
    """Read a small unwanted body so the connection can be reused; a big one is dropped."""
    try:
        resp.raw.read(DRAIN_BYTES, decode_content=False)
    except TRANSPORT_ERRORS:
        pass  # the connection is closed by resp.close(); the page's outcome does not depend on it
    return b""


def conditional_headers(known: Validators | None) -> dict[str, str] | None:
    """If-None-Match / If-Modified-Since from what the last run learnt (RFC 9110 §13.1)."""
    if known is None:
        return None
    headers = {}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    return headers or None
