import random
from urllib.parse import urljoin

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
        ("<title>café</title>".encode("utf-16"), "text/html", "utf-16-le", "café"),
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
    assert encoding == "cp1252"
    text, encoding = decode_body(("<p>" + "Привет мир, как дела? " * 5).encode("cp1251"), "")
    assert (encoding, text[3:9]) == ("cp1251", "Привет")


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


@pytest.mark.parametrize("base", [BASE, "http://example.com", "https://h.org:8443/a/b/?q#f"])
def test_link_fast_paths_agree_with_urljoin(base: str) -> None:
    rng = random.Random(7)
    hrefs = HREFS + [
        "".join(rng.choice("/.?#a:b") for _ in range(rng.randint(1, 8))) for _ in range(400)
    ]
    resolver = _LinkResolver(base)
    for href in hrefs:
        cleaned = href.strip().replace("\t", "").replace("\n", "").replace("\r", "")
        expected = urljoin(base, cleaned).partition("#")[0]
        if not expected.startswith(("http://", "https://")):
            expected = None
        assert resolver.resolve(href) == expected, href


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
