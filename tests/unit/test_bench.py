"""The benchmark's own arithmetic, on made-up measurements: where the threads curve leaves its
limit, and that wrong records make `scrape bench --models` exit 1 (the timing itself is the
bench's, never a test's)."""

from __future__ import annotations

import io

from scraper.bench.harness import Measured
from scraper.bench.sweeps import Point, report


def measured(pages_per_s: float, problems: int = 0) -> Measured:
    return Measured(
        "processes", 100, 100 / pages_per_s, 100 / pages_per_s, 0.5, 0.05, 0, 100, problems=problems
    )


def test_the_report_says_where_threads_stop_keeping_to_the_network_limit() -> None:
    points = [Point(t, measured(min(9.5 * t, 150)), 10.0 * t) for t in (1, 2, 4, 8, 16, 32)]
    sweeps = {"lxml": ([Point(0, measured(100), 300), Point(1, measured(200), 400)], 0.002)}
    out = io.StringIO()
    assert report(out, points, 100, 2, sweeps, 32) is True
    text = out.getvalue()
    assert "the curve leaves the network limit at 16 threads (94% of it)" not in text
    assert "the curve leaves the network limit at 32 threads (47% of it)" in text
    assert "| 1 | 200 | 400 | 50% |" in text and "| 2.00x |" in text
    assert "0 wrong" in text


def test_wrong_records_fail_the_models_part() -> None:
    points = [Point(1, measured(9, problems=2), 10)]
    out = io.StringIO()
    assert report(out, points, 100, 2, {}, 32) is False
    assert "2 wrong" in out.getvalue()
