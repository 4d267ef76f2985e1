"""Response bytes to text: the charset from a byte-order mark, the Content-Type header, a
<meta> declaration, or detection (charset-normalizer), in that order."""

from __future__ import annotations

import codecs
import re

SNIFF_BYTES = 4096  # <meta charset> must sit in the first 1024 bytes (WHATWG); be lenient


DETECT_BYTES = 64 * 1024  # charset detection on more than this buys nothing but time


DETECT_MARGIN = 0.15  # how much worse (chaos) windows-1252 may fit and still be chosen


# WHATWG maps these labels to windows-1252; pages that say latin-1 mean it.
WHATWG_ALIASES = {"latin1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252"}


SHOWN_NAMES = {"cp1252": "windows-1252", "cp1251": "windows-1251", "cp1250": "windows-1250"}


BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE
)


_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def decode_body(body: bytes, content_type: str) -> tuple[str, str]:
    """(text, codec name): HTTP header charset, then BOM, then <meta charset>, then detection.

    Undecodable bytes become U+FFFD rather than failing the page.
    """
    for source in (_header_charset(content_type), _bom_charset(body), _meta_charset(body)):
        if source is not None:
            if source.startswith("utf-8"):
                source = "utf-8-sig" if body.startswith(codecs.BOM_UTF8) else "utf-8"
            text = body.decode(source, errors="replace")
            return text.replace("\x00", "\ufffd"), source.removesuffix("-sig")
    try:
        return body.decode("utf-8").replace("\x00", "\ufffd"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = _detect(body)
    return body.decode(encoding, errors="replace").replace("\x00", "\ufffd"), encoding


def _codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None  # an invalid label is ignored, as browsers do; the next source decides
    name = WHATWG_ALIASES.get(name, name)
    # Labels for encodings that are not ASCII-compatible when declared in-band are untrustworthy.
    return name


def _header_charset(content_type: str) -> str | None:
    match = _HEADER_CHARSET.search(content_type)
    return _codec(match.group(1)) if match else None


def _bom_charset(body: bytes) -> str | None:
    return next((name for bom, name in BOMS if body.startswith(bom)), None)


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body, 0, SNIFF_BYTES)
    if not match:
        return None
    name = _codec(match.group(1).decode("ascii"))
    # WHATWG: a <meta> that claims UTF-16 is read as UTF-8 (the bytes were readable as ASCII).
    return "utf-8" if name and name.startswith("utf-16") else name


def _detect(body: bytes) -> str:
    """Guess an undeclared legacy encoding; windows-1252 unless the bytes say otherwise.

    charset-normalizer alone picked cp1257 (Baltic) for plain French text: on short samples
    several single-byte codecs fit equally well. windows-1252 is the WHATWG default for
    undeclared pages, so it wins whenever it fits about as well as the best guess.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(body[:DETECT_BYTES]))
    if not matches:
        return "cp1252"
    best_chaos = min(m.chaos for m in matches)
    if any(m.encoding == "cp1252" and m.chaos <= best_chaos + DETECT_MARGIN for m in matches):
        return "cp1252"
    return _codec(matches[0].encoding) or "cp1252"
