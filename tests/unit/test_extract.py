"""Field rules on parsed pages: selectors, cleaning, types, tables, structured data."""

from pathlib import Path
from typing import Any

import pytest
import soupsieve

from scraper.config.settings import build_settings
from scraper.demo.fixtures import article_page, product_page
from scraper.errors import PageError
from scraper.parse.extract import compile_css, table_rows
from scraper.parse.html import Document
from scraper.parse.page import ParseOptions, parse_options, parse_page
from scraper.parse.structured import structured_data
from scraper.parse.values import parse_date, parse_number
from scraper.records import ErrorKind, FetchedPage, UrlTask

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "http://127.0.0.1:8000"


def page_of(body: str | bytes, url: str = ORIGIN + "/product/1", listed: str = "") -> FetchedPage:
    data = body.encode() if isinstance(body, str) else body
    task = UrlTask(1, listed or url, listed or url)
    return FetchedPage(task, url, 200, {"content-type": "text/html; charset=utf-8"}, data, 1, 0.0)


def options_for(tmp_path: Path, fields: str, extra: str = "") -> ParseOptions:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f'{extra}sites:\n  - name: shop\n    match: "*/product/*"\n    fields:\n{fields}',
        encoding="utf-8",
    )
    return parse_options(build_settings(path, {}))


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("$1,299.00", "float", 1299.0),
        ("€ 1.299,00", "float", 1299.0),
        ("12,50 €", "float", 12.5),
        ("1299.00 EUR", "float", 1299.0),
        ("1.234.567", "int", 1234567),
        ("12 500,75 Kč", "float", 12500.75),
        ("CHF 1'234.50", "float", 1234.5),
        ("Only 3 left", "int", 3),
        ("-4.5 °C", "float", -4.5),
        ("Total: 12.", "int", 12),
        ("0,5", "float", 0.5),
        ("1,234", "int", 1234),  # a single comma with three digits after is read as thousands
    ],
)
def test_numbers_are_read_in_the_usual_notations(text: str, kind: str, expected: float) -> None:
    value = parse_number(text, kind)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", ["Price on request", "", "n/a", "1.5 items"])
def test_text_that_is_no_whole_number_is_a_value_problem(text: str) -> None:
    from scraper.parse.values import ValueProblem

    with pytest.raises(ValueProblem):
        parse_number(text, "int")


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("2026-11-26", None, "2026-11-26"),
        ("2026-11-26T10:30:00Z", None, "2026-11-26T10:30:00+00:00"),
        ("2026-11-26 10:30", None, "2026-11-26T10:30:00"),
        ("Thu, 26 Nov 2026 10:30:00 GMT", None, "2026-11-26T10:30:00+00:00"),
        ("26 November 2026", None, "2026-11-26"),
        ("Nov 26, 2026", None, "2026-11-26"),
        ("26/11/2026", "%d/%m/%Y", "2026-11-26"),
        ("26.11.2026 08:15", "%d.%m.%Y %H:%M", "2026-11-26T08:15:00"),
    ],
)
def test_dates_come_out_as_iso_8601(text: str, fmt: str | None, expected: str) -> None:
    assert parse_date(text, fmt) == expected


def test_an_ambiguous_date_without_a_format_is_refused() -> None:
    from scraper.parse.values import ValueProblem

    with pytest.raises(ValueProblem, match="give its format"):
        parse_date("01/02/2026", None)


def table_of(html: str) -> list[dict[str, Any]]:
    root = Document(html).root()
    return table_rows(next(root.iter("table")))


def test_a_table_is_rows_keyed_by_its_header() -> None:
    rows = table_of(
        "<table><thead><tr><th>Name</th><th colspan=2>Score</th><th></th></tr></thead>"
        "<tbody><tr><td> Ann </td><td>1</td><td>2</td><td>x</td></tr>"
        "<tr><td>Bob</td><td>3</td></tr><tr><td></td></tr></tbody></table>"
    )
    assert rows == [
        {"Name": "Ann", "Score": "1", "Score_2": "2", "column_4": "x"},
        {"Name": "Bob", "Score": "3", "Score_2": None, "column_4": None},
    ]


def test_a_table_without_header_gets_numbered_columns_and_ignores_nested_tables() -> None:
    rows = table_of(
        "<table><tr><th>Weight</th><td>1 kg<table><tr><td>inner</td></tr></table></td></tr>"
        "<tr><th>Colour</th><td>red</td><td>extra</td></tr></table>"
    )
    # A cell's text is its textContent (as in the DOM and BeautifulSoup): no space is added
    # where a nested block starts.
    assert rows == [
        {"column_1": "Weight", "column_2": "1 kginner", "column_3": None},
        {"column_1": "Colour", "column_2": "red", "column_3": "extra"},
    ]


def test_a_hostile_colspan_is_capped() -> None:
    rows = table_of('<table><tr><td colspan="100000000">x</td><td colspan="-3">y</td></tr></table>')
    assert len(rows[0]) == 101


def test_each_option_shapes_the_value(tmp_path: Path) -> None:
    options = options_for(
        tmp_path,
        "      title: {css: h1, required: true}\n"
        '      price: {css: ".price", regex: "([0-9.,]+)", type: float}\n'
        "      imgs: {css: img, attr: src, all: true, type: url}\n"
        '      tags: {css: li, all: true, join: "|"}\n'
        "      raw: {css: pre, strip: false}\n"
        '      code: {css: .code, strip: "#"}\n'
        "      missing: {css: .nope, default: none}\n"
        "      nothing: {css: .nope, all: true}\n"
        "      stock: {xpath: 'count(//li)', type: int}\n"
        "      when: {xpath: '//time/@datetime', type: date}\n"
        "      ok: {css: .flag, attr: data-on, type: bool}\n"
        "      bad: {css: .flag, type: int}\n",
    )
    body = (
        "<html><head><base href='/shop/'></head><body><h1>  A\n  <b>big</b>   lamp </h1>"
        "<span class=price>now 1.299,50 EUR</span><img src='a.png'><img src='//cdn.x/b.png'>"
        "<ul><li> one </li><li>two</li><li></li></ul><pre>  keep  this </pre>"
        "<i class=code>##42#</i><time datetime='2026-01-02'>x</time>"
        "<p class=flag data-on='yes'>on</p></body></html>"
    )
    fields = parse_page(page_of(body), options)
    assert fields["site"] == "shop"
    assert fields["data"] == {
        "title": "A big lamp",
        "price": 1299.5,
        "imgs": [ORIGIN + "/shop/a.png", "http://cdn.x/b.png"],
        "tags": "one|two",
        "raw": "  keep  this ",
        "code": "42",
        "missing": "none",
        "nothing": [],
        "stock": 3,
        "when": "2026-01-02",
        "ok": True,
        "bad": None,
    }
    assert fields["data_problems"] == ["bad: 'on' holds no number"]
    assert fields["title"] is None  # the generic fields are still there


def test_a_missing_required_field_fails_the_page_with_kind_extract(tmp_path: Path) -> None:
    options = options_for(tmp_path, "      title: {css: h1, required: true}\n      p: p\n")
    with pytest.raises(PageError) as caught:
        parse_page(page_of("<html><body><h1>  </h1><p>text</p></body></html>"), options)
    assert caught.value.kind is ErrorKind.EXTRACT
    assert "site shop: required field(s) found nothing: title" in str(caught.value)
    assert caught.value.fields is not None and caught.value.fields["data"]["p"] == "text"


def test_required_fields_on_a_page_that_is_not_html_fail_the_page(tmp_path: Path) -> None:
    options = options_for(tmp_path, "      title: {css: h1, required: true}\n")
    pdf = FetchedPage(
        UrlTask(1, ORIGIN + "/product/1", ORIGIN + "/product/1"),
        ORIGIN + "/product/1",
        200,
        {"content-type": "application/pdf"},
        b"%PDF-1.4",
        1,
        0.0,
    )
    with pytest.raises(PageError, match="application/pdf, not HTML"):
        parse_page(pdf, options)


def test_pages_of_no_site_get_the_generic_fields_only(tmp_path: Path) -> None:
    options = options_for(tmp_path, "      title: {css: h1, required: true}\n")
    fields = parse_page(page_of("<h1>x</h1>", url=ORIGIN + "/about"), options)
    assert "data" not in fields and "site" not in fields


def test_the_listed_url_matches_when_a_redirect_left_the_site(tmp_path: Path) -> None:
    options = options_for(tmp_path, "      title: h1\n")
    page = page_of("<h1>x</h1>", url=ORIGIN + "/p/1", listed=ORIGIN + "/product/1")
    assert parse_page(page, options)["data"] == {"title": "x"}


def test_soupsieve_only_selectors_work_and_agree_with_cssselect() -> None:
    html = product_page(4)[0].decode()
    doc = Document(html)
    assert compile_css("p:-soup-contains('SKU')").on_soup
    assert compile_css("li:not(.a, .b)").on_soup
    for css in [
        "h1.product-title",
        "ul.tags li",
        "table.specs tr > th",
        "img.gallery",
        ".price .amount",
        "div.product > p:nth-of-type(2)",
        "li:first-child",
        "[data-available]",
        "p:has(> span)",
        ":is(h1, .sku) span",
        "a[href^='/shop']",
    ]:
        selector = compile_css(css)
        assert not selector.on_soup, css
        by_lxml = [" ".join("".join(e.itertext()).split()) for e in selector.run(doc.root())]
        by_soup = [" ".join(t.get_text().split()) for t in soupsieve.select(css, doc.soup())]
        assert by_lxml == by_soup, css


@pytest.mark.parametrize("config", ["shop", "news"])
@pytest.mark.parametrize("parser", ["lxml", "bs4"])
def test_both_engines_extract_the_example_fixtures_exactly(config: str, parser: str) -> None:
    settings = build_settings(REPO / "config" / f"{config}.yaml", {"parser": parser})
    options = parse_options(settings)
    make, path = (product_page, "/shop/product/") if config == "shop" else (article_page, "/news/")
    for i in range(30):
        body, want = make(i)
        page = page_of(body, url=f"{ORIGIN}{path}{i}")
        if want is None:
            with pytest.raises(PageError):
                parse_page(page, options)
            continue
        if "images" in want:
            want["images"] = [ORIGIN + p for p in want["images"]]
        assert parse_page(page, options)["data"] == want, i


def test_structured_data_json_ld_opengraph_and_microdata() -> None:
    root = Document(
        "<html><head>"
        '<script type="application/ld+json"><!-- {"@type": "Product", "name": "A"} --></script>'
        '<script type="application/ld+json">[{"@type": "Offer"}, {"@type": "Brand"}]</script>'
        '<script type="application/ld+json">{"broken": </script>'
        '<meta property="og:title" content="T"><meta property="og:image" content="/1.png">'
        '<meta property="og:image" content="/2.png"></head><body>'
        '<div itemscope itemtype="https://schema.org/Product" itemid="/p/1">'
        '<span itemprop="name">Lamp</span><a itemprop="url" href="/p/1">x</a>'
        '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
        '<meta itemprop="price" content="9.99"><span itemprop="priceCurrency">EUR</span></div>'
        '<span itemprop="color">red</span><span itemprop="color">blue</span></div>'
        "</body></html>"
    ).root()
    found = structured_data(root, ORIGIN + "/p/1")
    assert found["json_ld"] == [
        {"@type": "Product", "name": "A"},
        {"@type": "Offer"},
        {"@type": "Brand"},
    ]
    assert found["problems"][0].startswith("json_ld: invalid JSON")
    assert found["opengraph"] == {"title": "T", "image": ["/1.png", "/2.png"]}
    assert found["microdata"] == [
        {
            "type": "https://schema.org/Product",
            "id": ORIGIN + "/p/1",
            "properties": {
                "name": "Lamp",
                "url": ORIGIN + "/p/1",
                "offers": {
                    "type": "https://schema.org/Offer",
                    "properties": {"price": "9.99", "priceCurrency": "EUR"},
                },
                "color": ["red", "blue"],
            },
        }
    ]


JSON_LD_IN_THE_WILD = [
    '{"@type": "Article", "headline": "Two\nlines\tand a tab"}',  # raw control characters
    '<!-- {"@type": "Article", "headline": "H"} -->',
    '<!--\n{"@type": "Article", "headline": "H"}\n//-->',
    '<![CDATA[ {"@type": "Article", "headline": "H"} ]]>',
    '/*<![CDATA[*/ {"@type": "Article", "headline": "H"} /*]]>*/',
    '{"@type": "Article", // what it is\n "headline": "H"}',
    '{"@type": "Article", /* a block */ "headline": "H"}',
    '{"@type": "Article", "headline": "H",}',
    '{"@type": "Article", "headline": "H", "about": ["x", "y",],\n}',
    '{"@type": "Article", "headline": "H", "url": "https://a.example//b"}',  # // in a string
]


@pytest.mark.parametrize("script", JSON_LD_IN_THE_WILD)
def test_json_ld_is_read_as_search_engines_read_it(script: str) -> None:
    root = Document(
        f'<html><head><script type="application/ld+json">{script}</script></head></html>'
    ).root()
    found = structured_data(root, ORIGIN + "/")
    assert "problems" not in found, found
    (item,) = found["json_ld"]
    assert item["@type"] == "Article" and item["headline"].startswith(("H", "Two"))


def test_json_ld_that_cannot_be_read_is_still_a_problem_not_a_failure() -> None:
    root = Document(
        '<html><head><script type="application/ld+json">{"a": 1 "b": 2}</script></head></html>'
    ).root()
    found = structured_data(root, ORIGIN + "/")
    assert found["json_ld"] == [] and found["problems"][0].startswith("json_ld: invalid JSON")


def test_microdata_itemref_is_followed_in_tree_order_and_loops_are_cut() -> None:
    root = Document(
        "<html><body>"
        '<p id="price"><span itemprop="price">12</span></p>'
        '<div itemscope itemtype="https://schema.org/Product" itemref="price brand self">'
        '<span itemprop="name">Lamp</span></div>'
        '<div id="brand" itemprop="brand" itemscope itemref="brand more">'
        '<span itemprop="name">Acme</span></div>'
        '<div id="more"><span itemprop="country">NL</span></div>'
        '<div id="self" itemref="self"><span itemprop="sku">L-1</span></div>'
        "</body></html>"
    ).root()
    (product,) = structured_data(root, ORIGIN + "/")["microdata"]
    assert product == {
        "type": "https://schema.org/Product",
        "properties": {
            "price": "12",  # before the item in the page: tree order
            "name": "Lamp",
            "brand": {"properties": {"name": "Acme", "country": "NL"}},
            "sku": "L-1",
        },
    }
    assert list(product["properties"]) == ["price", "name", "brand", "sku"]


def test_deeply_nested_microdata_does_not_break_the_page() -> None:
    nested = '<div itemprop="child" itemscope>' * 3000 + "</div>" * 3000
    body = f"<html><body><div itemscope>{nested}</div></body></html>"
    options = ParseOptions(structured_data=True)
    fields = parse_page(page_of(body), options)
    assert len(fields["structured"]["microdata"]) == 1


def test_url_fields_resolve_as_the_whatwg_url_standard_says() -> None:
    from scraper.parse.values import ValueProblem, join_url

    base = "https://Ex.com/a/b?x=1#f"
    cases = {
        "http://x/y#f": "http://x/y#f",  # a field keeps its fragment
        "/a b": "https://ex.com/a%20b",
        "../c": "https://ex.com/c",
        "//CDN.example/x": "https://cdn.example/x",
        "HTTP://X:80/Y": "http://x/Y",
        "/é": "https://ex.com/%C3%A9",
        "?q": "https://ex.com/a/b?q",
        "mailto:a@b": "mailto:a@b",
    }
    for href, expected in cases.items():
        assert join_url(base, href) == expected, href
    with pytest.raises(ValueProblem, match="not a valid URL"):
        join_url(base, "http://[oops")
