"""Exception hierarchy; each class carries the exit code cli.main maps it to. Transport errors
are translated to `PageError` in fetch/http.py (the fetch package is the only one that imports
requests/urllib3), so that parse workers never load the HTTP stack."""

from __future__ import annotations

from typing import Any, ClassVar

from scraper.records import ErrorInfo, ErrorKind


class ScraperError(Exception):
    """Base of the scraper's own errors; `exit_code` is what the CLI exits with."""

    exit_code: ClassVar[int] = 1


class PageError(ScraperError):
    """One URL failed: it becomes a record and the run goes on."""

    retryable = True  # False: a retry would meet the same answer (fetch/retry.py is not asked)

    def __init__(self, kind: ErrorKind, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.fields = fields  # what the page gave before it failed (kind `extract`), or None

    def info(self) -> ErrorInfo:
        """The record's `error` part."""
        return ErrorInfo(self.kind, str(self))


class ConfigError(ScraperError):
    """Settings are unusable: exit 2 before any request. The message names file, line and key."""

    exit_code: ClassVar[int] = 2


class Locked(ScraperError):
    """Another run holds the state's lock: exit 75 (EX_TEMPFAIL), try again later."""

    exit_code = 75
