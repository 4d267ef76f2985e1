"""requests transport adapters for the download threads' sessions (mounted by
http.new_session): a shorter way to the connection pool, connections under the page deadline
(deadline.py), and the private-address guard.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.models import PreparedRequest

from scraper.fetch.deadline import guard

# Connection pools one adapter remembers the way to; past this the memo starts again.
POOL_MEMO = 256


class Adapter(requests.adapters.HTTPAdapter):
    """requests' HTTPAdapter, with the pool key of a direct request worked out once per origin
    instead of once per request.

    For each request HTTPAdapter chooses a proxy and builds the pool key, each parsing the
    URL: 32 µs a request, 15 µs with this (timed on the adapter alone), of the ~550 µs of
    CPU a 304 costs in all. Without a proxy the key depends only on the scheme, host, port
    and TLS settings, so it is remembered per `scheme://authority` and TLS settings. The
    pool itself is asked of urllib3's pool manager every time, so which pools it keeps and
    closes stays urllib3's decision. With proxies, requests' own code runs.
    """

    guarded = False  # GuardedAdapter: connections refuse private and local addresses
    system_store = False  # verify against the system's CA store, not requests' bundle

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if self.system_store and verify is True and url.lower().startswith("https"):
            # No CA file: urllib3's default context then loads the system's store
            # (ssl.SSLContext.load_default_certs: OpenSSL's paths, SSL_CERT_FILE honoured).
            conn.cert_reqs, conn.ca_certs, conn.ca_cert_dir = "CERT_REQUIRED", None, None
            return
        super().cert_verify(conn, url, verify, cert)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools()
        self._pool_keys: dict[tuple[str, Any, Any], Any] = {}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # not SOCKS, whose pools are its own
            manager.pool_classes_by_scheme = self._pools()
        return manager

    def _pools(self) -> dict[str, type[urllib3.HTTPConnectionPool]]:
        return dict(GUARDED_POOLS if self.guarded else POOLS)

    def get_connection_with_tls_context(
        self,
        request: PreparedRequest,
        verify: Any,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        url = request.url or ""
        if proxies or not isinstance(url, str):
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        memo = (_origin(url), verify, cert)
        found = self._pool_keys.get(memo)
        if found is None:
            try:
                found = self.build_connection_pool_key_attributes(request, verify, cert)
            except ValueError as exc:
                raise requests.exceptions.InvalidURL(exc, request=request) from None
            if len(self._pool_keys) >= POOL_MEMO:
                self._pool_keys.clear()
            self._pool_keys[memo] = found
        host_params, pool_kwargs = found
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request: PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        if proxies:
            return super().request_url(request, proxies)
        return request.path_url  # what HTTPAdapter sends without a proxy, minus the proxy check


def _origin(url: str) -> str:
    """`scheme://authority` of an absolute URL: everything before the path, query or fragment."""
    start = url.find("//") + 2
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start)
        if found != -1 and found < end:
            end = found
    return url[:end]


# -- block_private_addresses: checked on the connected socket, so DNS tricks cannot dodge it ----


class BlockedAddress(OSError):
    """The host resolved to an address the settings refuse."""


METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def refused_address(address: str) -> bool:
    """Loopback, private, link-local, reserved, multicast or cloud metadata addresses."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or ip in METADATA_ADDRESSES
    )


def _precheck(host: str, port: int) -> None:
    """Refuse before connecting, so not even a SYN goes to a refused address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the connection attempt reports the resolution failure itself
    for info in infos:
        address = str(info[4][0])
        if refused_address(address):
            raise BlockedAddress(
                f"{host} resolves to {address}, a private or local address "
                "(block_private_addresses)"
            )


def _checked(sock: socket.socket, host: str) -> socket.socket:
    """Check again on the connected socket: DNS may answer differently the second time."""
    peer = sock.getpeername()[0]
    if refused_address(peer):
        sock.close()
        raise BlockedAddress(
            f"{host} resolves to {peer}, a private or local address (block_private_addresses)"
        )
    return sock


# -- connections: under the page deadline (deadline.py), and optionally the address guard ----


class _Watched:
    """Mixed into urllib3's connections: under the current request's deadline from connect to
    the end of the body (deadline.py), and whether a request went out on a reused one."""

    _fresh = False  # connected since the last request: not a reused connection

    def connect(self) -> None:
        guard(self, "connecting")
        super().connect()  # type: ignore[misc]
        self._fresh = True

    def request(self, *args: Any, **kwargs: Any) -> None:
        # An http connection connects inside request(); an https one already has (urllib3
        # validates it first): reused means a socket that an earlier request used.
        reused = getattr(self, "sock", None) is not None and not self._fresh
        guard(self, "sending the request", reused=reused)
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._fresh = False  # after: an http connection's connect() comes in here

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        guard(self, "waiting for the response headers")
        response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        guard(self, "reading the body")
        return response


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPConnection(_HTTPConnection):
    def _new_conn(self) -> socket.socket:
        _precheck(self.host, self.port)
        return _checked(super()._new_conn(), self.host)


class _GuardedHTTPSConnection(_HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        _precheck(self.host, self.port)
        return _checked(super()._new_conn(), self.host)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}
GUARDED_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class GuardedAdapter(Adapter):
    """An Adapter whose connections refuse private and local addresses."""

    guarded = True
