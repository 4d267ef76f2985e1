"""Shared fixtures: the demo site and the fault server on 127.0.0.1, and ways to run `scrape`
as a user would (in-process through cli.main, or the installed console script)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scraper import cli
from scraper.demo.server import DemoServer
from tests.servers import Served, fault_routes, serve

DEMO_PAGES = 150


@dataclass
class Run:
    """What a user sees of one run: exit code, stderr, and the records written."""

    code: int
    stderr: str
    out_dir: Path

    @property
    def records(self) -> list[dict[str, Any]]:
        path = self.out_dir / "latest.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def by_line(self) -> dict[int, dict[str, Any]]:
        return {r["line"]: r for r in self.records}

    @property
    def summary(self) -> dict[str, Any]:
        latest = max(self.out_dir.glob("*.summary.json"), key=lambda p: p.name.split(".")[0])
        return json.loads(latest.read_text(encoding="utf-8"))


# Variables the fetch code branches on (requests reads them with trust_env): a developer's proxy,
# .netrc or CA bundle must not change what a test sees.
ENVIRONMENT = (
    *("http_proxy", "https_proxy", "all_proxy", "no_proxy"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"),
    "SCRAPER_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy, netrc or CA-bundle variable from the developer's shell, for every test (and
    the scrape processes it starts, which inherit the environment)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # requests then reads no ~/.netrc
    # nor a developer's ~/.config/scraper/config.yaml
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-xdg-config"))


@pytest.fixture(scope="session")
def demo() -> Iterator[DemoServer]:
    with DemoServer(n_pages=DEMO_PAGES) as server:
        yield server


@pytest.fixture(scope="session")
def faults() -> Iterator[Served]:
    with serve(fault_routes()) as served:
        yield served


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# The test servers are ours and local: per-host limits lifted, unless a test is about them.
UNLIMITED = ["--host-concurrency", "1000", "--host-delay", "0"]
FAST = [
    *("--connect-timeout", "1", "--read-timeout", "1", "--page-deadline", "2"),
    *("--processes", "2", "--threads", "8", "--retries", "0"),
    *UNLIMITED,
]


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout_s` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


def run_in_process(args: list[str], out_dir: Path, stdin: bytes = b"", is_tty: bool = False) -> Run:
    """cli.main with injected streams, as a user's shell would run it."""
    err = io.StringIO()
    code = cli.main(
        [*args, "-o", str(out_dir)],
        stdin=io.BytesIO(stdin),
        stderr=err,
        stdout=io.StringIO(),
        is_tty=is_tty,
    )
    return Run(code, err.getvalue(), out_dir)


def scrape_command() -> list[str]:
    """The installed `scrape` console script (next to this Python), as a user runs it."""
    script = Path(sys.executable).with_name("scrape")
    found = str(script) if script.exists() else shutil.which("scrape")
    assert found, "the scrape console script is not installed (pip install .)"
    return [found]


def run_script(
    args: list[str],
    cwd: Path,
    stdin: bytes | None = None,
    timeout: float = 120,
    polite: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The console script in `cwd`; per-host limits lifted (UNLIMITED) unless `polite`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    commands = ("demo", "bench", "history", "report", "check", "try", "completion", "man")
    if args and args[0] not in commands and not polite:
        args = [*args, *UNLIMITED]
    return subprocess.run(
        [*scrape_command(), *args],
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
