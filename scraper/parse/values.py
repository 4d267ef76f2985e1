"""Text to typed values for extracted fields: numbers in the world's notations, dates,
booleans and URLs. Pure functions; raise ValueProblem with a message a person can act on."""

from __future__ import annotations

import email.utils
import re
from datetime import datetime
from typing import Any

from scraper.parse.rules import FieldRule
from scraper.urls import web_url

# Digits grouped by spaces or apostrophes (12 500,00 / 1'234.5), or digits with , and . marks.
NUMBER = re.compile(r"[+-]?\d{1,3}(?:[ \u00a0\u202f']\d{3})+(?:[.,]\d+)?|[+-]?\d[\d.,]*")


TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1"})


FALSE_WORDS = frozenset({"false", "no", "n", "off", "0"})


DATE_FORMATS = (  # tried in order when a date field has no `format`; day-first never guessed
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%d. %B %Y",
    "%Y%m%d",
)


class ValueProblem(Exception):
    """A value that does not convert to its field's type."""


def convert(rule: FieldRule, text: str, base_url: str) -> Any:
    """`text` as the field's type; raises ValueProblem."""
    kind = rule.type
    if kind == "string":
        return text
    if kind == "url":
        return join_url(base_url, text.strip()) if base_url else text.strip()
    if kind in ("int", "float"):
        return parse_number(text, kind)
    if kind == "bool":
        word = text.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueProblem(f"{_short(text)} is not true or false")
    if kind == "date":
        return parse_date(text, rule.format)
    raise ValueProblem(f"type {kind} takes no text value")


def join_url(base_url: str, href: str) -> str:
    """`href` resolved against `base_url` as the WHATWG URL Standard says (urls.web_url,
    fragment kept: a field's URL is what the page says); a malformed one is a problem of
    this value, never of the page."""
    url = web_url(href, base_url)
    if url is None:
        raise ValueProblem(f"{_short(href)} is not a valid URL")
    return url


def parse_number(text: str, kind: str) -> int | float:
    """The first number in `text`: `$1,299.00` → 1299.0, `12,50 €` → 12.5, `1.234.567` → 1234567.

    With both `,` and `.`, the later is the decimal mark. With one kind only, it is a thousands
    separator when it repeats or has exactly three digits after it, else the decimal mark.
    """
    match = NUMBER.search(text)
    if match is None:
        raise ValueProblem(f"{_short(text)} holds no number")
    token = re.sub(r"[ \u00a0\u202f']", "", match.group(0)).rstrip(".,")
    token = _decimal_point(token)
    try:
        number = float(token)
    except ValueError:
        raise ValueProblem(f"{_short(text)} is not a number") from None
    if kind == "int":
        if not number.is_integer():
            raise ValueProblem(f"{_short(text)} is not a whole number")
        return int(number)
    return number


def _decimal_point(token: str) -> str:
    comma, dot = token.rfind(","), token.rfind(".")
    if comma >= 0 and dot >= 0:
        mark = "," if comma > dot else "."
        other = "." if mark == "," else ","
        return token.replace(other, "").replace(mark, ".")
    for mark in (",", "."):
        if mark in token:
            after = token.rsplit(mark, 1)[1]
            if token.count(mark) > 1 or len(after) == 3:
                return token.replace(mark, "")
            return token.replace(mark, ".")
    return token


def parse_date(text: str, fmt: str | None) -> str:
    """ISO 8601 text (`2026-11-26`, or with a time `2026-11-26T10:00:00+00:00`)."""
    text = text.strip()
    if fmt is not None:
        try:
            return _iso(datetime.strptime(text, fmt), _has_time_directive(fmt))
        except ValueError:
            raise ValueProblem(f"{_short(text)} does not fit the format {fmt!r}") from None
    try:
        parsed = datetime.fromisoformat(text)
        return _iso(parsed, "T" in text.upper() or " " in text or ":" in text)
    except ValueError:
        pass
    try:
        return _iso(email.utils.parsedate_to_datetime(text), True)
    except (TypeError, ValueError, IndexError):
        pass
    for candidate in DATE_FORMATS:
        try:
            return _iso(datetime.strptime(text, candidate), _has_time_directive(candidate))
        except ValueError:
            continue
    raise ValueProblem(f"{_short(text)} is not a date I can read; give its format")


def _has_time_directive(fmt: str) -> bool:
    return any(d in fmt for d in ("%H", "%I", "%M", "%S", "%p", "%z"))


def _iso(moment: datetime, with_time: bool) -> str:
    return moment.isoformat() if with_time else moment.date().isoformat()


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
