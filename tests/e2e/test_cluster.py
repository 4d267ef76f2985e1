"""`--cluster`: the same scrape on Dask workers, end to end with the `scrape` console script.

The clusters run on 127.0.0.1 only: a LocalCluster the scrape starts (`local:2`), or a
scheduler and workers this test starts as processes of its own (so it can kill one).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from scraper.demo.server import DemoServer
from scraper.demo.site import DemoSite, check_records, demo_url_lines
from tests.conftest import FAST, run_script, scrape_command, write_list
from tests.servers import ok, serve


def records_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def comparable(records: list[dict]) -> set[tuple]:
    keys = ("line", "url", "outcome", "final_url", "status", "title", "content_hash", "word_count")
    return {tuple(json.dumps(r.get(k)) for k in keys) for r in records}


def demo_list(server: DemoServer, path: Path, pages: int, extra: list[str]) -> Path:
    lines = b"".join(demo_url_lines(server.urls, pages)).decode().splitlines()
    return write_list(path, [*lines, *extra])


def test_a_local_cluster_writes_the_same_records_as_a_local_run(tmp_path: Path) -> None:
    with DemoServer(n_pages=240, latency_s=0.02, ports=4) as demo:
        extra = [demo.urls[0] + "/page/0", "not a url", demo.urls[1] + "/page/1#again"]
        urls = demo_list(demo, tmp_path / "urls.txt", 240, extra)
        local = run_script([str(urls), "-o", "local", *FAST], cwd=tmp_path)
        on_dask = [str(urls), "-o", "dask", "--cluster", "local:2", *FAST]
        cluster = run_script(on_dask, cwd=tmp_path)
        first_run = records_in(tmp_path / "dask" / "latest.jsonl")
        again = run_script(on_dask, cwd=tmp_path)  # the state is the client's: 304s now
    assert local.returncode == cluster.returncode == 1, cluster.stderr  # 404s and a bad line
    on_cluster = first_run
    assert len(on_cluster) == 243
    assert comparable(on_cluster) == comparable(records_in(tmp_path / "local" / "latest.jsonl"))
    pages = [r for r in on_cluster if r["outcome"] in ("ok", "failed") and r["line"] <= 240]
    assert check_records(DemoSite(240), demo.urls, pages) == []
    summary = json.loads(
        min((tmp_path / "dask").glob("*.summary.json"), key=lambda p: p.name).read_text()
    )
    assert summary["counts"]["duplicate"] == 2 and summary["counts"]["invalid"] == 1
    assert summary["cluster_start_s"] > 0
    counts = json.loads(
        max((tmp_path / "dask").glob("*.summary.json"), key=lambda p: p.name).read_text()
    )["counts"]
    assert again.returncode == 1 and counts["unchanged"] == 235  # all but the five 404s


def test_politeness_holds_cluster_wide(tmp_path: Path) -> None:
    with (
        serve({f"/{n}": ok for n in range(6)}) as one,
        serve({f"/{n}": ok for n in range(6)}) as two,
    ):
        urls = write_list(
            tmp_path / "urls.txt", [f"{s.origin}/{n}" for n in range(6) for s in (one, two)]
        )
        result = subprocess.run(
            [
                *scrape_command(),
                str(urls),
                "-o",
                "out",
                "--cluster",
                "local:2",
                "--host-concurrency",
                "1",
                "--host-delay",
                "0.3",
                "--threads",
                "8",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        for served in (one, two):
            assert served.max_in_flight == 1
            assert len(served.paths) == 7  # robots.txt and six pages, each asked once
            gaps = [b - a for a, b in zip(served.arrivals, served.arrivals[1:], strict=False)]
            # 0.3 s between request starts; an arrival after a new connection's handshake
            # comes up to a few ms later than its start, so the gap after it can be shorter.
            assert min(gaps) >= 0.28, gaps


def test_an_unreachable_cluster_is_a_config_error_before_any_request(tmp_path: Path) -> None:
    with serve({"/": ok}) as served:
        urls = write_list(tmp_path / "urls.txt", [served.origin + "/"])
        for address in ("tcp://127.0.0.1:9", "local:0", "nonsense"):
            result = run_script(
                [str(urls), "-o", "out", "--cluster", address, "--connect-timeout", "1"],
                cwd=tmp_path,
            )
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"scrape: cluster {address}: ")
            assert len(result.stderr.strip().splitlines()) == 1
        assert served.paths == []
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def dask_cluster(tmp_path: Path, workers: int, nanny: bool, daemon_ok: bool) -> Iterator[tuple]:
    """A scheduler and workers on 127.0.0.1, as processes of this test (their PIDs are ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    if daemon_ok:
        env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--host", "127.0.0.1", "--dashboard-address", ":0"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--port",
                "0",
                "--scheduler-file",
                str(scheduler_file),
                *common,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker_args = ["--nthreads", "4", "--scheduler-file", str(scheduler_file), *common]
        worker_args += [] if nanny else ["--no-nanny"]
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", *worker_args],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        address = json.loads(scheduler_file.read_text())["address"]
        _wait_for_workers(address, workers)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape_interrupted(
    tmp_path: Path, demo: DemoServer, args: list[str], after: int, interrupt: Callable[..., None]
) -> tuple[int, str]:
    """Run the scrape (politeness lifted for our site), call `interrupt(process)` once the
    site has served `after` requests, and return its exit status and stderr."""
    lifted = ["--host-concurrency", "1000", "--host-delay", "0", "--no-obey-robots"]
    scrape = subprocess.Popen(
        [*scrape_command(), *args, *lifted],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while demo.stats()["requests"] < after and time.monotonic() < deadline:
            time.sleep(0.05)
        interrupt(scrape)
        _, stderr = scrape.communicate(timeout=120)
    finally:
        _reap(scrape)
    return scrape.returncode, stderr


def _reap(proc: subprocess.Popen) -> None:
    """A scrape that outlived its test is killed (our own PID), not left to later tests."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with (
        DemoServer(n_pages=600, latency_s=0.05, ports=8) as demo,
        dask_cluster(tmp_path, workers=2, nanny=False, daemon_ok=True) as (address, workers),
    ):
        urls = demo_list(demo, tmp_path / "urls.txt", 600, [])
        args = [str(urls), "-o", "out", "--cluster", address, "-t", "8", "-p", "1"]
        code, stderr = scrape_interrupted(
            tmp_path, demo, args, 150, lambda _: os.kill(workers[0].pid, signal.SIGKILL)
        )
        requests = demo.stats()["requests"]
    assert code == 1, stderr  # the list's 404s
    assert "left" in stderr
    records = records_in(tmp_path / "out" / "latest.jsonl")
    lines = [r["line"] for r in records]
    assert sorted(lines) == list(range(1, 601))  # none lost, none twice
    assert check_records(DemoSite(600), demo.urls, records) == []
    assert requests > 600  # the dead worker's unfinished batches were fetched again


def test_daemonic_workers_are_refused_with_the_fix_named(tmp_path: Path) -> None:
    with (
        serve({"/": ok}) as served,
        dask_cluster(tmp_path, 1, nanny=True, daemon_ok=False) as (
            address,
            _,
        ),
    ):
        urls = write_list(tmp_path / "urls.txt", [served.origin + "/"])
        result = run_script([str(urls), "-o", "out", "--cluster", address], cwd=tmp_path)
        assert result.returncode == 2
        assert "DASK_DISTRIBUTED__WORKER__DAEMON=False" in result.stderr
        assert served.paths == []


def test_sigterm_on_a_cluster_run_records_every_line(tmp_path: Path) -> None:
    with DemoServer(n_pages=400, latency_s=0.3, ports=4) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", 400, [])
        args = [str(urls), "-o", "out", "--cluster", "local:2", "-t", "4", "-q"]
        code, stderr = scrape_interrupted(
            tmp_path, demo, args, 20, lambda scrape: scrape.send_signal(signal.SIGTERM)
        )
    assert code == 143, stderr
    records = records_in(tmp_path / "out" / "latest.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, 401))
    outcomes = {r["outcome"] for r in records}
    assert "skipped" in outcomes and "ok" in outcomes
    summary = json.loads(next((tmp_path / "out").glob("*.summary.json")).read_text())
    assert summary["interrupted"] is True


def test_when_every_worker_is_gone_each_line_still_gets_a_record(tmp_path: Path) -> None:
    with (
        DemoServer(n_pages=400, latency_s=0.1, ports=2) as demo,
        dask_cluster(tmp_path, workers=1, nanny=False, daemon_ok=True) as (address, workers),
    ):
        urls = demo_list(demo, tmp_path / "urls.txt", 400, ["not a url"])
        args = [str(urls), "-o", "out", "--cluster", address, "-t", "4"]
        code, stderr = scrape_interrupted(
            tmp_path,
            demo,
            [*args, "--connect-timeout", "0.5"],
            30,
            lambda _: os.kill(workers[0].pid, signal.SIGKILL),
        )
    assert code == 1, stderr
    assert "no workers left" in stderr
    records = records_in(tmp_path / "out" / "latest.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, 402))
    lost = [r for r in records if r.get("error", {}).get("message", "").endswith("no workers left")]
    assert lost and all(r["outcome"] == "failed" for r in lost)
    assert any(r["outcome"] == "ok" for r in records)


def test_discovered_urls_are_sharded_by_host_on_a_cluster(tmp_path: Path) -> None:
    from tests.e2e.test_discovery import page

    def tree(prefix: str) -> dict:
        return {
            f"/n/{n}": page(f"{prefix}{n}", [f"/n/{2 * n + 1}", f"/n/{2 * n + 2}"])
            for n in range(15)
        }

    with serve(tree("a")) as one, serve(tree("b"), host="127.0.0.2") as two:
        config = tmp_path / "crawl.yaml"
        config.write_text(
            "sites:\n  - name: tree\n    match: '*'\n    follow: 'a'\n    max_depth: 5\n",
            encoding="utf-8",
        )
        urls = write_list(tmp_path / "urls.txt", [f"{s.origin}/n/0" for s in (one, two)])
        args = [str(urls), "-c", str(config), "-o", "out", "--cluster", "local:2"]
        result = run_script(
            [*args, "--host-concurrency", "1", "--host-delay", "0.02"], tmp_path, polite=True
        )
        assert result.returncode == 1, result.stderr  # /n/15../n/30 are 404s
        for served in (one, two):
            assert served.max_in_flight == 1  # one worker owns each host, found URLs too
            pages = [p for p in served.paths if p != "/robots.txt"]
            assert sorted(pages) == sorted({f"/n/{n}" for n in range(31)})  # each once
    records = records_in(tmp_path / "out" / "latest.jsonl")
    assert len(records) == 62 and sum(1 for r in records if r["line"] is None) == 60
    assert {r["title"] for r in records if r["outcome"] == "ok"} == {
        f"{p}{n}" for p in "ab" for n in range(15)
    }
