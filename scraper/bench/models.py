"""The comparison programs of `scrape bench --models` and `--incremental`: one thread doing
everything, a thread pool that also parses (the GIL serialises it), and a hand-written
re-run; each runs in a subprocess of its own and is measured like `scrape` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scraper.bench.harness import Measured, PeakMemory, run_scrape_command
from scraper.demo.server import DemoServer
from scraper.demo.site import DemoSite, check_records


def model_sequential(urls: list[str]) -> int:
    """(a) one thread: fetch, then parse, one page at a time."""
    from scraper.config.settings import Settings
    from scraper.fetch.http import FetchLimits, fetch_page, new_session
    from scraper.parse.page import ParseOptions, parse_page
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


def model_threads(urls: list[str], threads: int, engine: str = "lxml") -> int:
    """(b) a thread pool that downloads and parses in the same threads (the GIL serialises
    the parsing)."""
    from concurrent.futures import ThreadPoolExecutor

    from scraper.config.settings import Settings
    from scraper.fetch.http import FetchLimits, fetch_page, new_session
    from scraper.parse.page import ParseOptions, parse_page
    from scraper.records import UrlTask

    local = threading.local()
    limits, options = FetchLimits(5, 15, 30, 5_000_000, 10), ParseOptions(engine)

    def one(item: tuple[int, str]) -> int:
        if not hasattr(local, "session"):
            local.session = new_session(Settings())
        task = UrlTask(item[0], item[1], item[1])
        return _fetch_and_parse(local.session, task, limits, options, fetch_page, parse_page)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, enumerate(urls, 1)))


def model_conditional(lines: list[str], threads: int) -> int:
    """A hand-written re-run, what scrape's second run is compared with: a bare pool of
    requests sessions sending each URL's conditional GET and nothing else (no list checks,
    politeness, records or state; trust_env off, as scrape does without proxies, which only
    makes it faster). `lines` are `url<TAB>headers as JSON`; returns the 304 count."""
    from concurrent.futures import ThreadPoolExecutor

    from scraper.fetch.http import plain_session

    local = threading.local()

    def one(line: str) -> int:
        url, _, headers = line.partition("\t")
        if not hasattr(local, "session"):
            local.session = plain_session(trust_env=False)  # as scrape's, without proxies
        response = local.session.get(url, headers=json.loads(headers), timeout=30)
        return int(response.status_code == 304)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, lines))


def validators_file(state_path: Path, list_path: Path, path: Path) -> tuple[Path, int]:
    """`url<TAB>headers` for each URL of the list the state has validators for: the
    conditional headers a re-run sends, found as the pipeline finds them. Returns the file
    and its line count."""
    from scraper.fetch.http import conditional_headers
    from scraper.records import UrlTask
    from scraper.state import StateStore
    from scraper.url_list import read_url_list
    from scraper.urls import state_key

    with list_path.open("rb") as handle:
        tasks = [entry for entry in read_url_list(handle) if isinstance(entry, UrlTask)]
    store = StateStore(state_path)
    try:
        known = store.lookup_many([state_key(task) for task in tasks])
    finally:
        store.close()
    lines = []
    for task in tasks:
        headers = conditional_headers(known.get(state_key(task)))
        if headers:
            lines.append(f"{task.normalized_url}\t{json.dumps(headers)}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path, len(lines)


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
    """Entry point of a model's subprocess: argv = model, list file, threads, engine."""
    model, list_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = sys.argv[4] if len(sys.argv) > 4 else "lxml"
    with open(list_file, encoding="utf-8") as handle:
        urls = [line.strip() for line in handle if line.strip()]
    if model == "conditional":
        answered = model_conditional(urls, threads)
        sys.exit(0 if answered == len(urls) else 1)  # every page unchanged, or no comparison
    if model == "sequential":
        model_sequential(urls)
    else:
        model_threads(urls, threads, engine)


def run_model(
    server: DemoServer,
    model: str,
    list_path: Path,
    pages: int,
    threads: int,
    processes: int,
    out_dir: Path,
    engine: str = "lxml",
) -> Measured:
    """Run one model in a fresh subprocess and measure it like the pipeline; the scrape
    command's records are checked against the site's ground truth (`problems`)."""
    if model == "processes":
        flags = ["--threads", str(threads), "--processes", str(processes), "--parser", engine]
        measured, records = run_scrape_command(server, list_path, out_dir, flags)
        measured.name = model
        measured.problems = len(check_records(DemoSite(server.n_pages), server.url, records))
        return measured
    before = server.stats()
    server.reset()
    code = "from scraper.bench.models import _model_main; _model_main()"
    started_wall, started = time.time(), time.monotonic()
    argv = [sys.executable, "-c", code, model, str(list_path), str(threads), engine]
    proc = subprocess.Popen(argv)
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
