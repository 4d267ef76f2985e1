"""Writers of records: JSON lines, CSV or a SQLite table, written as records arrive.

A run's file lives under a temporary name (`<run>.jsonl.part`, which no tool globbing `*.jsonl`
mistakes for a finished run) and is renamed when the run ends; `latest.<ext>` then points at
it. Records are flushed whenever none waits, and always before the state is told of them,
so a killed run leaves readable every record the state knows. The SQLite table (format
`sqlite`) is kept beside the run files, across runs; saved HTML goes to `html/`. Writes
only inside the output directory; never imports the network or parse stages.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import orjson

from scraper.records import Outcome, PageRecord

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
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "sqlite": "jsonl"}
TABLE_FILE = "records.sqlite"


def record_columns(settings: Any) -> tuple[str, ...]:
    """A flat record's columns (CSV, SQLite): fixed ones, `site` and `data.<field>` in the
    order the config lists them, then the optional parts the settings turn on."""
    data: dict[str, None] = {}
    for site in settings.sites:
        data.update((f"data.{f.name}", None) for f in site.fields)
    extra = (
        (("site", *data, "data_problems") if settings.sites else ())
        + (("structured",) if settings.structured_data else ())
        + (("html_file",) if settings.save_html else ())
    )
    found = ("found_on", "depth") if settings.discovers() else ()
    return CSV_COLUMNS[:2] + found + CSV_COLUMNS[2:4] + extra + CSV_COLUMNS[4:]


def flat_record(record: PageRecord) -> dict[str, Any]:
    """The record with `data` spread into `data.<field>` keys and the error split in two;
    lists and objects as JSON text."""
    row = record.to_dict()
    error = row.pop("error", None) or {}
    row["error_kind"], row["error_message"] = error.get("kind"), error.get("message")
    for name, value in (row.pop("data", None) or {}).items():
        row[f"data.{name}"] = value
    for key, value in row.items():
        if isinstance(value, (list, dict)):
            row[key] = orjson.dumps(value).decode()
    return row


def _suffix_of(name: str, run_id: str) -> bool:
    rest = name[len(run_id) :]
    return rest == "" or (rest.startswith("-") and rest[1:].isdigit())


def complete(record: PageRecord) -> bool:
    """An unchanged record that carries its page's fields (from its last full record)."""
    return record.outcome is Outcome.UNCHANGED and (
        record.raw_tail is not None or bool(record.fields.keys() - UNCHANGED_OWN)
    )


UNCHANGED_OWN = frozenset({"final_url", "status", "content_hash"})  # an unchanged page's own


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
        """`run_id`, or when a run of the same second has files here, the next suffix after
        the highest one (never a lower one that retention freed: names must sort in the
        order runs happened, which `latest`, retention and --resume go by)."""
        taken = [
            path.name.split(".")[0]
            for path in self.folder.glob(f"{run_id}*")
            if path.name.split(".")[0].startswith(run_id)
        ]
        if not taken:
            return run_id
        suffixes = [int(name[len(run_id) + 1 :] or 0) for name in taken if _suffix_of(name, run_id)]
        return f"{run_id}-{max([1, *suffixes]) + 1:03d}"  # sorts after run_id, and in order

    def write(self, record: PageRecord) -> str | None:
        """Buffered: the run calls flush() when no record waits (a killed run loses at most
        those records, whose state was not committed either, so --resume fetches them again).
        Returns where the record is ("<run>/<offset>/<length>", output/previous.py)."""
        data = self.format(record)
        offset = self.handle.tell()
        self.handle.write(data)
        self.count += 1
        return f"{self.run_id}/{offset}/{len(data)}"

    def flush(self) -> None:
        self.handle.flush()

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
        if record.raw_tail is not None:  # an unchanged page: its head, then its last record's
            head = record.to_dict()
            head.pop("content_hash", None)  # the same, and in the tail
            return orjson.dumps(head)[:-1] + b"," + record.raw_tail
        return orjson.dumps(record.to_dict()) + b"\n"


class CsvSink(RecordSink):
    """CSV with a fixed column order (record_columns); lists and objects are JSON text."""

    extension = "csv"

    def __init__(
        self, folder: Path, run_id: str, append: bool = False, columns: tuple[str, ...] = ()
    ) -> None:
        super().__init__(folder, run_id, append)
        self.columns = columns or CSV_COLUMNS
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        if not append:
            self._writer.writerow(self.columns)
            self.handle.write(self._take())

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")

    def format(self, record: PageRecord) -> bytes:
        row = flat_record(record)
        self._writer.writerow(["" if row.get(c) is None else row[c] for c in self.columns])
        return self._take()


class SqliteSink(JsonLinesSink):
    """The run's JSON lines, and <output_dir>/records.sqlite: table `records`, one row per URL
    as listed, upserted as records arrive, so a cron job keeps one table current.

    ok replaces the row; unchanged and failed keep the last good page's fields and data and
    update outcome, attempts, status, error, run and time; invalid, duplicate and skipped
    lines have no page and are left out (the JSON lines hold them). The row is written before
    the JSON line: a resumed run repeats at most the upsert of the record a kill cut off.
    """

    KEEP_ON_FAILURE = ("outcome", "attempts", "status", "error_kind", "error_message")

    def __init__(
        self, folder: Path, run_id: str, append: bool = False, columns: tuple[str, ...] = ()
    ) -> None:
        super().__init__(folder, run_id, append)
        self.columns = tuple(c for c in columns if c not in ("line", "url")) + (
            "line",
            "run_id",
            "checked_at",
        )
        self.db = sqlite3.connect(folder / TABLE_FILE, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS records (url TEXT PRIMARY KEY)")
        have = {row[1] for row in self.db.execute("PRAGMA table_info(records)")}
        for column in self.columns:  # a config that gained fields gains columns
            if column not in have:
                self.db.execute(f"ALTER TABLE records ADD COLUMN {_quoted(column)}")

    def write(self, record: PageRecord) -> str | None:
        if record.outcome in (Outcome.OK, Outcome.UNCHANGED, Outcome.FAILED):
            self._upsert(record)
        return super().write(record)

    def _upsert(self, record: PageRecord) -> None:
        row = flat_record(record)
        row["run_id"] = self.run_id
        row["checked_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if record.outcome is Outcome.OK or complete(record):
            update = self.columns
        elif record.outcome is Outcome.FAILED:
            update = (*self.KEEP_ON_FAILURE, "line", "run_id", "checked_at")
        else:
            update = ("outcome", "attempts", "line", "run_id", "checked_at")
        names = ("url", *update)
        self.db.execute(
            f"INSERT INTO records ({', '.join(map(_quoted, names))}) "
            f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT(url) DO UPDATE SET "
            + ", ".join(f"{_quoted(c)} = excluded.{_quoted(c)}" for c in update),
            [row.get(c) if c != "url" else record.url for c in names],
        )

    def finish(self, summary: dict[str, Any]) -> Path:
        self.db.close()
        return super().finish(summary)

    def abandon(self) -> None:
        self.db.close()
        super().abandon()


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


class StdoutSink(RecordSink):
    """`-o -`: JSON lines on standard output, flushed with each burst of records (the
    console and the summary stay on stderr). No file, no summary file. Once the reader goes
    away (`scrape ... -o - | head -1`), `broken` is set and the run stops."""

    def __init__(self, stream: TextIO, run_id: str) -> None:  # noqa: D107 (no file to open)
        self.stream, self.run_id = stream, run_id
        self.folder = self.final_path = self.part_path = Path("-")
        self.count = 0
        self.broken = False

    def write(self, record: PageRecord) -> str | None:
        if self.broken:
            return None
        try:
            self.stream.write(orjson.dumps(record.to_dict()).decode() + "\n")
        except (BrokenPipeError, ValueError):  # the reader closed the pipe (or the stream)
            self._broke()
        self.count += 1
        return None  # nothing to read back later

    def _broke(self) -> None:
        self.broken = True
        try:  # so that Python's own flush at exit does not complain of the pipe again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                self._broke()

    def finish(self, summary: dict[str, Any]) -> Path:
        self.flush()
        return self.final_path

    def abandon(self) -> None:
        self.flush()


def open_sink(settings: Any, folder: Path, run_id: str, append: bool = False) -> RecordSink:
    """The sink for the `format` setting."""
    if settings.format == "jsonl":
        return JsonLinesSink(folder, run_id, append)
    sink = CsvSink if settings.format == "csv" else SqliteSink
    return sink(folder, run_id, append, record_columns(settings))


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
