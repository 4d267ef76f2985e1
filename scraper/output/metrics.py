"""The run's figures as a Prometheus textfile (node_exporter's textfile collector)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def write_metrics(path: Path, summary: dict[str, Any], start_ts: float, end_ts: float) -> None:
    """The run's figures in Prometheus text format, written atomically (temp file + rename),
    as node_exporter's textfile collector expects."""
    lines = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP scrape_{name} {help_text}")
        lines.append(f"# TYPE scrape_{name} gauge")
        # repr: every digit of a timestamp (%g gave 1.79615e+09, minutes off)
        lines.extend(f"scrape_{name}{labels} {value!r}" for labels, value in samples)

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
