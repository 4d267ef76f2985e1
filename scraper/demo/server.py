"""The demo site's HTTP server: asyncio on 127.0.0.1, in a process of its own (`DemoServer`),
so its CPU is measured apart from the scraper's. Added latency is a timer on the event loop,
so a thousand waiting requests cost no thread and no CPU. GET only, keep-alive.

It can also play many hosts (`Listener`s on 127.0.0.2, 127.0.0.3, ...: all this machine, and
distinct hosts to politeness and the connection pools), each with its own latency, some
refusing connections, over TLS with a certificate the caller made; it counts requests,
connections and requests in flight per host (`scrape bench --web`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from scraper.demo.site import DemoSite, Response


@dataclass
class ServerStats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_request_at: float = 0.0  # time.time() of the first request, 0 before any
    bytes_sent: int = 0
    last_response_at: float = 0.0  # time.time() of the last response sent
    connections: int = 0  # accepted (over TLS: handshakes completed)


@dataclass(frozen=True)
class Listener:
    """One host the server plays: an address of its own, its latency, or refusing."""

    address: str = "127.0.0.1"
    latency_s: float = 0.0
    refuse: bool = False  # a bound socket that never listens: connections are refused


class _HttpProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: GET only, keep-alive, timers for latency. Counts
    go to the server's totals and to the host's own."""

    def __init__(
        self, site: DemoSite, stats: ServerStats, latency_s: float, host: ServerStats
    ) -> None:
        self.site, self.stats, self.latency_s, self.host = site, stats, latency_s, host
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.connections += 1
        self.host.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self._handle(head)
        if len(self.buffer) > 65536 and self.transport:
            self.transport.close()

    def _handle(self, head: bytes) -> None:
        stats = self.stats
        if not stats.first_request_at:
            stats.first_request_at = time.time()
        if not self.host.first_request_at:
            self.host.first_request_at = time.time()
        for counts in (stats, self.host):
            counts.requests += 1
            counts.in_flight += 1
            counts.max_in_flight = max(counts.max_in_flight, counts.in_flight)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = (lines[0].split(" ") + ["", "", ""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        resp = self.site.respond(path, headers)
        keep_alive = headers.get("connection", "").lower() != "close"
        data = _serialize(resp, keep_alive, include_body=method != "HEAD")
        if self.latency_s > 0:
            asyncio.get_running_loop().call_later(self.latency_s, self._send, data, keep_alive)
        else:
            self._send(data, keep_alive)

    def _send(self, data: bytes, keep_alive: bool) -> None:
        now = time.time()
        for counts in (self.stats, self.host):
            counts.in_flight -= 1
            counts.bytes_sent += len(data)
            counts.last_response_at = now
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()


def _serialize(resp: Response, keep_alive: bool, include_body: bool) -> bytes:
    reason = {200: "OK", 301: "Moved Permanently", 304: "Not Modified", 404: "Not Found"}
    lines = [f"HTTP/1.1 {resp.status} {reason.get(resp.status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in resp.headers]
    lines.append(f"Content-Length: {len(resp.body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + resp.body if include_body else head


async def _serve(
    n_pages: int,
    listeners: Sequence[Listener],
    control: Connection,
    tls: tuple[str, str] | None,
) -> None:
    site = DemoSite(n_pages, scheme="https" if tls is not None else "http")
    for i in range(min(n_pages, 20_000)):  # build pages before timing starts
        site.page(i)
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    stats = ServerStats()
    hosts = [ServerStats() for _ in listeners]
    loop = asyncio.get_running_loop()
    servers, refusing, ports = [], [], []
    for listener, host in zip(listeners, hosts, strict=True):
        if listener.refuse:  # bound and never listening: the kernel refuses connections
            sock = socket.socket()
            sock.bind((listener.address, 0))
            refusing.append(sock)
            ports.append(sock.getsockname()[1])
            continue

        def factory(latency: float = listener.latency_s, host: ServerStats = host) -> Any:
            return _HttpProtocol(site, stats, latency, host)

        server = await loop.create_server(factory, listener.address, 0, backlog=1024, ssl=context)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    control.send(ports)
    stop = asyncio.Event()

    def on_command() -> None:
        try:
            command = control.recv()
        except (EOFError, OSError):  # the owner died without saying stop: do not outlive it
            command = "stop"
        if command == "stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            control.send(
                {
                    **asdict(stats),
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    "hosts": [asdict(host) for host in hosts],
                }
            )
        elif command == "reset":
            for counts in (stats, *hosts):
                counts.__dict__.update(asdict(ServerStats()))
            control.send(True)
        else:
            stop.set()

    loop.add_reader(control.fileno(), on_command)
    await stop.wait()
    loop.remove_reader(control.fileno())
    for server in servers:
        server.close()
        await server.wait_closed()
    for sock in refusing:
        sock.close()


def _server_main(
    n_pages: int,
    listeners: Sequence[Listener],
    control: Connection,
    tls: tuple[str, str] | None,
) -> None:
    try:
        asyncio.run(_serve(n_pages, listeners, control, tls))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    finally:
        control.close()


class DemoServer:
    """The demo site in its own process on 127.0.0.1; a context manager. `url` is its origin;
    with `ports` > 1 the same site answers on several ports, `urls`, which politeness counts
    as several hosts (how the cluster benchmark spreads hosts over workers). `listeners`
    instead gives each host its own address and latency; `tls` (certificate chain and key
    files) serves https."""

    def __init__(
        self,
        n_pages: int = 2000,
        latency_s: float = 0.0,
        ports: int = 1,
        listeners: Sequence[Listener] = (),
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.n_pages = n_pages
        self.listeners = tuple(listeners) or (Listener("127.0.0.1", latency_s),) * ports
        self.tls = tls
        self.url = ""
        self.urls: list[str] = []
        self._process: Any = None
        self._control: Connection | None = None

    def __enter__(self) -> DemoServer:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_server_main,
            args=(self.n_pages, self.listeners, theirs, self.tls),
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._control = ours
        if not ours.poll(60):
            self.__exit__(None, None, None)
            raise RuntimeError("demo site did not start within 60 s")
        scheme = "https" if self.tls else "http"
        self.urls = [
            f"{scheme}://{listener.address}:{port}"
            for listener, port in zip(self.listeners, ours.recv(), strict=True)
        ]
        self.url = self.urls[0]
        return self

    def stats(self) -> dict[str, Any]:
        """Requests and connections served, peak concurrency, first request time, bytes and
        CPU seconds; under "hosts" the same counts per listener."""
        assert self._control is not None
        self._control.send("stats")
        result: dict[str, Any] = self._control.recv()
        return result

    def reset(self) -> None:
        """Zero the request counters (CPU seconds are cumulative; take differences)."""
        assert self._control is not None
        self._control.send("reset")
        self._control.recv()

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._control is not None:
            try:
                self._control.send("stop")
            except OSError:
                pass
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process.close()
        if self._control is not None:
            self._control.close()
