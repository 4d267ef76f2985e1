"""Run state in sqlite3, beside the records: the run lock, per-URL validators (ETag,
Last-Modified, content hash) for incremental runs, and the history of runs.

One connection, shared by the download threads (lookups) and the main thread (updates) under
a lock; updates are batched into a transaction a second. Knows nothing of HTTP or parsing.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from scraper.errors import Locked
from scraper.records import PageState, Validators

COMMIT_EVERY_S = 1.0
BATCH_ROWS = 1000
SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,         -- normalised, password masked
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT,
    last_status INTEGER,
    last_outcome TEXT,
    last_error TEXT,
    fetched_at REAL,              -- unix time of the last fetch
    changed_at REAL,              -- unix time the content last changed
    failures INTEGER NOT NULL DEFAULT 0,  -- failed runs in a row
    record_ref TEXT               -- "<run>/<offset>/<length>": its last full record
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    list TEXT,
    started_at TEXT,
    ended_at TEXT,
    exit_code INTEGER,
    summary TEXT                  -- the run's summary JSON, once it ended
);
"""


class RunLock:
    """An OS file lock (flock): released by the kernel when the process dies, so a killed run
    never leaves a stale lock behind, unlike a pid file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to `wait_s`; raises Locked."""
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the whole run)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    handle.close()
                    raise Locked(
                        f"{self.path}: another scrape run holds this state "
                        f"(pid {holder}); try later or use --wait-lock"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


# The last fetch's time when it gave the page (a failure since says nothing of its content).
OK_FETCHED_AT = "CASE WHEN last_outcome IN ('ok', 'unchanged') THEN fetched_at END"
LOOKUP_CHUNK = 500  # URLs per IN (...) query; SQLite allows 32766 variables since 3.32


class StateStore:
    """The state database; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pages)")}
        if "record_ref" not in columns:  # a state from before complete unchanged records
            self._db.execute("ALTER TABLE pages ADD COLUMN record_ref TEXT")
        self._in_transaction = False
        self._pending: list[PageState] = []
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._pending_at = 0.0
        # A first run's lookups all miss: skip them (0.07 ms of main-process CPU a page).
        self._has_pages = self._db.execute("SELECT 1 FROM pages LIMIT 1").fetchone() is not None

    def lookup(self, url: str) -> Validators | None:
        """The validators stored for `url`, if it was fetched before."""
        if not self._has_pages:
            return None
        row = (
            self._reader()
            .execute(
                f"SELECT etag, last_modified, content_hash, record_ref, {OK_FETCHED_AT}"
                " FROM pages WHERE url = ?",
                (url,),
            )
            .fetchone()
        )
        return Validators(*row) if row else None

    def lookup_many(self, urls: list[str]) -> dict[str, Validators]:
        """The stored validators of those of `urls` fetched before, by URL; one query per
        LOOKUP_CHUNK URLs instead of one per URL (each query hands the GIL away twice)."""
        if not self._has_pages or not urls:
            return {}
        found: dict[str, Validators] = {}
        for start in range(0, len(urls), LOOKUP_CHUNK):
            chunk = urls[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = (
                self._reader()
                .execute(
                    "SELECT url, etag, last_modified, content_hash, record_ref, "
                    f"{OK_FETCHED_AT} FROM pages "
                    f"WHERE url IN ({marks})",
                    chunk,
                )
                .fetchall()
            )
            found.update((row[0], Validators(*row[1:])) for row in rows)
        return found

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection. WAL lets readers work while the writer commits;
        one shared connection behind a lock made every download thread wait for each batch
        (profiled: most of a re-run's wall time)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)  # closed by close()
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def update(self, page: PageState, now: float) -> None:
        """Note what a finished record says of its URL; stored by commit_due() (or close()).

        The caller commits only after the records are flushed to the run's file: the state
        never knows of a page the file lacks, which --resume relies on."""
        with self._lock:
            if not self._pending:
                self._pending_at = now
            self._pending.append(page)

    def commit_due(self, now: float) -> None:
        """Store the noted pages when a second has passed or BATCH_ROWS wait (one executemany
        per batch instead of a statement per page)."""
        with self._lock:
            if self._pending and (
                now - self._pending_at > COMMIT_EVERY_S or len(self._pending) >= BATCH_ROWS
            ):
                self._write_pending(now)

    def _write_pending(self, now: float) -> None:
        pages, self._pending = self._pending, []
        forgotten = [(p.url,) for p in pages if p.forget]
        # Not requested (sitemap lastmod): the last fetch's time stays, only the record moved.
        moved = [
            (p.validators.record_ref, p.url)
            for p in pages
            if not p.fetched and p.validators is not None and p.validators.record_ref
        ]
        pages = [p for p in pages if p.fetched]
        fetched = [p for p in pages if p.validators is not None]
        failed = [p for p in pages if p.validators is None]
        self._begin()
        if moved:
            self._db.executemany("UPDATE pages SET record_ref = ? WHERE url = ?", moved)
        self._db.executemany(
            "INSERT INTO pages (url, etag, last_modified, content_hash, last_status,"
            " last_outcome, last_error, fetched_at, changed_at, failures, record_ref)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, 0, ?)"
            " ON CONFLICT(url) DO UPDATE SET etag = coalesce(excluded.etag, etag),"
            " last_modified = coalesce(excluded.last_modified, last_modified),"
            " content_hash = coalesce(excluded.content_hash, content_hash),"
            " record_ref = coalesce(excluded.record_ref, record_ref),"
            " last_status = excluded.last_status, last_outcome = excluded.last_outcome,"
            " last_error = NULL, fetched_at = excluded.fetched_at,"
            " changed_at = CASE WHEN ? THEN excluded.fetched_at ELSE changed_at END,"
            " failures = 0",
            [_fetched_row(p, now) for p in fetched],
        )
        self._db.executemany(
            "INSERT INTO pages (url, last_status, last_outcome, last_error, fetched_at,"
            " failures) VALUES (?, ?, ?, ?, ?, 1)"
            " ON CONFLICT(url) DO UPDATE SET last_status = excluded.last_status,"
            " last_outcome = excluded.last_outcome, last_error = excluded.last_error,"
            " fetched_at = excluded.fetched_at, failures = failures + 1",
            [(p.url, p.status, p.outcome, p.error, now) for p in failed],
        )
        if forgotten:  # the next run fetches these in full
            self._db.executemany(
                "UPDATE pages SET etag = NULL, last_modified = NULL, content_hash = NULL,"
                " record_ref = NULL WHERE url = ?",
                forgotten,
            )
        self._commit()

    def referenced_runs(self) -> set[str]:
        """The runs whose files hold some URL's last full record (retention keeps them)."""
        with self._lock:
            self._write_pending(time.time())
            rows = self._db.execute(
                "SELECT DISTINCT substr(record_ref, 1, instr(record_ref, '/') - 1) FROM pages"
                " WHERE record_ref IS NOT NULL"
            ).fetchall()
        return {row[0] for row in rows}

    def begin_run(self, run: str, list_name: str, started_at: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO runs (run, list, started_at) VALUES (?, ?, ?)",
                (run, list_name, started_at),
            )

    def end_run(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self._write_pending(time.time())
            self._db.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, summary = ? WHERE run = ?",
                (summary["ended_at"], summary["exit_code"], json.dumps(summary), summary["run"]),
            )

    def unfinished_run(self) -> tuple[str, str] | None:
        """(run, list) of the newest run that never ended (killed), if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT run, list FROM runs WHERE ended_at IS NULL ORDER BY run DESC LIMIT 1"
            ).fetchone()
        return (row[0], row[1]) if row else None

    def interrupted_run(self) -> tuple[str, str] | None:
        """(run, list) of the newest run when it ended early (Ctrl-C, SIGTERM, time limit):
        its skipped lines are still to be fetched."""
        with self._lock:
            row = self._db.execute(
                "SELECT run, list, summary FROM runs WHERE ended_at IS NOT NULL"
                " AND ended_at != 'abandoned' ORDER BY run DESC LIMIT 1"
            ).fetchone()
        if row is None or not row[2] or not json.loads(row[2]).get("interrupted"):
            return None
        return row[0], row[1]

    def reopen_run(self, run: str) -> None:
        """The interrupted `run` goes on (--resume): unfinished until it ends again."""
        with self._lock:
            self._db.execute(
                "UPDATE runs SET ended_at = NULL, exit_code = NULL, summary = NULL WHERE run = ?",
                (run,),
            )
            self._db.commit()

    def abandon_unfinished(self) -> None:
        """Mark killed runs as over, so a later --resume does not pick them up."""
        with self._lock:
            self._db.execute("UPDATE runs SET ended_at = 'abandoned' WHERE ended_at IS NULL")

    def history(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run, list, started_at, ended_at, exit_code, summary FROM runs"
                " ORDER BY run DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "run": r[0],
                "list": r[1],
                "started_at": r[2],
                "ended_at": r[3],
                "exit_code": r[4],
                "summary": json.loads(r[5]) if r[5] else None,
            }
            for r in rows
        ]

    def failing(self, min_failures: int, limit: int) -> list[dict[str, Any]]:
        """URLs that failed in at least `min_failures` runs in a row, worst first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT url, failures, last_status, last_error, fetched_at FROM pages"
                " WHERE failures >= ? ORDER BY failures DESC, url LIMIT ?",
                (min_failures, limit),
            ).fetchall()
        return [
            {
                "url": r[0],
                "failures": r[1],
                "last_status": r[2],
                "last_error": r[3],
                "fetched_at": r[4],
            }
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._pending:
                self._write_pending(time.time())
            self._commit()
            self._db.close()
            for reader in self._readers:
                reader.close()

    def _begin(self) -> None:
        if not self._in_transaction:
            self._db.execute("BEGIN")
            self._in_transaction = True

    def _commit(self) -> None:
        if self._in_transaction:
            self._db.execute("COMMIT")
            self._in_transaction = False


def _fetched_row(page: PageState, now: float) -> tuple[Any, ...]:
    v = page.validators
    assert v is not None
    return (
        page.url,
        v.etag,
        v.last_modified,
        v.content_hash,
        page.status,
        page.outcome,
        now,
        now,
        v.record_ref,
        page.changed,
    )
