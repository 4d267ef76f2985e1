"""A loopback HTTP server with named fault routes, for tests. Port 0 on 127.0.0.1 only.

Each route is a function of the request handler. Raw-socket routes send what http.server
cannot (resets, lying Content-Length, closing before headers). Every slow route is bounded in
bytes and seconds, so a test never hangs on it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[BaseHTTPRequestHandler], None]

PAGE = (
    b"<!doctype html><html lang='en'><head><title>Fault server page</title>"
    b"<meta name='description' content='a normal page'></head>"
    b"<body><p>Hello <a href='/a'>one</a> <a href='b#x'>two</a></p></body></html>"
)


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str = "text/html; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def ok(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, PAGE)


def not_found(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 404, b"not found", "text/plain")


def status(code: int, headers: dict[str, str] | None = None) -> Route:
    return lambda h: send(h, code, b"error page", "text/plain", headers)


def redirect(location: str, code: int = 302) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def chain(handler: BaseHTTPRequestHandler) -> None:
    """/chain/N redirects to /chain/N-1; /chain/0 is a page."""
    n = int(handler.path.partition("?")[0].rsplit("/", 1)[1])
    if n == 0:
        ok(handler)
    else:
        redirect(f"/chain/{n - 1}")(handler)


def slow_first_byte(seconds: float) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):
            ok(handler)

    return route


def trickle(handler: BaseHTTPRequestHandler, every_s: float = 0.2, count: int = 60) -> None:
    """Headers at once, then one byte every 0.2 s (at most 60 bytes): below any read timeout."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    with contextlib.suppress(OSError):
        for _ in range(count):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(every_s)


def trickle_headers(handler: BaseHTTPRequestHandler) -> None:
    """The status line and headers one byte every 0.2 s (at most 40 s): each read arrives
    long before any read timeout, so only a deadline over the whole exchange ends it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Pad: " + b"p" * 120 + b"\r\n"
    with contextlib.suppress(OSError):
        for byte in head:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.2)
    handler.close_connection = True


def _raw(handler: BaseHTTPRequestHandler, data: bytes, reset: bool) -> None:
    handler.wfile.write(data)
    handler.wfile.flush()
    if reset:  # SO_LINGER 0: close sends RST instead of FIN
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.connection.close()


def reset_mid_body(handler: BaseHTTPRequestHandler) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
    _raw(handler, head + b"<html><body>" + b"x" * 20000, reset=True)


def raw_response(head: bytes, body: bytes = PAGE) -> Route:
    """Exactly these header lines (after the status line), then the body; connection closed."""
    head += b"Connection: close\r\n"
    return lambda h: _raw(h, b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body, reset=False)


def raw_redirect(location: bytes) -> Route:
    """A 302 whose Location is these bytes, unchecked (http.server would refuse some)."""
    head = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n"
    head += b"Connection: close\r\n\r\n"
    return lambda h: _raw(h, head, reset=False)


def one_per_connection(handler: BaseHTTPRequestHandler) -> None:
    """Answers the first request of a connection (keep-alive), and closes the connection
    without answering the next: what a server does that closes idle connections just as a
    client sends on one."""
    if getattr(handler, "answered", False):
        _raw(handler, b"", reset=False)
        return
    handler.answered = True  # type: ignore[attr-defined]
    ok(handler)


def close_before_headers(handler: BaseHTTPRequestHandler) -> None:
    _raw(handler, b"", reset=False)


def short_body(handler: BaseHTTPRequestHandler) -> None:
    """Content-Length says 5000, 1000 bytes come, then the connection closes."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n"
        b"Connection: close\r\n\r\n"
    )
    _raw(handler, head + b"<p>" + b"y" * 997, reset=False)


def long_body(handler: BaseHTTPRequestHandler) -> None:
    """Content-Length says 34 but more bytes follow: the declared length is what counts.

    With Connection: close; without it the client would reuse the connection, whose next
    request the server's close then resets (a fault for the retry logic, not this route)."""
    body = b"<html><title>Short</title></html>\n" + b"trailing junk " * 50
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 34\r\n"
        b"Connection: close\r\n\r\n"
    )
    _raw(handler, head + body, reset=False)


@cache
def _bomb(method: str, size: int) -> bytes:
    """A gzip or zlib stream of `size` zero bytes (whole MiB), built without compressing them
    all: after a full flush the compressor's output for each further MiB is the same block."""
    mib = 1 << 20
    chunk = b"\0" * mib
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = size // mib
    raw = first + block * (count - 1) + compressor.flush()
    crc, adler = 0, 1
    for _ in range(count):
        crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
    if method == "gzip":
        return (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            + raw
            + struct.pack("<II", crc, (count * mib) & 0xFFFFFFFF)
        )
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def _compress(method: str, chunks: Iterator[bytes]) -> bytes:
    """`chunks` compressed as one brotli or zstd stream."""
    if method == "br":
        import brotli

        compressor: Any = brotli.Compressor(quality=1)
        return b"".join(map(compressor.process, chunks)) + compressor.finish()
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd
    compressor = zstd.ZstdCompressor(level=1)
    return b"".join(map(compressor.compress, chunks)) + compressor.flush()


@cache
def _stream_bomb(method: str, size: int) -> bytes:
    """A brotli or zstd stream of `size` zero bytes (whole MiB), compressed a MiB at a time."""
    chunk = b"\0" * (1 << 20)
    return _compress(method, (chunk for _ in range(size >> 20)))


def encoded_page(method: str) -> Route:
    """PAGE with Content-Encoding br or zstd."""
    data = _compress(method, iter([PAGE]))
    return lambda h: send(h, 200, data, headers={"Content-Encoding": method})


def stream_bomb(method: str, size: int = 1 << 30) -> Route:
    """Content-Encoding br or zstd: small on the wire, `size` bytes (default 1 GiB) decoded."""
    data = _stream_bomb(method, size)
    return lambda h: send(h, 200, data, headers={"Content-Encoding": method})


def bomb(method: str, size: int = 1 << 30) -> Route:
    """Small on the wire, `size` bytes (default 1 GiB) once decoded."""
    data = _bomb(method, size)  # built once, before any client waits on it

    def route(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, data, headers={"Content-Encoding": method})

    return route


def huge(handler: BaseHTTPRequestHandler) -> None:
    """A 200 MB body, streamed until the client hangs up."""
    size = 200 * 1000 * 1000
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    chunk = b"<p>" + b"z" * 65533
    with contextlib.suppress(OSError):
        for _ in range(size // len(chunk)):
            handler.wfile.write(chunk)


def body(data: bytes, content_type: str) -> Route:
    return lambda h: send(h, 200, data, content_type)


DEEP = b"<html><body>" + b"<div>" * 100_000 + b"deep" + b"</div>" * 100_000 + b"</body></html>"
LONG_ATTR = (
    b"<html><head><title>Long</title></head><body><a href='/x' data-x='"
    + b"a" * 1_000_000
    + b"'>x</a></body></html>"
)
MALFORMED = (
    b"<html><head><title>Broken <b>page</title><body><p>unclosed <div><a href='/ok'"
    b">link<table><tr><td>cell</p></html><<>>"
)
NUL = b"<html><head><title>Nul\0title</title></head><body>a\0b</body></html>"
CP1252_UNDECLARED = (
    "<html><head><title>Caf\xe9 cr\xe8me br\xfbl\xe9e</title></head><body>"
    + "Voil\xe0 une fa\xe7ade tr\xe8s \xe9l\xe9gante, d\xe9j\xe0 vue. " * 20
    + "</body></html>"
).encode("latin-1")
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def fault_routes() -> dict[str, Route]:
    """Every named fault, by path."""
    return {
        "/ok": ok,
        "/slow-first-byte": slow_first_byte(3.0),
        "/trickle": trickle,
        "/reset-mid-body": reset_mid_body,
        "/close-before-headers": close_before_headers,
        "/trickle-headers": trickle_headers,
        "/conflicting-length": raw_response(
            b"Content-Type: text/html\r\nContent-Length: 10\r\nContent-Length: 20\r\n"
        ),
        "/bad-location": raw_redirect(b"/caf\xff\xfe"),
        "/two-content-types": raw_response(
            b"Content-Type: text/html; charset=utf-8\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(PAGE)}\r\n".encode()
        ),
        "/short-body": short_body,
        "/long-body": long_body,
        "/loop-a": redirect("/loop-b"),
        "/loop-b": redirect("/loop-a"),
        **{f"/chain/{n}": chain for n in range(31)},
        "/to-file": redirect("file:///etc/passwd"),
        "/to-ftp": redirect("ftp://127.0.0.1/file"),
        "/to-javascript": redirect("javascript:alert(1)"),
        "/gzip-bomb": bomb("gzip"),
        "/deflate-bomb": bomb("deflate"),
        "/brotli": encoded_page("br"),
        "/zstd": encoded_page("zstd"),
        "/brotli-bomb": stream_bomb("br"),
        "/zstd-bomb": stream_bomb("zstd"),
        "/huge": huge,
        "/pdf": body(PDF, "application/pdf"),
        "/image": body(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"),
        "/bad-charset": body(b"<title>Bad label</title><p>ok", "text/html; charset=foobar-9"),
        "/nul": body(NUL, "text/html"),
        "/deep": body(DEEP, "text/html"),
        "/long-attr": body(LONG_ATTR, "text/html"),
        "/malformed": body(MALFORMED, "text/html"),
        "/cp1252-undeclared": body(CP1252_UNDECLARED, "text/html"),
        "/empty": body(b"", "text/html"),
        "/status/500": status(500),
        "/status/502": status(502),
        "/status/503": status(503, {"Retry-After": "1"}),
        "/status/429": status(429, {"Retry-After": "1"}),
        "/status/404": status(404),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up on fault routes is the point; keep test output clean


@dataclass
class Served:
    """A running test server: its origin and what it saw."""

    origin: str
    paths: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() per request
    max_in_flight: int = 0
    in_flight: int = 0
    connections: int = 0  # TCP connections accepted
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __iter__(self) -> Iterator[object]:  # origin, paths = served
        return iter((self.origin, self.paths))


@contextlib.contextmanager
def serve(
    routes: dict[str, Route], host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[Served]:
    """Serve `routes` on a loopback address (over TLS with a server context `tls`); yields a
    Served that records every request."""
    served = Served("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with served.lock:
                served.connections += 1

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with served.lock:
                served.paths.append(self.path)
                served.arrivals.append(time.monotonic())
                served.in_flight += 1
                served.max_in_flight = max(served.max_in_flight, served.in_flight)
            try:
                routes.get(self.path.partition("?")[0], not_found)(self)
            finally:
                with served.lock:
                    served.in_flight -= 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Server((host, 0), Handler)
    if tls is not None:  # the handshake happens on the handler's first read, in its thread
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    scheme = "https" if tls is not None else "http"
    served.origin = f"{scheme}://{host}:{server.server_port}"
    with _running(server):
        yield served


@dataclass
class ProxySeen:
    """What the test proxy saw: its address, and each request line with its auth header."""

    url: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes from a to b until a closes (bounded by the sockets' timeouts)."""
    with contextlib.suppress(OSError):
        while data := a.recv(65536):
            b.sendall(data)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def proxy(host: str = "127.0.0.1") -> Iterator[ProxySeen]:
    """An HTTP proxy on loopback for tests: CONNECT tunnels (https) and absolute-form requests
    (http, one per connection), to loopback targets only; records every request line."""
    import socketserver

    seen = ProxySeen("")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            client.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            with seen.lock:
                seen.requests.append((method, target, headers.get("Proxy-Authorization")))
            if method == "CONNECT":
                where, _, port = target.rpartition(":")
                forward = b""
            else:  # http://host:port/path -> /path, to host:port
                authority, _, path = target.removeprefix("http://").partition("/")
                where, _, port = authority.rpartition(":")
                kept = [ln for ln in lines[1:] if not ln.lower().startswith("proxy-")]
                forward = "\r\n".join([f"{method} /{path} {version}", *kept, "Connection: close"])
                forward = forward.encode("latin-1") + b"\r\n\r\n" + rest
            assert where.startswith("127."), where  # tests talk to this machine only
            with socket.create_connection((where, int(port)), timeout=10) as upstream:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:
                        upstream.sendall(rest)
                else:
                    upstream.sendall(forward)
                back = threading.Thread(target=_relay, args=(upstream, client), daemon=True)
                back.start()
                _relay(client, upstream)
                back.join(10)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass

    server = Server((host, 0), Handler)
    seen.url = f"http://{host}:{server.server_address[1]}"
    with _running(server):
        yield seen


@contextlib.contextmanager
def _running(server: Any) -> Iterator[None]:
    """A socketserver serving in a daemon thread until the block ends, then shut and closed."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
