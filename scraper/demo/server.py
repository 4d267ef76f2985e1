"""The demo site's HTTP server: asyncio on 127.0.0.1, in a process of its own (`DemoServer`),
so its CPU is measured apart from the scraper's. Added latency is a timer on the event loop,
so a thousand waiting requests cost no thread and no CPU. GET only, keep-alive.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from dataclasses import dataclass
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


class _HttpProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: GET only, keep-alive, timers for latency."""

    def __init__(self, site: DemoSite, stats: ServerStats, latency_s: float) -> None:
        self.site, self.stats, self.latency_s = site, stats, latency_s
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

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
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
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
        self.stats.in_flight -= 1
        self.stats.bytes_sent += len(data)
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


async def _serve(n_pages: int, latency_s: float, control: Connection, ports: int = 1) -> None:
    site = DemoSite(n_pages)
    for i in range(min(n_pages, 20_000)):  # build pages before timing starts
        site.page(i)
    stats = ServerStats()
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: _HttpProtocol(site, stats, latency_s), "127.0.0.1", 0, backlog=1024
        )
        for _ in range(ports)
    ]
    control.send([server.sockets[0].getsockname()[1] for server in servers])
    stop = asyncio.Event()

    def on_command() -> None:
        try:
            command = control.recv()
        except (EOFError, OSError):  # the owner died without saying stop: do not outlive it
            command = "stop"
        if command == "stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            control.send({**stats.__dict__, "cpu_s": usage.ru_utime + usage.ru_stime})
        elif command == "reset":
            stats.__dict__.update(ServerStats().__dict__)
            control.send(True)
        else:
            stop.set()

    loop.add_reader(control.fileno(), on_command)
    await stop.wait()
    loop.remove_reader(control.fileno())
    for server in servers:
        server.close()
        await server.wait_closed()


def _server_main(n_pages: int, latency_s: float, control: Connection, ports: int) -> None:
    try:
        asyncio.run(_serve(n_pages, latency_s, control, ports))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    finally:
        control.close()


class DemoServer:
    """The demo site in its own process on 127.0.0.1; a context manager. `url` is its origin;
    with `ports` > 1 the same site answers on several ports, `urls`, which politeness counts
    as several hosts (how the cluster benchmark spreads hosts over workers)."""

    def __init__(self, n_pages: int = 2000, latency_s: float = 0.0, ports: int = 1) -> None:
        self.n_pages, self.latency_s, self.ports = n_pages, latency_s, ports
        self.url = ""
        self.urls: list[str] = []
        self._process: Any = None
        self._control: Connection | None = None

    def __enter__(self) -> DemoServer:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_server_main,
            args=(self.n_pages, self.latency_s, theirs, self.ports),
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._control = ours
        if not ours.poll(60):
            self.__exit__(None, None, None)
            raise RuntimeError("demo site did not start within 60 s")
        self.urls = [f"http://127.0.0.1:{port}" for port in ours.recv()]
        self.url = self.urls[0]
        return self

    def stats(self) -> dict[str, Any]:
        """Requests served, peak concurrency, first request time, bytes and CPU seconds."""
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
