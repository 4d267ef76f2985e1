"""`scrape history` and `scrape report`: recent runs, and URLs that keep failing, read from the
state database. Reads only; takes no lock (sqlite lets readers in while a run writes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from scraper.config.flags import Parser
from scraper.config.settings import build_settings, default_config_path
from scraper.errors import ConfigError
from scraper.state import StateStore


def history_parser(kind: str) -> Parser:
    """The parser of `scrape history` or `scrape report`."""
    parser = Parser(
        prog=f"scrape {kind}",
        description="Recent runs, newest first."
        if kind == "history"
        else "URLs that failed in several runs in a row, worst first.",
    )
    parser.add_argument(
        "-o", "--output-dir", help="output folder of the runs (default: from the settings)"
    )
    parser.add_argument("-c", "--config", type=Path, help="settings file")
    parser.add_argument("--state-file", help="state database (default: <output>/state.sqlite)")
    parser.add_argument("-n", "--limit", type=int, default=20, help="rows at most (20)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    if kind == "report":
        parser.add_argument(
            "--min-failures",
            type=int,
            default=2,
            help="failed runs in a row to be listed (default 2)",
        )
    return parser


def run_history(kind: str, argv: Sequence[str], out: TextIO) -> int:
    """Print the history or the report; raises ConfigError (exit 2) without a state."""
    parser = history_parser(kind)
    args = parser.parse_args(argv)
    settings = build_settings(args.config or default_config_path(), {})
    folder = Path(args.output_dir or settings.output_dir)
    path = Path(args.state_file or settings.state_file or folder / "state.sqlite")
    if not path.exists():
        raise ConfigError(f"{path}: no state yet (run a scrape first)")
    store = StateStore(path)
    try:
        if kind == "history":
            rows = store.history(args.limit)
            _print(rows, out, args.json, _history_line)
        else:
            rows = store.failing(args.min_failures, args.limit)
            _print(rows, out, args.json, _report_line)
    finally:
        store.close()
    return 0


def _print(rows: list[dict[str, Any]], out: TextIO, as_json: bool, line: Any) -> None:
    for row in rows:
        print(json.dumps(row) if as_json else line(row), file=out)


def _history_line(row: dict[str, Any]) -> str:
    summary = row["summary"] or {}
    counts = ", ".join(f"{n} {k}" for k, n in summary.get("counts", {}).items() if n)
    if row["ended_at"] in (None, "abandoned"):
        status = "killed (resume with --resume)" if row["ended_at"] is None else "abandoned"
        return f"{row['run']}  {row['list']}  {status}"
    flags = " interrupted" if summary.get("interrupted") else ""
    return (
        f"{row['run']}  {row['list']}  exit {row['exit_code']}{flags}  "
        f"{summary.get('elapsed_s', 0):.1f}s  {summary.get('changed', 0)} changed  {counts}"
    )


def _report_line(row: dict[str, Any]) -> str:
    return (
        f"{row['failures']:>3} runs  {row['url']}  last: {row['last_error'] or row['last_status']}"
    )
