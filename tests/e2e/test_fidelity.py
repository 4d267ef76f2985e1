"""Pages and URLs read as browsers read them, through `scrape try` as a user runs it: links
per the WHATWG URL Standard (a malformed one left out, the page kept), charset labels per
the Encoding Standard, the HTML standard's <meta> prescan, JSON-LD as found in the wild and
microdata itemref."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import run_script

PAGE_URL = "http://a.example/x/y"


def try_page(tmp_path: Path, body: bytes) -> dict[str, Any]:
    (tmp_path / "page.html").write_bytes(body)
    (tmp_path / "s.yaml").write_text("structured_data: true\n")
    done = run_script(["try", "page.html", "--url", PAGE_URL, "-c", "s.yaml"], tmp_path)
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def test_links_are_what_a_browser_requests_and_a_malformed_one_is_left_out(
    tmp_path: Path,
) -> None:
    body = (
        "<meta charset=utf-8><base href='//[bad'><title>Links</title>"
        "<a href='//[oops'>bad</a><a href='../a b.pdf'>space</a>"
        "<a href='HTTP://Bücher.example:80/x'>idn</a><a href='///cdn.example/x.js'>cdn</a>"
        "<a href='/a/./b/../c#frag'>dots</a><a href='\\\\back\\slash'>backslashes</a>"
        "<a href='mailto:x@y'>mail</a>"
    ).encode()
    record = try_page(tmp_path, body)
    assert record["outcome"] == "ok"  # the bad link and the bad <base> do not fail the page
    assert record["links"] == [
        "http://a.example/a%20b.pdf",
        "http://xn--bcher-kva.example/x",
        "http://cdn.example/x.js",
        "http://a.example/a/c",
        "http://back/slash",
    ]


def test_encoding_labels_and_the_prescan_follow_the_standards(tmp_path: Path) -> None:
    shift_jis = (
        b'<!-- <meta charset="iso-8859-1"> --><meta charset="shift_jis"><title>'
        + "①②".encode("cp932")
        + b"</title>"
    )
    record = try_page(tmp_path, shift_jis)
    assert (record["encoding"], record["title"]) == ("shift_jis", "①②")
    turkish = b"<meta http-equiv=content-type content='text/html; charset=iso-8859-9'>"
    record = try_page(tmp_path, turkish + b"<title>\x93\xddstanbul\x94 \x80</title>")
    assert (record["encoding"], record["title"]) == ("windows-1254", "“İstanbul” €")


def test_json_ld_from_the_wild_and_microdata_itemref(tmp_path: Path) -> None:
    body = (
        b'<meta charset=utf-8><script type="application/ld+json"><!--\n'
        b'{"@type": "Article", "headline": "Two\nlines", // a comment\n "about": ["x",],}\n'
        b"//--></script>"
        b'<div itemscope itemtype="https://schema.org/Product" itemref="p">'
        b'<span itemprop="name">Lamp</span></div><p id="p"><b itemprop="price">12</b></p>'
    )
    structured = try_page(tmp_path, body)["structured"]
    assert structured["json_ld"] == [{"@type": "Article", "headline": "Two\nlines", "about": ["x"]}]
    assert structured["microdata"][0]["properties"] == {"name": "Lamp", "price": "12"}
    assert "problems" not in structured
