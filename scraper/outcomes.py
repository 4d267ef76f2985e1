"""The record each URL line ends with, when it is not a parsed page: failed, unchanged,
skipped, invalid or duplicate; what a record tells the state; how the state names a URL.

Plain functions over data objects, shared by the local pipeline and the cluster client. No
I/O but the one warning line a failed or invalid line gets.
"""

from __future__ import annotations

import logging
from typing import Any

from scraper.politeness import Queued
from scraper.records import (
    DuplicateLine,
    ErrorInfo,
    ErrorKind,
    FetchedPage,
    InvalidLine,
    Outcome,
    PageRecord,
    PageState,
    UrlTask,
    Validators,
)
from scraper.urls import redact_url

log = logging.getLogger(__name__)


def failed_record(
    task: UrlTask, info: ErrorInfo, fields: dict[str, Any], attempts: int
) -> PageRecord:
    log.warning("line %d: %s: %s: %s", task.line_no, task.url, info.kind.value, info.message)
    state = PageState(
        state_key(task),
        Outcome.FAILED.value,
        fields.get("status"),
        f"{info.kind.value}: {info.message}",
        None,
        changed=False,
    )
    return PageRecord(task.line_no, task.url, Outcome.FAILED, fields, info, attempts, state)


def state_key(task: UrlTask) -> str:
    """How the state store names a URL: normalised, password masked."""
    return redact_url(task.normalized_url)


def conditional_headers(known: Validators | None) -> dict[str, str] | None:
    """If-None-Match / If-Modified-Since from what the last run learnt (RFC 9110 §13.1)."""
    if known is None:
        return None
    headers = {}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    return headers or None


def validators_of(page: FetchedPage, known: Validators | None) -> Validators:
    etag = page.headers.get("etag") or (known.etag if known else None)
    modified = page.headers.get("last-modified") or (known.last_modified if known else None)
    return Validators(etag, modified, page.content_hash or (known.content_hash if known else None))


def unchanged_record(task: UrlTask, page: FetchedPage, known: Validators | None) -> PageRecord:
    validators = validators_of(page, known)
    fields = {
        "final_url": page.final_url,
        "status": page.status,
        "content_hash": validators.content_hash,
    }
    state = PageState(
        state_key(task), Outcome.UNCHANGED.value, page.status, None, validators, changed=False
    )
    return PageRecord(task.line_no, task.url, Outcome.UNCHANGED, fields, None, page.attempts, state)


def unfinished_record(queued: Queued) -> PageRecord:
    """The record of a URL still queued when the run stopped."""
    if queued.last_error is None:
        return skipped_record(queued.task)
    # Waiting for a retry: its last failure is its outcome.
    return failed_record(queued.task, queued.last_error, {}, queued.attempt - 1)


def skipped_record(task: UrlTask) -> PageRecord:
    return PageRecord(task.line_no, task.url, Outcome.SKIPPED, {}, None, 0)


def line_record(entry: InvalidLine | DuplicateLine) -> PageRecord:
    if isinstance(entry, InvalidLine):
        log.warning("line %d: invalid: %s", entry.line_no, entry.reason)
        info = ErrorInfo(ErrorKind.INVALID_URL, entry.reason)
        return PageRecord(entry.line_no, entry.text, Outcome.INVALID, {}, info, 0)
    fields = {"duplicate_of": entry.first_line_no}
    return PageRecord(entry.line_no, entry.url, Outcome.DUPLICATE, fields, None, 0)
