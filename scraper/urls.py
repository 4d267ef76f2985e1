"""URL text rules in one place: validation and normalisation, masking of credentials, what
politeness counts as a host (scheme, host, port) and how the state names a URL. A leaf:
the standard library and records.py only; no network I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from scraper.records import (
    UrlTask,
)

SHOWN_CHARS = 200  # how much of an invalid line the record repeats
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidUrl(ValueError):
    """The text is not an http(s) URL this scraper can fetch; the message says why."""


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def normalize_url(text: str) -> str:
    """The URL to fetch and to compare duplicates by; raises InvalidUrl with the reason.

    Scheme and host are lower-cased, a default port and the fragment removed, an empty path
    becomes "/". Percent-encoding and the query are left as they are.
    """
    bad = _CONTROL_OR_SPACE.search(text)  # a regex: a generator per character cost 5 µs a URL
    if bad is not None:
        raise InvalidUrl(f"control character or space {bad.group()!r} in URL")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidUrl(f"unparseable URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"'{scheme}:'" if scheme else "none"
        raise InvalidUrl(f"scheme {shown} is not http or https")
    host = _checked_host(parts)
    try:
        port = parts.port
    except ValueError:
        raise InvalidUrl("port is not a number from 0 to 65535") from None
    if port == 0:
        raise InvalidUrl("port 0 cannot be connected to")
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _checked_host(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if not host:
        raise InvalidUrl("no host in URL")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise InvalidUrl(f"invalid IPv6 address {host!r}") from None
        return host
    label_chars = set("abcdefghijklmnopqrstuvwxyz0123456789-._")
    if host.isascii():
        if not set(host) <= label_chars or ".." in host or host.startswith("."):
            raise InvalidUrl(f"invalid host name {shorten(host, 60)!r}")
        return host
    try:
        host.encode("idna")
    except UnicodeError:
        raise InvalidUrl(f"invalid international host name {shorten(host, 60)!r}") from None
    return host


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for records and logs."""
    if "@" not in url:  # no userinfo possible; the common case, called per URL per record
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    userinfo, at, hostport = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostport}{rest[authority_end:]}"


def strip_userinfo(url: str) -> str:
    """The URL without `user:password@`: what links on its page are resolved against, so
    that they do not inherit the listed URL's credentials."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:authority_end].rpartition("@")
    if not sep or not at:
        return url
    return f"{scheme}://{hostport}{rest[authority_end:]}"


# `scheme://user:password@` anywhere in a text (a link, a field, a page's own words).
_PASSWORD_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/?#@:]*):[^\s/?#@]*@")


def mask_passwords(value: Any) -> Any:
    """`value` (a string, or lists and dicts of them, as a record's fields) with every
    password of a URL in it shown as `***`."""
    if isinstance(value, str):
        return _PASSWORD_IN_TEXT.sub(r"\1:***@", value) if "@" in value else value
    if isinstance(value, list):
        return [mask_passwords(item) for item in value]
    if isinstance(value, dict):
        return {key: mask_passwords(item) for key, item in value.items()}
    return value


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """Printable and at most `limit` characters: control characters escaped, end elided."""
    if len(text) <= limit and text.isprintable():
        return text  # the usual case, in C
    printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"


def host_key(url: str) -> str:
    """What politeness limits count by: scheme, host and port (`https://example.com:443`)."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return _host_key(scheme, rest[:end])


@functools.lru_cache(maxsize=4096)
def _host_key(scheme: str, authority: str) -> str:
    # Cached by authority: a run asks three times per URL, mostly of the same few hosts.
    parts = urlsplit(f"{scheme}://{authority}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def state_key(task: UrlTask) -> str:
    """How the state store names a URL: normalised, password masked."""
    return redact_url(task.normalized_url)
