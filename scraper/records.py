"""Data objects that cross stage boundaries, and the names that make up the output format.

Everything here is a frozen, slotted dataclass of plain types: it pickles into spawned parse
workers, compares by value in tests and prints well in logs. No sessions, locks or files inside.
The field names, `Outcome` values and `ErrorKind` values are the documented output format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Outcome(str, enum.Enum):
    """What happened to one input line; one record per line that held anything."""

    OK = "ok"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"  # not fetched: the run was interrupted first
    UNCHANGED = "unchanged"  # 304, or the same content as last time: not parsed

    def __str__(self) -> str:
        return self.value


class ErrorKind(str, enum.Enum):
    """Why a page failed. Retry decisions and the record's `error.kind` read this."""

    INVALID_URL = "invalid_url"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"  # the host name does not resolve
    TLS = "tls"  # the TLS handshake failed or the certificate was refused
    PROTOCOL = "protocol"  # the server's response breaks HTTP (malformed headers, say)
    TOO_LARGE = "too_large"
    REDIRECTS = "redirects"
    BAD_SCHEME = "bad_scheme"
    BLOCKED_ADDRESS = "blocked_address"
    HTTP_STATUS = "http_status"
    ROBOTS = "robots"
    DECODE = "decode"
    PARSE = "parse"
    PARSE_TIMEOUT = "parse_timeout"
    EXTRACT = "extract"
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


class _FastPickle:
    """Pickle as (class, field values). The __getstate__ that dataclasses write for slotted
    classes calls fields() on every page: a page's round trip to a worker took 25 µs of
    pickling with it and 14 µs with this (measured)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        names: tuple[str, ...] = self.__slots__
        return type(self), tuple(getattr(self, name) for name in names)


@dataclass(frozen=True, slots=True)
class UrlTask(_FastPickle):
    """One URL line of the list, normalised: what the download stage works on."""

    line_no: int
    url: str  # as given in the list (stripped); shown in the record
    normalized_url: str  # scheme and host lower-cased, default port and fragment removed


@dataclass(frozen=True, slots=True)
class FetchedPage(_FastPickle):
    """Download stage → parse stage: the final response of one URL."""

    task: UrlTask
    final_url: str
    status: int
    headers: dict[str, str]  # names lower-cased; never mutated once built
    body: bytes  # content-decoded, at most max_body_bytes
    attempts: int
    elapsed_s: float
    content_hash: str = ""  # "sha256:<hex>" of body; "" when not computed
    changed: bool = True  # False when the body hashes as it did last run (with --full)
    html_file: str = ""  # where save_html put the body, relative to the output folder


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The `error` part of a record: a kind from `ErrorKind` and a one-line message."""

    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class Validators:
    """What a fetch learnt of a URL, for a conditional request next time."""

    etag: str | None
    last_modified: str | None
    content_hash: str | None
    # Where the URL's last full record is ("<run>/<offset>/<length>" in that run's file,
    # output/previous.py): an unchanged page's record is completed from it.
    record_ref: str | None = None


@dataclass(frozen=True, slots=True)
class PageState:
    """What a finished record tells the state store about its URL (not written out)."""

    url: str  # normalised, password masked
    outcome: str
    status: int | None
    error: str | None
    validators: Validators | None  # None when the fetch failed
    changed: bool
    forget: bool = False  # the validators are of no use (the full record is gone): drop them


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One record per input line: all a sink sees."""

    line_no: int
    url: str
    outcome: Outcome
    fields: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    attempts: int = 0
    state: PageState | None = None  # for the state store; not part of the output
    # An unchanged record's page fields as the JSON-lines text of its last full record, after
    # its "status" (output/previous.py): written as they are, not decoded and encoded again.
    raw_tail: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as written: line, url, outcome, attempts, then fields or error."""
        out: dict[str, Any] = {
            "line": self.line_no,
            "url": self.url,
            "outcome": self.outcome.value,
            "attempts": self.attempts,
        }
        out.update(self.fields)
        if self.error is not None:
            out["error"] = {"kind": self.error.kind.value, "message": self.error.message}
        return out


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """A list line that holds no usable URL; it becomes an `invalid` record."""

    line_no: int
    text: str  # the line, shortened, control characters escaped, credentials masked
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateLine:
    """A URL already seen on an earlier line (after normalising); fetched once only."""

    line_no: int
    url: str
    first_line_no: int
