"""The extraction rules as plain frozen data (FieldRule, SiteRule) and the URL matcher of a
site. What a parse worker is sent; config/sites.py builds and checks them from YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field of a site: where to find it and how to clean and type it."""

    name: str
    css: str | None = None  # without a trailing ::text / ::attr(), which set `attr`
    xpath: str | None = None
    attr: str | None = None
    all: bool = False
    required: bool = False
    default: Any = None  # already of the field's type (a tuple when `all`)
    type: str = "string"
    strip: bool | str = True  # True: collapse white space; a string: also strip these characters
    regex: str | None = None
    join: str | None = None
    format: str | None = None  # strptime format for `type: date`
    where: str = ""  # "file:line: site NAME: field NAME", for messages


@dataclass(frozen=True, slots=True)
class FollowRule:
    """Which links of a site's page are queued too: the `href` (or `attr`) of the elements a
    CSS or XPath selector finds (an XPath may select attribute values), or the page's links
    a regex finds (re.search over the absolute URL)."""

    kind: str  # css, xpath or regex
    pattern: str
    attr: str | None = None  # css: from `::attr(name)`; None: href, else src


@dataclass(frozen=True, slots=True)
class SiteRule:
    """A site: which URLs it covers, the fields taken from its pages and the links followed."""

    name: str
    match_kind: str  # glob, host or regex
    pattern: str
    fields: tuple[FieldRule, ...]
    follow: tuple[FollowRule, ...] = ()
    max_depth: int = 1  # links are followed from pages at depth < max_depth
    same_host: bool = True  # follow only links to the page's own host


def url_matcher(kind: str, pattern: str) -> Any:
    """A predicate over URLs.

    glob: the whole URL; `*` matches any run of characters, `/` included, and no other
    character is special (URLs are full of `?` and `[`). host: the URL's host, exactly, or any
    subdomain with `*.example.com`; the port is ignored. regex: re.search over the URL.
    """
    if kind == "regex":
        return re.compile(pattern).search
    if kind == "glob":
        parts = (re.escape(part) for part in pattern.split("*"))
        return re.compile(".*".join(parts) + r"\Z", re.DOTALL).match
    wanted = pattern.lower()

    def host_matches(url: str) -> bool:
        host = _host_of(url)
        if wanted.startswith("*."):
            return host.endswith(wanted[1:]) or host == wanted[2:]
        return host == wanted

    return host_matches


def _host_of(url: str) -> str:
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if authority.startswith("["):
        return authority.partition("]")[0] + "]"
    return authority.partition(":")[0].lower()
