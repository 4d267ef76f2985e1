"""Every run's file is a full snapshot: an unchanged page's record (a 304) carries the fields
of its last full record, read back from the run file that holds it, in every output format;
retention keeps the files still pointed at; a deleted one costs a full fetch, not data."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

from scraper.demo.server import DemoServer
from tests.conftest import run_script, write_list

QUICK = ["--no-obey-robots", "--threads", "4", "--processes", "1", "-q"]
OWN = ("outcome", "status", "attempts")  # what an unchanged record says of itself


def jsonl(path: Path) -> dict[int, dict[str, Any]]:
    return {r["line"]: r for r in map(json.loads, path.read_text().splitlines())}


def scrape(tmp_path: Path, *flags: str) -> None:
    done = run_script(["urls.txt", "-o", "out", *QUICK, *flags], tmp_path)
    assert done.returncode in (0, 1), done.stderr


def runs(tmp_path: Path, ext: str = "jsonl") -> list[Path]:
    """The run files, oldest first (a second run in the same second is <id>-002)."""

    def order(path: Path) -> str:
        run = path.name.split(".")[0]
        return run if "-" in run else run + "-001"

    return sorted((tmp_path / "out").glob(f"2*.{ext}"), key=order)


def listed(demo: DemoServer, tmp_path: Path) -> None:
    write_list(
        tmp_path / "urls.txt",
        [f"{demo.url}/page/1", f"{demo.url}/page/2", f"{demo.url}/gone/13", f"{demo.url}/page/3"],
    )


def page_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in OWN}


def test_unchanged_records_carry_the_last_full_record_in_every_format(
    demo: DemoServer, tmp_path: Path
) -> None:
    listed(demo, tmp_path)
    scrape(tmp_path)
    scrape(tmp_path)  # every page answers 304
    first, second = (jsonl(path) for path in runs(tmp_path))
    for line in (1, 2, 4):
        assert first[line]["outcome"] == "ok" and second[line]["outcome"] == "unchanged"
        assert second[line]["status"] == 304
        assert page_fields(second[line]) == page_fields(first[line])
        assert second[line]["title"] and second[line]["links"] and second[line]["text"]
    assert second[3]["outcome"] == "failed"  # a 404 stays what it is

    scrape(tmp_path, "--format", "csv")  # switching format after a first run
    (table,) = runs(tmp_path, "csv")
    with table.open(encoding="utf-8", newline="") as handle:
        rows = {int(r["line"]): r for r in csv.DictReader(handle)}
    assert rows[1]["outcome"] == "unchanged" and rows[1]["title"] == first[1]["title"]
    assert int(rows[2]["word_count"]) == first[2]["word_count"]
    assert json.loads(rows[4]["links"]) == first[4]["links"]

    scrape(tmp_path, "--format", "sqlite")  # its record read back from the CSV file
    db = sqlite3.connect(tmp_path / "out" / "records.sqlite")
    titles = dict(db.execute("SELECT line, title FROM records"))
    db.close()
    assert titles[1] == first[1]["title"] and titles[4] == first[4]["title"]
    fourth = jsonl(runs(tmp_path)[-1])
    assert page_fields(fourth[2]) == page_fields(first[2])  # types back from CSV text


def test_retention_keeps_the_run_that_holds_the_last_full_records(
    demo: DemoServer, tmp_path: Path
) -> None:
    """--changed-only writes no unchanged record, so the first run's file stays the one
    that holds the pages; keep_runs 1 must not delete it."""
    listed(demo, tmp_path)
    scrape(tmp_path)
    oldest = runs(tmp_path)[0]
    for _ in range(2):
        scrape(tmp_path, "--changed-only", "--keep-runs", "1")
    assert oldest.exists()
    scrape(tmp_path, "--keep-runs", "1")  # full records again, in this run's file
    latest = jsonl(runs(tmp_path)[-1])
    assert latest[1]["outcome"] == "unchanged" and latest[1]["title"]
    scrape(tmp_path, "--keep-runs", "1")
    assert not oldest.exists()  # no longer pointed at: pruned


def test_a_deleted_run_file_costs_a_full_fetch_not_the_fields(
    demo: DemoServer, tmp_path: Path
) -> None:
    listed(demo, tmp_path)
    scrape(tmp_path)
    (first,) = runs(tmp_path)
    first.unlink()
    done = run_script(["urls.txt", "-o", "out", *QUICK[:-1]], tmp_path)
    assert (
        "its last full record" in done.stderr and "the next run fetches it in full" in done.stderr
    )
    scrape(tmp_path)
    again = jsonl(runs(tmp_path)[-1])
    assert again[1]["outcome"] == "ok" and again[1]["status"] == 200 and again[1]["title"]


def test_run_names_of_one_second_never_reuse_a_suffix_retention_freed(tmp_path: Path) -> None:
    from scraper.output.sinks import JsonLinesSink

    names = []
    for _ in range(3):
        sink = JsonLinesSink(tmp_path, "20261201T000000Z")
        sink.finish({"run": sink.run_id})
        names.append(sink.run_id)
    assert names == ["20261201T000000Z", "20261201T000000Z-002", "20261201T000000Z-003"]
    for path in tmp_path.glob("20261201T000000Z-002.*"):
        path.unlink()  # as keep_runs prunes
    sink = JsonLinesSink(tmp_path, "20261201T000000Z")
    sink.abandon()
    assert sink.run_id == "20261201T000000Z-004"  # after -003, not the freed -002
