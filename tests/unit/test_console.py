import io
import logging
import re
import threading
import time

from scraper.console import QUIET, SILENT, Console

log = logging.getLogger("scraper.test")


class SlowStream(io.StringIO):
    """Writes one character at a time, yielding between them: unlocked writers would mix."""

    def write(self, text: str) -> int:
        for char in text:
            super().write(char)
            time.sleep(0)
        return len(text)

    def isatty(self) -> bool:
        return True


def test_lines_from_many_threads_never_interleave_even_with_the_bar() -> None:
    stream = SlowStream()
    with Console(stream, is_tty=True) as console:
        console.start_bar(total=400)

        def work(n: int) -> None:
            for i in range(25):
                log.warning("thread %02d line %02d %s", n, i, "x" * 40)
                console.advance(failed=i % 5 == 0)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    pattern = re.compile(r"WARNING: thread (\d\d) line (\d\d) x{40}")
    lines = [ln for ln in re.split(r"[\r\n]", stream.getvalue()) if "WARNING" in ln]
    # tqdm clears and redraws its bar around each write; a log line must still be whole.
    whole = [ln for ln in lines if pattern.search(ln)]
    assert len(whole) == 16 * 25
    assert all(pattern.fullmatch(ln.strip().split("\x1b[A")[-1].lstrip()) for ln in whole)


def test_quiet_and_non_terminal_runs_show_no_bar() -> None:
    stream = io.StringIO()
    with Console(stream, is_tty=False) as console:
        console.start_bar(total=10)
        console.advance(failed=False)
        assert console.bar is None
    with Console(SlowStream(), verbosity=QUIET, is_tty=True) as console:
        console.start_bar(total=10)
        assert console.bar is None


def test_quiet_hides_per_url_warnings_but_not_errors() -> None:
    stream = io.StringIO()
    with Console(stream, verbosity=QUIET, is_tty=False):
        log.warning("line 3: http://x/: timeout")
        log.error("cannot write output")
    assert stream.getvalue() == "ERROR: cannot write output\n"


def test_double_quiet_hides_even_errors_and_a_failed_runs_report() -> None:
    stream = io.StringIO()
    with Console(stream, verbosity=SILENT, is_tty=True) as console:
        log.error("cannot write output")
        console.advance(True, "line 1: http://x/: failed: timeout: no answer")
        console.error("aborted")
        console.summary(SUMMARY | {"exit_code": 1})
    assert stream.getvalue() == ""


def test_quiet_reports_only_a_run_that_did_not_exit_0() -> None:
    stream = io.StringIO()
    with Console(stream, verbosity=QUIET, is_tty=False) as console:
        console.advance(False, "line 1: http://x/1: ok (200)")
        console.summary(SUMMARY | {"exit_code": 0})
    assert stream.getvalue() == ""
    with Console(stream, verbosity=QUIET, is_tty=False) as console:
        for n in range(2, 9):
            console.advance(True, f"line {n}: http://x/{n}: failed: timeout: no answer")
        console.summary(SUMMARY | {"exit_code": 143, "stopped_by": "SIGTERM"})
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("scrape: run stopped by SIGTERM, exit 143: 8 records")
    assert lines[1:6] == [
        f"  line {n}: http://x/{n}: failed: timeout: no answer" for n in range(2, 7)
    ]
    assert lines[6:] == ["  ... and 2 more failed", "  records: out/run.jsonl"]


SUMMARY = {
    "records": 8,
    "counts": {"ok": 1, "failed": 7},
    "elapsed_s": 1.5,
    "pages_per_s": 5.0,
    "body_bytes": 1000,
    "output": "out/run.jsonl",
}
