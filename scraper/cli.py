"""Command line: argparse → Settings; runs the pipeline, the demo or the benchmark; maps errors
to exit codes. The heavy modules (requests, lxml) are imported only once a run starts, so
`--help` and start-up stay fast."""

from __future__ import annotations

import argparse
import enum
import io
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from scraper import __version__
from scraper.config import SETTING_FIELDS, Settings, build_settings, default_config_path, flag_name
from scraper.errors import ConfigError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """The process exit status; documented in --help and the README."""

    OK = 0  # every URL line fetched and parsed (duplicates count as fine)
    FAILED = 1  # some URLs failed or some lines were invalid
    USAGE = 2  # bad command line, unreadable list, or a config error: nothing was fetched
    LOCKED = 75  # EX_TEMPFAIL: another run holds the state; try again later
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


EXIT_CODES_HELP = """exit status:
  0    every URL line was fetched and parsed (duplicates count as fine)
  1    some URLs failed or some lines were invalid (see the records)
  2    usage or config error: nothing was fetched
  75   another run holds the state's lock (EX_TEMPFAIL); nothing was fetched
  130  interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM
"""


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    stderr: TextIO | None = None,
    stdout: TextIO | None = None,
    is_tty: bool | None = None,
) -> int:
    """The `scrape` console script; streams and the tty flag can be injected for tests."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    err = stderr if stderr is not None else sys.stderr
    out = stdout if stdout is not None else sys.stdout
    if args_list and args_list[0] == "demo":
        return int(run_demo(args_list[1:], err, is_tty))
    if args_list and args_list[0] in ("history", "report"):
        from scraper.history import run_history

        return int(run_history(args_list[0], args_list[1:], out, err))
    if args_list and args_list[0] in ("check", "try"):
        from scraper.tryout import run_check, run_try

        run = run_check if args_list[0] == "check" else run_try
        return run(args_list[1:], out, err)
    if args_list and args_list[0] == "bench":
        from scraper.bench import run_bench

        return int(run_bench(args_list[1:], out))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse has printed usage or help
        return int(exc.code or 0)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"scrape: {exc}", file=err)
        return ExitCode.USAGE
    try:
        lines = _open_list(args.urls, stdin if stdin is not None else sys.stdin.buffer)
    except ConfigError as exc:
        print(f"scrape: {exc}", file=err)
        return ExitCode.USAGE
    from scraper.runner import RunOptions, scrape

    count_path = None if args.urls == "-" else Path(args.urls)
    options = RunOptions(args.resume, args.full, args.wait_lock, args.debug, not args.no_state)
    with lines:
        return int(scrape(settings, lines, args.urls, err, is_tty, options, count_path))


def build_parser() -> argparse.ArgumentParser:
    """The parser of `scrape URLS`; one flag per setting, named after it."""
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--version", action="version", version=f"scrape {__version__}")
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


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field: `--threads`, `--page-deadline`, `-o/--output-dir`..."""
    group = parser.add_argument_group("settings (each also a key in the YAML file)")
    short = {"output_dir": ["-o"], "quiet": ["-q"], "threads": ["-t"], "processes": ["-p"]}
    for name, spec in SETTING_FIELDS.items():
        if spec.metadata.get("flag") is False:
            continue
        names = [*short.get(name, []), flag_name(name)]
        help_text = f"{spec.metadata['help']} (default: {_shown_default(spec)})"
        kind = str(spec.type)
        if kind == "bool":  # --obey-robots / --no-obey-robots
            group.add_argument(
                *names,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif kind == "list[int]":
            group.add_argument(
                *names, dest=name, type=_int_list, default=None, metavar="N,N,...", help=help_text
            )
        elif kind == "dict[str, str]":
            group.add_argument(
                "-H",
                "--header",
                dest=name,
                action="append",
                default=None,
                metavar="'NAME: VALUE'",
                help="extra request header (repeatable)",
            )
        else:
            metavar = (
                "|".join(spec.metadata["choices"])
                if "choices" in spec.metadata
                else (
                    "SECONDS"
                    if name.endswith("_s")
                    else {"int": "N", "float": "X"}.get(kind, "TEXT")
                )
            )
            group.add_argument(
                *names,
                dest=name,
                default=None,
                metavar=metavar,
                type={"int": int, "float": float}.get(kind, str),
                help=help_text,
            )


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def _shown_default(spec: Any) -> str:
    if callable(spec.default_factory):
        value = spec.default_factory()
        return ",".join(map(str, value)) if isinstance(value, list) else str(value or "none")
    return str(spec.default)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the config file and the flags; raises ConfigError."""
    overrides: dict[str, Any] = {}
    for name in SETTING_FIELDS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "headers":
            value = _parse_headers(value)
        overrides[name] = value
    path = args.config if args.config is not None else default_config_path()
    return build_settings(path, overrides)


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for text in values:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"command line: --header {text!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _open_list(urls: str, stdin: BinaryIO) -> BinaryIO:
    if urls == "-":
        return stdin
    try:
        return open(urls, "rb")  # noqa: SIM115 (closed by the caller's with)
    except OSError as exc:
        raise ConfigError(f"{urls}: cannot read URL list: {exc.strerror}") from None


def run_demo(argv: Sequence[str], stderr: TextIO, is_tty: bool | None) -> ExitCode:
    """`scrape demo`: serve the bundled site on 127.0.0.1, scrape it, check the records."""
    from scraper.demo import DemoSite, check_records, demo_url_lines
    from scraper.demo_server import DemoServer
    from scraper.runner import RunOptions, scrape

    parser = argparse.ArgumentParser(
        prog="scrape demo",
        description="Serve the bundled demo site on 127.0.0.1 (no internet needed), scrape it "
        "with the given settings, and check every record against the site's ground truth.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=200, help="URLs in the list (default 200)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay the site adds to every response (default 0)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="only serve the site and print its address, until Ctrl-C",
    )
    parser.add_argument(
        "--site",
        choices=("generic", "shop", "news"),
        default="generic",
        help="which pages: generic pages (default), or the shop products and news articles "
        "of the example configs (give -c config/shop.yaml or -c config/news.yaml)",
    )
    parser.add_argument("-c", "--config", metavar="FILE", type=Path, help="settings file")
    parser.add_argument("--debug", action="store_true", help="log details and tracebacks")
    add_setting_flags(parser)
    try:
        args = parser.parse_args(argv)
        if args.pages < 1:
            parser.error("--pages must be at least 1")
        # The demo site is ours and local: lift the politeness settings unless asked for.
        lifted = (("host_concurrency", 1000), ("host_delay_s", 0.0), ("obey_robots", False))
        for name, value in lifted:
            if getattr(args, name) is None:
                setattr(args, name, value)
        settings = settings_from_args(args)
        if args.site != "generic" and not settings.sites:
            raise ConfigError(f"--site {args.site} needs its rules: -c config/{args.site}.yaml")
    except SystemExit as exc:
        return ExitCode(int(exc.code or 0))
    except ConfigError as exc:
        print(f"scrape: {exc}", file=stderr)
        return ExitCode.USAGE
    from scraper.demo_fixtures import check_fixture_records, fixture_url_lines

    with DemoServer(n_pages=args.pages, latency_s=args.latency_ms / 1000) as server:
        if args.serve:
            return _serve_until_interrupted(server, args.pages, stderr)
        records: list[dict[str, Any]] = []
        if args.site == "generic":
            url_lines = list(demo_url_lines(server.url, args.pages))
        else:
            url_lines = fixture_url_lines(server.url, args.site, args.pages)
        options = RunOptions(full=True, debug=args.debug)  # a fresh site each time
        lines = io.BytesIO(b"".join(url_lines))
        code = scrape(settings, lines, "demo", stderr, is_tty, options, None, records.append)
    if args.site == "generic":
        problems = check_records(DemoSite(args.pages), server.url, records)
    else:
        problems = check_fixture_records(args.site, server.url, records)
    if len(records) != args.pages:
        problems.append(f"{len(records)} records for {args.pages} URLs")
    for line in problems[:10]:
        print(f"scrape demo: mismatch: {line}", file=stderr)
    if not settings.quiet or problems:
        verdict = "all match" if not problems else f"{len(problems)} do not match"
        print(
            f"scrape demo: {len(records)} records checked against the site's ground truth: "
            f"{verdict}",
            file=stderr,
        )
    if problems:
        return ExitCode.FAILED
    # The demo list has 404s on purpose; they are expected, so a correct run exits 0.
    return ExitCode.OK if code == ExitCode.FAILED else code


def _serve_until_interrupted(server: Any, pages: int, stderr: TextIO) -> ExitCode:
    from scraper.demo import list_paths

    print(
        f"demo site at {server.url}/ ; for example {server.url}{next(list_paths(pages))}",
        file=stderr,
    )
    print("Ctrl-C stops it.", file=stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return ExitCode.OK
