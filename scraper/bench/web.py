"""`scrape bench --web`: the demo site as many HTTPS hosts, the way a real list looks.

Each host is a loopback address of its own (127.0.0.2, 127.0.0.3, ...: all this machine,
distinct hosts to politeness and to the connection pools) with its own latency (log-normal
around 60 ms), a few refusing connections and a few answering in 1.5 s; the certificate is
made here by trustme, for every address, and the scraper is given its CA with --ca-bundle.
The scraper runs at its default politeness with robots.txt obeyed, once over TLS and once over
plain HTTP (same hosts, same list), and the server counts requests, connections and requests
in flight per host.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from scraper.bench.harness import Measured, run_scrape_command
from scraper.config.settings import Settings
from scraper.demo.server import DemoServer, Listener
from scraper.demo.site import DemoSite, check_records, list_paths

MEDIAN_LATENCY_S = 0.060
LATENCY_SIGMA = 0.5  # log-normal: most hosts between 36 and 100 ms
SLOW_LATENCY_S = 1.5
REFUSING_SHARE = SLOW_SHARE = 0.02
PAGES_PER_HOST = (5, 20)


@dataclass(frozen=True)
class WebHost:
    listener: Listener
    paths: tuple[str, ...]

    @property
    def requests(self) -> int:
        """What the scraper must ask of this host: robots.txt, each page, each redirect."""
        return 1 + len(self.paths) + sum(p.startswith("/moved/") for p in self.paths)


def plan_hosts(count: int, seed: int = 13) -> list[WebHost]:
    """`count` hosts, their latencies, which refuse, and the demo paths each serves."""
    rng = random.Random(seed)
    sizes = [rng.randint(*PAGES_PER_HOST) for _ in range(count)]
    paths = iter(list_paths(sum(sizes)))
    special = rng.sample(range(count), max(2, round(count * (REFUSING_SHARE + SLOW_SHARE))))
    refusing = set(special[: len(special) // 2])
    slow = set(special[len(special) // 2 :])
    hosts = []
    for n, size in enumerate(sizes):
        latency = (
            SLOW_LATENCY_S
            if n in slow
            else rng.lognormvariate(math.log(MEDIAN_LATENCY_S), LATENCY_SIGMA)
        )
        address = f"127.0.{(n + 2) // 256}.{(n + 2) % 256}"
        listener = Listener(address, round(latency, 4), refuse=n in refusing)
        hosts.append(WebHost(listener, tuple(next(paths) for _ in range(size))))
    return hosts


def host_bound_s(host: WebHost, delay_s: float, per_host: int) -> float:
    """The least time a polite scraper needs for one host, by playing its schedule: robots.txt
    first and alone (nothing may be fetched before it is known), then request starts at least
    `delay_s` apart, at most `per_host` in flight, a redirect's second request in the same
    slot, each answered after the host's latency. (The simpler `(pages - 1) x delay +
    latency` misses that a 1.5 s host at 2 in flight is bound by its latency, not the delay.)
    """
    if host.listener.refuse:
        return 0.0
    latency = host.listener.latency_s
    next_start = delay_s  # robots.txt: started at 0, answered at `latency`
    slots = [latency] * per_host  # when each slot is free
    for path in host.paths:
        slot = min(range(per_host), key=slots.__getitem__)
        at = max(slots[slot], next_start, latency)
        for _hop in range(2 if path.startswith("/moved/") else 1):
            at = max(at, next_start)
            next_start = at + delay_s
            at += latency
        slots[slot] = at
    return max(slots)


def politeness_bound_s(hosts: Sequence[WebHost], settings: Settings) -> tuple[float, str]:
    """The run's lower bound and which limit sets it: the slowest host alone, or all the
    round trips shared by the threads."""
    slowest = max(host_bound_s(h, settings.host_delay_s, settings.host_concurrency) for h in hosts)
    served = [h for h in hosts if not h.listener.refuse]
    trips = sum(h.requests * h.listener.latency_s for h in served) / settings.threads
    if slowest >= trips:
        return slowest, "the slowest host: its requests at the host delay and concurrency"
    return trips, "all round trips shared by the threads"


def _check(
    site: DemoSite, hosts: Sequence[WebHost], urls: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    """Records against the ground truth; a refusing host's pages must fail as `connection`,
    with one attempt (nothing can come of retrying before robots.txt is asked for again)."""
    refusing = {url for host, url in zip(hosts, urls, strict=True) if host.listener.refuse}
    problems, served = [], []
    for record in records:
        origin = record["url"].split("/", 3)[:3]
        if "/".join(origin) in refusing:
            got = (record["outcome"], (record.get("error") or {}).get("kind"), record["attempts"])
            if got != ("failed", "connection", 1):
                problems.append(f"line {record['line']}: got {got}")
        else:
            served.append(record)
    return problems + check_records(site, list(urls), served)


def _write_list(path: Path, hosts: Sequence[WebHost], urls: Sequence[str]) -> int:
    lines = [f"{url}{p}\n" for host, url in zip(hosts, urls, strict=True) for p in host.paths]
    random.Random(7).shuffle(lines)
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def _certificate(work: Path, addresses: Sequence[str]) -> tuple[Path, tuple[str, str]]:
    """A private CA (its file for --ca-bundle) and a certificate for every address."""
    try:
        import trustme
    except ImportError as exc:  # a dependency; only a broken install lacks it
        raise RuntimeError("scrape bench --web needs trustme (pip install trustme)") from exc
    ca = trustme.CA(organization_name="scrape bench")
    cert = ca.issue_cert(*addresses)
    ca_file, chain, key = work / "web-ca.pem", work / "web-chain.pem", work / "web-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    with chain.open("wb") as handle:
        for blob in cert.cert_chain_pems:
            handle.write(blob.bytes())
    return ca_file, (str(chain), str(key))


def _run(
    hosts: Sequence[WebHost],
    n_pages: int,
    work: Path,
    name: str,
    flags: list[str],
    tls: tuple[str, str] | None,
    site: DemoSite,
) -> tuple[Measured, dict[str, Any], list[str]]:
    with DemoServer(n_pages, listeners=[h.listener for h in hosts], tls=tls) as server:
        list_path = work / f"web-{name}.txt"
        _write_list(list_path, hosts, server.urls)
        run, records = run_scrape_command(
            server, list_path, work / f"out-web-{name}", flags, polite=True
        )
        stats = server.stats()
        problems = _check(site, hosts, server.urls, records)
    return run, stats, problems


def bench_web(args: argparse.Namespace, out: TextIO, work: Path) -> bool:
    """The many-HTTPS-hosts issue's figures, each next to its limit."""
    settings = Settings(threads=args.threads, processes=args.processes)
    hosts = plan_hosts(args.web_hosts)
    n_pages = sum(len(h.paths) for h in hosts)
    site = DemoSite(n_pages)
    ca_file, tls = _certificate(work, [h.listener.address for h in hosts])
    flags = ["--threads", str(args.threads), "--processes", str(args.processes)]
    tls_run, tls_stats, tls_problems = _run(
        hosts, n_pages, work, "tls", [*flags, "--ca-bundle", str(ca_file)], tls, site
    )
    http_run, http_stats, http_problems = _run(hosts, n_pages, work, "http", flags, None, site)
    bound_s, bound_by = politeness_bound_s(hosts, settings)
    share = bound_s / tls_run.active_s
    per_connection = tls_stats["requests"] / max(1, tls_stats["connections"])
    cpu_ratio = tls_run.cpu_per_page / http_run.cpu_per_page
    correct = 1 - len(tls_problems) / max(1, tls_run.pages)
    peak = max(h["max_in_flight"] for h in tls_stats["hosts"])
    refusing = sum(h.listener.refuse for h in hosts)
    slow = sum(h.listener.latency_s >= SLOW_LATENCY_S for h in hosts)
    print(
        f"\n== the web: {len(hosts)} HTTPS hosts ({refusing} refusing, {slow} answering in "
        f"{SLOW_LATENCY_S:g} s, the rest {MEDIAN_LATENCY_S * 1e3:.0f} ms median), "
        f"{n_pages} URLs, {args.threads} threads, {args.processes} processes, "
        f"{settings.host_concurrency} per host, {settings.host_delay_s:g} s delay, "
        "robots.txt obeyed ==",
        file=out,
    )
    checks = [
        (
            f"pages/s: {tls_run.pages_per_s:.0f} in {tls_run.active_s:.1f} s; politeness bound "
            f"{bound_s:.1f} s ({bound_by}) = {n_pages / bound_s:.0f} pages/s: "
            f"{share:.0%} of it (limit 85%)",
            share >= 0.85,
        ),
        (
            f"requests per TLS connection (counted by the server): {tls_stats['requests']} / "
            f"{tls_stats['connections']} = {per_connection:.1f} (limit 10; over plain HTTP "
            f"{http_stats['requests']} / {http_stats['connections']})",
            per_connection >= 10,
        ),
        (
            f"CPU per page: TLS {tls_run.cpu_per_page * 1e3:.2f} ms, plain HTTP "
            f"{http_run.cpu_per_page * 1e3:.2f} ms = {cpu_ratio:.2f} x (limit 1.30)",
            cpu_ratio <= 1.3,
        ),
        (
            f"correct against the ground truth: {tls_run.pages - len(tls_problems)} of "
            f"{tls_run.pages} = {correct:.1%} (limit 99%; plain HTTP: "
            f"{len(http_problems)} wrong)",
            correct >= 0.99 and tls_run.pages == n_pages,
        ),
        (
            f"most requests in flight at one host: {peak} (limit {settings.host_concurrency})",
            peak <= settings.host_concurrency,
        ),
    ]
    for text, ok in checks:
        print(f"{text}  {'PASS' if ok else 'MISS'}", file=out)
    simple = max(
        (len(h.paths) - 1) * settings.host_delay_s + h.listener.latency_s
        for h in hosts
        if not h.listener.refuse
    )
    fast = [
        (stats["last_response_at"] - tls_stats["first_request_at"], host_bound_s(h, 0.5, 2))
        for h, stats in zip(hosts, tls_stats["hosts"], strict=True)
        if not h.listener.refuse and h.listener.latency_s < SLOW_LATENCY_S
    ]
    print(
        f"(the simpler bound, max over hosts of (pages - 1) x delay + latency, is {simple:.1f} "
        f"s: it leaves out robots.txt before a host's pages and that a {SLOW_LATENCY_S:g} s "
        f"host at {settings.host_concurrency} in flight is bound by its latency; the last "
        f"of the other hosts was done {max(f[0] for f in fast):.1f} s after the first request, "
        f"the largest of their bounds {max(f[1] for f in fast):.1f} s)",
        file=out,
    )
    for problem in tls_problems[:5]:
        print(f"  wrong: {problem}", file=out)
    return all(ok for _, ok in checks)
