"""`scrape bench`: measures the scraper against the demo site and prints each figure next to
the limit computed in the same run. Every run talks only to a demo site started here on
127.0.0.1, with a bounded number of requests; bench/ does the measuring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from scraper.bench.figures import (
    bench_cluster,
    bench_extract,
    bench_incremental,
    bench_memory,
    bench_models,
    bench_throughput,
)
from scraper.bench.web import bench_web
from scraper.config.flags import Parser

# -- reports -----------------------------------------------------------------------------


def bench_parser() -> Parser:
    """The parser of `scrape bench`."""
    parser = Parser(
        prog="scrape bench",
        description="Measure the scraper against the local demo site and print each figure "
        "next to the limit computed in the same run. Talks only to 127.0.0.1.",
    )
    parser.add_argument("--pages", type=int, default=2000, help="demo pages (default 2000)")
    parser.add_argument("--threads", type=int, default=32, help="download threads (default 32)")
    parser.add_argument("--processes", type=int, default=2, help="parse processes (default 2)")
    parser.add_argument("--latency-ms", type=float, default=100, help="added latency (100)")
    parser.add_argument(
        "--models",
        action="store_true",
        help="compare sequential, threads-only and threads+processes, and sweep threads and "
        "processes (alone: exits 0 when every record was right; no limits to miss)",
    )
    parser.add_argument(
        "--model-pages", type=int, default=300, help="pages per model run (default 300)"
    )
    parser.add_argument(
        "--sweep-pages",
        type=int,
        default=800,
        help="pages per run of the processes sweep (default 800)",
    )
    parser.add_argument(
        "--plot",
        default="scrape-bench-models.png",
        metavar="PNG",
        help="where --models draws its sweeps (default scrape-bench-models.png; needs "
        "matplotlib: pip install 'scraper[plot]')",
    )
    parser.add_argument(
        "--memory", action="store_true", help="compare peak memory for 1,000 and --memory-urls URLs"
    )
    parser.add_argument(
        "--memory-urls",
        type=int,
        default=100_000,
        help="the large list of --memory (default 100000)",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="second runs over unchanged pages, and the state's cost",
    )
    parser.add_argument("--extract", action="store_true", help="the cost of 10 CSS fields per page")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="--cluster local:2 (Dask) against a local run (needs scraper[dask])",
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="the demo site as many HTTPS hosts at the default politeness",
    )
    parser.add_argument("--web-hosts", type=int, default=250, help="hosts of --web (default 250)")
    parser.add_argument(
        "--discovery",
        action="store_true",
        help="sitemaps over many hosts (a cron re-run: no page request), and a follow crawl "
        "against the same URLs as a list",
    )
    parser.add_argument(
        "--discovery-hosts", type=int, default=20, help="hosts of --discovery (default 20)"
    )
    parser.add_argument(
        "--crawl-pages",
        type=int,
        default=100_000,
        help="the site --discovery crawls (default 100000; 1,000 is the small crawl)",
    )
    parser.add_argument(
        "--only",
        choices=("models", "memory", "incremental", "extract", "cluster", "web", "discovery"),
        help="skip the main figures",
    )
    return parser


PARTS = ("models", "memory", "incremental", "extract", "cluster", "web", "discovery")


def run_bench(argv: Sequence[str], out: TextIO) -> int:
    """`scrape bench`; exits 0 when every figure is within its limit, 1 otherwise."""
    parser = bench_parser()
    args = parser.parse_args(argv)
    ok = True
    chosen = [part for part in PARTS if getattr(args, part) or args.only == part]
    with tempfile.TemporaryDirectory(prefix="scrape-bench-") as tmp:
        work = Path(tmp)
        # A part's flag runs that part alone (its exit status is its own: the models have no
        # limit to miss); no flag runs the main figures.
        if not chosen:
            ok &= bench_throughput(args, out, work)
        if args.models or args.only == "models":
            ok &= bench_models(args, out, work)
        if args.memory or args.only == "memory":
            ok &= bench_memory(args, out, work)
        if args.incremental or args.only == "incremental":
            ok &= bench_incremental(args, out, work)
        if args.extract or args.only == "extract":
            ok &= bench_extract(args, out)
        if args.cluster or args.only == "cluster":
            ok &= bench_cluster(args, out, work)
        if args.web or args.only == "web":
            ok &= bench_web(args, out, work)
        if args.discovery or args.only == "discovery":
            from scraper.bench.discovery import bench_discovery

            ok &= bench_discovery(args, out, work)
    return 0 if ok else 1
