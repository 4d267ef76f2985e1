"""The run (lock, state, sink, summary, exit code) with a canned engine: no threads, no
sockets. What the local pipeline and the Dask client have in common is tested once here."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scraper.config.settings import Settings
from scraper.errors import ConfigError, Locked
from scraper.exit_codes import ExitCode
from scraper.pipeline.base import MakeEngine, RunCounts, RunEvents, Source, ValidatorSource
from scraper.pipeline.outcomes import failed_record, skipped_record
from scraper.records import (
    ErrorInfo,
    ErrorKind,
    Outcome,
    PageRecord,
    PageState,
    UrlTask,
    Validators,
)
from scraper.run import RunOptions, scrape
from scraper.state import RunLock, StateStore
from scraper.urls import state_key


def ok(line: int) -> PageRecord:
    url = f"http://127.0.0.1/{line}"
    validators = Validators(None, None, f"sha256:{line}")
    state = PageState(state_key(UrlTask(line, url, url)), "ok", 200, None, validators, True)
    fields = {"final_url": url, "status": 200, "title": f"page {line}", "body_bytes": 10}
    return PageRecord(line, url, Outcome.OK, fields, None, 1, state)


def failed(line: int) -> PageRecord:
    url = f"http://127.0.0.1/{line}"
    info = ErrorInfo(ErrorKind.TIMEOUT, "read timed out")
    return failed_record(UrlTask(line, url, url), info, {}, 3)


class CannedEngine:
    """An Engine that writes the records it was given, as the pipeline would."""

    def __init__(
        self,
        records: list[PageRecord],
        events: RunEvents,
        skip_lines: frozenset[int],
        on_run: Callable[[RunEvents, RunCounts], None] = lambda events, counts: None,
    ) -> None:
        self.records, self.events, self.on_run = records, events, on_run
        self.skip_lines = skip_lines
        self.counts = RunCounts(datetime.now(timezone.utc), time.monotonic())
        self.lines_read = b""

    def run(
        self,
        lines: Source,
        write: Callable[[PageRecord], None],
        grace_s: float = 10.0,
        flush: Callable[[], None] = lambda: None,
    ) -> RunCounts:
        assert hasattr(lines, "read")
        self.lines_read = lines.read()  # type: ignore[union-attr]
        for record in self.records:
            if record.line_no not in self.skip_lines:
                write(record)
                self.counts.add(record)
        self.on_run(self.events, self.counts)
        flush()
        self.counts.ended = time.monotonic()
        return self.counts


def canned(
    records: list[PageRecord],
    seen: list[CannedEngine] | None = None,
    on_run: Callable[[RunEvents, RunCounts], None] = lambda events, counts: None,
) -> MakeEngine:
    def make(
        events: RunEvents,
        state: ValidatorSource | None,
        incremental: bool,
        skip: frozenset[int],
        frontier: object = None,
    ) -> CannedEngine:
        engine = CannedEngine(records, events, skip, on_run)
        if seen is not None:
            seen.append(engine)
        return engine

    return make


PLAIN = RunOptions()


def run(
    tmp_path: Path, engine: MakeEngine, options: RunOptions = PLAIN, **settings: object
) -> tuple[ExitCode, str]:
    err = io.StringIO()
    config = Settings(output_dir=str(tmp_path / "out"), **settings)  # type: ignore[arg-type]
    lines = io.BytesIO(b"http://127.0.0.1/1\n")
    code = scrape(config, lines, "urls.txt", err, False, options, make_engine=engine)
    return code, err.getvalue()


def records_of(tmp_path: Path) -> list[dict[str, object]]:
    text = (tmp_path / "out" / "latest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def summary_of(tmp_path: Path) -> dict[str, object]:
    (path,) = (tmp_path / "out").glob("*.summary.json")
    summary: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return summary


def test_every_record_is_written_and_summarised(tmp_path: Path) -> None:
    seen: list[CannedEngine] = []
    code, err = run(tmp_path, canned([ok(1), ok(2), failed(3)], seen), max_failure_ratio=0.5)
    assert code is ExitCode.OK
    assert seen[0].lines_read == b"http://127.0.0.1/1\n"  # the engine got the list itself
    assert [r["line"] for r in records_of(tmp_path)] == [1, 2, 3]
    assert records_of(tmp_path)[2]["error"] == {"kind": "timeout", "message": "read timed out"}
    summary = summary_of(tmp_path)
    assert summary["records"] == 3 and summary["exit_code"] == 0
    assert summary["counts"] == {
        "ok": 2,
        "unchanged": 0,
        "failed": 1,
        "invalid": 0,
        "duplicate": 0,
        "skipped": 0,
    }
    assert "3 records (2 ok, 1 failed)" in err


def test_failures_past_the_ratio_exit_1(tmp_path: Path) -> None:
    code, _ = run(tmp_path, canned([ok(1), failed(2)]))
    assert code is ExitCode.FAILED
    assert summary_of(tmp_path)["exit_code"] == 1


def test_the_state_learns_of_the_run_and_its_pages(tmp_path: Path) -> None:
    run(tmp_path, canned([ok(1), failed(2)]))
    store = StateStore(tmp_path / "out" / "state.sqlite")
    try:
        (history,) = store.history(5)
        assert history["list"] == "urls.txt" and history["exit_code"] == 1
        assert [row["url"] for row in store.failing(1, 5)] == ["http://127.0.0.1/2"]
    finally:
        store.close()


def test_an_interrupted_engine_gives_130_and_a_finished_file(tmp_path: Path) -> None:
    def interrupt(events: RunEvents, counts: RunCounts) -> None:
        counts.interrupted = True

    code, _ = run(tmp_path, canned([ok(1), skipped_record(UrlTask(2, "u", "u"))], None, interrupt))
    assert code is ExitCode.INTERRUPTED
    assert summary_of(tmp_path)["interrupted"] is True
    assert len(records_of(tmp_path)) == 2


def test_an_aborted_engine_leaves_the_part_file_for_resume(tmp_path: Path) -> None:
    def abort(events: RunEvents, counts: RunCounts) -> None:
        counts.aborted = counts.interrupted = True

    code, err = run(tmp_path, canned([ok(1)], None, abort))
    assert code is ExitCode.INTERRUPTED
    assert "scrape --resume finishes the run" in err
    assert list((tmp_path / "out").glob("*.jsonl.part"))
    assert not list((tmp_path / "out").glob("*.summary.json"))
    # --resume passes over the lines the killed run recorded, and appends the rest
    seen: list[CannedEngine] = []
    code, _ = run(tmp_path, canned([ok(1), ok(2)], seen), RunOptions(resume=True))
    assert code is ExitCode.OK
    assert seen[0].skip_lines == frozenset({1})
    assert [r["line"] for r in records_of(tmp_path)] == [1, 2]


def test_changed_only_writes_no_unchanged_record_but_counts_it(tmp_path: Path) -> None:
    unchanged = PageRecord(2, "http://127.0.0.1/2", Outcome.UNCHANGED, {}, None, 1)
    run(tmp_path, canned([ok(1), unchanged]), changed_only=True)
    assert [r["line"] for r in records_of(tmp_path)] == [1]
    assert summary_of(tmp_path)["records"] == 2


def test_a_held_lock_raises_locked_before_the_engine_is_built(tmp_path: Path) -> None:
    run(tmp_path, canned([ok(1)]))  # the output folder and its state exist
    lock = RunLock(tmp_path / "out" / "state.sqlite.lock")
    lock.acquire()
    seen: list[CannedEngine] = []
    try:
        with pytest.raises(Locked):
            run(tmp_path, canned([ok(1)], seen))
    finally:
        lock.release()
    assert not seen
    assert Locked.exit_code == ExitCode.LOCKED


def test_resume_without_an_unfinished_run_is_a_config_error(tmp_path: Path) -> None:
    seen: list[CannedEngine] = []
    with pytest.raises(ConfigError, match="no unfinished or interrupted run"):
        run(tmp_path, canned([ok(1)], seen), RunOptions(resume=True))
    assert not seen
    assert ConfigError.exit_code == ExitCode.USAGE
