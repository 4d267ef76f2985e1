"""Made for cron, end to end: the run lock, incremental re-scrapes, resume after SIGKILL,
history and report, metrics, retention and the log file."""

import json
import random
import signal
import subprocess
import time
from pathlib import Path

from scraper.demo.server import DemoServer
from scraper.demo.site import DemoSite, check_records, demo_url_lines
from tests.conftest import (
    UNLIMITED,
    run_in_process,
    run_script,
    scrape_command,
    wait_for,
    write_list,
)
from tests.servers import ok, send, serve


def demo_list(server: DemoServer, path: Path, pages: int) -> Path:
    path.write_bytes(b"".join(demo_url_lines(server.url, pages)))
    return path


def records_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_second_run_on_the_same_state_exits_75_or_waits(tmp_path: Path) -> None:
    with DemoServer(n_pages=40, latency_s=0.3) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", 40)
        first = subprocess.Popen(
            [*scrape_command(), str(urls), "-o", "out", "-q", "-t", "4", *UNLIMITED],
            cwd=tmp_path,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: demo.stats()["requests"] > 0, "the first run's first request")
        second = run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path)
        assert second.returncode == 75
        assert (
            "another scrape run holds" in second.stderr
            and len(second.stderr.strip().splitlines()) == 1
        )
        waiting = run_script([str(urls), "-o", "out", "-q", "--wait-lock", "60"], cwd=tmp_path)
        assert first.wait(60) == 1 and waiting.returncode == 1  # the demo list has 404s
    runs = [p for p in (tmp_path / "out").glob("*.summary.json")]
    assert len(runs) == 2


def test_a_killed_runs_lock_does_not_block_the_next(tmp_path: Path) -> None:
    with DemoServer(n_pages=30, latency_s=0.5) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", 30)
        first = subprocess.Popen(
            [*scrape_command(), str(urls), "-o", "out", "-q", *UNLIMITED],
            cwd=tmp_path,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: demo.stats()["requests"] > 0, "the first run's first request")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path).returncode == 1


def test_unchanged_pages_are_not_downloaded_or_parsed_again(tmp_path: Path) -> None:
    with DemoServer(n_pages=60) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", 60)
        first = run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path)
        demo.reset()
        second = run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path)
        stats = demo.stats()
        only = run_script([str(urls), "-o", "out", "-q", "--changed-only"], cwd=tmp_path)
        full = run_script([str(urls), "-o", "out", "-q", "--full"], cwd=tmp_path)
    assert (first.returncode, second.returncode, only.returncode, full.returncode) == (1,) * 4
    summaries = sorted(
        (json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.summ*")),
        key=lambda s: s["run"],
    )
    first_s, second_s, only_s, full_s = summaries
    assert first_s["counts"]["ok"] == 59 and first_s["changed"] == 59
    assert second_s["counts"]["unchanged"] == 59 and second_s["changed"] == 0
    assert stats["bytes_sent"] < 60 * 1000  # 304s and 404s: headers only, no page bodies
    only_records = records_in(tmp_path / "out" / f"{only_s['run']}.jsonl")
    assert {r["outcome"] for r in only_records} == {"failed"}  # the 404s; nothing unchanged
    assert only_s["counts"]["unchanged"] == 59
    assert full_s["counts"]["ok"] == 59 and full_s["changed"] == 0


def test_changes_are_found_by_content_when_there_are_no_validators(tmp_path: Path) -> None:
    version = {"n": 0}

    def changing(handler) -> None:
        send(handler, 200, f"<title>v{version['n']}</title>".encode())

    with serve({"/same": ok, "/changing": changing}) as site:
        urls = write_list(tmp_path / "u.txt", [site.origin + "/same", site.origin + "/changing"])
        first = run_in_process([str(urls), "--host-delay", "0"], tmp_path / "out")
        first_summary = first.summary
        version["n"] = 1
        second = run_in_process([str(urls), "--host-delay", "0"], tmp_path / "out")
    outcomes = {r["url"].removeprefix(site.origin): r["outcome"] for r in second.records}
    assert outcomes == {"/same": "unchanged", "/changing": "ok"}
    assert first_summary["changed"] == 2 and second.summary["changed"] == 1


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    pages, rng = 120, random.Random(20261126)
    site = DemoSite(pages)
    with DemoServer(n_pages=pages, latency_s=0.05) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", pages)
        for repetition in range(10):
            out = f"out{repetition}"
            proc = subprocess.Popen(
                [*scrape_command(), str(urls), "-o", out, "-q", "-t", "8", *UNLIMITED],
                cwd=tmp_path,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.6, 1.6))  # start-up takes ~0.3 s; the run ~1.2 s more
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            part = list((tmp_path / out).glob("*.jsonl.part"))
            resumed = run_script([str(urls), "-o", out, "-q", "--resume"], cwd=tmp_path)
            if not part:  # the kill came after the run had finished
                assert resumed.returncode == 2
                assert "no unfinished or interrupted run" in resumed.stderr
                continue
            assert resumed.returncode == 1, resumed.stderr
            records = records_in(tmp_path / out / "latest.jsonl")
            lines = sorted(r["line"] for r in records)
            assert lines == list(range(1, pages + 1)), f"repetition {repetition}"
            assert check_records(site, demo.url, records) == []
            summary = json.loads(next((tmp_path / out).glob("*.summary.json")).read_text())
            assert summary["resumed"] and summary["records"] == pages


def test_history_report_metrics_retention_and_log_file(tmp_path: Path) -> None:
    with serve({"/ok": ok, "/gone": lambda h: send(h, 410, b"gone", "text/plain")}) as site:
        urls = write_list(tmp_path / "u.txt", [site.origin + "/ok", site.origin + "/gone"])
        for _ in range(4):
            run = run_in_process(
                [
                    str(urls),
                    "--host-delay",
                    "0",
                    "--keep-runs",
                    "2",
                    "--metrics-file",
                    str(tmp_path / "scrape.prom"),
                    "--log-file",
                    str(tmp_path / "scrape.log"),
                ],
                tmp_path / "out",
            )
            assert run.code == 1
            time.sleep(1.0)  # run names have one-second resolution
    out = tmp_path / "out"
    assert len(list(out.glob("*.summary.json"))) == 2 and len(list(out.glob("*.jsonl"))) == 3
    history = run_script(["history", "-o", str(out)], cwd=tmp_path)
    assert history.returncode == 0 and len(history.stdout.strip().splitlines()) == 4
    assert "exit 1" in history.stdout
    report = run_script(["report", "-o", str(out), "--min-failures", "3"], cwd=tmp_path)
    assert report.returncode == 0
    assert report.stdout.strip().splitlines() == [
        f"4 runs  {site.origin}/gone  last: http_status: 410 Gone"
    ]
    metrics = (tmp_path / "scrape.prom").read_text()
    assert 'scrape_last_run_records{outcome="failed"} 1' in metrics
    assert (
        "scrape_last_run_success 0" in metrics
        and "# TYPE scrape_last_run_exit_code gauge" in metrics
    )
    log = (tmp_path / "scrape.log").read_text()
    assert log.count("http_status: 410 Gone") == 4


def test_quiet_run_from_cron_prints_nothing_when_all_is_well(tmp_path: Path) -> None:
    with serve({"/ok": ok}) as site:
        urls = write_list(tmp_path / "u.txt", [site.origin + "/ok"])
        result = run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_readers_batched_lookups_find_what_single_lookups_find(tmp_path: Path) -> None:
    from scraper.records import PageState, Validators
    from scraper.state import StateStore

    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    for n in range(1200):
        validators = Validators(f'"e{n}"', None if n % 2 else "Tue, 14 Nov 2023", f"sha256:{n}")
        store.update(PageState(f"http://h/{n}", "ok", 200, None, validators, True), time.time())
    store.close()
    store = StateStore(path)  # reopened: the pages are there now
    urls = [f"http://h/{n}" for n in range(0, 1500, 3)]  # some never stored; over one chunk
    many = store.lookup_many(urls)
    assert many == {u: v for u in urls if (v := store.lookup(u)) is not None}
    assert len(many) == 400 and many["http://h/3"].etag == '"e3"'
    store.close()


def test_the_benchmarks_hand_written_re_run_sends_the_states_conditional_gets(
    tmp_path: Path,
) -> None:
    """`scrape bench --incremental` compares a second run with a bare requests loop; the
    loop must send what the second run sends (each page's validators) and get 304s."""
    from scraper.bench.models import model_conditional, validators_file

    with DemoServer(n_pages=60) as demo:
        urls = demo_list(demo, tmp_path / "urls.txt", 60)
        run_script([str(urls), "-o", "out", "-q"], cwd=tmp_path)
        pairs, _ = validators_file(tmp_path / "out" / "state.sqlite", urls, tmp_path / "p.tsv")
        lines = pairs.read_text().splitlines()
        demo.reset()
        unchanged = model_conditional(lines, 4)
        stats = demo.stats()
    assert len(lines) == 59  # every page but the 404
    assert unchanged == 59
    assert stats["bytes_sent"] < 59 * 1000  # headers only
