"""Extraction rules in the YAML: every mistake is caught before any request, and named."""

from pathlib import Path

import pytest

from scraper.config.settings import build_settings
from scraper.errors import ConfigError
from scraper.parse.rules import url_matcher
from tests.conftest import run_script, write_list
from tests.servers import ok, serve

REPO = Path(__file__).resolve().parents[2]


def settings_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return build_settings(path, {})


def site_yaml(fields: str, match: str = '"*/product/*"') -> str:
    return f"sites:\n  - name: shop\n    match: {match}\n    fields:\n{fields}"


@pytest.mark.parametrize(
    ("fields", "line", "expected"),
    [
        ('      title: {css: "h1..x"}\n', 5, "site shop: field title: css 'h1..x'"),
        ('      title: {css: "h1[", required: true}\n', 5, "field title: css"),
        ('      t: {xpath: "//h1["}\n', 5, "field t: xpath '//h1['"),
        ('      t: {xpath: "//x:h1"}\n', 5, "Undefined namespace prefix"),
        ('      t: {xpath: "//h1[nosuchfn()]"}\n', 5, "Unregistered function"),
        ('      t: {css: h1, regexp: "x"}\n', 5, "unknown option 'regexp' (did you mean 'regex'?)"),
        ("      t: {css: h1, type: integer}\n", 5, "type: 'integer' is not one of"),
        ('      t: {css: h1, regex: "(a"}\n', 5, "invalid regex '(a'"),
        ('      t: {css: h1, regex: "(a)(b)"}\n', 5, "at most one group"),
        ("      t: {css: table, type: table, attr: x}\n", 5, "type table takes no attr"),
        ('      t: {css: h1, join: ", "}\n', 5, "join needs all: true"),
        ("      t: {css: h1, type: int, default: abc}\n", 5, "default: 'abc' holds no number"),
        ("      t: {css: h1, required: true, default: x}\n", 5, "required field has no default"),
        ("      t: {css: h1, xpath: //h1}\n", 5, "exactly one of css or xpath"),
        ("      t: {attr: href}\n", 5, "exactly one of css or xpath"),
        ("      t: {css: h1, all: yes please}\n", 5, "all: expected true or false"),
        ('      t: {css: h1, format: "%d"}\n', 5, "format is for type date only"),
        ("      t: [h1]\n", 5, "expected a CSS selector or a mapping"),
        ("      1bad: h1\n", 5, "field 1bad: a field name is"),
        ('      t: {css: "h1::text", attr: x}\n', 5, "ends in ::text and attr is also given"),
        ("      t: h1\n      t: h2\n", 6, "field t: duplicate field"),
    ],
)
def test_a_broken_rule_names_file_line_site_and_field(
    tmp_path: Path, fields: str, line: int, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, site_yaml(fields))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'rules.yaml'}:{line}: "), message
    assert expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sites: {shop: 1}\n", "expected a list of sites"),
        ("sites:\n  - name: a\n    fields: {t: h1}\n", "site a: match: missing"),
        ('sites:\n  - name: a\n    match: "*"\n', "site a: fields: missing"),
        ('sites:\n  - name: a\n    match: "*"\n    fields: {}\n', "expected a mapping of field"),
        ("sites:\n  - name: a\n    match: {regex: '(x'}\n    fields: {t: h1}\n", "invalid regex"),
        ("sites:\n  - name: a\n    match: {path: x}\n    fields: {t: h1}\n", "expected a glob"),
        ("sites:\n  - name: a\n    match: {host: 'a b'}\n    fields: {t: h1}\n", "not a host"),
        ("sites:\n  - name: a\n    match: x\n    fields: {t: h1}\n    feilds: {}\n", "'fields'?"),
        (
            "sites:\n  - {name: a, match: x, fields: {t: h1}}\n"
            "  - {name: a, match: y, fields: {t: h1}}\n",
            "site a: duplicate site name",
        ),
    ],
)
def test_a_broken_site_is_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert expected in str(caught.value)


def test_shorthand_defaults_and_pseudo_elements_are_read(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        site_yaml(
            '      title: "h1.t"\n'
            '      href: {css: "a.next::attr(href)", type: url}\n'
            '      name: {css: "h1::text"}\n'
            "      n: {css: .n, type: int, default: 0}\n"
            "      tags: {css: li, all: true, default: [a, b]}\n"
        ),
    )
    fields = {f.name: f for f in settings.sites[0].fields}
    assert fields["title"].css == "h1.t" and fields["title"].type == "string"
    assert (fields["href"].css, fields["href"].attr) == ("a.next", "href")
    assert (fields["name"].css, fields["name"].attr) == ("h1", None)
    assert fields["n"].default == 0
    assert fields["tags"].default == ("a", "b")


def test_the_example_configs_load() -> None:
    for name in ("shop", "news"):
        settings = build_settings(REPO / "config" / f"{name}.yaml", {})
        assert settings.sites[0].name == name


@pytest.mark.parametrize(
    ("kind", "pattern", "url", "expected"),
    [
        ("glob", "https://shop.example.com/product/*", "https://shop.example.com/product/a/b", 1),
        ("glob", "https://shop.example.com/product/*", "https://shop.example.com/cart", 0),
        ("glob", "*/p?id=*", "http://x/p?id=3", 1),  # ? is a plain character
        ("glob", "*/p?id=*", "http://x/pXid=3", 0),
        ("host", "shop.example.com", "https://SHOP.example.com:8443/x", 1),
        ("host", "shop.example.com", "https://evil.com/shop.example.com", 0),
        ("host", "shop.example.com", "https://shop.example.com@evil.com/", 0),
        ("host", "*.example.com", "https://a.b.example.com/", 1),
        ("host", "*.example.com", "https://example.com/", 1),
        ("host", "*.example.com", "https://notexample.com/", 0),
        ("regex", r"/news/\d+$", "http://x/news/12", 1),
        ("regex", r"/news/\d+$", "http://x/news/12/comments", 0),
    ],
)
def test_sites_match_urls_by_glob_host_or_regex(
    kind: str, pattern: str, url: str, expected: int
) -> None:
    assert bool(url_matcher(kind, pattern)(url)) is bool(expected)


def test_scrape_check_validates_without_fetching(tmp_path: Path) -> None:
    good = run_script(["check", "-c", str(REPO / "config" / "shop.yaml")], cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "OK: 1 site(s), 9 field(s)" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(site_yaml('      price: {css: ".price", type: flaot}\n'), encoding="utf-8")
    result = run_script(["check", "-c", str(bad)], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"{bad}:5: site shop: field price: type: 'flaot'" in result.stderr
    assert "did you mean 'float'?" in result.stderr


def test_a_broken_rule_stops_the_run_before_any_request(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(site_yaml('      title: {css: "h1 >> p"}\n'), encoding="utf-8")
    with serve({"/": ok}) as served:
        urls = write_list(tmp_path / "urls.txt", [served.origin + "/"])
        result = run_script([str(urls), "-c", str(bad), "-o", "out"], cwd=tmp_path)
        assert result.returncode == 2
        assert "site shop: field title: css 'h1 >> p'" in result.stderr
        assert served.paths == []
    assert not (tmp_path / "out").exists()
