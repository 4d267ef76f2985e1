"""End to end: the installed `scrape` console script in a subprocess, against the demo site
on 127.0.0.1, as a user runs it. Every record is checked against the site's ground truth."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scraper.demo.server import DemoServer
from scraper.demo.site import DemoSite, check_records, demo_url_lines
from tests.conftest import DEMO_PAGES, UNLIMITED, run_script, scrape_command, wait_for


def demo_list(server: DemoServer, path: Path, pages: int = DEMO_PAGES) -> Path:
    path.write_bytes(b"".join(demo_url_lines(server.url, pages)))
    return path


def records_of(out_dir: Path, name: str = "latest.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out_dir / name).read_text("utf-8").splitlines()]


def test_scrape_a_list_every_record_matches_the_ground_truth(demo, tmp_path) -> None:
    urls = demo_list(demo, tmp_path / "urls.txt")
    result = run_script(
        [str(urls), "-o", "results", "--threads", "8", "--processes", "2"], cwd=tmp_path
    )
    assert result.returncode == 1  # the demo list holds 404s on purpose
    out = tmp_path / "results"
    records = records_of(out)
    assert len(records) == DEMO_PAGES
    assert sorted(r["line"] for r in records) == list(range(1, DEMO_PAGES + 1))
    assert check_records(DemoSite(DEMO_PAGES), demo.url, records) == []
    summary = json.loads(next(out.glob("*.summary.json")).read_text())
    assert summary["counts"]["ok"] + summary["counts"]["failed"] == DEMO_PAGES
    assert summary["exit_code"] == 1 and summary["interrupted"] is False
    assert (out / "latest.jsonl").resolve() == (out / f"{summary['run']}.jsonl").resolve()
    assert not list(out.glob("*.part"))
    assert "records" in result.stderr and "pages/s" in result.stderr  # the summary line


def test_list_on_stdin_and_csv_output(demo, tmp_path) -> None:
    lines = b"".join(demo_url_lines(demo.url, 40))
    result = run_script(["-", "-o", "out", "--format", "csv", "-q"], cwd=tmp_path, stdin=lines)
    # -q: the run failed (a 404 on the list), so it says so, briefly
    assert result.returncode == 1
    assert result.stderr.startswith("scrape: run failed, exit 1: 40 records (39 ok, 1 failed)")
    with (tmp_path / "out" / "latest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40
    site = DemoSite(DEMO_PAGES)
    for row in rows:
        truth = site.truth(row["url"].removeprefix(demo.url))
        if truth.status == 200:
            assert row["outcome"] == "ok" and row["title"] == truth.title
            assert len(json.loads(row["links"])) == truth.link_count
        else:
            assert (row["outcome"], row["error_kind"], row["status"]) == (
                "failed",
                "http_status",
                "404",
            )


def test_bs4_engine_gives_the_same_records(demo, tmp_path) -> None:
    urls = demo_list(demo, tmp_path / "urls.txt", 30)
    for engine in ("lxml", "bs4"):
        run_script([str(urls), "-o", engine, "--parser", engine, "-q"], cwd=tmp_path)
    by_line = [{r["line"]: r for r in records_of(tmp_path / e)} for e in ("lxml", "bs4")]
    assert by_line[0] == by_line[1] and len(by_line[0]) == 30


def test_config_error_exits_2_before_any_request(demo, tmp_path) -> None:
    urls = demo_list(demo, tmp_path / "urls.txt", 10)
    config = tmp_path / "bad.yaml"
    config.write_text("threads: 4\nread_timeout: 3\n")
    before = demo.stats()["requests"]
    result = run_script([str(urls), "-c", str(config), "-o", "out"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"scrape: {config}:2: read_timeout: unknown setting; did you mean 'read_timeout_s'?"
    )
    assert demo.stats()["requests"] == before
    assert not (tmp_path / "out").exists()


def test_default_config_file_is_read_from_the_working_directory(demo, tmp_path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "scraper.yaml").write_text("format: csv\noutput_dir: from-config\n")
    urls = demo_list(demo, tmp_path / "urls.txt", 5)
    assert run_script([str(urls), "-q"], cwd=tmp_path).returncode == 0
    assert (tmp_path / "from-config" / "latest.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "missing.txt: cannot read URL list"),
        (["urls.txt", "--threads", "0"], "--threads: 0 is below the minimum 1"),
        (["urls.txt", "--parser", "regex"], "'regex' is not one of lxml, bs4"),
        (["urls.txt", "-o", "/etc"], "holds files scrape did not write"),
        (["urls.txt", "-o", "urls.txt"], "exists and is not a folder"),
        (["urls.txt", "--header", "no-colon"], "expected 'Name: value'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, message) -> None:
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/\n")
    result = run_script(args, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_reads_like_a_unix_tool() -> None:
    result = subprocess.run([*scrape_command(), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for text in (
        "usage: scrape",
        "URL|LIST",
        "--threads",
        "--page-deadline",
        "--max-body-bytes",
        "--output-dir",
        "--format",
        "exit status:",
        "130",
    ):
        assert text in result.stdout


def test_scrape_demo_checks_itself(tmp_path) -> None:
    result = run_script(["demo", "--pages", "60", "-q"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(records_of(tmp_path / "output")) == 60


def test_the_demo_site_ends_when_its_owner_is_killed(tmp_path) -> None:
    # A benchmark or test killed with SIGKILL cannot stop its demo site; the site's process
    # must see its control pipe close and leave, not spin on it forever.
    code = (
        "import time\nfrom scraper.demo.server import DemoServer\n"
        "with DemoServer(n_pages=10) as s:\n    print(s.pid, flush=True)\n    time.sleep(60)"
    )
    with (tmp_path / "stderr").open("wb") as stderr:  # inherited by the site: not a pipe
        owner = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    with owner:
        try:
            site = psutil.Process(int(owner.stdout.readline()))  # type: ignore[union-attr]
        finally:
            owner.kill()
            owner.wait()
        try:
            site.wait(10)
        except psutil.TimeoutExpired:
            site.kill()
            pytest.fail("the demo site outlived its owner by 10 s")
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_a_killed_parse_worker_costs_at_most_its_pages(tmp_path) -> None:
    pages = 800  # no latency: the workers are busy parsing, so the kill lands mid-page
    with DemoServer(n_pages=pages) as server:
        urls = demo_list(server, tmp_path / "urls.txt", pages)
        proc = subprocess.Popen(
            [*scrape_command(), str(urls), "-o", "out", "-t", "4", "-p", "2", "-q", *UNLIMITED],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = kill_one_parse_worker(proc.pid)
        _, err = proc.communicate(timeout=120)
    assert killed
    records = records_of(tmp_path / "out")
    assert len(records) == pages and proc.returncode == 1
    died = [r for r in records if r.get("error", {}).get("kind") == "parse"]
    assert len(died) <= 2  # the page being parsed, and the one queued behind it at most
    assert all("killed by SIGKILL" in r["error"]["message"] for r in died)
    rest = [r for r in records if r not in died]
    assert check_records(DemoSite(pages), server.url, rest) == []
    summary = json.loads(next((tmp_path / "out").glob("*.summary.json")).read_text())
    assert summary["parse_workers_replaced"] >= 1 or not died


def kill_one_parse_worker(pid: int) -> bool:
    """SIGKILL one of the scraper's spawned worker processes once it has work."""
    deadline = time.monotonic() + 30
    parent = psutil.Process(pid)
    while time.monotonic() < deadline:
        workers = [
            p
            for p in parent.children()
            if "spawn_main" in " ".join(p.cmdline())
            and "resource_tracker" not in " ".join(p.cmdline())
        ]
        busy = [w for w in workers if w.cpu_times().user > 0.25]  # started and parsing
        if busy:
            os.kill(busy[0].pid, signal.SIGKILL)
            return True
        time.sleep(0.05)
    return False


def test_sigint_finishes_in_flight_pages_records_the_rest_and_exits_130(tmp_path) -> None:
    with DemoServer(n_pages=400, latency_s=0.2) as server:
        urls = demo_list(server, tmp_path / "urls.txt", 400)
        proc = subprocess.Popen(
            [*scrape_command(), str(urls), "-o", "out", "--threads", "4", "-q", *UNLIMITED],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: server.stats()["requests"] >= 8, "the run's first requests")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    out = tmp_path / "out"
    summary = json.loads(next(out.glob("*.summary.json")).read_text())
    assert summary["interrupted"] is True and summary["exit_code"] == 130
    records = records_of(out)
    # Every URL line still gets its record: the lines not fetched are `skipped`.
    assert sorted(r["line"] for r in records) == list(range(1, 401))
    assert len(records) == summary["records"] == sum(summary["counts"].values())
    assert summary["counts"]["ok"] > 0 and summary["counts"]["skipped"] > 0
    assert not list(out.glob("*.part"))
