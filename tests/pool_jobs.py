"""Module-level job functions for the parse pool tests (a spawned worker imports them)."""

import os
import signal
import time


def misbehave(item: str, options: object) -> str:
    if item == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if item == "hang":
        time.sleep(60)
    if item == "raise":
        raise ValueError("bad item")
    return item.upper()


def parse_then_report_modules(page: object, options: object) -> str:
    """Parse a real page as a parse worker does, then say whether the HTTP stack got loaded."""
    import sys

    from scraper.parse.page import parse_page

    fields = parse_page(page, options)  # type: ignore[arg-type]
    loaded = ", ".join(f"{name}: {name in sys.modules}" for name in ("requests", "urllib3"))
    return f"{fields} {loaded}"
