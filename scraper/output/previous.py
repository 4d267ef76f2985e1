"""A URL's last full record, read back from the run file that holds it, so that the record of
an unchanged page (304, or the same hash) carries the fields and `data` of its last parsed
version: each run's file is a full snapshot. The state keeps only where that record is,
"<run>/<offset>/<length>" (output/sinks.py writes it), a few dozen bytes a URL; the page's
text and links, ~5 KB a demo page even compressed, stay in the record files they are in.
Retention keeps the runs still pointed at (state.referenced_runs)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

import orjson

# Not the page's but the record's: not carried over (final_url, status and content_hash are,
# in their places, and the unchanged record's own values replace them).
NOT_CARRIED = frozenset(
    {"line", "url", "outcome", "attempts", "error", "error_kind", "error_message"}
)
OPEN_FILES = 8  # run files kept open while reading back (most refs point at the last run)
CSV_INTEGERS = ("status", "word_count", "body_bytes", "attempts")
CSV_JSON = ("links", "structured", "data_problems")


class PreviousRecords:
    """Reads records back by reference from the run files in `folder`; `fmt` is the format
    being written now (a CSV record read for JSON lines gets its types back)."""

    def __init__(self, folder: Path, fmt: str) -> None:
        self.folder, self.fmt = folder, fmt
        self._open: dict[str, tuple[BinaryIO, str, list[str]]] = {}

    def fields(self, ref: str) -> dict[str, Any] | None:
        """The page's fields from the record at `ref`; None when it cannot be read (its file
        is gone, or does not hold a record there)."""
        data = self._read(ref)
        if data is None:
            return None
        _, kind, header = self._open[ref.split("/")[0]]
        try:
            record = self._decode(data, kind, header)
        except (ValueError, UnicodeDecodeError, csv.Error):
            return None
        return {k: v for k, v in record.items() if k not in NOT_CARRIED}

    def tail(self, ref: str) -> bytes | None:
        """The JSON-lines text of the record at `ref` after its "status" value (from
        `"content_type":...` to the closing brace and newline), when it is one this program
        wrote: the record of an unchanged page is then its own head and that tail, with no
        decoding (a 15 KB demo record costs ~30 µs to decode, more among 32 threads: a
        re-run of 2,000 304s took 0.45 CPU-s longer decoding them). None otherwise."""
        data = self._read(ref, "jsonl")
        if data is None or not data.startswith(b'{"line":'):
            return None
        # Keys before it are line, url, outcome, attempts, final_url: in their values a quote
        # is escaped, so the first ',"status":' is the key.
        at = data.find(b',"status":')
        if at < 0:
            return None
        end = data.find(b",", at + len(b',"status":'))
        if end < 0 or not data[at + len(b',"status":') : end].isdigit():
            return None
        return data[end + 1 :]

    def _read(self, ref: str, only: str | None = None) -> bytes | None:
        try:
            run, offset_text, length_text = ref.split("/")
            offset, length = int(offset_text), int(length_text)
        except ValueError:
            return None
        found = self._file(run)
        if found is None or (only is not None and found[1] != only):
            return None
        try:
            data = os.pread(found[0].fileno(), length, offset)
        except OSError:
            return None
        return data if len(data) == length and data.endswith(b"\n") else None

    def _decode(self, data: bytes, kind: str, header: list[str]) -> dict[str, Any]:
        if kind == "jsonl":
            record = orjson.loads(data)
            if not isinstance(record, dict):
                raise ValueError("not a record")
            return record
        cells = next(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        if len(cells) != len(header):
            raise ValueError("not a row of this file")
        row = dict(zip(header, cells, strict=True))
        return row if self.fmt == "csv" else _typed(row)  # CSV to CSV: the cells as they were

    def _file(self, run: str) -> tuple[BinaryIO, str, list[str]] | None:
        if run in self._open:
            return self._open[run]
        for kind in ("jsonl", "csv"):
            for suffix in ("", ".part"):  # a resumed run's file is .part until it ends
                path = self.folder / f"{run}.{kind}{suffix}"
                try:
                    handle = open(path, "rb")  # noqa: SIM115 (closed by close())
                except OSError:
                    continue
                header = []
                if kind == "csv":
                    first = handle.readline().decode("utf-8", "replace")
                    header = next(csv.reader([first]), [])
                if len(self._open) >= OPEN_FILES:
                    _, (old, _, _) = self._open.popitem()
                    old.close()
                self._open[run] = (handle, kind, header)
                return self._open[run]
        return None

    def close(self) -> None:
        for handle, _, _ in self._open.values():
            handle.close()
        self._open.clear()


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the record it was: numbers, JSON lists and objects, `data` gathered."""
    record: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for key, cell in row.items():
        value: Any = None if cell == "" else cell
        if value is not None and key in CSV_INTEGERS:
            value = int(value)
        elif value is not None and key in CSV_JSON:
            value = orjson.loads(value)
        if key.startswith("data."):
            data[key.removeprefix("data.")] = value
        else:
            record[key] = value
    if data:
        record["data"] = data
    return record
