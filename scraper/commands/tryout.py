"""`scrape check` and `scrape try`: for writing extraction rules quickly.

`check` validates a settings file (every selector compiled and run once, every regex and
default checked) without fetching anything. `try` runs the rules on one saved page or one URL
and prints the record; one request at most, like curl (no robots.txt, no state, no output files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from scraper.config.flags import Parser
from scraper.config.settings import build_settings, default_config_path
from scraper.errors import ConfigError, PageError
from scraper.urls import redact_url

SHOWN_TEXT_CHARS = 300  # `try` shortens the page text and link list; the data is shown whole
SHOWN_LINKS = 10


def check_parser() -> Parser:
    """The parser of `scrape check`."""
    parser = Parser(
        prog="scrape check",
        description="Validate a settings file and its extraction rules without fetching.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", type=Path, help="settings file")
    return parser


def try_parser() -> Parser:
    """The parser of `scrape try`."""
    parser = Parser(
        prog="scrape try",
        description="Run the extraction rules on one saved page or one URL and print the "
        "record (page text and links shortened). A file is matched to a site by --url.",
    )
    parser.add_argument("page", metavar="URL_OR_FILE", help="an http(s) URL or a saved HTML file")
    parser.add_argument("-c", "--config", metavar="FILE", type=Path, help="settings file")
    parser.add_argument(
        "--url", help="the URL a saved file came from (site matching, relative links)"
    )
    return parser


def run_check(argv: list[str], out: TextIO, err: TextIO) -> int:
    """`scrape check [-c FILE]`: 0 when the settings are usable, 2 (one line) when not."""
    parser = check_parser()
    args = parser.parse_args(argv)
    path = args.config if args.config is not None else default_config_path()
    if path is None:
        raise ConfigError("check: no settings file (give -c FILE)")
    settings = build_settings(path, {})
    fields = sum(len(site.fields) for site in settings.sites)
    print(f"{path}: OK: {len(settings.sites)} site(s), {fields} field(s)", file=out)
    for site in settings.sites:
        names = ", ".join(f.name + ("*" if f.required else "") for f in site.fields)
        if site.follow:
            where = "its own host" if site.same_host else "any host"
            names += (", " if names else "") + (
                f"follows {len(site.follow)} rule(s) to depth {site.max_depth}, {where}"
            )
        print(f"  {site.name} ({site.match_kind} {site.pattern}): {names}", file=out)
    if settings.sitemaps:
        print(f"  sitemaps: {', '.join(map(redact_url, settings.sitemaps))}", file=out)
    return 0


def run_try(argv: list[str], out: TextIO, err: TextIO) -> int:
    """`scrape try URL_OR_FILE [-c FILE] [--url URL]`: print the record; 0 ok, 1 failed, 2 usage."""
    parser = try_parser()
    args = parser.parse_args(argv)
    path = args.config if args.config is not None else default_config_path()
    settings = build_settings(path, {})
    try:
        page = _load(args.page, args.url, settings)
    except PageError as exc:
        print(f"scrape try: {redact_url(args.page)}: {exc.kind.value}: {exc}", file=err)
        return 1
    from scraper.parse.page import FOUND, parse_options, parse_page

    if settings.sites and not _site_named(settings, page):
        shown = redact_url(page.final_url)
        print(f"scrape try: no site matches {shown}; generic fields only", file=err)
    try:
        fields, error = parse_page(page, parse_options(settings)), None
    except PageError as exc:
        fields, error = exc.fields or {}, {"kind": exc.kind.value, "message": str(exc)}
    record: dict[str, Any] = {"url": page.task.url, "outcome": "failed" if error else "ok"}
    found = fields.pop(FOUND, None)
    record.update(_shortened(fields))
    if found is not None:  # what the site's follow rules would queue (depth 0 -> 1)
        record["follow"] = list(found.pages)
    if error:
        record["error"] = error
    print(json.dumps(record, indent=2, ensure_ascii=False), file=out)
    return 1 if error else 0


def _load(source: str, url: str | None, settings: Any) -> Any:
    from scraper.records import FetchedPage, UrlTask

    file = Path(source)
    if not source.startswith(("http://", "https://")) and file.is_file():
        with file.open("rb") as handle:
            body = handle.read(settings.max_body_bytes)
        final_url = url or file.resolve().as_uri()
        task = UrlTask(1, redact_url(final_url), final_url)
        return FetchedPage(task, final_url, 200, {"content-type": "text/html"}, body, 0, 0.0)
    if not source.startswith(("http://", "https://")):
        raise ConfigError(f"{redact_url(source)}: neither a file nor an http(s) URL")
    from scraper.fetch.http import FetchLimits, fetch_page, new_session
    from scraper.urls import InvalidUrl, normalize_url

    try:
        normalized = normalize_url(source)
    except InvalidUrl as exc:
        raise ConfigError(f"{redact_url(source)}: {exc}") from None
    session = new_session(settings)
    try:
        page = fetch_page(
            session, UrlTask(1, redact_url(source), normalized), FetchLimits.from_settings(settings)
        )
    finally:
        session.close()
    if page.status >= 400:
        from scraper.records import ErrorKind

        raise PageError(ErrorKind.HTTP_STATUS, f"HTTP {page.status}")
    return page


def _site_named(settings: Any, page: Any) -> bool:
    from scraper.parse.extract import site_for

    return site_for(settings.sites, page.final_url, page.task.url) is not None


def _shortened(fields: dict[str, Any]) -> dict[str, Any]:
    shown = dict(fields)
    text = shown.get("text") or ""
    if len(text) > SHOWN_TEXT_CHARS:
        shown["text"] = text[:SHOWN_TEXT_CHARS] + f"... ({len(text)} characters)"
    links = shown.get("links") or []
    if len(links) > SHOWN_LINKS:
        shown["links"] = [*links[:SHOWN_LINKS], f"... ({len(links)} links)"]
    return shown
