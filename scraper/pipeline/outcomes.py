"""Every record a URL line can end with: parsed, failed, unchanged, skipped, invalid or
duplicate, and what each record tells the state.

Plain functions over data objects, shared by the local pipeline and the cluster client. No
I/O but the one warning line a failed or invalid line gets.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

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
from scraper.urls import mask_passwords, redact_url, state_key

log = logging.getLogger(__name__)


def failed_record(
    task: UrlTask, info: ErrorInfo, fields: dict[str, Any], attempts: int
) -> PageRecord:
    log.warning("line %d: %s: %s: %s", task.line_no, task.url, info.kind.value, info.message)
    fields = mask_passwords(fields)  # final_url: the URL as fetched, credentials and all
    state = PageState(
        state_key(task),
        Outcome.FAILED.value,
        fields.get("status"),
        f"{info.kind.value}: {info.message}",
        None,
        changed=False,
    )
    return PageRecord(task.line_no, task.url, Outcome.FAILED, fields, info, attempts, state)


def validators_of(page: FetchedPage, known: Validators | None) -> Validators:
    etag = page.headers.get("etag") or (known.etag if known else None)
    modified = page.headers.get("last-modified") or (known.last_modified if known else None)
    content_hash = page.content_hash or (known.content_hash if known else None)
    return Validators(etag, modified, content_hash, known.record_ref if known else None)


def unchanged_record(task: UrlTask, page: FetchedPage, known: Validators | None) -> PageRecord:
    validators = validators_of(page, known)
    fields = {
        "final_url": redact_url(page.final_url),
        "status": page.status,
        "content_hash": validators.content_hash,
    }
    state = PageState(
        state_key(task), Outcome.UNCHANGED.value, page.status, None, validators, changed=False
    )
    return PageRecord(task.line_no, task.url, Outcome.UNCHANGED, fields, None, page.attempts, state)


def unfinished_record(task: UrlTask, last_error: ErrorInfo | None, attempt: int) -> PageRecord:
    """The record of a URL still queued (for attempt `attempt`) when the run stopped."""
    if last_error is None:
        return skipped_record(task)
    # Waiting for a retry: its last failure is its outcome.
    return failed_record(task, last_error, {}, attempt - 1)


def parsed_record(page: FetchedPage, fields: dict[str, Any]) -> PageRecord:
    """The record of a page the parse stage read."""
    validators = dataclasses.replace(
        validators_of(page, None), content_hash=fields.get("content_hash")
    )
    state = PageState(
        state_key(page.task), Outcome.OK.value, page.status, None, validators, changed=page.changed
    )
    return PageRecord(
        page.task.line_no, page.task.url, Outcome.OK, fields, None, page.attempts, state
    )


def skipped_record(task: UrlTask, reason: str | None = None) -> PageRecord:
    """Not fetched (the run stopped first), or cut: `reason` says why when it was in flight."""
    fields = {"reason": reason} if reason else {}
    return PageRecord(task.line_no, task.url, Outcome.SKIPPED, fields, None, 0)


def unread_record(line_no: int, text: str) -> PageRecord:
    """A line the run stopped before reading as a URL (--resume reads it)."""
    return PageRecord(line_no, text, Outcome.SKIPPED, {}, None, 0)


def line_record(entry: InvalidLine | DuplicateLine) -> PageRecord:
    if isinstance(entry, InvalidLine):
        log.warning("line %d: invalid: %s", entry.line_no, entry.reason)
        info = ErrorInfo(ErrorKind.INVALID_URL, entry.reason)
        return PageRecord(entry.line_no, entry.text, Outcome.INVALID, {}, info, 0)
    fields = {"duplicate_of": entry.first_line_no}
    return PageRecord(entry.line_no, entry.url, Outcome.DUPLICATE, fields, None, 0)
