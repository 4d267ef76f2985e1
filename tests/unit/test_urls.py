import io

import pytest

from scraper.records import DuplicateLine, InvalidLine, UrlTask
from scraper.url_list import MAX_LINE_BYTES, count_url_lines, read_url_list
from scraper.urls import normalize_url, redact_url


def entries(data: bytes) -> list[object]:
    return list(read_url_list(io.BytesIO(data)))


def test_blank_and_comment_lines_are_skipped_but_counted() -> None:
    got = entries(b"# header\n\nhttp://a.example/\n   \n# more\nhttp://b.example/x\n")
    assert got == [
        UrlTask(3, "http://a.example/", "http://a.example/"),
        UrlTask(6, "http://b.example/x", "http://b.example/x"),
    ]


def test_bom_crlf_and_surrounding_space_are_tolerated() -> None:
    got = entries(b"\xef\xbb\xbf  http://a.example/p \r\n\thttps://b.example\r\n")
    assert [(e.line_no, e.normalized_url) for e in got] == [
        (1, "http://a.example/p"),
        (2, "https://b.example/"),
    ]


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("HTTP://Example.COM:80/a?b=1#frag", "http://example.com/a?b=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://user:pw@Example.com/", "http://user:pw@example.com/"),
        # The WHATWG URL Standard's forms, as browsers send them:
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),  # IDNA
        ("http://ＥＸＡＭＰＬＥ。com/", "http://example.com/"),  # full-width, ideographic stop
        ("http://0x7f.1/", "http://127.0.0.1/"),  # IPv4 in other notations
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),  # dot segments
        ("http://example.com/%2e%2E/x", "http://example.com/x"),  # encoded ones too
        ("http://example.com\\a\\b", "http://example.com/a/b"),  # backslashes are slashes
        ("http:///path-only", "http://path-only/"),  # special schemes skip extra slashes
        ("http://example.com/a b?c d", "http://example.com/a%20b?c%20d"),
        ("http://example.com/é?é", "http://example.com/%C3%A9?%C3%A9"),
        ("http://example.com/?'", "http://example.com/?%27"),  # ' in a special URL's query
        ("http://[0:0::1]/", "http://[::1]/"),
    ],
)
def test_normalisation(url: str, normalized: str) -> None:
    assert normalize_url(url) == normalized


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"ftp://example.com/file", "scheme 'ftp:'"),
        (b"javascript:alert(1)", "scheme 'javascript:'"),
        (b"file:///etc/passwd", "scheme 'file:'"),
        (b"data:text/html,hi", "scheme 'data:'"),
        (b"example.com/no-scheme", "scheme none"),
        (b"http://", "no host"),
        (b"http://@/", "no host"),
        (b"http://example.com:99999/", "port"),
        (b"http://example.com:abc/", "port"),
        (b"http://exa mple.com/", "control character or space"),
        (b"http://example.com/\x00x", "control character"),
        (b"http://example.com/\x07", "control character"),
        (b"http://\xff\xfe/", "not UTF-8"),
        (b"http://[zz]/", "invalid IPv6 address"),
        (b"http://exa_mple..com/", "invalid host"),
    ],
)
def test_each_bad_line_becomes_an_invalid_entry_naming_its_line(line: bytes, reason: str) -> None:
    got = entries(b"http://ok.example/\n" + line + b"\nhttp://ok2.example/\n")
    assert isinstance(got[1], InvalidLine)
    assert got[1].line_no == 2
    assert reason in got[1].reason
    assert [e.line_no for e in got if isinstance(e, UrlTask)] == [1, 3]


def test_overlong_line_is_invalid_and_never_held_whole() -> None:
    long_line = b"http://example.com/" + b"a" * (10 * MAX_LINE_BYTES)
    got = entries(long_line + b"\nhttp://ok.example/\n")
    assert isinstance(got[0], InvalidLine) and "longer than" in got[0].reason
    assert len(got[0].text) <= 200
    assert got[1] == UrlTask(2, "http://ok.example/", "http://ok.example/")


def test_duplicates_after_normalisation_are_reported_with_the_first_line() -> None:
    got = entries(b"http://a.example/x\nHTTP://A.EXAMPLE:80/x#top\nhttp://a.example/y\n")
    assert got[1] == DuplicateLine(2, "HTTP://A.EXAMPLE:80/x#top", 1)
    assert isinstance(got[2], UrlTask)


def test_credentials_are_masked_in_what_is_shown() -> None:
    (task,) = entries(b"https://alice:s3cret@example.com/p\n")
    assert isinstance(task, UrlTask)
    assert "s3cret" not in task.url and task.url == "https://alice:***@example.com/p"
    assert "s3cret" in task.normalized_url  # still used for the request itself
    assert redact_url("ftp://bob:pw@x/") == "ftp://bob:***@x/"
    (bad,) = entries(b"ftp://bob:hunter2@example.com/\n")
    assert isinstance(bad, InvalidLine) and "hunter2" not in bad.text


def test_reading_is_lazy() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            data = b"http://example.com/\n" * (len(buffer) // 20)
            buffer[: len(data)] = data
            return len(data)

    stream = io.BufferedReader(Endless())
    first = next(read_url_list(stream))  # an endless list still yields its first URL
    assert isinstance(first, UrlTask)


def test_count_url_lines(tmp_path) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(b"\xef\xbb\xbf# c\nhttp://a/\n\n  \nbad line\n")
    assert count_url_lines(path) == 2


def test_the_fast_paths_give_what_the_whatwg_parser_gives() -> None:
    """URLs already in the standard's form skip ada (its cffi calls hand the GIL away):
    on generated URLs, whenever the fast path answers, ada answers the same."""
    import random

    import ada_url

    from scraper.urls import _simple_absolute, web_link

    rng = random.Random(11)
    hosts = ["a.example", "A.example", "xn--bcher-kva.example", "127.0.0.1", "0x7f.1", "a-b.c"]
    hosts += ["127.000.0.1", "1.2.3.256", "127.1", "010.0.0.1", "0.0.0.0", "255.255.255.255"]
    hosts += ["1.2.3.4.5", "x.0x1f", "ex-.com", "e.com.", "b\u00fccher.example", "_x.example"]
    ports = ["", ":80", ":443", ":8080", ":080", ":65536", ":0"]
    pieces = ["/", "a", ".", "..", "%2e", "%2E", "%zz", "'", '"', " ", "|", "^", "\\", "?", "#"]
    pieces += ["é", "=", "&", "~", "@", ":", ";", ",", "!", "(", "*", "{", "`", "\t"]
    bases = ["http://a.example/x/y?q", "https://a.example:8443/", "http://A.example/x"]
    answered = 0
    for _ in range(20_000):
        path = "/" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        url = f"{rng.choice(['http', 'https', 'HTTP'])}://{rng.choice(hosts)}{rng.choice(ports)}"
        url += path
        if _simple_absolute(url):
            answered += 1
            assert ada_url.normalize_url(url) == url, url
        base = rng.choice(bases)
        rel = path.lstrip("/")
        for href in (
            url,
            path,
            path.partition("#")[2],
            "",
            rel,
            "../" + rel,
            "?" + rel,
            "./" + rel,
        ):
            try:
                expected = ada_url.join_url(base, href)
            except ValueError:
                expected = None
            if expected is not None:
                expected = expected.partition("#")[0] if expected.startswith("http") else None
            assert web_link(base, href) == expected, (base, href)
    assert answered > 100
    for usual in (
        "https://www.example.com/news/2026/11/a-b_c.html?id=3&x=y",
        "http://a.example:8080/",
    ):
        assert _simple_absolute(usual)  # the fast path answers for the usual shapes
