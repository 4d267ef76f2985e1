"""Command line: `scrape URLS` and the dispatch to the sub-commands (commands/); maps the
project's errors to exit codes, in main() alone. The heavy modules (requests, lxml) are
imported only once a run starts, so `--help` and start-up stay fast."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from scraper import __version__
from scraper.config.flags import Parser, add_setting_flags, settings_from_args
from scraper.errors import ConfigError, ScraperError
from scraper.exit_codes import EXIT_CODES_HELP, ExitCode

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    stderr: TextIO | None = None,
    stdout: TextIO | None = None,
    is_tty: bool | None = None,
) -> int:
    """The `scrape` console script; streams and the tty flag can be injected for tests.

    The one place where the project's errors become exit codes: a ScraperError is one line on
    stderr and its class's exit code (ConfigError 2, Locked 75); argparse's own exits pass."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    err = stderr if stderr is not None else sys.stderr
    out = stdout if stdout is not None else sys.stdout
    try:
        return int(_dispatch(args_list, stdin, out, err, is_tty))
    except SystemExit as exc:  # argparse has printed usage, help or its error
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    except ScraperError as exc:
        print(f"scrape: {exc}", file=err)
        return exc.exit_code


def _dispatch(
    args_list: list[str], stdin: BinaryIO | None, out: TextIO, err: TextIO, is_tty: bool | None
) -> int:
    command, rest = (args_list[0], args_list[1:]) if args_list else ("", [])
    if command == "demo":
        from scraper.commands.demo import run_demo

        return run_demo(rest, err, is_tty)
    if command in ("history", "report"):
        from scraper.commands.history import run_history

        return run_history(command, rest, out)
    if command in ("check", "try"):
        from scraper.commands.tryout import run_check, run_try

        return (run_check if command == "check" else run_try)(rest, out, err)
    if command == "bench":
        from scraper.commands.bench import run_bench

        return run_bench(rest, out)
    return _scrape(args_list, stdin, err, is_tty)


def _scrape(args_list: list[str], stdin: BinaryIO | None, err: TextIO, is_tty: bool | None) -> int:
    """`scrape URLS`: settings first (a config error exits 2 before any request), then the run."""
    from scraper.run import RunOptions, scrape

    args = build_parser().parse_args(args_list)
    settings = settings_from_args(args)
    lines = _open_list(args.urls, stdin if stdin is not None else sys.stdin.buffer)
    count_path = None if args.urls == "-" else Path(args.urls)
    options = RunOptions(args.resume, args.full, args.wait_lock, args.debug, not args.no_state)
    with lines:
        return scrape(settings, lines, args.urls, err, is_tty, options, count_path)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `scrape URLS`; one flag per setting, named after it."""
    parser = Parser(
        prog="scrape",
        usage="scrape [options] URLS\n       scrape demo [options]\n       scrape bench [options]\n"
        "       scrape history|report [-o DIR]\n       scrape check [-c FILE]\n"
        "       scrape try URL_OR_FILE [-c FILE] [--url URL]",
        description="Fetch every URL in the list URLS (one per line; - for standard input) with "
        "a pool of download threads, parse the pages in worker processes, and write one record "
        "per line to the output folder. Settings come from config/scraper.yaml (or -c FILE); "
        "flags override them. `scrape demo` scrapes a bundled local site; `scrape bench` "
        "measures speed against it; `scrape check` validates a settings file and `scrape try` "
        "runs its extraction rules on one page.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("urls", metavar="URLS", help="file of URLs, one per line; - reads stdin")
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        type=Path,
        help="settings file (default: config/scraper.yaml when it exists)",
    )
    parser.add_argument("--debug", action="store_true", help="log details and tracebacks")
    parser.add_argument("-V", "--version", action="version", version=f"scrape {__version__}")
    run = parser.add_argument_group("run modes (for cron)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="finish the last run that was killed: fetch only the lines it did not "
        "record, and append to its file",
    )
    run.add_argument(
        "--full",
        action="store_true",
        help="ignore what earlier runs stored: no conditional requests, parse all",
    )
    run.add_argument(
        "--no-state",
        action="store_true",
        help="keep no state: no lock, no conditional requests, no history",
    )
    run.add_argument(
        "--wait-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a running scrape on the same state (default: exit 75 at once)",
    )
    add_setting_flags(parser)
    return parser


def _open_list(urls: str, stdin: BinaryIO) -> BinaryIO:
    if urls == "-":
        return stdin
    try:
        return open(urls, "rb")  # noqa: SIM115 (closed by the caller's with)
    except OSError as exc:
        raise ConfigError(f"{urls}: cannot read URL list: {exc.strerror}") from None
