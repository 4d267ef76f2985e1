"""`scrape --dry-run LIST`: what a run would do, without doing it. The list and the config are
read as a run reads them; for each host, how many URLs would be fetched, how many lines
repeat an earlier URL, and how many its robots.txt refuses (robots.txt is fetched, one request
per host, in a pool of `threads`; nothing else is). Invalid lines are listed. Exits 0, or 1
when some lines are invalid (as the run would count them)."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from scraper.config.settings import Settings
from scraper.records import DuplicateLine, InvalidLine, UrlTask
from scraper.url_list import LineStream, read_url_list
from scraper.urls import host_key, mask_passwords

SHOWN_INVALID = 10


def dry_run(settings: Settings, lines: LineStream, out: TextIO) -> int:
    by_host: dict[str, list[str]] = collections.defaultdict(list)
    duplicates: collections.Counter[str] = collections.Counter()
    invalid: list[InvalidLine] = []
    for entry in read_url_list(lines):
        if isinstance(entry, UrlTask):
            by_host[host_key(entry.normalized_url)].append(entry.normalized_url)
        elif isinstance(entry, DuplicateLine):
            duplicates[host_key(entry.url)] += 1
        else:
            invalid.append(entry)
    refused = _robots_refusals(settings, by_host) if settings.obey_robots else {}
    print(f"{'host':<40} {'fetch':>7} {'duplicate':>9} {'robots.txt refuses':>18}", file=out)
    for host in sorted(by_host, key=lambda h: (-len(by_host[h]), h)):
        denied = refused.get(host, 0)  # a number, or in words why none is known
        print(
            f"{mask_passwords(host):<40} {len(by_host[host]) - _count(denied):>7} "
            f"{duplicates[host]:>9} {denied!s:>18}",
            file=out,
        )
    total = sum(len(urls) for urls in by_host.values())
    refused_total = sum(_count(v) for v in refused.values())
    print(
        f"{len(by_host)} hosts: {total - refused_total} URLs to fetch, "
        f"{sum(duplicates.values())} duplicate lines, {refused_total} refused by robots.txt, "
        f"{len(invalid)} invalid lines"
        + ("" if settings.obey_robots else " (robots.txt not obeyed: obey_robots is false)"),
        file=out,
    )
    if settings.discovers():  # reading sitemaps and following links would be fetching
        follow = sum(1 for site in settings.sites if site.follow)
        print(
            f"and discovery, not tried by --dry-run: {len(settings.sitemaps)} sitemaps"
            + (", those named by the hosts' robots.txt" if settings.sitemaps_from_robots else "")
            + f", follow rules of {follow} sites; at most {settings.max_urls} discovered URLs",
            file=out,
        )
    for line in invalid[:SHOWN_INVALID]:
        print(f"  line {line.line_no}: invalid: {line.reason}: {line.text}", file=out)
    if len(invalid) > SHOWN_INVALID:
        print(f"  ... and {len(invalid) - SHOWN_INVALID} more invalid lines", file=out)
    return 1 if invalid else 0


def _count(value: int | str) -> int:
    return value if isinstance(value, int) else 0


def _robots_refusals(settings: Settings, by_host: dict[str, list[str]]) -> dict[str, int | str]:
    """Per host: how many of its URLs robots.txt disallows, or in words why it is unknown."""
    from scraper.errors import PageError
    from scraper.fetch.http import FetchLimits, fetch_robots, new_session
    from scraper.fetch.robots import RobotsCache
    from scraper.records import ErrorKind

    limits = FetchLimits.from_settings(settings)
    cache = RobotsCache(settings.user_agent)

    def one(host: str) -> tuple[str, int | str]:
        session = new_session(settings)
        denied = 0
        try:
            for url in by_host[host]:
                try:
                    cache.check(url, lambda robots: fetch_robots(session, robots, limits))
                except PageError as exc:
                    if exc.kind is not ErrorKind.ROBOTS or "disallowed" not in str(exc):
                        return host, f"unknown: {exc.kind.value}"
                    denied += 1
        finally:
            session.close()
        return host, denied

    with ThreadPoolExecutor(max(1, min(settings.threads, len(by_host)))) as pool:
        return dict(pool.map(one, by_host))
