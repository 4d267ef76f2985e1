"""Every record a URL line can end with: parsed, failed, unchanged, skipped, invalid or
duplicate, and what each record tells the state.

Plain functions over data objects, shared by the local pipeline and the cluster client. No
I/O but the one warning line a failed or invalid line gets.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from typing import Any

from scraper.records import (
    DuplicateLine,
    ErrorInfo,
    ErrorKind,
    FetchedPage,
    Found,
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
    if task.kind == "page":  # a sitemap's failure is said by pipeline/discovery.py
        log.warning("%s: %s: %s", task.where(), info.kind.value, info.message)
    fields = mask_passwords(fields)  # final_url: the URL as fetched, credentials and all
    state = PageState(
        state_key(task),
        Outcome.FAILED.value,
        fields.get("status"),
        f"{info.kind.value}: {info.message}",
        None,
        changed=False,
    )
    return _record(task, Outcome.FAILED, fields, info, attempts, state)


def _record(
    task: UrlTask,
    outcome: Outcome,
    fields: dict[str, Any],
    error: ErrorInfo | None,
    attempts: int,
    state: PageState | None,
    found: Found | None = None,
) -> PageRecord:
    """A URL's record; a discovered URL's says where it was found and how deep."""
    return PageRecord(
        task.line_no,
        task.url,
        outcome,
        fields,
        error,
        attempts,
        state,
        found_on=task.found_on,
        depth=task.depth,
        found=found,
    )


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
    return _record(task, Outcome.UNCHANGED, fields, None, page.attempts, state)


def lastmod_record(task: UrlTask, known: Validators) -> PageRecord:
    """A sitemap URL not requested: its <lastmod> is not newer than its last fetch. Its
    fields come from its last full record (run.py completes it); the state keeps the time of
    the last real fetch, which the next lastmod is compared with."""
    assert task.lastmod is not None and known.fetched_at is not None
    reason = (
        f"not requested: sitemap lastmod {_utc(task.lastmod)} is not newer than the last "
        f"fetch, {_utc(known.fetched_at)}"
    )
    fields = {"reason": reason, "content_hash": known.content_hash}
    state = PageState(
        state_key(task), Outcome.UNCHANGED.value, None, None, known, changed=False, fetched=False
    )
    return _record(task, Outcome.UNCHANGED, fields, None, 0, state)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def unfinished_record(task: UrlTask, last_error: ErrorInfo | None, attempt: int) -> PageRecord:
    """The record of a URL still queued (for attempt `attempt`) when the run stopped."""
    if last_error is None:
        return skipped_record(task)
    # Waiting for a retry: its last failure is its outcome.
    return failed_record(task, last_error, {}, attempt - 1)


def parsed_record(
    page: FetchedPage, fields: dict[str, Any], found: Found | None = None
) -> PageRecord:
    """The record of a page the parse stage read; `found`: what it gives the frontier."""
    validators = dataclasses.replace(
        validators_of(page, None), content_hash=fields.get("content_hash")
    )
    state = PageState(
        state_key(page.task), Outcome.OK.value, page.status, None, validators, changed=page.changed
    )
    return _record(page.task, Outcome.OK, fields, None, page.attempts, state, found)


def found_first_record(task: UrlTask) -> PageRecord:
    """A list line whose URL a link or sitemap of this run got to first: fetched once."""
    fields = {"duplicate_of": None, "reason": "found by a link or sitemap first"}
    return _record(task, Outcome.DUPLICATE, fields, None, 0, None)


def skipped_record(task: UrlTask, reason: str | None = None) -> PageRecord:
    """Not fetched (the run stopped first), or cut: `reason` says why when it was in flight."""
    fields = {"reason": reason} if reason else {}
    return _record(task, Outcome.SKIPPED, fields, None, 0, None)


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
