"""Every stop ends clean, through the `scrape` console script: one Ctrl-C with a page still in
flight after the grace period, the run's time limit, and Ctrl-C on a million-line list. Each
leaves a final file with one record per line and a summary that says why; --resume then
fetches what was skipped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from scraper.demo.server import DemoServer
from tests.conftest import UNLIMITED, scrape_command, wait_for
from tests.servers import PAGE, send, serve, trickle

GRACE_S = 10  # the pipeline's grace period after the first Ctrl-C or SIGTERM


def trickle_once() -> Any:
    """The first request gets headers, then a byte a second for 60 s; later ones a page."""
    done = threading.Event()

    def route(handler: Any) -> None:
        if done.is_set():
            send(handler, 200, PAGE)
            return
        done.set()
        trickle(handler, every_s=1.0, count=60)

    return route


def records_in(out: Path) -> list[dict[str, Any]]:
    text = (out / "latest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def summary_in(out: Path) -> dict[str, Any]:
    (path,) = out.glob("*.summary.json")
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def test_one_ctrl_c_with_a_page_in_flight_ends_clean_and_resume_fetches_the_rest(
    tmp_path: Path,
) -> None:
    routes = {
        "/slow": trickle_once(),
        **{f"/p{n}": (lambda h: send(h, 200, PAGE)) for n in range(40)},
    }
    with serve(routes) as site:
        lines = [site.origin + "/slow"] + [f"{site.origin}/p{n}" for n in range(40)]
        (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
        command = [*scrape_command(), "urls.txt", "-o", "out", "-q", "--no-obey-robots"]
        # one page at a time after /slow, 1 s apart: most of the list is still unread
        slow = ["--threads", "2", "--host-concurrency", "2", "--host-delay", "1"]
        proc = subprocess.Popen(
            [*command, *slow, "--read-timeout", "5", "--page-deadline", "60"],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: len(site.paths) >= 3, "the trickling page and the next ones")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == 130, err
        assert took < GRACE_S + 2
        out = tmp_path / "out"
        assert not list(out.glob("*.part")), "the file gets its final name"
        summary = summary_in(out)
        assert summary["interrupted"] is True and summary["stopped_by"] == "SIGINT"
        records = records_in(out)
        assert sorted(r["line"] for r in records) == list(range(1, 42))
        slow_record = next(r for r in records if r["line"] == 1)
        assert slow_record["outcome"] == "skipped"
        assert slow_record["reason"] == f"still in flight {GRACE_S} s after the stop"
        skipped = {r["line"] for r in records if r["outcome"] == "skipped"}
        assert len(skipped) > 10

        resumed = subprocess.run(
            [*command, *UNLIMITED, "--resume"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert resumed.returncode == 0, resumed.stderr
    records = records_in(out)
    assert sorted(r["line"] for r in records) == list(range(1, 42))  # one record per line
    assert {r["outcome"] for r in records} == {"ok"}
    assert summary_in(out)["resumed"] is True and summary_in(out)["interrupted"] is False


def test_the_time_limit_cuts_the_run_and_records_every_line(tmp_path: Path) -> None:
    with DemoServer(n_pages=60, latency_s=1.0) as demo:
        lines = [f"{demo.url}/page/{n}" for n in range(60)]
        (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
        started = time.monotonic()
        done = subprocess.run(
            [*scrape_command(), "urls.txt", "-o", "out", "-q", "--threads", "4"]
            + ["--max-run-time", "2", "--no-obey-robots", *UNLIMITED],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
    assert done.returncode == 124, done.stderr
    assert took < 2 + 3  # the limit, start-up and shutdown; no grace period
    out = tmp_path / "out"
    summary = summary_in(out)
    assert summary["stopped_by"] == "max_run_time" and summary["exit_code"] == 124
    records = records_in(out)
    assert sorted(r["line"] for r in records) == list(range(1, 61))
    reasons = {r.get("reason") for r in records if r["outcome"] == "skipped"}
    assert "in flight when the run's time limit was reached" in reasons
    assert any(r["outcome"] == "ok" for r in records)


def test_ctrl_c_on_a_million_lines_ends_in_seconds_with_every_line_recorded(
    tmp_path: Path,
) -> None:
    count = 1_000_000
    with DemoServer(n_pages=100, latency_s=0.2) as demo:
        with (tmp_path / "urls.txt").open("w") as handle:
            handle.writelines(f"{demo.url}/page/{n}\n" for n in range(count))
        proc = subprocess.Popen(
            [*scrape_command(), "urls.txt", "-o", "out", "-q", "--no-obey-robots", *UNLIMITED],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: demo.stats()["requests"] >= 20, "the first requests")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - started
    assert proc.returncode == 130, err
    assert took < 30
    out = tmp_path / "out"
    data = (out / "latest.jsonl").read_bytes()
    lines = {int(n) for n in re.findall(rb'"line":(\d+)', data)}
    assert len(lines) == data.count(b"\n") == count == summary_in(out)["records"]
    assert summary_in(out)["counts"]["skipped"] > count - 1000
