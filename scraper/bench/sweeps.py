"""`scrape bench --models`' sweeps: where each concurrency model fits, measured.

- Threads at 100 ms added latency (1 ... 64 threads, processes fixed), each point beside the
  network limit `threads / latency` (redirects counted as round trips): while the run keeps
  to the limit, waiting is the bottleneck and threads are the answer; where it leaves it,
  the main process (one core under the GIL: requests, urllib3, the scheduler) is.
- Processes at no added latency, for the lxml engine (a short parse: the pipeline's own work
  shows) and bs4 (a parse several times longer: the pool's gain is plain): 0 is the parse in
  the download threads (the hand-written thread pool), then 1 ... cores worker processes,
  each beside the cores limit.
- A picture of both (matplotlib, the optional `plot` extra), next to the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from scraper.bench.harness import Measured, fetch_pages, write_list
from scraper.bench.models import run_model
from scraper.config.settings import usable_cores
from scraper.demo.server import DemoServer

THREADS = (1, 2, 4, 8, 16, 32, 64)
ON_THE_LIMIT = 0.8  # a point this close to its limit still follows it
ENGINES = ("lxml", "bs4")


@dataclass
class Point:
    x: int
    measured: Measured
    limit: float  # pages/s

    @property
    def share(self) -> float:
        return self.measured.pages_per_s / self.limit if self.limit else 0.0


def threads_sweep(latency_ms: float, processes: int, max_pages: int, work: Path) -> list[Point]:
    """The threads sweep; fewer pages for few threads (one thread waits out every trip)."""
    points = []
    latency = latency_ms / 1000
    for threads in THREADS:
        pages = min(max_pages, max(30, 25 * threads))
        with DemoServer(n_pages=pages, latency_s=latency) as server:
            list_path = write_list(work, server.url, pages)
            run = run_model(
                server, "processes", list_path, pages, threads, processes, work / f"t{threads}"
            )
        limit = threads / latency * run.pages / max(1, run.requests)
        points.append(Point(threads, run, limit))
    return points


def parse_cpu(engine: str, pages: list[Any]) -> float:
    """CPU seconds per page of the parse alone (best of three)."""
    from scraper.parse.page import ParseOptions, parse_page

    options = ParseOptions(engine)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for page in pages:
            parse_page(page, options)
        best = min(best, (time.process_time() - started) / len(pages))
    return best


def processes_sweep(
    engine: str, pages: int, threads: int, work: Path, floor_get_s: float
) -> tuple[list[Point], float]:
    """The processes sweep of one engine: (points, its parse CPU per page)."""
    cores = usable_cores()
    points = []
    with DemoServer(n_pages=pages) as server:
        parse_s = parse_cpu(engine, fetch_pages(server, min(pages, 200)))
        list_path = write_list(work, server.url, pages)
        for processes in range(cores + 1):
            model = "threads" if processes == 0 else "processes"
            out = work / f"p-{engine}-{processes}"
            run = run_model(server, model, list_path, pages, threads, processes, out, engine)
            # 0: the parse shares the download threads' one core (the GIL); N: N workers,
            # and all the work together within the cores
            per_page = parse_s + floor_get_s + run.site_cpu_per_page
            limit = (
                1 / (parse_s + floor_get_s)
                if processes == 0
                else min(min(processes, cores) / parse_s, cores / per_page)
            )
            points.append(Point(processes, run, limit))
    return points, parse_s


def report(
    out: TextIO,
    threads_points: list[Point],
    latency_ms: float,
    processes: int,
    sweeps: dict[str, tuple[list[Point], float]],
    threads: int,
) -> bool:
    """Print both sweeps; True when every scrape run's records were right."""
    print(
        f"\n== threads sweep: {latency_ms:g} ms added latency, {processes} processes ==",
        file=out,
    )
    print("| threads | pages | pages/s | network limit | share | CPU ms/page |", file=out)
    print("|---:|---:|---:|---:|---:|---:|", file=out)
    for p in threads_points:
        r = p.measured
        print(
            f"| {p.x} | {r.pages} | {r.pages_per_s:.0f} | {p.limit:.0f} | {p.share:.0%} | "
            f"{r.cpu_per_page * 1e3:.2f} |",
            file=out,
        )
    leaving = next((p for p in threads_points if p.share < ON_THE_LIMIT), None)
    if leaving is None:
        print(f"every point within {ON_THE_LIMIT:.0%} of threads / latency", file=out)
    else:
        print(
            f"the curve leaves the network limit at {leaving.x} threads "
            f"({leaving.share:.0%} of it): from there the main process, one core under the "
            "GIL, is the bottleneck, not the waiting",
            file=out,
        )
    for engine, (points, parse_s) in sweeps.items():
        print(
            f"\n== processes sweep, {engine}: no added latency, {threads} threads, parse "
            f"{parse_s * 1e3:.2f} ms CPU/page alone ==",
            file=out,
        )
        print("| processes | pages/s | limit | share | CPU ms/page | vs 0 |", file=out)
        print("|---:|---:|---:|---:|---:|---:|", file=out)
        base = points[0].measured.pages_per_s or 1.0
        for p in points:
            r = p.measured
            label = "0 (parse in the download threads)" if p.x == 0 else str(p.x)
            print(
                f"| {label} | {r.pages_per_s:.0f} | {p.limit:.0f} | {p.share:.0%} | "
                f"{r.cpu_per_page * 1e3:.2f} | {r.pages_per_s / base:.2f}x |",
                file=out,
            )
    problems = sum(p.measured.problems for p in threads_points)
    problems += sum(p.measured.problems for pts, _ in sweeps.values() for p in pts)
    print(f"records checked against the ground truth: {problems} wrong", file=out)
    return problems == 0


def picture(
    path: Path, threads_points: list[Point], sweeps: dict[str, tuple[list[Point], float]]
) -> bool:
    """Both sweeps as one PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [p.x for p in threads_points]
    left.plot(xs, [p.measured.pages_per_s for p in threads_points], "o-", label="scrape")
    left.plot(xs, [p.limit for p in threads_points], "--", label="threads / latency")
    left.set_xscale("log", base=2)
    left.set_xticks(xs, [str(x) for x in xs])
    left.set_xlabel("download threads (100 ms latency)")
    left.set_ylabel("pages/s")
    left.set_title("Threads: waiting is the bottleneck")
    left.legend()
    for (engine, (points, _)), color in zip(
        sweeps.items(), ("tab:blue", "tab:orange"), strict=False
    ):
        xs = [p.x for p in points]
        right.plot(xs, [p.measured.pages_per_s for p in points], "o-", color=color, label=engine)
        right.plot(xs, [p.limit for p in points], "--", color=color, label=f"{engine} limit")
    right.set_xticks(xs, ["0\n(threads)", *[str(x) for x in xs[1:]]])
    right.set_xlabel("parse processes (no added latency)")
    right.set_ylabel("pages/s")
    right.set_title("Processes: parsing is the bottleneck")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
