"""Response bytes to text, as the HTML and Encoding standards say browsers do it: a byte-order
mark first, then the Content-Type header's charset, then the HTML standard's prescan of the
first 1024 bytes for a <meta> declaration, then (where a browser would use its locale's
default or its detector) UTF-8 if the bytes are valid UTF-8, else detection that prefers
windows-1252.

Labels are mapped by the Encoding Standard's table (webencodings: `latin1`, `ascii` and
`iso-8859-1` are windows-1252; `shift_jis` decodes as windows-31j, `gb2312` as GBK, `euc-kr`
as windows-949, `iso-8859-9` as windows-1254...), and decoded with the codec that matches the
standard's decoder; the record's `encoding` is the standard's name (lower-cased, as its label
table writes them).
"""

from __future__ import annotations

import codecs

import webencodings

PRESCAN_BYTES = 1024  # the HTML standard's prescan reads this much


DETECT_BYTES = 64 * 1024  # charset detection on more than this buys nothing but time


DETECT_MARGIN = 0.15  # how much worse (chaos) windows-1252 may fit and still be chosen


# The standard's decoders where Python's codec of the same name differs: GBK is decoded by
# the gb18030 decoder; windows-1252's five unassigned bytes are the C1 controls of the same
# number (windows1252_c1 below).
PYTHON_CODECS = {"gbk": "gb18030", "windows-1252": "cp1252"}


BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
)


SPACE = b"\t\n\x0c\r "
NAME_END = SPACE + b"/>"


def decode_body(body: bytes, content_type: str) -> tuple[str, str]:
    """(text, the encoding's standard name). Undecodable bytes become U+FFFD rather than
    failing the page."""
    bom = next(((name, len(mark)) for mark, name in BOMS if body.startswith(mark)), None)
    if bom is not None:
        return _decode(body[bom[1] :], bom[0]), bom[0]
    for name in (_header_charset(content_type), prescan(body[:PRESCAN_BYTES])):
        if name is not None:
            return _decode(body, name), name
    try:
        return body.decode("utf-8").replace("\x00", "\ufffd"), "utf-8"
    except UnicodeDecodeError:
        pass
    name = _detect(body)
    return _decode(body, name), name


def encoding_name(label: str) -> str | None:
    """The Encoding Standard's "get an encoding": the encoding's name for `label`, or None."""
    found = webencodings.lookup(label)
    return found.name if found is not None else None


def _decode(body: bytes, name: str) -> str:
    if name == "replacement":  # ISO-2022-KR, HZ-GB-2312 and the like: one U+FFFD, no text
        return "\ufffd" if body else ""
    python = PYTHON_CODECS.get(name)
    if python is not None:
        errors = "windows1252_c1" if name == "windows-1252" else "replace"
        text = body.decode(python, errors=errors)
    else:
        codec = webencodings.lookup(name)
        assert codec is not None
        text, _ = codec.codec_info.decode(body, "replace")
    return text.replace("\x00", "\ufffd")


def _windows1252_c1(error: UnicodeError) -> tuple[str, int]:
    """windows-1252 maps 0x81, 0x8D, 0x8F, 0x90 and 0x9D to the C1 controls U+0081... (the
    standard's index); Python's cp1252 leaves them undefined."""
    assert isinstance(error, UnicodeDecodeError)
    byte = error.object[error.start]
    if byte in (0x81, 0x8D, 0x8F, 0x90, 0x9D):
        return chr(byte), error.start + 1
    return "\ufffd", error.start + 1


codecs.register_error("windows1252_c1", _windows1252_c1)


def _header_charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type header, if its label is a known one."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return encoding_name(value.strip().strip("\"'"))
    return None


# -- the HTML standard's "prescan a byte stream to determine its encoding" ------------------


def prescan(data: bytes) -> str | None:
    """The encoding a <meta> in `data` declares, found as the HTML standard's prescan finds
    it: comments skipped, other tags' attributes stepped over, `charset=`, or `content=` with
    `http-equiv="content-type"`; a declared UTF-16 is read as UTF-8 and x-user-defined as
    windows-1252."""
    pos, end = 0, len(data)
    while pos < end:
        if data.startswith(b"<!--", pos):
            close = data.find(b"-->", pos + 2)
            if close < 0:
                return None
            pos = close + 3
            continue
        if data[pos : pos + 5].lower() == b"<meta" and data[pos + 5 : pos + 6] in (
            [bytes([c]) for c in SPACE + b"/"]
        ):
            found, pos = _meta(data, pos + 6)
            if found is not None:
                return found
            continue
        if data.startswith(b"<", pos) and (
            data[pos + 1 : pos + 2].isalpha()
            or (data[pos + 1 : pos + 2] == b"/" and data[pos + 2 : pos + 3].isalpha())
        ):
            pos += 2
            while pos < end and data[pos] not in SPACE + b">":
                pos += 1
            while (attribute := _attribute(data, pos)) is not None:
                pos = attribute[2]
            else:
                pos = _after_attributes(data, pos)
            pos += 1
            continue
        if data.startswith((b"<!", b"</", b"<?"), pos):
            close = data.find(b">", pos + 2)
            if close < 0:
                return None
            pos = close + 1
            continue
        pos += 1
    return None


def _after_attributes(data: bytes, pos: int) -> int:
    """Where the attribute loop stopped: at the '>' (or the end)."""
    end = len(data)
    while pos < end and data[pos] in SPACE + b"/":
        pos += 1
    return pos


def _meta(data: bytes, pos: int) -> tuple[str | None, int]:
    """One <meta>'s attributes, the prescan's steps for it; (its encoding or None, where to
    go on)."""
    seen: set[bytes] = set()
    got_pragma = False
    need_pragma: bool | None = None
    charset: str | None = None
    failed = False
    while (attribute := _attribute(data, pos)) is not None:
        name, value, pos = attribute
        if name in seen:
            continue
        seen.add(name)
        if name == b"http-equiv":
            got_pragma = got_pragma or value == b"content-type"
        elif name == b"content" and charset is None and not failed:
            label = _charset_in_content(value)
            if label is not None:
                charset = encoding_name(label.decode("latin-1"))
                failed = charset is None
                need_pragma = True
        elif name == b"charset":
            charset = encoding_name(value.decode("latin-1"))
            failed = charset is None
            need_pragma = False
    pos = _after_attributes(data, pos) + 1
    if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
        return None, pos
    if charset in ("utf-16be", "utf-16le"):
        charset = "utf-8"
    if charset == "x-user-defined":
        charset = "windows-1252"
    return charset, pos


def _attribute(data: bytes, pos: int) -> tuple[bytes, bytes, int] | None:
    """The HTML standard's "get an attribute": (name, value, position after it), lower-cased;
    None at '>' or the end of the bytes."""
    end = len(data)
    while pos < end and data[pos] in SPACE + b"/":
        pos += 1
    if pos >= end or data[pos] == 0x3E:  # '>'
        return None
    name = bytearray()
    while True:
        if pos >= end:
            return None
        byte = data[pos]
        if byte == 0x3D and name:  # '=' after a name: the value follows
            pos += 1
            break
        if byte in SPACE:  # spaces: an '=' may still come
            while pos < end and data[pos] in SPACE:
                pos += 1
            if pos >= end or data[pos] != 0x3D:
                return bytes(name), b"", pos
            pos += 1
            break
        if byte in b"/>":
            return bytes(name), b"", pos
        name.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
        pos += 1
    while pos < end and data[pos] in SPACE:
        pos += 1
    if pos >= end:
        return None
    value = bytearray()
    quote = data[pos]
    if quote in b"\"'":
        close = data.find(bytes([quote]), pos + 1)
        if close < 0:
            return None
        return bytes(name), data[pos + 1 : close].lower(), close + 1
    if quote == 0x3E:
        return bytes(name), b"", pos
    while pos < end and data[pos] not in SPACE + b">":
        byte = data[pos]
        value.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
        pos += 1
    if pos >= end:
        return None
    return bytes(name), bytes(value), pos


def _charset_in_content(value: bytes) -> bytes | None:
    """The HTML standard's "extracting a character encoding from a meta element"."""
    pos = 0
    while True:
        at = value.find(b"charset", pos)
        if at < 0:
            return None
        pos = at + len(b"charset")
        while pos < len(value) and value[pos] in SPACE:
            pos += 1
        if pos >= len(value) or value[pos] != 0x3D:  # not '=': look for the next "charset"
            continue
        pos += 1
        while pos < len(value) and value[pos] in SPACE:
            pos += 1
        if pos >= len(value):
            return None
        if value[pos] in b"\"'":
            close = value.find(value[pos : pos + 1], pos + 1)
            return value[pos + 1 : close] if close >= 0 else None
        stop = pos
        while stop < len(value) and value[stop] not in SPACE + b";":
            stop += 1
        return value[pos:stop]


def _detect(body: bytes) -> str:
    """Guess an undeclared legacy encoding; windows-1252 unless the bytes say otherwise.

    charset-normalizer alone picked cp1257 (Baltic) for plain French text: on short samples
    several single-byte codecs fit equally well. windows-1252 is the WHATWG default for
    undeclared pages, so it wins whenever it fits about as well as the best guess.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(body[:DETECT_BYTES]))
    if not matches:
        return "windows-1252"
    best_chaos = min(m.chaos for m in matches)
    if any(m.encoding == "cp1252" and m.chaos <= best_chaos + DETECT_MARGIN for m in matches):
        return "windows-1252"
    return _standard_name(matches[0].encoding) or "windows-1252"


def _standard_name(python_codec: str) -> str | None:
    """The standard's name for a Python codec name charset-normalizer gives (`cp1251`)."""
    try:
        normal = codecs.lookup(python_codec).name
    except LookupError:
        return None
    for label in {normal, normal.replace("cp", "windows-"), normal.replace("_", "-")}:
        name = encoding_name(label)
        if name is not None:
            return name
    return None
