"""Command line: `scrape URLS` and the dispatch to the sub-commands (commands/); maps the
project's errors to exit codes, in main() alone. The heavy modules (requests, lxml) are
imported only once a run starts, so `--help` and start-up stay fast."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from scraper import __version__
from scraper.config.flags import Parser, add_setting_flags, settings_from_args
from scraper.errors import ConfigError, Locked, ScraperError
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
    if argv is None and "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from scraper.commands.manual import complete

        complete(build_parser)
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
    if command in ("completion", "man"):
        from scraper.commands.manual import run_completion, run_man

        return (
            run_completion(rest, out)
            if command == "completion"
            else run_man(rest, out, build_parser)
        )
    return _scrape(args_list, stdin, out, err, is_tty)


def _scrape(
    args_list: list[str], stdin: BinaryIO | None, out: TextIO, err: TextIO, is_tty: bool | None
) -> int:
    """`scrape URLS`: settings first (a config error exits 2 before any request), then the run."""
    from scraper.console import DEBUG, QUIET, SILENT, VERBOSE
    from scraper.run import RunOptions, scrape
    from scraper.url_list import ListSources

    parser = build_parser()
    args = parser.parse_intermixed_args(args_list)  # URLs may come after flags, as in wget
    if not args.urls and not args.input_file and not args.sitemaps:
        settings = settings_from_args(args)  # a config may name the sitemaps
        if not settings.sitemaps:
            parser.error(
                "give URLs, a file listing them (- for standard input), -i FILE or --sitemap URL"
            )
    settings = settings_from_args(args)
    verbosity = None
    if args.quiet:
        verbosity = SILENT if args.quiet > 1 else QUIET
    elif args.verbose:
        verbosity = DEBUG if args.verbose > 1 else VERBOSE
    sources, list_name, count_path = _sources(args.urls, args.input_file or [])
    if not sources:  # the sitemaps alone
        from scraper.urls import mask_passwords

        list_name = "sitemaps " + " ".join(map(mask_passwords, settings.sitemaps))
    stream = stdin if stdin is not None else sys.stdin.buffer
    options = RunOptions(
        args.resume, args.full, args.wait_lock, args.debug, not args.no_state, verbosity
    )
    opened = [
        (name, _open_list(name, stream) if kind == "file" else name.encode() + b"\n")
        for kind, name in sources
    ]
    with ListSources(opened) as lines:
        if args.dry_run:
            from scraper.commands.dry_run import dry_run

            return dry_run(settings, lines, out)
        try:
            return scrape(settings, lines, list_name, err, is_tty, options, count_path, stdout=out)
        except Locked as exc:
            if verbosity == SILENT:  # -qq: not even that another run holds the state
                return exc.exit_code
            raise


def _sources(
    positional: list[str], input_files: list[str]
) -> tuple[list[tuple[str, str]], str, Path | None]:
    """What to read, in order: ("url", URL) for an argument with "://" in it, ("file", path)
    for any other argument and each -i FILE; the list's name (for the state and summary,
    passwords masked) and the file to count lines of for the bar (a single file only)."""
    from scraper.urls import mask_passwords

    sources = [("url" if "://" in item else "file", item) for item in positional]
    sources += [("file", item) for item in input_files]
    names = [mask_passwords(name) if kind == "url" else name for kind, name in sources]
    files = [name for kind, name in sources if kind == "file"]
    count_path = Path(files[0]) if len(sources) == 1 and files and files[0] != "-" else None
    if len(sources) == 1 and files:
        return sources, files[0], count_path
    return sources, " ".join(names), count_path


def build_parser() -> argparse.ArgumentParser:
    """The parser of `scrape URLS`; one flag per setting, named after it."""
    parser = Parser(
        prog="scrape",
        usage="scrape [options] URL|LIST ... [-i LIST] [--sitemap URL]\n"
        "       scrape demo [options]\n"
        "       scrape bench [options]\n"
        "       scrape history|report [-o DIR]\n       scrape check [-c FILE]\n"
        "       scrape try URL_OR_FILE [-c FILE] [--url URL]\n"
        "       scrape completion bash|zsh|fish; scrape man",
        description="Fetch the URLs given (an argument with :// in it) and those of each list "
        "file (one URL per line; - for standard input) with a pool of download threads, parse "
        "the pages in worker processes, and write one record per URL to the output folder (-o - "
        "for standard output). Settings come from -c FILE, else $SCRAPER_CONFIG, else "
        "./config/scraper.yaml, else ~/.config/scraper/config.yaml ($XDG_CONFIG_HOME); flags "
        "override them. `scrape demo` scrapes a bundled local site; `scrape bench` "
        "measures speed against it; `scrape check` validates a settings file and `scrape try` "
        "runs its extraction rules on one page.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "urls",
        metavar="URL|LIST",
        nargs="*",
        help="a URL, or a file of URLs one per line (- reads standard input); several are "
        "read in order, line numbers running on",
    )
    parser.add_argument(
        "-i",
        "--input-file",
        action="append",
        metavar="LIST",
        help="read URLs from LIST, one per line (- reads standard input); repeatable",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        type=Path,
        help="settings file (default: $SCRAPER_CONFIG, else ./config/scraper.yaml, else "
        "$XDG_CONFIG_HOME/scraper/config.yaml, the first that is set or exists)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="a line per page, and the retries"
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
        "--dry-run",
        action="store_true",
        help="read the list and config, fetch only robots.txt, and print per host what a "
        "run would fetch, skip as duplicate or be refused; then exit",
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
