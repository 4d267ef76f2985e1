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


# The common shapes, without ada: an absolute http(s) URL, or a root-relative path, already
# in the form the WHATWG URL Standard writes it. ada-url calls go through cffi, which releases
# the GIL for each: among 32 busy threads every release is a hand-off (parsing in threads went
# from 4 to 9.5 ms a page). These are recognised in Python and returned as they are; anything
# else (upper case, IDN, IPv4 forms, ports with zeros, dot segments, characters the standard
# encodes) goes to ada. tests/unit/test_urls.py checks them against ada on generated URLs.
_PATH = r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*"
_QUERY = r"(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*)?"
_HOST = r"[a-z0-9]+(?:-+[a-z0-9]+)*(?:\.[a-z0-9]+(?:-+[a-z0-9]+)*)*"
_SIMPLE_ABSOLUTE = re.compile(rf"(https?)://({_HOST})(?::([1-9][0-9]{{0,4}}))?({_PATH}){_QUERY}")
_SIMPLE_ROOTED = re.compile(rf"(?!//)({_PATH}){_QUERY}")
_SIMPLE_RELATIVE = re.compile(
    rf"(?![/?])([A-Za-z0-9\-._~!$&'()*+,;=@%][A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?({_QUERY})"
)
_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_HEX = frozenset("0123456789abcdef")


def _simple_absolute(text: str) -> bool:
    """`text` (no fragment) is an http(s) URL the WHATWG serialisation leaves as it is."""
    match = _SIMPLE_ABSOLUTE.fullmatch(text)
    if match is None:
        return False
    scheme, host, port, path = match.groups()
    last = host.rpartition(".")[2]
    if last.isdigit() and not _canonical_ipv4(host):
        return False  # an IPv4 address in another notation (0300.0250.0.1, 127.1)
    if (last.startswith("0x") and set(last[2:]) <= _HEX) or "xn--" in host:
        return False  # a hexadecimal IPv4 part, or an IDNA label to validate
    if port is not None and (int(port) > 65535 or int(port) == DEFAULT_PORTS[scheme]):
        return False
    return "/." not in path and "%2e" not in path.lower()  # no dot segment


def _canonical_ipv4(host: str) -> bool:
    """Four decimal numbers 0-255 without leading zeros: as the standard writes IPv4."""
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and str(int(p)) == p and int(p) < 256 for p in parts)


def _simple_rooted(href: str) -> bool:
    """`href` (no fragment) is a path from the root the serialisation leaves as it is."""
    match = _SIMPLE_ROOTED.fullmatch(href)
    return match is not None and "/." not in match.group(1) and "%2e" not in match.group(1).lower()


def other_scheme(href: str) -> bool:
    """`href` starts with a scheme that is not http(s) (mailto:, javascript:, tel:...)."""
    found = _OTHER_SCHEME.match(href.strip(_STRIPPED))
    return found is not None and found.group().lower() not in ("http:", "https:")


def _resolve_dots(path: str) -> str:
    """The standard's path parsing of an already simple path: "." and ".." segments."""
    parts = path.split("/")[1:]
    out: list[str] = []
    for n, segment in enumerate(parts):
        last = n == len(parts) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _simple_relative(base: str, href: str) -> str | None:
    """`href` (no fragment; a path without a leading slash, or "?query") resolved against a
    simple `base`, when both are of the simple shapes; else None (ada decides)."""
    match = _SIMPLE_RELATIVE.fullmatch(href)
    origin = _origin_of(base)
    if match is None or not origin or "%2e" in href.lower():
        return None
    path, query = match.group(1) or "", match.group(2)
    base_path = base.partition("#")[0][len(origin) :].partition("?")[0]
    if not path:  # "?query": the base's path with this query
        return origin + base_path + query
    return origin + _resolve_dots(base_path[: base_path.rfind("/") + 1] + path) + query


@functools.lru_cache(maxsize=64)
def _origin_of(base: str) -> str:
    """`scheme://host[:port]` of `base` when it is a simple one (_simple_absolute), else ""
    (ada resolves against it then)."""
    if not _simple_absolute(base.partition("#")[0]):
        return ""
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{re.split(r'[/?#]', rest, maxsplit=1)[0]}"


_STRIPPED = "".join(map(chr, range(0x21)))  # what the standard strips: C0 controls, space


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
    stripped = href.strip(_STRIPPED)
    if "\t" not in stripped and "\n" not in stripped and "\r" not in stripped:
        before = stripped.partition("#")[0]
        if _simple_absolute(before):
            return before
        if before.startswith("/") and _simple_rooted(before):
            origin = _origin_of(base)
            if origin:
                return origin + before
        if not before and _origin_of(base):
            return base.partition("#")[0]  # "", "#frag": the page itself
        other = _OTHER_SCHEME.match(before)
        if other is not None and other.group().lower() not in ("http:", "https:"):
            return None  # mailto:, javascript:, tel:... a URL, not an http(s) link
        if other is None:
            relative = _simple_relative(base, before)
            if relative is not None:
                return relative
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
    before = text.partition("#")[0]
    if _simple_absolute(before):
        return before  # already in the standard's form (the usual list line)
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
