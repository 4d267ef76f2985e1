"""The input stage: the URL list read lazily, line by line, into UrlTask, InvalidLine and
DuplicateLine entries. Memory grows only with the duplicate index (about 100 bytes per
distinct URL), never with the list; a line over MAX_LINE_BYTES is never held whole."""

from __future__ import annotations

import hashlib
import io
import os
import time
from array import array
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from scraper.records import DuplicateLine, InvalidLine, UrlTask
from scraper.urls import SHOWN_CHARS, InvalidUrl, normalize_url, redact_url, shorten

MAX_LINE_BYTES = 8192  # longer lines are reported invalid without ever being held whole


BOM = b"\xef\xbb\xbf"


YIELD_EVERY = 1024  # lines between GIL releases: ~1 ms of reading (measured 1 µs a comment line)


ListEntry = UrlTask | InvalidLine | DuplicateLine


class LineStream(Protocol):
    """What a list is read from: a binary file, standard input, or ListSources."""

    def readline(self, limit: int = -1, /) -> bytes: ...


def read_url_list(stream: LineStream) -> Iterator[ListEntry]:
    """Yield one entry per line that holds anything; blank and `#` comment lines are skipped.

    Line numbers are physical (1-based, blank and comment lines counted).
    """
    return iter(UrlListReader(stream))


class UrlListReader:
    """The entries of a list (iterate), and, once a run stops, the lines not read yet."""

    def __init__(self, stream: LineStream) -> None:
        self._lines = _physical_lines(stream)
        self._seen = DuplicateIndex()

    def __iter__(self) -> Iterator[ListEntry]:
        for line_no, raw, whole in self._lines:
            entry = _entry_for(line_no, raw) if whole else _too_long(line_no, raw)
            if isinstance(entry, UrlTask):
                first = self._seen.first_line(_digest(entry.normalized_url), line_no)
                if first != line_no:
                    yield DuplicateLine(line_no, entry.url, first)
                    continue
            if entry is not None:
                yield entry

    def rest(self) -> Iterator[tuple[int, str]]:
        """(line number, text shown) of each line not read yet that holds anything, at full
        speed: not checked as a URL, not normalised; passwords masked, long lines shortened."""
        for line_no, raw, _ in self._lines:
            text = raw.decode("utf-8", "backslashreplace").strip()
            if text and not text.startswith("#"):
                yield line_no, shorten(redact_url(text))


def _physical_lines(stream: LineStream) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, whole) per line; a line over MAX_LINE_BYTES comes cut, whole=False."""
    line_no = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        line_no += 1
        if line_no % YIELD_EVERY == 0:
            time.sleep(0)  # a long stretch of skipped lines must not starve the other threads
        if line_no == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the over-long line, a bounded piece at a time
            yield line_no, raw, False
            continue
        yield line_no, raw, True


def _too_long(line_no: int, raw: bytes) -> InvalidLine:
    shown = shorten(raw[:SHOWN_CHARS].decode("utf-8", "backslashreplace").strip())
    return InvalidLine(line_no, shown, f"line longer than {MAX_LINE_BYTES} bytes")


def _entry_for(line_no: int, raw: bytes) -> UrlTask | InvalidLine | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = raw.decode("utf-8", "backslashreplace").strip()
        return InvalidLine(line_no, shorten(shown), f"not UTF-8 (byte {exc.start + 1})")
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    try:
        normalized = normalize_url(text)
    except InvalidUrl as exc:
        return InvalidLine(line_no, shorten(redact_url(text)), str(exc))
    return UrlTask(line_no, redact_url(text), normalized)


class DuplicateIndex:
    """URL digest → first line number, in two flat arrays (open addressing, linear probing).

    A dict of int → int costs about 110 bytes an entry; this costs 24 at most (12-byte slots,
    at most half full): 2.4 MB per 100,000 distinct URLs instead of 11 MB, the one part of
    memory that grows with the list.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.keys = array("Q", bytes(8 * capacity))  # 0 marks an empty slot
        self.lines = array("I", bytes(4 * capacity))  # 4-byte line numbers
        self.count = 0

    def first_line(self, digest: int, line_no: int) -> int:
        """The line where `digest` was first seen; records `line_no` if it is new."""
        digest = digest or 1
        mask = len(self.keys) - 1
        slot = digest & mask
        while True:
            key = self.keys[slot]
            if key == digest:
                return int(self.lines[slot])
            if key == 0:
                break
            slot = (slot + 1) & mask
        self.keys[slot], self.lines[slot] = digest, line_no
        self.count += 1
        if self.count * 2 > len(self.keys):
            self._grow()
        return line_no

    def _grow(self) -> None:
        old = zip(self.keys, self.lines, strict=True)
        bigger = DuplicateIndex(len(self.keys) * 2)
        for key, line in old:
            if key:
                bigger.first_line(key, line)
        self.keys, self.lines, self.count = bigger.keys, bigger.lines, bigger.count


def _digest(url: str) -> int:
    # 64 bits: a collision among a million URLs has odds of about 3e-8, and an int costs a
    # third of the memory the URL string would.
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big")


def count_url_lines(path: str | os.PathLike[str]) -> int:
    """How many lines of the file hold anything other than blanks or a `#` comment (fast)."""
    count = 0
    with open(path, "rb") as handle:
        for raw in handle:
            text = raw.removeprefix(BOM).strip()
            if text and not text.startswith(b"#"):
                count += 1
    return count


class ListSources:
    """URLs given as arguments and list files (`-`: standard input), read one after another as
    one list, as wget reads its URL arguments and its -i file: line numbers run on across
    them (a URL argument is one line). A binary stream to UrlListReader: readline() only."""

    def __init__(self, sources: list[tuple[str, BinaryIO | bytes]]) -> None:
        # (name, opened stream) or (name, the bytes of URL arguments)
        self.sources = [
            (name, io.BytesIO(item) if isinstance(item, bytes) else item) for name, item in sources
        ]
        self._at = 0
        self._start = True  # at the start of a source: a BOM there is dropped

    def readline(self, limit: int = -1) -> bytes:
        while self._at < len(self.sources):
            stream = self.sources[self._at][1]
            raw = stream.readline(limit)
            if raw:
                if self._start and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                self._start = raw.endswith(b"\n")  # a cut long line goes on in the same source
                if self._start or len(raw) >= limit > 0:
                    return raw
                return raw + b"\n"  # a source's last line without its newline
            self._at += 1
            self._start = True
        return b""

    def seekable(self) -> bool:
        """Files all (a pipe is not): the reader may then read ahead in batches."""
        try:
            return all(stream.seekable() for _, stream in self.sources)
        except (AttributeError, OSError, ValueError):
            return False

    def close(self) -> None:
        for _, stream in self.sources:
            stream.close()

    def __enter__(self) -> ListSources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
