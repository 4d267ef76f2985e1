"""What a TLS certificate that failed on its name is for: "hostname mismatch: cert is for
*.example.org" needs the names, and a failed handshake does not give the certificate. So one
second handshake that verifies nothing reads it (only for a verified handshake that already
failed on the name, never through a proxy), and `cryptography` (a dependency of trustme,
which `scrape bench --web` needs) reads its subject alternative names. Remembered per host.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading

HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH = 62, 64  # OpenSSL's X509_V_ERR_ codes
MISMATCH_CODES = frozenset({HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH})
REMEMBERED = 256
SHOWN = 3  # names in the message, then "and N more"

_lock = threading.Lock()
_names: dict[tuple[str, int], tuple[str, ...]] = {}


def mismatch_message(host: str, port: int, timeout_s: float, guarded: bool) -> str | None:
    """ "hostname mismatch: cert is for a.example, b.example (not host)", or None when the
    certificate cannot be read again."""
    with _lock:
        names = _names.get((host, port))
    if names is None:
        names = _read_names(host, port, timeout_s, guarded)
        with _lock:  # a certificate that could not be read is not asked for again either
            if len(_names) >= REMEMBERED:
                _names.clear()
            _names[(host, port)] = names
    if not names:
        return None
    shown = ", ".join(names[:SHOWN])
    if len(names) > SHOWN:
        shown += f" and {len(names) - SHOWN} more"
    what = "IP address" if _is_ip(host) else "hostname"
    return f"{what} mismatch: cert is for {shown} (not {host})"


def _read_names(host: str, port: int, timeout_s: float, guarded: bool) -> tuple[str, ...]:
    """`guarded` (block_private_addresses): the second connection is refused a private or
    local address as the first was (transport.py), should the name now resolve to one."""
    try:
        from cryptography import x509
    except ImportError:
        return ()
    from scraper.fetch.transport import refused_address

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only reading what it says it is for
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            if guarded and refused_address(raw.getpeername()[0]):
                return ()
            server_name = None if _is_ip(host) else host  # SNI, as the failed handshake sent
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
        if not der:
            return ()
        cert = x509.load_der_x509_certificate(der)
    except (OSError, ValueError):
        return ()
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = alt.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
        return tuple(dns + ips)
    except x509.ExtensionNotFound:  # an old certificate: its common name, if any
        common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return tuple(str(a.value) for a in common)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
