"""A run's files beyond the records: the summary, the Prometheus metrics file, retention of old
runs, and reading back a killed run's records to resume it. Touches only files it can tell
scrape wrote (run names like 20261126T161320Z)."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scraper.pipeline import RunCounts

RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z(?:-\d{3})?)\.(jsonl|csv|summary\.json)$")
OUTCOMES = ("ok", "unchanged", "failed", "invalid", "duplicate", "skipped")


def run_summary(counts: RunCounts, code: int, run_id: str, list_name: str) -> dict[str, Any]:
    """The machine-readable summary written beside the records and printed at the end."""
    elapsed = counts.ended - counts.started
    active = elapsed - (counts.first_request_s or 0.0)
    return {
        "run": run_id,
        "list": list_name,
        "started_at": counts.started_at.isoformat(timespec="seconds"),
        "ended_at": (counts.started_at + timedelta(seconds=elapsed)).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 3),
        "records": counts.records,
        "counts": {name: counts.by_outcome[name] for name in OUTCOMES},
        "changed": counts.changed,
        "failed_by_kind": dict(counts.failed_by_kind),
        "pages_per_s": round(counts.fetched / active, 2) if active > 0 else 0.0,
        "body_bytes": counts.body_bytes,
        "first_request_s": counts.first_request_s,
        "parse_workers_replaced": counts.workers_replaced,
        "resumed": counts.resumed,
        "resumed_records": counts.resumed_records,
        "interrupted": counts.interrupted,
        "exit_code": int(code),
    } | ({"cluster_start_s": round(counts.cluster_start_s, 3)} if counts.cluster_start_s else {})


def write_metrics(path: Path, summary: dict[str, Any], start_ts: float, end_ts: float) -> None:
    """The run's figures in Prometheus text format, written atomically (temp file + rename),
    as node_exporter's textfile collector expects."""
    lines = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP scrape_{name} {help_text}")
        lines.append(f"# TYPE scrape_{name} gauge")
        lines.extend(f"scrape_{name}{labels} {value:g}" for labels, value in samples)

    metric("last_run_start_timestamp_seconds", "When the last run started.", [("", start_ts)])
    metric("last_run_end_timestamp_seconds", "When the last run ended.", [("", end_ts)])
    metric(
        "last_run_success",
        "1 if the last run exited 0.",
        [("", 1.0 if summary["exit_code"] == 0 else 0.0)],
    )
    metric("last_run_exit_code", "Exit status of the last run.", [("", summary["exit_code"])])
    metric(
        "last_run_records",
        "Records of the last run, by outcome.",
        [(f'{{outcome="{name}"}}', n) for name, n in summary["counts"].items()],
    )
    metric(
        "last_run_changed_pages",
        "New or changed pages in the last run.",
        [("", summary["changed"])],
    )
    metric(
        "last_run_pages_per_second",
        "Pages per second from the first request.",
        [("", summary["pages_per_s"])],
    )
    metric(
        "last_run_duration_seconds", "Elapsed time of the last run.", [("", summary["elapsed_s"])]
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def prune_runs(folder: Path, keep: int, current: str) -> list[Path]:
    """Delete the files of all but the newest `keep` runs (never `current`); returns them."""
    runs: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        match = RUN_NAME.match(path.name)
        if match and path.is_file() and not path.is_symlink():
            runs.setdefault(match.group(1), []).append(path)
    doomed = [run for run in sorted(runs, reverse=True)[keep:] if run != current]
    removed = []
    for run in doomed:
        for path in runs[run]:
            path.unlink()
            removed.append(path)
    return removed


@dataclass
class Resumed:
    """What a killed run's partial record file already holds."""

    lines: set[int] = field(default_factory=set)
    by_outcome: dict[str, int] = field(default_factory=dict)
    active: bool = True  # False: a new run, nothing resumed


def read_partial(path: Path, fmt: str) -> Resumed:
    """Line numbers and outcomes in a killed run's .part file. A last line cut off by the
    kill (no newline) is removed from the file, so appending continues cleanly."""
    _drop_torn_tail(path)
    found = Resumed()
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle) if fmt == "csv" else (json.loads(x) for x in handle)
        for row in rows:
            found.lines.add(int(row["line"]))
            found.by_outcome[row["outcome"]] = found.by_outcome.get(row["outcome"], 0) + 1
    return found


def _drop_torn_tail(path: Path) -> None:
    with path.open("rb+") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)
