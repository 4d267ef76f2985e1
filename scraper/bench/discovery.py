"""`scrape bench --discovery`: the figures of URL discovery, against the demo site.

1. Sitemaps over many hosts: the demo site on --discovery-hosts ports of 127.0.0.1 (each port a
   host), each serving /sitemap.xml (an index of gzipped urlsets with lastmod). A first run
   from the sitemaps alone must get >= 99% of the pages right; a second run, with no lastmod
   moved, must send no page request at all (robots.txt and the sitemaps only).
2. A follow crawl from one page of a --crawl-pages site (every page links to 50-150 others)
   against the same URLs given as a list: pages/s within 10%; and its peak memory (all
   processes) at most 1.3x that of a 1,000-page crawl.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from scraper.bench.harness import run_scrape_command
from scraper.demo.server import DemoServer
from scraper.demo.site import DemoSite, check_records

FOLLOW = (
    "sites:\n  - name: demo\n    match: '*'\n    follow: 'a[href^=\"/page/\"]'\n"
    "    max_depth: 1000\n"
)


def bench_discovery(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    ok = _sitemaps(args, out, work)
    return _crawl(args, out, work) and ok


def _sitemaps(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    hosts, per_host = args.discovery_hosts, 100
    empty = work / "no-list.txt"
    empty.write_text("")
    with DemoServer(n_pages=per_host, ports=hosts) as server:
        flags = [f for url in server.urls for f in ("--sitemap", f"{url}/sitemap.xml")]
        # Politeness on (robots.txt obeyed, 2 per host), with a short delay for the bench.
        flags += ["--threads", str(args.threads), "--processes", str(args.processes)]
        flags += ["--host-delay", "0.02"]
        out_dir = work / "out-sitemaps"
        first, records = run_scrape_command(server, empty, out_dir, flags, polite=True)
        problems = check_records(DemoSite(per_host), server.urls, records)
        pages = hosts * per_host
        right = (len(records) - len(problems)) / pages
        second, again = run_scrape_command(server, empty, out_dir, flags, polite=True)
    expected = hosts * 3  # robots.txt, the index and one urlset per host
    page_requests = second.requests - expected
    unchanged = sum(1 for r in again if r["outcome"] == "unchanged")
    print(
        f"\n== sitemaps: {hosts} hosts' sitemaps, {per_host} pages each ==\n"
        f"first run: {len(records)} records of {pages} pages, {right:.1%} right (limit 99%)  "
        f"{_verdict(right >= 0.99)}; {first.requests} requests in {first.wall_s:.1f} s\n"
        f"second run: {second.requests} requests = {expected} for robots.txt and sitemaps + "
        f"{page_requests} for pages (limit 0)  {_verdict(page_requests == 0)}; "
        f"{unchanged} records unchanged, in {second.wall_s:.1f} s",
        file=out,
    )
    return right >= 0.99 and page_requests == 0


def _crawl(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    config = work / "follow.yaml"
    config.write_text(FOLLOW)
    flags = ["--threads", str(args.threads), "--processes", str(args.processes), "--no-state"]
    runs = {}
    for pages in (1000, args.crawl_pages):
        with DemoServer(n_pages=pages) as server:
            seed = work / f"seed-{pages}.txt"
            seed.write_text(f"{server.url}/page/0\n")
            crawl_flags = [*flags, "-c", str(config), "--max-urls", str(pages * 2)]
            crawl, records = run_scrape_command(server, seed, work / f"crawl-{pages}", crawl_flags)
            runs[pages] = crawl
            if pages != args.crawl_pages:
                continue
            listed = work / f"listed-{pages}.txt"
            listed.write_text("".join(f"{r['url']}\n" for r in records))
            as_list, _ = run_scrape_command(server, listed, work / f"list-{pages}", flags)
    big, small = runs[args.crawl_pages], runs[1000]
    speed = big.pages_per_s / as_list.pages_per_s
    memory = big.peak_rss / small.peak_rss
    print(
        f"\n== follow crawl of the demo site from /page/0 (a link rule, depth <= 1000) ==\n"
        f"{big.pages:,} pages crawled: {big.pages_per_s:.0f} pages/s; the same URLs as a list: "
        f"{as_list.pages_per_s:.0f} pages/s = {speed:.2f} x (limit 0.90)  "
        f"{_verdict(speed >= 0.9)}\n"
        f"peak memory, all processes: {small.pages:,} pages {small.peak_rss / 2**20:.0f} MB, "
        f"{big.pages:,} pages {big.peak_rss / 2**20:.0f} MB = {memory:.2f} x (limit 1.30)  "
        f"{_verdict(memory <= 1.3)}",
        file=out,
    )
    return speed >= 0.9 and memory <= 1.3


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
