"""Transport errors into PageError: one kind and one short line in words, like wget's
("connection refused", "server closed the connection before answering"), never an exception's
repr. The one place that knows how requests, urllib3, http.client and ssl report trouble.

requests wraps urllib3's errors, which wrap http.client's and the socket's: the whole chain
(args, `reason`, causes) is searched for the most telling cause, most specific first. The
detail stays in the exception chain for `--debug`.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator

import requests
import urllib3
from urllib3 import exceptions as u3

from scraper.errors import PageError
from scraper.fetch.transport import BlockedAddress
from scraper.records import ErrorKind
from scraper.urls import mask_passwords

# What the fetch code catches from the HTTP stack. urllib3's errors appear bare too, because
# the body is read from resp.raw.
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)
MALFORMED = (
    u3.InvalidHeader,
    u3.HeaderParsingError,
    u3.LocationParseError,
    u3.InvalidChunkLength,
    http.client.BadStatusLine,
    http.client.LineTooLong,
    requests.exceptions.InvalidHeader,
    UnicodeError,
)


def page_error_from(
    exc: BaseException,
    connect_timeout_s: float | None = None,
    read_timeout_s: float | None = None,
    phase: str = "waiting for the server",
) -> PageError:
    """The PageError of a transport exception; used as `raise page_error_from(e) from e`."""
    kind, message = describe(exc, connect_timeout_s, read_timeout_s, phase)
    return PageError(kind, mask_passwords(message))  # a proxy's URL may be in the message


def describe(
    exc: BaseException,
    connect_timeout_s: float | None = None,
    read_timeout_s: float | None = None,
    phase: str = "waiting for the server",
) -> tuple[ErrorKind, str]:
    chain = list(_chain(exc))

    def find(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    if (blocked := find(BlockedAddress)) is not None:
        return ErrorKind.BLOCKED_ADDRESS, str(blocked)
    if find(requests.exceptions.ProxyError, u3.ProxyError) is not None:
        inner = [
            e for e in chain if not isinstance(e, (requests.exceptions.ProxyError, u3.ProxyError))
        ]
        if inner:
            _, why = describe(inner[-1], connect_timeout_s, read_timeout_s, phase)
            return ErrorKind.CONNECTION, f"proxy: {why}"
        return ErrorKind.CONNECTION, "proxy: cannot connect"
    if (verify := find(ssl.SSLCertVerificationError)) is not None:
        return ErrorKind.TLS, f"TLS certificate not accepted: {_verify_message(verify)}"
    if (tls := find(ssl.SSLError)) is not None:
        return ErrorKind.TLS, f"TLS handshake failed: {_ssl_reason(tls)}"
    if find(u3.NameResolutionError, socket.gaierror) is not None:
        return ErrorKind.DNS, "name not resolved"
    if find(ConnectionRefusedError) is not None:
        return ErrorKind.CONNECTION, "connection refused"
    # urllib3's NewConnectionError is a ConnectTimeoutError too: only a timeout is a timeout.
    if find(u3.ReadTimeoutError, requests.ReadTimeout) is not None:
        return ErrorKind.TIMEOUT, f"timed out{_after(read_timeout_s)} {phase}"
    if find(TimeoutError) is not None or find(requests.ConnectTimeout) is not None:
        return ErrorKind.TIMEOUT, f"timed out{_after(connect_timeout_s)} connecting"
    if find(http.client.RemoteDisconnected) is not None:  # a ConnectionResetError too
        return ErrorKind.CONNECTION, "server closed the connection before answering"
    if find(ConnectionResetError) is not None:
        return ErrorKind.CONNECTION, "connection reset by peer"
    if (malformed := find(*MALFORMED)) is not None:
        return ErrorKind.PROTOCOL, f"malformed response: {_first_line(malformed)}"
    if (cut := find(u3.IncompleteRead, http.client.IncompleteRead)) is not None:
        return ErrorKind.CONNECTION, _incomplete(cut)
    if find(BrokenPipeError) is not None:
        return ErrorKind.CONNECTION, "server closed the connection while the request was sent"
    if (bad := find(u3.DecodeError, requests.exceptions.ContentDecodingError)) is not None:
        return ErrorKind.DECODE, f"body does not decode as its Content-Encoding says ({bad})"
    if find(requests.TooManyRedirects) is not None:
        return ErrorKind.REDIRECTS, "too many redirects"
    strerror = getattr(find(OSError), "strerror", None)
    if strerror:  # "network is unreachable", "no route to host"...
        return ErrorKind.CONNECTION, str(strerror).lower()
    if find(u3.ProtocolError, requests.ConnectionError) is not None:
        return ErrorKind.CONNECTION, "connection broken"
    if isinstance(exc, TRANSPORT_ERRORS):
        return ErrorKind.CONNECTION, _first_line(exc)
    return ErrorKind.INTERNAL, f"{type(exc).__name__}: {_first_line(exc)}"  # not the network's


def verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure `exc` carries, if any."""
    found = next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    return found if isinstance(found, ssl.SSLCertVerificationError) else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it carries, outermost first, each once."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])


def _after(seconds: float | None) -> str:
    return f" after {seconds:g} s" if seconds is not None else ""


def _incomplete(cut: BaseException) -> str:
    partial, expected = getattr(cut, "partial", None), getattr(cut, "expected", None)
    if isinstance(partial, bytes):  # http.client's IncompleteRead holds the bytes
        partial = len(partial)
    if isinstance(partial, int) and isinstance(expected, int):
        return f"server closed the connection after {partial} of {partial + expected} body bytes"
    return "server closed the connection before the body ended"


def _verify_message(error: BaseException) -> str:
    message = getattr(error, "verify_message", "") or _ssl_reason(error)
    return str(message).rstrip(".")


def _ssl_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return _first_line(error)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
