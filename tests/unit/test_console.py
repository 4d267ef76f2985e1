import io
import logging
import re
import threading
import time

from scraper.console import Console

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
    with Console(SlowStream(), quiet=True, is_tty=True) as console:
        console.start_bar(total=10)
        assert console.bar is None


def test_quiet_hides_per_url_warnings_but_not_errors() -> None:
    stream = io.StringIO()
    with Console(stream, quiet=True, is_tty=False):
        log.warning("line 3: http://x/: timeout")
        log.error("cannot write output")
    assert stream.getvalue() == "ERROR: cannot write output\n"
