"""Small habits people bring from wget and curl: no abbreviated flags (with a did-you-mean),
-V, honest defaults in --help, an empty list said, exact metrics timestamps, and `scrape demo`
exiting as its summary says."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scraper import __version__, cli
from tests.conftest import run_in_process, write_list


def test_abbreviated_flags_are_refused_with_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = write_list(tmp_path / "urls.txt", ["http://127.0.0.1:9/"])
    assert cli.main([str(urls), "--wait-lok", "1"], stderr=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --wait-lok 1 (did you mean --wait-lock?)" in err
    assert cli.main([str(urls), "--thread", "4"], stderr=io.StringIO()) == 2
    assert "(did you mean --threads?)" in capsys.readouterr().err


def test_version_with_dash_v(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-V"]) == 0
    assert capsys.readouterr().out.strip() == f"scrape {__version__}"


def test_help_shows_no_empty_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: )" not in text and "(default: none)" in text


def test_an_empty_list_is_said(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "urls.txt", ["# nothing yet", ""])
    run = run_in_process([str(urls)], tmp_path / "out")
    assert run.code == 0 and run.records == []
    assert "no URLs in the list" in run.stderr


def test_metrics_timestamps_keep_every_digit(tmp_path: Path) -> None:
    urls = write_list(tmp_path / "urls.txt", ["# none"])
    metrics = tmp_path / "scrape.prom"
    run = run_in_process([str(urls), "--metrics-file", str(metrics)], tmp_path / "out")
    values = dict(
        line.split(" ", 1) for line in metrics.read_text().splitlines() if not line.startswith("#")
    )
    start = float(values["scrape_last_run_start_timestamp_seconds"])
    assert "e+" not in values["scrape_last_run_start_timestamp_seconds"]
    from datetime import datetime

    started = datetime.fromisoformat(run.summary["started_at"]).timestamp()
    assert abs(start - started) < 2  # %g was up to ~17 minutes off


def test_demo_exits_as_its_summary_says(tmp_path: Path) -> None:
    err = io.StringIO()
    code = cli.main(["demo", "--pages", "60", "-o", str(tmp_path / "out")], stderr=err)
    (path,) = (tmp_path / "out").glob("*.summary.json")
    summary = json.loads(path.read_text())
    assert code == summary["exit_code"] == 0, err.getvalue()
    assert summary["counts"]["failed"] > 0  # its 404s, on purpose
