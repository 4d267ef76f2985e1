"""`scrape demo`: serve the bundled site on 127.0.0.1, scrape it with the given settings, and
check every record against the site's ground truth (offline: the first command a new user
runs)."""

from __future__ import annotations

import argparse
import dataclasses
import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from scraper.config.flags import Parser, add_setting_flags, settings_from_args
from scraper.errors import ConfigError
from scraper.exit_codes import EXIT_CODES_HELP, ExitCode


def demo_parser() -> Parser:
    """The parser of `scrape demo` (its --help, completion and the man page)."""
    parser = Parser(
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
    parser.add_argument(
        "--sitemap",
        action="store_true",
        help="no list: discover the pages from the site's sitemap (/sitemap.xml, an index of "
        "gzipped sitemaps); --pages is then the size of the site",
    )
    parser.add_argument("-c", "--config", metavar="FILE", type=Path, help="settings file")
    parser.add_argument("--debug", action="store_true", help="log details and tracebacks")
    add_setting_flags(parser, skip=("sitemaps",))  # --sitemap: the demo's own sitemap
    return parser


def run_demo(argv: Sequence[str], stderr: TextIO, is_tty: bool | None) -> ExitCode:
    """`scrape demo`: serve the bundled site on 127.0.0.1, scrape it, check the records."""
    from scraper.demo.server import DemoServer
    from scraper.demo.site import DemoSite, check_records, demo_url_lines
    from scraper.run import RunOptions, scrape

    parser = demo_parser()
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
    from scraper.demo.fixtures import check_fixture_records, fixture_url_lines

    with DemoServer(n_pages=args.pages, latency_s=args.latency_ms / 1000) as server:
        if args.serve:
            return _serve_until_interrupted(server, args.pages, stderr)
        records: list[dict[str, Any]] = []
        if args.site == "generic":
            url_lines = list(demo_url_lines(server.url, args.pages))
        else:
            url_lines = fixture_url_lines(server.url, args.site, args.pages)
        options = RunOptions(full=True, debug=args.debug)  # a fresh site each time
        if args.max_failure_ratio is None:
            # Its failures (404s, pages without a required field) are on purpose: the demo is
            # judged by its ground truth below, so its run does not exit 1 for them.
            settings = dataclasses.replace(settings, max_failure_ratio=1.0)
        if args.sitemap:
            url_lines = []
            settings = dataclasses.replace(settings, sitemaps=[f"{server.url}/sitemap.xml"])
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
    return ExitCode.FAILED if problems else code  # the run's own code, as its summary says


def _serve_until_interrupted(server: Any, pages: int, stderr: TextIO) -> ExitCode:
    from scraper.demo.site import list_paths

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
