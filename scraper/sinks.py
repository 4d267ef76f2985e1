"""Writers of records: JSON lines or CSV, written as records arrive, renamed when complete.

A run's file lives under a temporary name (`<run>.jsonl.part`, which no tool globbing `*.jsonl`
mistakes for a finished run) and is renamed when the run ends; `latest.<ext>` then points at
it. Each record is flushed as it is written, so a killed run leaves every finished record
readable. Writes only inside the output directory; never imports the network or parse stages.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from scraper.errors import ConfigError
from scraper.records import PageRecord

CSV_COLUMNS = (
    "line",
    "url",
    "outcome",
    "attempts",
    "final_url",
    "status",
    "content_type",
    "encoding",
    "title",
    "description",
    "canonical",
    "lang",
    "word_count",
    "content_hash",
    "body_bytes",
    "links",
    "text",
    "error_kind",
    "error_message",
)
MARKER = ".scraper-output"  # says "this folder holds scraper results" to later runs
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv"}


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run name, such as 20261126T161320Z."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def prepare_output_dir(path: Path) -> Path:
    """Create or adopt the output folder; refuse one full of files this tool did not write.

    Raises ConfigError (exit 2) before any request.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output_dir {path}: exists and is not a folder")
    if path.is_dir() and not (path / MARKER).exists():
        try:
            foreign = [p.name for p in path.iterdir() if not p.name.startswith(".")]
        except OSError as exc:
            raise ConfigError(f"output_dir {path}: cannot list: {exc.strerror}") from None
        if foreign:
            raise ConfigError(
                f"output_dir {path}: holds files scrape did not write (such as "
                f"{sorted(foreign)[0]!r}); name an empty or new folder"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).touch()
    except OSError as exc:
        raise ConfigError(f"output_dir {path}: cannot write: {exc.strerror}") from None
    return path


class RecordSink:
    """One run's record file; subclasses format records. Use as a context manager."""

    extension = "jsonl"

    def __init__(self, folder: Path, run_id: str, append: bool = False) -> None:
        """A new run's file, or with `append` the .part file of the killed run `run_id`."""
        self.folder = folder
        self.run_id = run_id if append else self._unique(run_id)
        self.final_path = folder / f"{self.run_id}.{self.extension}"
        self.part_path = folder / f"{self.run_id}.{self.extension}.part"
        self.handle: io.BufferedWriter = open(self.part_path, "ab" if append else "xb")  # noqa: SIM115
        self.count = 0

    def _unique(self, run_id: str) -> str:
        candidate, n = run_id, 1
        while any(
            (self.folder / f"{candidate}.{ext}{s}").exists()
            for ext in EXTENSIONS.values()
            for s in ("", ".part")
        ):
            n += 1
            candidate = f"{run_id}-{n:03d}"  # sorts after run_id, and in order
        return candidate

    def write(self, record: PageRecord) -> None:
        self.handle.write(self.format(record))
        self.handle.flush()
        self.count += 1

    def format(self, record: PageRecord) -> bytes:
        raise NotImplementedError

    def finish(self, summary: dict[str, Any]) -> Path:
        """Close, rename to the final name, point latest.* at it, write the summary beside."""
        self.handle.close()
        os.replace(self.part_path, self.final_path)
        _atomic_symlink(self.final_path.name, self.folder / f"latest.{self.extension}")
        summary_path = self.folder / f"{self.run_id}.summary.json"
        _atomic_write(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        return self.final_path

    def abandon(self) -> None:
        """Close without renaming (the run crashed): the .part file keeps what was written."""
        if not self.handle.closed:
            self.handle.close()


class JsonLinesSink(RecordSink):
    """One JSON object per line, UTF-8.

    orjson, not the json module: a demo record (~17,000 characters of text) took 143 µs to
    encode with json and 20 µs with orjson (measured), and the writer is the main process,
    which also runs the download threads.
    """

    extension = "jsonl"

    def format(self, record: PageRecord) -> bytes:
        return orjson.dumps(record.to_dict()) + b"\n"


class CsvSink(RecordSink):
    """CSV with a fixed column order; lists (links) are JSON text."""

    extension = "csv"

    def __init__(self, folder: Path, run_id: str, append: bool = False) -> None:
        super().__init__(folder, run_id, append)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        if not append:
            self._writer.writerow(CSV_COLUMNS)
            self.handle.write(self._take())

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")

    def format(self, record: PageRecord) -> bytes:
        row = record.to_dict()
        error = row.pop("error", None) or {}
        row["error_kind"], row["error_message"] = error.get("kind"), error.get("message")
        if "links" in row:
            row["links"] = orjson.dumps(row["links"]).decode()
        self._writer.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
        return self._take()


def open_sink(fmt: str, folder: Path, run_id: str, append: bool = False) -> RecordSink:
    """The sink for a `format` setting."""
    sink = CsvSink if fmt == "csv" else JsonLinesSink
    return sink(folder, run_id, append)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_symlink(target: str, link: Path) -> None:
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(target, tmp)
    except OSError:  # no symlinks here (some Windows set-ups): copy instead
        tmp.write_bytes((link.parent / target).read_bytes())
    os.replace(tmp, link)
