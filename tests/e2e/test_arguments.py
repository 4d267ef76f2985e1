"""What wget, curl and cron users expect of the command line, through the installed console
script with no terminal: URLs as arguments and -i FILE, -o - for standard output, wget's flag
names, cron's quiet conventions (-q silent unless the run fails, -qq silent, -v a line per
page), config discovery, and the README's crontab and systemd recipes as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scraper.cli import build_parser
from scraper.config.flags import settings_from_args
from scraper.demo.server import DemoServer
from tests.conftest import run_script, scrape_command, write_list
from tests.servers import ok, send, serve

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--no-obey-robots", "--threads", "4", "--processes", "1"]


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "latest.jsonl").read_text().splitlines()]


def test_urls_as_arguments_and_lists_read_in_order_as_one_list(
    demo: DemoServer, tmp_path: Path
) -> None:
    write_list(tmp_path / "more.txt", [f"{demo.url}/page/2", "# a comment", f"{demo.url}/page/3"])
    done = run_script(
        [f"{demo.url}/page/1", "-i", "more.txt", f"{demo.url}/gone/13", "-o", "out", *QUICK],
        tmp_path,
    )
    assert done.returncode == 1, done.stderr  # the 404 fails
    by_line = {
        r["line"]: (r["url"].removeprefix(demo.url), r["outcome"])
        for r in records(tmp_path / "out")
    }
    # arguments first, in order, then the -i list; line numbers run on (the comment is line 4)
    assert by_line == {
        1: ("/page/1", "ok"),
        2: ("/gone/13", "failed"),
        3: ("/page/2", "ok"),
        5: ("/page/3", "ok"),
    }


def test_a_url_argument_is_not_taken_for_a_file_name(demo: DemoServer, tmp_path: Path) -> None:
    done = run_script([f"{demo.url}/page/1", "-o", "out", *QUICK], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cannot read URL list" not in done.stderr
    assert [r["outcome"] for r in records(tmp_path / "out")] == ["ok"]


def test_dash_o_dash_writes_json_lines_to_stdout_and_nothing_else(
    demo: DemoServer, tmp_path: Path
) -> None:
    done = run_script([f"{demo.url}/page/1", f"{demo.url}/page/2", "-o", "-", *QUICK], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(json.loads(line)["line"] for line in lines) == [1, 2]
    assert {json.loads(line)["outcome"] for line in lines} == {"ok"}
    assert "records: standard output" in done.stderr  # the summary stays on stderr
    assert not (tmp_path / "-").exists() and not (tmp_path / "output").exists()


def test_dash_o_dash_stops_the_run_when_the_reader_goes_away(tmp_path: Path) -> None:
    """`scrape LIST -o - | head -1`: 400 pages at 0.1 s apart would take 40 s."""
    with DemoServer(50) as server:
        write_list(tmp_path / "urls.txt", [f"{server.url}/page/{n}" for n in range(400)])
        started = time.monotonic()
        proc = subprocess.Popen(
            [*scrape_command(), "urls.txt", "-o", "-", "--host-delay", "0.1", *QUICK],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # as head -1 does
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert json.loads(first)["outcome"] == "ok"
    assert b"standard output was closed: stopping" in err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert elapsed < 30, f"took {elapsed:.1f}s"


def test_dash_o_dash_refuses_csv_before_any_request(tmp_path: Path) -> None:
    done = run_script(["http://127.0.0.1:9/", "-o", "-", "--format", "csv"], tmp_path)
    assert done.returncode == 2
    assert "standard output takes JSON lines" in done.stderr


def test_no_urls_at_all_is_a_usage_error(tmp_path: Path) -> None:
    done = run_script([], tmp_path)
    assert done.returncode == 2 and "give URLs" in done.stderr


def test_wget_names_for_the_same_settings() -> None:
    parser = build_parser()
    settings = settings_from_args(
        parser.parse_args(["x.txt", "--wait", "1.5", "-T", "7", "-U", "bot/2"])
    )
    assert settings.host_delay_s == 1.5
    assert (settings.connect_timeout_s, settings.read_timeout_s) == (7, 7)
    assert settings.user_agent == "bot/2"
    apart = settings_from_args(parser.parse_args(["x.txt", "-T", "7", "--read-timeout", "30"]))
    assert (apart.connect_timeout_s, apart.read_timeout_s) == (7, 30)


def failing_list(folder: Path, origin: str) -> None:
    lines = [f"{origin}/page/1", f"{origin}/page/2"]
    lines += [f"{origin}/gone/{n}" for n in range(13, 13 + 50 * 7, 50)]
    write_list(folder / "urls.txt", lines)


def test_quiet_is_silent_when_all_is_well(demo: DemoServer, tmp_path: Path) -> None:
    write_list(tmp_path / "urls.txt", [f"{demo.url}/page/1", f"{demo.url}/page/2"])
    done = run_script(["urls.txt", "-q", *QUICK], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_quiet_reports_a_failed_run_on_stderr(demo: DemoServer, tmp_path: Path) -> None:
    failing_list(tmp_path, demo.url)
    done = run_script(["urls.txt", "-q", *QUICK], tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert re.match(r"scrape: run failed, exit 1: 9 records \(2 ok, 7 failed\) in ", lines[0])
    failures = [line for line in lines if "failed: http_status: 404 Not Found" in line]
    assert len(failures) == 5  # the first five, then how many more
    assert "  ... and 2 more failed" in lines
    assert lines[-1].startswith("  records: output/") and lines[-1].endswith(".jsonl")


def test_double_quiet_says_nothing_even_when_the_run_fails(
    demo: DemoServer, tmp_path: Path
) -> None:
    failing_list(tmp_path, demo.url)
    done = run_script(["urls.txt", "-qq", *QUICK], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")


def test_a_held_lock_is_said_under_q_and_not_under_qq(demo: DemoServer, tmp_path: Path) -> None:
    from scraper.state import RunLock

    write_list(tmp_path / "urls.txt", [f"{demo.url}/page/1"])
    assert run_script(["urls.txt", "-o", "out", "-qq", *QUICK], tmp_path).returncode == 0
    lock = RunLock(tmp_path / "out" / "state.sqlite.lock")
    lock.acquire()  # another run holds the state
    try:
        quiet = run_script(["urls.txt", "-o", "out", "-q", *QUICK], tmp_path)
        silent = run_script(["urls.txt", "-o", "out", "-qq", *QUICK], tmp_path)
    finally:
        lock.release()
    assert quiet.returncode == 75 and "another scrape run holds this state" in quiet.stderr
    assert (silent.returncode, silent.stderr) == (75, "")


def test_verbose_says_the_config_and_a_line_per_page(demo: DemoServer, tmp_path: Path) -> None:
    failing_list(tmp_path, demo.url)
    done = run_script(["urls.txt", "-v", *QUICK], tmp_path)
    lines = done.stderr.splitlines()
    assert lines[0] == "config: none (defaults and flags only)"
    assert f"line 1: {demo.url}/page/1: ok (200)" in lines
    assert f"WARNING: line 3: {demo.url}/gone/13: http_status: 404 Not Found" in lines
    assert not any(line.startswith("line 3:") for line in lines)  # said once, as a warning


def test_config_discovery_order_and_the_summary_names_the_file(
    demo: DemoServer, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    write_list(work / "urls.txt", [f"{demo.url}/page/1"])
    xdg = tmp_path / "xdg"
    (xdg / "scraper").mkdir(parents=True)
    (xdg / "scraper" / "config.yaml").write_text("user_agent: from-xdg/1\n")
    named = tmp_path / "named.yaml"
    named.write_text("user_agent: from-env/1\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(xdg)}

    runs = iter(range(10))

    def config_of(extra: dict[str, str], *flags: str) -> str | None:
        out = f"out{next(runs)}"
        done = subprocess.run(
            [*scrape_command(), "urls.txt", "-o", out, "-q", *QUICK, *flags],
            cwd=work,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        (summary,) = (work / out).glob("*.summary.json")
        return json.loads(summary.read_text())["config"]

    assert config_of({}) == str(xdg / "scraper" / "config.yaml")
    assert config_of({"SCRAPER_CONFIG": str(named)}) == str(named)
    (work / "config").mkdir()
    (work / "config" / "scraper.yaml").write_text("user_agent: from-cwd/1\n")
    assert config_of({}) == "config/scraper.yaml"
    assert config_of({"SCRAPER_CONFIG": str(named)}, "-c", str(named)) == str(named)
    missing = subprocess.run(
        [*scrape_command(), "urls.txt", "-q"],
        cwd=work,
        env={**env, "SCRAPER_CONFIG": str(tmp_path / "nope.yaml")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def readme_block_with(marker: str) -> str:
    """The README's code block that holds `marker`."""
    blocks = re.findall(r"```\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return str(block)


def test_the_readme_crontab_line_runs_under_a_bare_environment(
    demo: DemoServer, tmp_path: Path
) -> None:
    """The crontab line exactly as the README prints it, its folder replaced by a test one
    (with a venv link to this install), run as cron runs it: env -i, sh -c, from /, no tty."""
    (line,) = [ln for ln in readme_block_with("*/30 * * * *").splitlines() if ln.strip()]
    command = line.split(None, 5)[5]  # after the five time fields
    watch = tmp_path / "watch"
    (watch / ".venv" / "bin").mkdir(parents=True)
    (watch / ".venv" / "bin" / "scrape").symlink_to(scrape_command()[0])
    command = command.replace("/srv/watch", str(watch))

    def cron(urls: list[str]) -> subprocess.CompletedProcess[str]:
        write_list(watch / "urls.txt", urls)
        return subprocess.run(
            ["env", "-i", "/bin/sh", "-c", command],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    good = cron([f"{demo.url}/page/1", f"{demo.url}/page/2"])
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")  # cron mails nothing
    bad = cron([f"{demo.url}/page/1", f"{demo.url}/gone/13", f"{demo.url}/gone/63"])
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("scrape: run failed, exit 1: 3 records (1 unchanged, 2 failed)")
    assert f"{demo.url}/gone/13: failed: http_status: 404 Not Found" in bad.stderr


def test_the_readme_systemd_unit_counts_75_and_143_as_success_and_logs_the_summary(
    demo: DemoServer, tmp_path: Path
) -> None:
    unit = readme_block_with("# /etc/systemd/system/scrape.service")
    fields = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert set(fields["SuccessExitStatus"].split()) == {"75", "143"}
    watch = tmp_path / "watch"
    (watch / ".venv" / "bin").mkdir(parents=True)
    (watch / ".venv" / "bin" / "scrape").symlink_to(scrape_command()[0])
    write_list(watch / "urls.txt", [f"{demo.url}/page/1"])
    argv = [a.replace("/srv/watch", str(watch)) for a in shlex.split(fields["ExecStart"])]
    done = subprocess.run(
        ["env", "-i", *argv],
        cwd=fields["WorkingDirectory"].replace("/srv/watch", str(watch)),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^1 records \(1 ok\) in ", done.stderr, re.M)  # what the journal keeps


def test_the_man_page_comes_from_the_parsers(tmp_path: Path) -> None:
    done = run_script(["man"], tmp_path)
    assert done.returncode == 0, done.stderr
    page = done.stdout
    assert page.startswith('.TH SCRAPE "1"')
    for flag in ("\\-\\-threads", "\\-\\-input\\-file", "\\-\\-wait", "\\-\\-system\\-ca"):
        assert flag in page
    for command in ("scrape demo", "scrape bench", "scrape try", "scrape completion"):
        assert command in page
    assert "exit status" in page


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(tmp_path: Path, shell: str) -> None:
    done = run_script(["completion", shell], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "scrape" in done.stdout and "_ARGCOMPLETE" in done.stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("scrape de", {"demo"}),
        ("scrape --thr", {"--threads"}),
        ("scrape demo --pa", {"--pages", "--page-deadline", "--parser", "--parse-timeout"}),
        ("scrape bench --on", {"--only"}),
        ("scrape url", {"urls.txt"}),
    ],
)
def test_completion_answers_from_the_parser_of_the_command_typed(
    tmp_path: Path, line: str, expected: set[str]
) -> None:
    """What the shell script asks: the console script run with argcomplete's variables,
    its answers on file descriptor 8."""
    (tmp_path / "urls.txt").write_text("")
    read, write = os.pipe()
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
    }
    on_fd_8 = "import os, sys; os.dup2(int(sys.argv[1]), 8); os.execv(sys.argv[2], sys.argv[2:])"
    done = subprocess.run(
        [sys.executable, "-c", on_fd_8, str(write), *scrape_command()],
        cwd=tmp_path,
        env=env,
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    os.close(write)
    with os.fdopen(read) as answers:
        got = {word.strip() for word in answers.read().split("\n") if word.strip()}
    assert got == expected


def test_dry_run_counts_per_host_and_fetches_only_robots_txt(tmp_path: Path) -> None:
    def robots(handler: Any) -> None:
        send(handler, 200, b"User-agent: *\nDisallow: /private/\n", "text/plain")

    routes = {"/robots.txt": robots, "/a": ok, "/private/b": ok, "/private/c": ok}
    with serve(routes) as site, serve({"/x": ok}) as other:
        lines = [f"{site.origin}/a", f"{site.origin}/private/b", f"{site.origin}/private/c"]
        lines += [f"{site.origin}/a#again", f"{other.origin}/x", "ftp://nope/"]
        write_list(tmp_path / "urls.txt", lines)
        done = run_script(["urls.txt", "--dry-run", "-o", "out"], tmp_path, polite=True)
        asked = sorted(site.paths) + sorted(other.paths)
    assert done.returncode == 1, done.stderr  # one invalid line
    assert asked == ["/robots.txt", "/robots.txt"]  # nothing but robots.txt
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:3]}
    assert rows[site.origin] == ["1", "1", "2"]  # fetch, duplicate, refused
    assert rows[other.origin] == ["1", "0", "0"]
    assert "2 hosts: 2 URLs to fetch, 1 duplicate lines, 2 refused by robots.txt, 1 invalid" in (
        done.stdout
    )
    assert "line 6: invalid:" in done.stdout
    assert not (tmp_path / "out").exists()  # no folder, no state, no records


def test_on_a_terminal_the_bar_is_drawn_and_warnings_stay_whole(
    demo: DemoServer, tmp_path: Path
) -> None:
    """stderr on a pseudo-terminal, as in a shell: tqdm's bar, each warning line whole
    beside it, the summary last."""
    import pty

    failing_list(tmp_path, demo.url)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*scrape_command(), "urls.txt", "-o", "out", *QUICK],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 1
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "url/s" in text  # the bar: rate in URLs per second
    pieces = [p.strip() for p in re.split(r"[\r\n]", text) if p.strip()]
    warnings = [p for p in pieces if "WARNING" in p]
    assert len(warnings) == 7
    for piece in warnings:  # never cut by the bar: one whole line each
        assert re.fullmatch(
            r"(\x1b\[A)?WARNING: line \d+: http://\S+/gone/\d+: http_status: 404 Not Found", piece
        ), piece
    assert re.search(r"9 records \(2 ok, 7 failed\) in ", text)
