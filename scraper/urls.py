"""URL text rules in one place: parsing and serialising as the WHATWG URL Standard says
(ada-url, a conformant parser: the list's lines, links, <base>, canonical and redirects all
go through it), masking of credentials, what politeness counts as a host (scheme, host,
port) and how the state names a URL. A leaf: the standard library, ada-url and records.py
only; no network I/O.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

import ada_url

from scraper.records import (
    UrlTask,
)

SHOWN_CHARS = 200  # how much of an invalid line the record repeats
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidUrl(ValueError):
    """The text is not an http(s) URL this scraper can fetch; the message says why."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def web_url(text: str, base: str | None = None) -> str | None:
    """`text` (resolved against `base`) parsed and serialised as the WHATWG URL Standard says,
    as browsers do (ada-url): host lower-cased and IDNA-encoded (full-width letters and
    ideographic full stops mapped), IPv4 forms normalised, default port dropped, dot segments
    resolved, backslashes read as slashes, spaces and non-ASCII percent-encoded, tabs and
    newlines removed. None when it is not a valid URL."""
    try:
        return ada_url.join_url(base, text) if base else ada_url.normalize_url(text)
    except ValueError:
        return None


def web_link(base: str, href: str) -> str | None:
    """An http(s) link of a page at `base`, without its fragment (WHATWG rules), or None
    when it is malformed or of another scheme: one bad link never fails a page."""
    url = web_url(href, base)
    if url is None or not url.startswith(("http://", "https://")):
        return None
    return url.partition("#")[0]  # a "#" elsewhere is percent-encoded: this is the fragment


def document_base(final_url: str, base_href: str | None) -> str:
    """A page's base URL: its first <base href> resolved against the page's URL, unless that
    is not a valid URL (then the page's URL, as the HTML standard says)."""
    if not base_href:
        return final_url
    return web_url(base_href.strip(), final_url) or final_url


def normalize_url(text: str) -> str:
    """The URL to fetch and to compare duplicates by, in the WHATWG URL Standard's form
    (web_url) without its fragment; raises InvalidUrl with the reason."""
    bad = _CONTROL.search(text)  # a regex: a generator per character cost 5 µs a URL
    if bad is not None:
        raise InvalidUrl(f"control character {bad.group()!r} in URL")
    scheme = text.partition(":")[0].lower() if ":" in text else ""
    if scheme not in DEFAULT_PORTS or not scheme.isalpha():
        shown = f"'{scheme}:'" if scheme and len(scheme) < 20 else "none"
        raise InvalidUrl(f"scheme {shown} is not http or https")
    url = web_url(text)
    if url is None:
        raise InvalidUrl(_why_invalid(text))
    url = url.partition("#")[0]
    authority = url.split("/", 3)[2].rpartition("@")[2]
    host, _, port = authority.rpartition(":")
    if not host or authority.endswith("]"):  # no port, or an IPv6 address without one
        host, port = authority, ""
    if port == "0":
        raise InvalidUrl("port 0 cannot be connected to")
    if not host.startswith("[") and (".." in host or host.startswith(".")):
        raise InvalidUrl(f"invalid host name {shorten(host, 60)!r}: an empty label")
    return url


def _why_invalid(text: str) -> str:
    """In words, why the WHATWG parser refused `text` (it says only that it did)."""
    rest = text.partition("://")[2] if "://" in text else text.partition(":")[2].lstrip("/\\")
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0].rpartition("@")[2]
    if not authority:
        return "no host in URL"
    if " " in authority:
        return "control character or space ' ' in the host"
    if authority.startswith("["):
        return f"invalid IPv6 address {shorten(authority, 60)!r}"
    host, colon, port = authority.rpartition(":")
    if colon and host and (not port.isdigit() or int(port) > 65535):
        return "port is not a number from 0 to 65535"
    return f"unparseable URL: invalid host {shorten(authority, 60)!r}"


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
