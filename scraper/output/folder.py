"""The output folder: its marker, run names, saved HTML, retention of old runs, and reading
back a killed run's records to resume it. Touches only files it can tell
scrape wrote (run names like 20261126T161320Z)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from scraper.errors import ConfigError
from scraper.urls import redact_url

MARKER = ".scraper-output"  # says "this folder holds scraper results" to later runs
HTML_DIR = "html"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # what a saved page's file name may not hold
RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z(?:-\d{3})?)\.(jsonl|csv|summary\.json)$")


def prune_runs(
    folder: Path, keep: int, current: str, still_read: set[str] | frozenset[str] = frozenset()
) -> list[Path]:
    """Delete the files of all but the newest `keep` runs (never `current`, nor a run in
    `still_read`: it holds a URL's last full record, which an unchanged record is completed
    from); returns them."""
    runs: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        match = RUN_NAME.match(path.name)
        if match and path.is_file() and not path.is_symlink():
            runs.setdefault(match.group(1), []).append(path)
    doomed = [
        run for run in sorted(runs, reverse=True)[keep:] if run != current and run not in still_read
    ]
    removed = []
    for run in doomed:
        for path in runs[run]:
            path.unlink()
            removed.append(path)
    return removed


@dataclass
class Resumed:
    """What a killed run's partial record file already holds."""

    lines: set[int] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)  # of the discovered URLs recorded (line null)
    by_outcome: dict[str, int] = field(default_factory=dict)
    active: bool = True  # False: a new run, nothing resumed


def read_partial(path: Path, fmt: str) -> Resumed:
    """Line numbers and outcomes in a killed run's .part file. A last line cut off by the
    kill (no newline) is removed from the file, so appending continues cleanly."""
    _drop_torn_tail(path)
    found = Resumed()
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle) if fmt == "csv" else (json.loads(x) for x in handle)
        for row in rows:
            if row["line"] in (None, ""):
                found.urls.add(row["url"])
            else:
                found.lines.add(int(row["line"]))
            found.by_outcome[row["outcome"]] = found.by_outcome.get(row["outcome"], 0) + 1
    return found


def reopen_interrupted(final: Path, part: Path, fmt: str) -> None:
    """Turn an interrupted run's finished file back into its .part file, without its
    `skipped` records (--resume fetches those lines), and drop its summary."""
    with (
        final.open(encoding="utf-8", newline="") as src,
        part.open("w", encoding="utf-8", newline="") as dst,
    ):
        if fmt == "csv":
            reader, writer = csv.reader(src), csv.writer(dst)
            header = next(reader, None)
            if header is not None:
                writer.writerow(header)
                at = header.index("outcome")
                writer.writerows(row for row in reader if row[at] != "skipped")
        else:
            dst.writelines(line for line in src if json.loads(line)["outcome"] != "skipped")
    final.unlink()
    summary = final.with_name(final.name.split(".", 1)[0] + ".summary.json")
    summary.unlink(missing_ok=True)


def _drop_torn_tail(path: Path) -> None:
    with path.open("rb+") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run name, such as 20261126T161320Z."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def prepare_output_dir(path: Path, where: str = "") -> Path:
    """Create or adopt the output folder; refuse one full of files this tool did not write.

    Raises ConfigError (exit 2) before any request, naming `where` the setting came from
    (`config/x.yaml:3`, `command line: --output-dir`) when given.
    """
    said = f"{where}: output_dir {path}" if where else f"output_dir {path}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{said}: exists and is not a folder")
    if path.is_dir() and not (path / MARKER).exists():
        try:
            foreign = [p.name for p in path.iterdir() if not p.name.startswith(".")]
        except OSError as exc:
            raise ConfigError(f"{said}: cannot list: {exc.strerror}") from None
        if foreign:
            raise ConfigError(
                f"{said}: holds files scrape did not write (such as "
                f"{sorted(foreign)[0]!r}); name an empty or new folder"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).touch()
    except OSError as exc:
        raise ConfigError(f"{said}: cannot write: {exc.strerror}") from None
    return path


def html_file_name(url: str) -> str:
    """A safe file name for a page: readable part of the URL + a hash of all of it.

    Only [A-Za-z0-9._-], never starting with a dot, at most ~110 characters: no URL can name
    a path outside the folder, and two URLs never share a name (the hash covers the whole URL).
    """
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _UNSAFE.sub("-", redact_url(url).partition("://")[2])[:90].strip("-.") or "page"
    return f"{readable}-{digest}.html"


def save_html(folder: Path, url: str, body: bytes) -> str:
    """Write `body` to <folder>/html/<name> atomically; returns the path relative to `folder`."""
    directory = folder / HTML_DIR
    directory.mkdir(exist_ok=True)
    name = html_file_name(url)
    tmp = directory / f".{name}.{threading.get_ident()}.tmp"
    tmp.write_bytes(body)
    os.replace(tmp, directory / name)
    return f"{HTML_DIR}/{name}"
