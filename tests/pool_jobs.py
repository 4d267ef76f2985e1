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
