"""Measuring tools for `scrape bench`: running the real `scrape` command (or a comparison
model) against the demo site in subprocesses and taking its wall time, CPU seconds (wait4,
which includes reaped children) and peak memory (the summed RSS of its process tree); and the
per-page floors, measured alone. Prints nothing: bench/figures.py reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scraper.demo.server import DemoServer
from scraper.demo.site import demo_url_lines

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
    summary: dict[str, Any] = field(default_factory=dict)  # the run's summary.json

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
    server: DemoServer,
    list_path: Path,
    out_dir: Path,
    args: Sequence[str],
    polite: bool = False,
) -> tuple[Measured, list[dict[str, Any]]]:
    """Run the real `scrape` command in a subprocess; measure it and read its records."""
    before = server.stats()
    server.reset()
    # Unless `polite`, politeness is lifted for the benchmark's own local site, as `scrape
    # demo` does: no per-host limits, and no robots.txt (which the site lacks; asking for it
    # would hold every thread for one round trip at the start, 1.4% of a 100 ms run).
    lifted = ["--host-concurrency", "1000", "--host-delay", "0", "--no-obey-robots"]
    command = [
        sys.executable,
        "-m",
        "scraper",
        str(list_path),
        "-o",
        str(out_dir),
        "-q",
        *([] if polite else lifted),
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
        summary=summary,
    )
    return measured, records


def write_list(folder: Path, origin: str | list[str], pages: int) -> Path:
    path = folder / f"urls-{pages}.txt"
    with path.open("wb") as handle:
        handle.writelines(demo_url_lines(origin, pages))
    return path


# -- floors: the work a page cannot avoid, measured alone ----------------------------------


def measure_floors(server: DemoServer, pages: int) -> dict[str, float]:
    """CPU per page of one requests.Session GET and of parse+extract, each measured alone."""
    from scraper.fetch.http import FetchLimits, fetch_page, plain_session
    from scraper.parse.page import ParseOptions, parse_page
    from scraper.records import UrlTask

    urls = [line.decode().strip() for line in demo_url_lines(server.url, pages)]
    limits = FetchLimits(5, 15, 30, 5_000_000, 10)
    fetched = []
    with plain_session() as session:
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
        "transfer_s": measure_transfer(ok_pages[:300]),
    }


def measure_transfer(pages: list[Any]) -> float:
    """CPU per page, both sides, of moving a page to a worker process and a reply back."""
    from scraper.pipeline import workers

    worker = workers.Worker(workers.Job(_body_length, None), "bench-transfer")
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


# -- extraction rules: their cost on top of the generic record -----------------------------

# Ten CSS fields of the kinds people write, for the generic demo pages.
DEMO_FIELDS: dict[str, dict[str, Any]] = {
    "heading": {"css": "title"},
    "lang": {"css": "html", "attr": "lang"},
    "description": {"css": "meta[name=description]", "attr": "content"},
    "canonical": {"css": "link[rel=canonical]", "attr": "href", "type": "url"},
    "nav": {"css": "nav.nav a", "attr": "href", "all": True, "type": "url"},
    "sections": {"css": "main h2", "all": True},
    "first_paragraph": {"css": "main > p:first-of-type"},
    "page_links": {"css": "main p a[href*='/page/']", "all": True, "attr": "href"},
    "external": {"css": "a[href^='https://']", "attr": "href", "type": "url"},
    "link_count": {"css": "main p a:last-child", "regex": "([0-9]+)", "type": "int"},
}


def measure_extract_cost(pages: list[Any], rounds: int = 3) -> dict[str, float]:
    """CPU per page of parse_page without rules and with DEMO_FIELDS (best of `rounds`,
    interleaved, so that a noisy neighbour hits both alike)."""
    from scraper.config.sites import check_field
    from scraper.parse.page import ParseOptions, parse_page
    from scraper.parse.rules import SiteRule

    fields = tuple(check_field(n, dict(o), f"bench field {n}") for n, o in DEMO_FIELDS.items())
    plain = ParseOptions()
    ruled = ParseOptions(sites=(SiteRule("demo", "glob", "*", fields),))
    parse_page(pages[0], ruled)  # compiles the selectors once, as a worker does
    best = {"plain_cpu_s": float("inf"), "rules_cpu_s": float("inf")}
    for _ in range(rounds):
        for key, options in (("plain_cpu_s", plain), ("rules_cpu_s", ruled)):
            started = time.process_time()
            for page in pages:
                parse_page(page, options)
            best[key] = min(best[key], (time.process_time() - started) / len(pages))
    return best


def fetch_pages(server: DemoServer, count: int) -> list[Any]:
    """`count` demo pages fetched once (200s only), for in-process parse measurements."""
    from scraper.config.settings import Settings
    from scraper.fetch.http import FetchLimits, fetch_page, new_session
    from scraper.records import UrlTask

    limits = FetchLimits(5, 15, 30, 5_000_000, 10)
    session = new_session(Settings())
    pages = []
    try:
        for n, line in enumerate(demo_url_lines(server.url, count), 1):
            url = line.decode().strip()
            page = fetch_page(session, UrlTask(n, url, url), limits)
            if page.status == 200:
                pages.append(page)
    finally:
        session.close()
    return pages


# -- the cluster client's own ceiling ------------------------------------------------------


def measure_client_write_rate(records: list[dict[str, Any]], folder: Path) -> float:
    """Records/s one client process can take in: unpickle a batch result as it arrives from
    a worker, write each record (JSON lines) and update the state, as a cluster run does."""
    import pickle

    from scraper.output.sinks import JsonLinesSink
    from scraper.records import Outcome, PageRecord, PageState, Validators
    from scraper.state import StateStore

    page_records = []
    for n, record in enumerate(r for r in records if r["outcome"] == "ok"):
        fields = {
            k: v for k, v in record.items() if k not in ("line", "url", "outcome", "attempts")
        }
        validators = Validators('"etag"', "Tue, 14 Nov 2023 22:13:20 GMT", record["content_hash"])
        state = PageState(record["url"] + f"?n={n}", "ok", 200, None, validators, True)
        page_records.append(PageRecord(n, record["url"], Outcome.OK, fields, None, 1, state))
    batches = [pickle.dumps(page_records[i : i + 64]) for i in range(0, len(page_records), 64)]
    store = StateStore(folder / "client-rate.sqlite")
    sink = JsonLinesSink(folder, "client-rate")
    started = time.process_time()
    for blob in batches:
        for record in pickle.loads(blob):
            sink.write(record)
            store.update(record.state, time.time())
        sink.flush()  # as a cluster run does after each round of batches
        store.commit_due(time.time())
    store.close()
    elapsed = time.process_time() - started
    sink.abandon()
    return len(page_records) / elapsed
