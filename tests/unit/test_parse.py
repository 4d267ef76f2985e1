import random

import pytest

from scraper.demo.site import DemoSite
from scraper.errors import PageError
from scraper.parse.decode import decode_body
from scraper.parse.page import ParseOptions, _LinkResolver, parse_page
from scraper.records import FetchedPage, UrlTask
from tests import servers

BASE = "http://example.com/dir/page.html"


def page(body: bytes, content_type: str = "text/html", url: str = BASE) -> FetchedPage:
    return FetchedPage(UrlTask(1, url, url), url, 200, {"content-type": content_type}, body, 1, 0.0)


def both(body: bytes, content_type: str = "text/html", **options: int) -> dict:
    """Parse with both engines and require the same record."""
    lxml_fields = parse_page(page(body, content_type), ParseOptions("lxml", **options))
    bs4_fields = parse_page(page(body, content_type), ParseOptions("bs4", **options))
    assert lxml_fields == bs4_fields
    return lxml_fields


def test_generic_fields() -> None:
    html = (
        b"<html lang='fr'><head><title>  A \n title </title><base href='/base/'>"
        b"<meta name='Description' content=' About  it '>"
        b"<link rel='alternate canonical' href='/canon#x'></head><body>"
        b"<p>One <a href='rel'>two</a> <a href='http://other.org/p#frag'>three</a></p>"
        b"<script>var hidden = 1</script><style>p{}</style><noscript>nope</noscript>"
        b"<a href='mailto:x@y.z'>m</a><a href='javascript:void(0)'>j</a>"
        b"<a href='#top'>t</a><a href=' /abs '>a</a><a href='rel'>dup</a></body></html>"
    )
    fields = both(html)
    assert fields["title"] == "A title"
    assert fields["description"] == "About it"
    assert fields["canonical"] == "http://example.com/canon"
    assert fields["lang"] == "fr"
    assert fields["links"] == [
        "http://example.com/base/rel",
        "http://other.org/p",
        "http://example.com/base/",
        "http://example.com/abs",
    ]
    assert fields["text"] == "One two three m j t a dup"
    assert fields["word_count"] == 8
    assert fields["encoding"] == "utf-8"
    assert fields["content_hash"].startswith("sha256:") and fields["body_bytes"] == len(html)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "title"),
    [
        (
            "<title>café</title>".encode("cp1252"),
            "text/html; charset=windows-1252",
            "windows-1252",
            "café",
        ),
        (
            "<meta charset='iso-8859-1'><title>café</title>".encode("latin-1"),
            "text/html",
            "windows-1252",
            "café",
        ),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><title>Привет'
            "</title>".encode("koi8-r"),
            "text/html",
            "koi8-r",
            "Привет",
        ),
        (b"\xef\xbb\xbf<title>caf\xc3\xa9</title>", "text/html", "utf-8", "café"),
        ("<title>café</title>".encode("utf-16"), "text/html", "utf-16le", "café"),
        # a byte-order mark wins even over the header (the HTML standard's sniffing order)
        (b"\xef\xbb\xbf<title>caf\xc3\xa9</title>", "text/html; charset=koi8-r", "utf-8", "café"),
        ("<title>日本語</title>".encode(), "text/html; charset=utf-8", "utf-8", "日本語"),
        # header wins over <meta>
        (
            "<meta charset='koi8-r'><title>café</title>".encode(),
            "text/html; charset=UTF-8",
            "utf-8",
            "café",
        ),
        # an invalid label in the header is ignored; the bytes still decode
        (b"<title>Bad label</title>", "text/html; charset=foobar-9", "utf-8", "Bad label"),
    ],
)
def test_decoding_order(body: bytes, content_type: str, encoding: str, title: str) -> None:
    fields = both(body, content_type)
    assert (fields["encoding"], fields["title"]) == (encoding, title)


def test_undeclared_legacy_encoding_is_detected() -> None:
    text, encoding = decode_body(servers.CP1252_UNDECLARED, "text/html")
    assert "Café crème brûlée" in text
    assert encoding == "windows-1252"
    text, encoding = decode_body(("<p>" + "Привет мир, как дела? " * 5).encode("cp1251"), "")
    assert (encoding, text[3:9]) == ("windows-1251", "Привет")


# (label as a page declares it, bytes, the text a browser shows, the standard's name): the
# Encoding Standard's table and decoders, not Python's codec of the same name.
ENCODING_LABELS = [
    ("shift_jis", "①②".encode("cp932"), "①②", "shift_jis"),  # windows-31j
    ("x-sjis", "①".encode("cp932"), "①", "shift_jis"),
    ("gb2312", "镕".encode("gbk"), "镕", "gbk"),  # GBK, decoded by gb18030's decoder
    ("gbk", "€".encode("gb18030"), "€", "gbk"),
    ("euc-kr", "똠".encode("cp949"), "똠", "euc-kr"),  # windows-949
    ("ks_c_5601-1987", "똠".encode("cp949"), "똠", "euc-kr"),
    ("iso-8859-9", b"\x80 \x93x\x94", "€ “x”", "windows-1254"),
    ("latin5", b"\x80", "€", "windows-1254"),
    ("windows-874", "ก".encode("cp874"), "ก", "windows-874"),
    ("dos-874", "ก".encode("cp874"), "ก", "windows-874"),
    ("iso-8859-1", b"caf\xe9 \x80 \x81", "café € \x81", "windows-1252"),
    ("ascii", b"\x93q\x94", "“q”", "windows-1252"),
    ("us-ascii", b"\x9d", "\x9d", "windows-1252"),  # the five C1 bytes stay C1 controls
    ("latin2", "ł".encode("iso-8859-2"), "ł", "iso-8859-2"),
    ("big5", "碁".encode("big5hkscs"), "碁", "big5"),
    ("x-user-defined", b"a\x80", "a\uf780", "x-user-defined"),
    ("iso-2022-kr", b"anything", "\ufffd", "replacement"),
    ("  Windows-1251\t", "ж".encode("cp1251"), "ж", "windows-1251"),
]


@pytest.mark.parametrize(("label", "body", "text", "name"), ENCODING_LABELS)
def test_charset_labels_decode_as_the_encoding_standard_says(
    label: str, body: bytes, text: str, name: str
) -> None:
    assert decode_body(body, f"text/html; charset={label}") == (text, name)


# (bytes, the encoding the HTML standard's prescan finds): comments skipped, attributes
# parsed, http-equiv needed for content=, UTF-16 read as UTF-8.
PRESCANS = [
    (b'<!-- <meta charset="iso-8859-1"> --><meta charset="utf-8">', "utf-8"),
    (b"<!--><meta charset=koi8-r>", "koi8-r"),  # "<!-->" is a whole comment
    (b'<meta content="text/html; charset=iso-8859-2">', None),  # no http-equiv
    (b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-2">', "iso-8859-2"),
    (b'<meta content="charset=iso-8859-2" http-equiv=content-type>', "iso-8859-2"),
    (b'<div title="<meta charset=koi8-r>"><meta charset=shift_jis>', "shift_jis"),
    (b"<p data-x='<meta charset=koi8-r>'>", None),
    (b"<meta charset=utf-16le>", "utf-8"),
    (b"<meta charset=x-user-defined>", "windows-1252"),
    (b"<meta charset=bogus><meta charset=euc-kr>", "euc-kr"),
    (b"<META CHARSET=GB2312>", "gbk"),
    (b"<meta/charset=big5>", "big5"),
    (b"<meta charset=koi8-r charset=utf-8>", "koi8-r"),  # the first of an attribute counts
    (b"<meta http-equiv=content-type content='charset=\"windows-874\"'>", "windows-874"),
    (b"<meta http-equiv=content-type content='charset=\"windows-874'>", None),  # unmatched
    (b"<meta http-equiv=content-type content='x; charset = ibm866 ;'>", "ibm866"),
    (b"<?php <meta charset=koi8-r> ?><meta charset=utf-8>", "utf-8"),  # "<?" runs to a ">"
    (b"</p <meta charset=koi8-r>", None),  # inside an end tag's attributes
    (b" " * 1020 + b"<meta charset=koi8-r>", None),  # past the first 1024 bytes
    (b"<metacharset=koi8-r>", None),
]


@pytest.mark.parametrize(("data", "expected"), PRESCANS)
def test_the_meta_prescan_follows_the_html_standard(data: bytes, expected: str | None) -> None:
    from scraper.parse.decode import PRESCAN_BYTES, prescan

    assert prescan(data[:PRESCAN_BYTES]) == expected


def test_a_declaration_inside_a_comment_does_not_garble_the_page() -> None:
    body = '<!-- <meta charset="iso-8859-1"> --><meta charset="utf-8"><title>café</title>'
    fields = both(body.encode(), "text/html")
    assert (fields["title"], fields["encoding"]) == ("café", "utf-8")


def test_undecodable_bytes_become_replacement_characters() -> None:
    fields = both(b"<title>bad \xff\xfe bytes</title>", "text/html; charset=utf-8")
    assert fields["title"] == "bad \ufffd\ufffd bytes"


def test_nul_bytes_do_not_break_parsing() -> None:
    fields = both(servers.NUL)
    assert fields["title"] == "Nul\ufffdtitle"


HOSTILE = {
    "deep": servers.DEEP,
    "long-attr": servers.LONG_ATTR,
    "malformed": servers.MALFORMED,
    "empty": b"",
    "blank": b"   ",
    "comment": b"<!-- only a comment -->",
    "nuls": b"\x00\x00",
    "bare": b"<html><body></body></html>",
    "junk": b"<<<>>>&&&;;",
}


@pytest.mark.parametrize("engine", ["lxml", "bs4"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_html_gives_a_record_not_a_crash(name: str, engine: str) -> None:
    # The engines may differ here: libxml2 stops nesting at depth 256, BeautifulSoup does not.
    fields = parse_page(page(HOSTILE[name]), ParseOptions(engine))
    assert isinstance(fields["links"], list) and isinstance(fields["text"], str)
    assert fields["body_bytes"] == len(HOSTILE[name])


def test_malformed_html_still_yields_title_and_links() -> None:
    fields = both(servers.MALFORMED)
    assert fields["title"] == "Broken <b>page"
    assert fields["links"] == ["http://example.com/ok"]


def test_non_html_is_recorded_not_parsed() -> None:
    fields = both(servers.PDF, "application/pdf")
    assert fields["content_type"] == "application/pdf"
    assert fields["title"] is None and fields["links"] == [] and fields["encoding"] is None
    assert fields["body_bytes"] == len(servers.PDF)


def test_text_is_capped_at_a_word_boundary_but_word_count_counts_all() -> None:
    fields = both(b"<p>" + b"word " * 1000 + b"</p>", max_text_chars=52)
    assert fields["text"] == " ".join(["word"] * 10)
    assert fields["word_count"] == 1000


def test_both_engines_match_the_demo_ground_truth() -> None:
    site = DemoSite(120)
    for i in range(0, 120, 3):
        body, truth = site.page(i)
        charset = "; charset=utf-8" if truth.encoding == "utf-8" else ""
        url = f"http://127.0.0.1:9/page/{i}"
        fields = parse_page(page(body, "text/html" + charset, url), ParseOptions("lxml"))
        assert fields == parse_page(page(body, "text/html" + charset, url), ParseOptions("bs4"))
        assert fields["title"] == truth.title
        assert len(fields["links"]) == truth.link_count
        assert fields["word_count"] == truth.word_count
        assert (fields["encoding"], fields["lang"]) == (truth.encoding, truth.lang)


HREFS = [
    "/a",
    "/a/b?c=d",
    "/a?",
    "/a?#f",
    "/./a",
    "/a/../b",
    "//host/x",
    "#",
    "#frag",
    "",
    "?q",
    "b",
    "../b",
    "./b",
    "http://Other.org",
    "https://x.org/a/../b",
    "https://x.org/a?",
    "http://x.org#f",
    "HTTP://x.org/",
    "mailto:a@b",
    "javascript:x",
    "/a;p?q#f",
    "/%7Ea",
    "/a b",
    "  /trim  ",
    "/a\tb",
    "ftp://x/",
    "http:",
    "http:/x",
    "/a#b#c",
    "///x",
]


# (base, href, the link a browser requests), each from the WHATWG URL Standard's rules.
WHATWG_LINKS = [
    ("http://a.example/b/c", "/x y.pdf", "http://a.example/x%20y.pdf"),  # spaces encoded
    ("http://a.example/b/c", "ü/ï?é#f", "http://a.example/b/%C3%BC/%C3%AF?%C3%A9"),
    ("http://a.example/b/c", "\\x\\y", "http://a.example/x/y"),  # backslashes are slashes
    ("http://a.example/b/c", "///cdn.example/x.js", "http://cdn.example/x.js"),
    ("http://a.example/b/c", "//CDN.Example:80/x", "http://cdn.example/x"),
    ("http://a.example/b/c", "/a/../b/./c", "http://a.example/b/c"),
    ("http://a.example/b/c", "/a/%2e%2e/b", "http://a.example/b"),
    ("http://a.example/b/c", "http://bücher.example/", "http://xn--bcher-kva.example/"),
    ("http://a.example/b/c", "http://ＥＸＡＭＰＬＥ。org/", "http://example.org/"),
    ("http://a.example/b/c", "https://x.example:443/", "https://x.example/"),
    ("http://a.example/b/c", "http://0300.0250.0.1/", "http://192.168.0.1/"),
    ("http://a.example/b/c", " \t/a\nb ", "http://a.example/ab"),  # tabs, newlines removed
    ("http://a.example/b/c", "?q", "http://a.example/b/c?q"),
    ("http://a.example/b/c", "#only", "http://a.example/b/c"),
    ("http://a.example/b/c", "", "http://a.example/b/c"),
    ("http://a.example/b/c", "../../../../x", "http://a.example/x"),
    ("http://a.example/b/c", "http:x", "http://a.example/b/x"),  # same special scheme
    ("http://a.example/b/c", "https:x", "https://x/"),
    ("http://a.example/b/c", "/?a'b", "http://a.example/?a%27b"),
    ("https://h.org:8443/a/b/?q#f", "c", "https://h.org:8443/a/b/c"),
]
MALFORMED = ["//[oops", "http://exa mple.com/", "http://[::1", "http://"]
NOT_LINKS = [*MALFORMED, "mailto:a@b", "javascript:x", "ftp://x/"]


@pytest.mark.parametrize(("base", "href", "expected"), WHATWG_LINKS)
def test_links_are_what_a_browser_requests(base: str, href: str, expected: str) -> None:
    assert _LinkResolver(base).resolve(href) == expected


def test_malformed_and_other_scheme_links_are_left_out_and_never_raise() -> None:
    resolver = _LinkResolver("http://a.example/")
    for href in NOT_LINKS:
        resolver.add(href)
    assert resolver.links == []
    assert resolver.dropped == len(MALFORMED)  # mailto, javascript and ftp are not malformed
    rng = random.Random(7)
    for _ in range(500):
        href = "".join(rng.choice("/.?#a:b[]%\\ ") for _ in range(rng.randint(1, 10)))
        url = resolver.resolve(href)
        assert url is None or (url.startswith("http://") and "#" not in url and " " not in url)


def test_one_malformed_link_does_not_fail_the_page() -> None:
    body = (
        b"<html><head><base href='//[bad'><link rel=canonical href='http://[x'></head><body>"
        b"<a href='//[oops'>bad</a><a href='/ok b'>ok</a></body></html>"
    )
    for engine in ("lxml", "bs4"):
        fields = parse_page(page(body, "text/html", "http://a.example/p"), ParseOptions(engine))
        assert fields["links"] == ["http://a.example/ok%20b"]  # the bad <base> is ignored
        assert fields["canonical"] is None


def test_parse_errors_are_page_errors() -> None:
    assert issubclass(PageError, Exception)


def test_a_page_deeper_than_libxml2_builds_keeps_its_fields_in_both_engines() -> None:
    """libxml2 keeps 256 levels and drops the rest; the lxml engine then reads the page's
    events and gives the record the bs4 engine gives."""
    deep = (
        b"<html lang=fr><head><title> Deep  page </title>"
        b"<meta name=description content=' d  e '><link rel=canonical href=/c>"
        b"<base href=/b/></head><body><a href=x>x</a><script>var hidden = 1</script>"
        + b"<div>" * 1000
        + b"deep <a href='/y#f'>words</a> here<!-- no --> &amp; more"
        + b"</div>" * 1000
        + b"</body></html>"
    )
    fields = both(deep)
    assert fields["title"] == "Deep page" and fields["lang"] == "fr"
    assert fields["description"] == "d e" and fields["canonical"] == "http://example.com/c"
    assert fields["links"] == ["http://example.com/b/x", "http://example.com/y"]
    assert fields["text"] == "x deep words here & more"
    assert both(servers.DEEP)["text"] == "deep"  # 100,000 levels down
