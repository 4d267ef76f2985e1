"""Sitemaps read safely and as a stream (parse/sitemap.py; not wired to the command line yet):
urlsets and indexes, gzip, the protocol's limits, no DTD, other hosts left out."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

from scraper.parse.sitemap import MAX_ENTRIES, parse_lastmod, read_sitemap

SITEMAP_URL = "https://shop.example/sitemap.xml"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str, ns: str = NS) -> bytes:
    body = "".join(f"<url><loc>{loc}</loc><lastmod>2026-11-30</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0"?><urlset {ns}>{body}</urlset>'.encode()


def test_a_urlset_gives_its_urls_normalised_with_their_lastmod() -> None:
    found = read_sitemap(urlset("https://shop.example/a", "https://SHOP.example/b c"), SITEMAP_URL)
    assert found.kind == "urlset" and found.problems == []
    assert [e.url for e in found.entries] == [
        "https://shop.example/a",
        "https://shop.example/b%20c",
    ]
    assert found.entries[0].lastmod == datetime(2026, 11, 30, tzinfo=timezone.utc)


def test_an_index_without_namespace_and_gzipped() -> None:
    index = (
        b"<sitemapindex><sitemap><loc>https://shop.example/s1.xml.gz</loc></sitemap>"
        b"<sitemap><loc> https://shop.example/s2.xml </loc></sitemap></sitemapindex>"
    )
    found = read_sitemap(gzip.compress(index), SITEMAP_URL)
    assert found.kind == "sitemapindex"
    assert [e.url for e in found.entries] == [
        "https://shop.example/s1.xml.gz",
        "https://shop.example/s2.xml",
    ]


def test_urls_of_other_hosts_and_bad_locs_are_left_out_in_words() -> None:
    found = read_sitemap(
        urlset("https://shop.example/ok", "https://evil.example/x", "ftp://shop.example/f"),
        SITEMAP_URL,
    )
    assert [e.url for e in found.entries] == ["https://shop.example/ok"]
    assert any("another host" in p for p in found.problems)
    assert any("scheme 'ftp:'" in p for p in found.problems)


def test_an_entity_bomb_and_any_dtd_are_refused_before_parsing() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<urlset><url><loc>https://shop.example/&lol2;</loc></url></urlset>"
    )
    found = read_sitemap(bomb, SITEMAP_URL)
    assert found.entries == [] and "DTD is refused" in found.problems[0]
    external = b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><urlset/>'
    assert "DTD is refused" in read_sitemap(external, SITEMAP_URL).problems[0]


def test_a_gzip_bomb_stops_at_50_mb_uncompressed() -> None:
    head = b"<urlset><url><loc>https://shop.example/a</loc></url><!-- "
    bomb = gzip.compress(head + b" " * (60 * 1024 * 1024) + b" --></urlset>", compresslevel=1)
    assert len(bomb) < 1_000_000
    found = read_sitemap(bomb, SITEMAP_URL)
    assert any("over 50 MB uncompressed" in p for p in found.problems)


def test_past_50000_entries_the_rest_is_left_out() -> None:
    found = read_sitemap(
        urlset(*[f"https://shop.example/p/{n}" for n in range(100_000)]), SITEMAP_URL
    )
    assert len(found.entries) == MAX_ENTRIES
    assert any("more than 50,000 entries" in p for p in found.problems)


def test_broken_xml_is_a_problem_not_a_crash() -> None:
    found = read_sitemap(b"<urlset><url><loc>https://shop.example/a</loc></url>", SITEMAP_URL)
    assert [e.url for e in found.entries] == ["https://shop.example/a"]
    assert "not well-formed XML" in found.problems[0]
    assert "not urlset or sitemapindex" in read_sitemap(b"<html/>", SITEMAP_URL).problems[0]


def test_lastmod_in_the_w3c_datetime_forms() -> None:
    utc = timezone.utc
    assert parse_lastmod("2026") == datetime(2026, 1, 1, tzinfo=utc)
    assert parse_lastmod("2026-11") == datetime(2026, 11, 1, tzinfo=utc)
    assert parse_lastmod("2026-11-30T10:20+02:00") == datetime(2026, 11, 30, 8, 20, tzinfo=utc)
    assert parse_lastmod("2026-11-30T10:20:30.5Z") == datetime(2026, 11, 30, 10, 20, 30, tzinfo=utc)
    assert parse_lastmod("yesterday") is None and parse_lastmod("2026-13-01") is None


def test_a_sitemap_of_bad_locs_keeps_a_few_messages_and_a_count() -> None:
    found = read_sitemap(urlset(*[f"https://evil.example/{n}" for n in range(500)]), SITEMAP_URL)
    assert found.entries == [] and len(found.problems) == 20 and found.more_problems == 480
