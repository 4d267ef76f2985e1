"""`scrape bench`: measures the scraper against the demo site and prints each figure next to
the limit computed in the same run.

Every run talks only to a demo site this process starts on 127.0.0.1, with a bounded number of
requests. The scraper under test is the real `scrape` command in a subprocess; its CPU seconds
come from wait4 (its own and its reaped parse workers'), its memory from sampling the RSS of its
whole process tree, the site's CPU from the site process itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from scraper.config import usable_cores
from scraper.demo import DemoServer, DemoSite, check_records, demo_url_lines

SAMPLE_EVERY_S = 0.02


@dataclass
class Measured:
    """One run of something against the demo site."""

    name: str
    pages: int
    wall_s: float
    active_s: float  # from the first request to the end
    cpu_s: float  # all the scraper's processes
    site_cpu_s: float
    peak_rss: int  # bytes, all the scraper's processes together
    requests: int
    startup_s: float | None = None
    problems: int = 0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.active_s if self.active_s > 0 else 0.0

    @property
    def cpu_per_page(self) -> float:
        return self.cpu_s / self.pages

    @property
    def site_cpu_per_page(self) -> float:
        return self.site_cpu_s / self.pages


class PeakMemory:
    """Samples the summed RSS of a process and all its descendants, in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._done.wait(SAMPLE_EVERY_S):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for proc in procs:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def run_scrape_command(
    server: DemoServer, list_path: Path, out_dir: Path, args: Sequence[str]
) -> tuple[Measured, list[dict[str, Any]]]:
    """Run the real `scrape` command in a subprocess; measure it and read its records."""
    before = server.stats()
    server.reset()
    # Politeness limits are lifted for the benchmark's own local site, as `scrape demo` does.
    command = [
        sys.executable,
        "-m",
        "scraper",
        str(list_path),
        "-o",
        str(out_dir),
        "-q",
        "--host-concurrency",
        "1000",
        "--host-delay",
        "0",
        *args,
    ]
    started_wall = time.time()
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    memory = PeakMemory(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)  # the rusage includes its reaped parse workers
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = memory.stop()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"scrape exited {proc.returncode}: {err.strip()[-500:]}")
    after = server.stats()
    newest = max(out_dir.glob("*.summary.json"), key=lambda p: p.name.split(".")[0])
    summary = json.loads(newest.read_text())
    records = [json.loads(line) for line in (out_dir / "latest.jsonl").open(encoding="utf-8")]
    first = after["first_request_at"]
    measured = Measured(
        name=summary["run"],
        pages=summary["records"],
        wall_s=wall,
        active_s=wall - (first - started_wall) if first else wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        site_cpu_s=after["cpu_s"] - before["cpu_s"],
        peak_rss=peak,
        requests=after["requests"],
        startup_s=(first - started_wall) if first else None,
    )
    return measured, records


def write_list(folder: Path, origin: str, pages: int) -> Path:
    path = folder / f"urls-{pages}.txt"
    with path.open("wb") as handle:
        handle.writelines(demo_url_lines(origin, pages))
    return path


# -- floors: the work a page cannot avoid, measured alone ----------------------------------


def measure_floors(server: DemoServer, pages: int) -> dict[str, float]:
    """CPU per page of one requests.Session GET and of parse+extract, each measured alone."""
    import requests

    from scraper.fetch import FetchLimits, fetch_page
    from scraper.parse import ParseOptions, parse_page
    from scraper.records import UrlTask

    urls = [line.decode().strip() for line in demo_url_lines(server.url, pages)]
    limits = FetchLimits(5, 15, 30, 5_000_000, 10)
    fetched = []
    with requests.Session() as session:
        for n, url in enumerate(urls, 1):  # not timed: warm-up, and the pages for the parse floor
            try:
                fetched.append(fetch_page(session, UrlTask(n, url, url), limits))
            except Exception:  # noqa: BLE001 (the floor needs only the pages that load)
                pass
        started = time.process_time()
        for url in urls:
            session.get(url).content  # noqa: B018 (the GET itself is what is timed)
        get_cpu = (time.process_time() - started) / len(urls)
    ok_pages = [p for p in fetched if p.status == 200]
    options = ParseOptions()
    started = time.process_time()
    for page in ok_pages:
        parse_page(page, options)
    parse_cpu = (time.process_time() - started) / max(1, len(ok_pages))
    return {
        "get_cpu_s": get_cpu,
        "parse_cpu_s": parse_cpu,
        "transfer_s": measure_transfer(ok_pages[:300], parse_cpu),
    }


def measure_transfer(pages: list[Any], parse_cpu: float) -> float:
    """CPU per page, both sides, of moving a page to a worker process and a reply back."""
    from scraper import parse_pool

    worker = parse_pool.Worker(parse_pool.Job(_body_length, None), "bench-transfer")
    worker.start()
    try:
        worker.send(0, pages[0])
        worker.receive(60)  # wait until the worker has started
        child_before = _cpu_of(worker.process.pid)
        started = time.process_time()
        for n, page in enumerate(pages, 1):
            worker.send(n, page)
            worker.receive(60)
        own = time.process_time() - started
        child = _cpu_of(worker.process.pid) - child_before
    finally:
        worker.stop()
    return (own + child) / len(pages)


def _body_length(page: Any, options: Any) -> int:
    return len(page.body)


def _cpu_of(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- the comparison of concurrency models --------------------------------------------------


def model_sequential(urls: list[str]) -> int:
    """(a) one thread: fetch, then parse, one page at a time."""
    from scraper.config import Settings
    from scraper.fetch import FetchLimits, fetch_page, new_session
    from scraper.parse import ParseOptions, parse_page
    from scraper.records import UrlTask

    session = new_session(Settings())
    limits, options = FetchLimits(5, 15, 30, 5_000_000, 10), ParseOptions()
    done = 0
    for n, url in enumerate(urls, 1):
        done += _fetch_and_parse(
            session, UrlTask(n, url, url), limits, options, fetch_page, parse_page
        )
    session.close()
    return done


def model_threads(urls: list[str], threads: int) -> int:
    """(b) a thread pool that downloads and parses in the same threads (the GIL serialises
    the parsing)."""
    from concurrent.futures import ThreadPoolExecutor

    from scraper.config import Settings
    from scraper.fetch import FetchLimits, fetch_page, new_session
    from scraper.parse import ParseOptions, parse_page
    from scraper.records import UrlTask

    local = threading.local()
    limits, options = FetchLimits(5, 15, 30, 5_000_000, 10), ParseOptions()

    def one(item: tuple[int, str]) -> int:
        if not hasattr(local, "session"):
            local.session = new_session(Settings())
        task = UrlTask(item[0], item[1], item[1])
        return _fetch_and_parse(local.session, task, limits, options, fetch_page, parse_page)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, enumerate(urls, 1)))


def _fetch_and_parse(
    session: Any,
    task: Any,
    limits: Any,
    options: Any,
    fetch: Callable[..., Any],
    parse: Callable[..., Any],
) -> int:
    page = fetch(session, task, limits)
    if page.status < 400:
        parse(page, options)
    return 1


def _model_main() -> None:
    """Entry point of a model's subprocess: argv = model, list file, threads."""
    model, list_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(list_file, encoding="utf-8") as handle:
        urls = [line.strip() for line in handle if line.strip()]
    if model == "sequential":
        model_sequential(urls)
    else:
        model_threads(urls, threads)


def run_model(
    server: DemoServer,
    model: str,
    list_path: Path,
    pages: int,
    threads: int,
    processes: int,
    out_dir: Path,
) -> Measured:
    """Run one model in a fresh subprocess and measure it like the pipeline."""
    if model == "processes":
        measured, _ = run_scrape_command(
            server, list_path, out_dir, ["--threads", str(threads), "--processes", str(processes)]
        )
        measured.name = model
        return measured
    before = server.stats()
    server.reset()
    code = "from scraper.bench import _model_main; _model_main()"
    started_wall, started = time.time(), time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, model, str(list_path), str(threads)])
    memory = PeakMemory(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = memory.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"model {model} exited {proc.returncode}")
    after = server.stats()
    first = after["first_request_at"]
    return Measured(
        model,
        pages,
        wall,
        wall - (first - started_wall) if first else wall,
        usage.ru_utime + usage.ru_stime,
        after["cpu_s"] - before["cpu_s"],
        peak,
        after["requests"],
    )


# -- reports -----------------------------------------------------------------------------


def _floor(floors: dict[str, float]) -> float:
    return floors["get_cpu_s"] + floors["parse_cpu_s"]


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def bench_throughput(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    """The pipeline issue's figures: CPU-bound and latency-bound runs with their limits."""
    cores = usable_cores()
    flags = ["--threads", str(args.threads), "--processes", str(args.processes)]
    site = DemoSite(args.pages)
    all_ok = True
    with DemoServer(n_pages=args.pages) as server:
        # The floor is measured before and after the run and averaged: this machine's speed
        # drifts by 10-20% within a minute, and the ratio should not depend on which way.
        before = measure_floors(server, args.pages)
        list_path = write_list(work, server.url, args.pages)
        run, records = run_scrape_command(server, list_path, work / "out-0ms", flags)
        problems = check_records(site, server.url, records)
        after = measure_floors(server, args.pages)
    floors = {key: (before[key] + after[key]) / 2 for key in before}
    floor = floors["get_cpu_s"] + floors["parse_cpu_s"]
    cpu_ratio = run.cpu_per_page / floor
    limit = cores / (run.cpu_per_page + run.site_cpu_per_page)
    speed_ratio = run.pages_per_s / limit
    print(
        f"\n== {args.pages} demo pages, no added latency ({args.threads} threads, "
        f"{args.processes} processes, {cores} cores) ==",
        file=out,
    )
    print(
        f"floor: requests GET {floors['get_cpu_s'] * 1e3:.2f} ms CPU + parse+extract "
        f"{floors['parse_cpu_s'] * 1e3:.2f} ms CPU = {floor * 1e3:.2f} ms/page (before the "
        f"run {_floor(before) * 1e3:.2f}, after {_floor(after) * 1e3:.2f})",
        file=out,
    )
    print(
        f"moving a page to a worker and back: {floors['transfer_s'] * 1e3:.3f} ms CPU/page "
        f"({floors['transfer_s'] / floors['parse_cpu_s']:.1%} of parsing it)",
        file=out,
    )
    print(
        f"scraper CPU/page: {run.cpu_per_page * 1e3:.2f} ms = {cpu_ratio:.2f} x floor "
        f"(limit 1.50)  {_verdict(cpu_ratio <= 1.5)}",
        file=out,
    )
    print(f"site CPU/page: {run.site_cpu_per_page * 1e3:.2f} ms", file=out)
    print(
        f"pages/s: {run.pages_per_s:.0f} = {speed_ratio:.0%} of cores/(scraper+site CPU/page)"
        f" = {limit:.0f} (limit 80%)  {_verdict(speed_ratio >= 0.8)}",
        file=out,
    )
    print(
        f"start-up to first request: {run.startup_s or 0:.3f} s (limit 0.5 s)  "
        f"{_verdict((run.startup_s or 9) < 0.5)}",
        file=out,
    )
    print(
        f"peak memory, all processes: {_mb(run.peak_rss)}; records checked: "
        f"{len(records) - len(problems)}/{len(records)} correct",
        file=out,
    )
    all_ok &= cpu_ratio <= 1.5 and speed_ratio >= 0.8 and not problems
    all_ok &= (run.startup_s or 9) < 0.5

    latency = args.latency_ms / 1000
    with DemoServer(n_pages=args.pages, latency_s=latency) as server:
        list_path = write_list(work, server.url, args.pages)
        run, records = run_scrape_command(server, list_path, work / "out-lat", flags)
        problems = check_records(site, server.url, records)
    net_limit = args.threads / latency * run.pages / run.requests
    ratio = run.pages_per_s / net_limit
    print(f"\n== {args.pages} demo pages, {args.latency_ms:g} ms added latency ==", file=out)
    print(
        f"pages/s: {run.pages_per_s:.0f} = {ratio:.0%} of the network limit threads/latency "
        f"x pages/requests = {net_limit:.0f} ({run.requests} requests) (limit 90%)  "
        f"{_verdict(ratio >= 0.9)}",
        file=out,
    )
    print(
        f"scraper CPU/page: {run.cpu_per_page * 1e3:.2f} ms; peak memory {_mb(run.peak_rss)}; "
        f"records checked: {len(records) - len(problems)}/{len(records)} correct "
        f"{_verdict(not problems)}",
        file=out,
    )
    for line in problems[:5]:
        print(f"  mismatch: {line}", file=out)
    return all_ok and ratio >= 0.9 and not problems


def bench_memory(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    """Peak memory of all processes for a small and a large list."""
    flags = ["--threads", str(args.threads), "--processes", str(args.processes)]
    peaks = {}
    with DemoServer(n_pages=2000) as server:
        for count in (1000, args.memory_urls):
            list_path = write_list(work, server.url, count)
            run, _ = run_scrape_command(server, list_path, work / f"out-mem-{count}", flags)
            peaks[count] = run.peak_rss
            list_path.unlink()
    ratio = peaks[args.memory_urls] / peaks[1000]
    print(
        f"\n== peak memory, all processes ==\n1,000 URLs: {_mb(peaks[1000])}; "
        f"{args.memory_urls:,} URLs: {_mb(peaks[args.memory_urls])} = {ratio:.2f} x "
        f"(limit 1.30)  {_verdict(ratio <= 1.3)}",
        file=out,
    )
    return ratio <= 1.3


def bench_models(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    """The same pages through (a) one thread, (b) threads only, (c) threads + processes.

    With no added latency all --pages are used (CPU decides; start-up must not dominate); at
    --latency-ms, --model-pages (a sequential run waits out every round trip in turn).
    """
    rows = []
    for latency_ms, pages in ((0.0, args.pages), (args.latency_ms, args.model_pages)):
        with DemoServer(n_pages=pages, latency_s=latency_ms / 1000) as server:
            list_path = write_list(work, server.url, pages)
            runs = [
                run_model(
                    server,
                    model,
                    list_path,
                    pages,
                    args.threads,
                    args.processes,
                    work / f"out-model-{model}-{latency_ms:g}",
                )
                for model in ("sequential", "threads", "processes")
            ]
        base = runs[0].pages_per_s
        rows += [(latency_ms, pages, r, r.pages_per_s / base) for r in runs]
    print(
        f"\n== concurrency models: {args.threads} threads, {args.processes} processes, "
        f"{usable_cores()} cores ==",
        file=out,
    )
    print(
        "| added latency | pages | model | pages/s | CPU ms/page | peak memory | speed-up |",
        file=out,
    )
    print("|---:|---:|---|---:|---:|---:|---:|", file=out)
    names = {
        "sequential": "(a) sequential: fetch, parse, next",
        "threads": "(b) threads fetch and parse",
        "processes": "(c) threads fetch, processes parse",
    }
    for latency_ms, pages, r, speedup in rows:
        print(
            f"| {latency_ms:g} ms | {pages} | {names[r.name]} | {r.pages_per_s:.0f} | "
            f"{r.cpu_per_page * 1e3:.2f} | {_mb(r.peak_rss)} | {speedup:.1f}x |",
            file=out,
        )
    return True


def bench_incremental(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    """The cron issue's figures: a second run over unchanged pages, and the state's cost."""
    flags = ["--threads", str(args.threads), "--processes", str(args.processes)]
    ok = True
    print(f"\n== incremental re-runs, {args.pages} unchanged demo pages ==", file=out)
    for latency_ms in (0.0, args.latency_ms):
        with DemoServer(n_pages=args.pages, latency_s=latency_ms / 1000) as server:
            list_path = write_list(work, server.url, args.pages)
            folder = work / f"out-incr-{latency_ms:g}"
            first, _ = run_scrape_command(server, list_path, folder, flags)
            second, records = run_scrape_command(server, list_path, folder, flags)
            body_bytes = server.stats()["bytes_sent"]
        unchanged = sum(r["outcome"] == "unchanged" for r in records)
        fetched = sum(r["outcome"] in ("ok", "unchanged") for r in records)
        if latency_ms == 0:
            speedup = first.wall_s / second.wall_s
            verdict = speedup >= 2.5
            figure = f"{speedup:.1f}x faster (limit 2.5x)"
        else:
            share = second.cpu_s / first.cpu_s
            verdict = share <= 0.3
            figure = f"CPU {share:.0%} of the first run's (limit 30%)"
        ok &= verdict and unchanged == fetched
        print(
            f"{latency_ms:g} ms: first run {first.wall_s:.1f}s, {first.cpu_s:.1f} CPU-s; "
            f"second {second.wall_s:.1f}s, {second.cpu_s:.1f} CPU-s: {figure}  "
            f"{_verdict(verdict)}; {unchanged}/{fetched} pages unchanged (not parsed), "
            f"{body_bytes / second.requests:.0f} bytes sent per request",
            file=out,
        )
    plain_s, stateful_s = [], []
    with DemoServer(n_pages=args.pages) as server:
        list_path = write_list(work, server.url, args.pages)
        for n in range(2):  # alternated, best of two: this machine drifts by 10% a minute
            plain, _ = run_scrape_command(
                server, list_path, work / f"out-nostate-{n}", [*flags, "--no-state"]
            )
            stateful, _ = run_scrape_command(server, list_path, work / f"out-state-{n}", flags)
            plain_s.append(plain.wall_s)
            stateful_s.append(stateful.wall_s)
    plain.wall_s, stateful.wall_s = min(plain_s), min(stateful_s)
    cost = stateful.wall_s / plain.wall_s - 1
    ok &= cost < 0.05
    print(
        f"state lookups and updates: {stateful.wall_s:.2f}s with, {plain.wall_s:.2f}s "
        f"without: {cost:+.1%} (limit +5%)  {_verdict(cost < 0.05)}",
        file=out,
    )
    size = state_size_for(100_000, work / "state-100k.sqlite")
    ok &= size < 50 * 2**20
    print(
        f"state database for 100,000 URLs: {_mb(size)} (limit 50 MB)  "
        f"{_verdict(size < 50 * 2**20)}",
        file=out,
    )
    return ok


def state_size_for(count: int, path: Path) -> int:
    """Bytes of a state database holding `count` URLs with realistic validators."""
    from scraper.records import PageState, Validators
    from scraper.state import StateStore

    store = StateStore(path)
    now = time.time()
    for n in range(count):
        url = f"https://www.example-news-site.com/section/2026/11/26/article-{n:08d}.html"
        validators = Validators(
            f'W/"{n:016x}-5f3a2b"', "Wed, 26 Nov 2026 16:13:20 GMT", "sha256:" + f"{n:064x}"
        )
        store.update(PageState(url, "ok", 200, None, validators, True), now)
    store.close()
    return path.stat().st_size


def run_bench(argv: Sequence[str], out: TextIO) -> int:
    """`scrape bench`; exits 0 when every figure is within its limit, 1 otherwise."""
    parser = argparse.ArgumentParser(
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
        help="compare sequential, threads-only and threads+processes",
    )
    parser.add_argument(
        "--model-pages", type=int, default=300, help="pages per model run (default 300)"
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
    parser.add_argument(
        "--only", choices=("models", "memory", "incremental"), help="skip the main figures"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    ok = True
    with tempfile.TemporaryDirectory(prefix="scrape-bench-") as tmp:
        work = Path(tmp)
        if args.only is None:
            ok &= bench_throughput(args, out, work)
        if args.models or args.only == "models":
            ok &= bench_models(args, out, work)
        if args.memory or args.only == "memory":
            ok &= bench_memory(args, out, work)
        if args.incremental or args.only == "incremental":
            ok &= bench_incremental(args, out, work)
    return 0 if ok else 1
