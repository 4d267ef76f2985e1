"""Discovery end to end, with the `scrape` console script against real servers on 127.0.0.1:
sitemaps (an index, a gzipped urlset, lastmod for cron, robots.txt Sitemap: lines, bombs),
follow rules two levels deep, max_urls, a crawl killed and resumed, and `scrape demo --sitemap`.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import UNLIMITED, run_script, scrape_command, wait_for, write_list
from tests.servers import Route, body, send, serve

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def page(title: str, links: list[str] = ()) -> Route:  # type: ignore[assignment]
    anchors = "".join(f'<a href="{href}">{href}</a>' for href in links)
    html = f"<html><head><title>{title}</title></head><body><p>{title}</p>{anchors}</body></html>"
    return body(html.encode(), "text/html")


def urlset(origin: str, paths: list[str], lastmod: str = "2020-01-01") -> bytes:
    items = "".join(f"<url><loc>{origin}{p}</loc><lastmod>{lastmod}</lastmod></url>" for p in paths)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{items}</urlset>'.encode()


def index(origin: str, paths: list[str]) -> bytes:
    items = "".join(f"<sitemap><loc>{origin}{p}</loc></sitemap>" for p in paths)
    return f"<sitemapindex {NS}>{items}</sitemapindex>".encode()


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "latest.jsonl").read_text("utf-8").splitlines()]


def summary(out: Path) -> dict[str, Any]:
    path = max(out.glob("*.summary.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(path.read_text("utf-8"))


def test_a_sitemap_index_with_a_gzipped_urlset_then_a_cron_rerun_asks_only_sitemaps(
    tmp_path: Path,
) -> None:
    routes: dict[str, Route] = {}
    with serve(routes) as site:
        o = site.origin
        routes["/sitemap.xml"] = body(index(o, ["/a.xml.gz", "/b.xml"]), "application/xml")
        routes["/a.xml.gz"] = body(gzip.compress(urlset(o, ["/p/1", "/p/2"])), "application/gzip")
        routes["/b.xml"] = body(urlset(o, ["/p/3", "/p/2"]), "text/xml")  # /p/2 twice
        for n in (1, 2, 3):
            routes[f"/p/{n}"] = page(f"Page {n}")
        first = run_script(["--sitemap", f"{o}/sitemap.xml", "-o", "out"], cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        got = {r["url"]: r for r in records(tmp_path / "out")}
        assert sorted(got) == [f"{o}/p/{n}" for n in (1, 2, 3)]
        assert got[f"{o}/p/1"]["line"] is None and got[f"{o}/p/1"]["depth"] == 0
        assert got[f"{o}/p/1"]["found_on"] == f"{o}/a.xml.gz"
        assert {r["title"] for r in got.values()} == {"Page 1", "Page 2", "Page 3"}
        assert summary(tmp_path / "out")["urls"] == {"listed": 0, "discovered": 3}
        assert "0 listed, 3 discovered; 3 sitemaps read" in first.stderr

        site.paths.clear()
        again = run_script(["--sitemap", f"{o}/sitemap.xml", "-o", "out"], cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        # lastmod 2020 is not newer than the last fetch: robots.txt and the sitemaps only
        assert sorted(site.paths) == ["/a.xml.gz", "/b.xml", "/robots.txt", "/sitemap.xml"]
        second = records(tmp_path / "out")
        assert {r["outcome"] for r in second} == {"unchanged"}
        assert {r["title"] for r in second} == {"Page 1", "Page 2", "Page 3"}  # completed
        assert all("not newer than the last fetch" in r["reason"] for r in second)

        site.paths.clear()  # the sitemap now says /p/3 moved on; --full fetches everything
        routes["/b.xml"] = body(urlset(o, ["/p/3"], lastmod="2999-01-01"), "text/xml")
        moved = run_script(["--sitemap", f"{o}/sitemap.xml", "-o", "out"], cwd=tmp_path)
        assert moved.returncode == 0, moved.stderr
        assert [p for p in site.paths if p.startswith("/p/")] == ["/p/3"]
        site.paths.clear()
        full = run_script(["--sitemap", f"{o}/sitemap.xml", "-o", "out", "--full"], cwd=tmp_path)
        assert full.returncode == 0, full.stderr
        assert sorted(p for p in site.paths if p.startswith("/p/")) == ["/p/1", "/p/2", "/p/3"]
        site.paths.clear()  # a site whose lastmod lies: ignore it
        args = ["--sitemap", f"{o}/sitemap.xml", "-o", "out", "--sitemap-lastmod", "ignore"]
        ignored = run_script(args, cwd=tmp_path)
        assert ignored.returncode == 0, ignored.stderr
        assert sorted(p for p in site.paths if p.startswith("/p/")) == ["/p/1", "/p/2", "/p/3"]


def test_a_sitemap_sent_with_content_encoding_gzip_and_a_dry_run(tmp_path: Path) -> None:
    routes: dict[str, Route] = {}
    with serve(routes) as site:
        xml = gzip.compress(urlset(site.origin, ["/p/1"]))
        routes["/s.xml"] = lambda h: send(
            h, 200, xml, "application/xml", {"Content-Encoding": "gzip"}
        )
        routes["/p/1"] = page("One")
        result = run_script(["--sitemap", f"{site.origin}/s.xml", "-o", "out"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert [r["title"] for r in records(tmp_path / "out")] == ["One"]
        site.paths.clear()
        dry = run_script(["--sitemap", f"{site.origin}/s.xml", "--dry-run"], cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr
        assert "discovery, not tried by --dry-run: 1 sitemaps" in dry.stdout
        assert site.paths == []


def test_follow_rules_two_levels_deep_on_the_same_host_with_the_sites_fields(
    tmp_path: Path,
) -> None:
    routes: dict[str, Route] = {}
    with serve(routes) as site, serve({"/x": page("Elsewhere")}, host="127.0.0.2") as other:
        routes["/start"] = page("Start", ["/cat/1", "/about", f"{other.origin}/x", "/cat/1"])
        routes["/cat/1"] = page("Cat 1", ["/item/1", "/item/2", "/cat/2"])
        routes["/cat/2"] = page("Cat 2", ["/item/3"])  # depth 2: its links are not followed
        routes["/about"] = page("About")
        for n in (1, 2, 3):
            routes[f"/item/{n}"] = page(f"Item {n}")
        config = tmp_path / "crawl.yaml"
        config.write_text(
            "sites:\n"
            "  - name: shop\n"
            "    match: {host: 127.0.0.1}\n"
            "    follow:\n"
            "      - 'a[href^=\"/cat/\"]'\n"
            "      - {regex: '/item/\\d+$'}\n"
            "      - {xpath: '//a[contains(@href, \"127.0.0.2\")]/@href'}\n"
            "    max_depth: 2\n"
            "    fields:\n"
            "      heading: p\n",
            encoding="utf-8",
        )
        urls = write_list(tmp_path / "urls.txt", [f"{site.origin}/start"])
        result = run_script([str(urls), "-c", str(config), "-o", "out"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    got = {r["url"].removeprefix(site.origin): r for r in records(tmp_path / "out")}
    assert sorted(got) == ["/cat/1", "/cat/2", "/item/1", "/item/2", "/start"]
    assert got["/start"]["line"] == 1 and "found_on" not in got["/start"]
    assert (got["/cat/1"]["depth"], got["/cat/1"]["found_on"]) == (1, f"{site.origin}/start")
    assert (got["/item/1"]["depth"], got["/cat/2"]["depth"]) == (2, 2)
    assert got["/item/2"]["data"] == {"heading": "Item 2"}  # followed pages get the site's fields
    assert other.paths == []  # same_host: the other host's link is not followed
    assert "/about" not in site.paths  # no rule selects it
    assert site.paths.count("/cat/1") == 1
    counts = summary(tmp_path / "out")
    assert counts["urls"] == {"listed": 1, "discovered": 4} and counts["records"] == 5


def test_robots_sitemaps_max_urls_and_a_list_line_found_first(tmp_path: Path) -> None:
    routes: dict[str, Route] = {}
    with serve(routes) as site:
        o = site.origin
        routes["/robots.txt"] = body(f"User-agent: *\nSitemap: {o}/s.xml\n".encode(), "text/plain")
        routes["/s.xml"] = body(urlset(o, [f"/p/{n}" for n in range(40)]), "application/xml")
        for n in range(40):
            routes[f"/p/{n}"] = page(f"P{n}")
        urls = write_list(tmp_path / "urls.txt", [f"{o}/p/0"])
        args = [str(urls), "-o", "out", "--sitemaps-from-robots", "--max-urls", "11"]
        result = run_script([*args, "--threads", "1"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    got = records(tmp_path / "out")
    counts = summary(tmp_path / "out")
    # the sitemap is one of the 11 discovered URLs; /p/0 is listed, so not queued again
    assert counts["urls"] == {"listed": 1, "discovered": 10}
    assert counts["discovery"]["left_out_max_urls"] == 29
    assert "max_urls (11) reached" in result.stderr
    assert sum(1 for r in got if r["url"] == f"{o}/p/0") == 1
    assert site.paths.count("/p/0") == 1


def test_hostile_sitemaps_are_read_safely_and_said_in_words(tmp_path: Path) -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">'.encode()
        for i in range(9)
    )
    laughs += b"]><urlset><url><loc>&lol8;</loc></url></urlset>"
    head = f"<urlset {NS}><!-- ".encode()
    bomb = gzip.compress(head + b" " * (60 * 1024 * 1024) + b" --></urlset>", compresslevel=1)
    routes: dict[str, Route] = {}
    with serve(routes) as site:
        o = site.origin
        big = urlset(o, [f"/p/{n}" for n in range(100_000)])
        routes["/laughs.xml"] = body(laughs, "application/xml")
        routes["/bomb.xml.gz"] = body(bomb, "application/gzip")
        routes["/big.xml"] = body(big, "application/xml")
        routes["/broken.xml"] = body(b"<urlset><url><loc>" + o.encode() + b"/p/1</loc>", "text/xml")
        for n in range(200):
            routes[f"/p/{n}"] = page(f"P{n}")
        sitemaps = ["laughs.xml", "bomb.xml.gz", "big.xml", "broken.xml", "missing.xml"]
        args = [arg for name in sitemaps for arg in ("--sitemap", f"{o}/{name}")]
        started = time.monotonic()
        result = run_script([*args, "-o", "out", "--max-urls", "60"], cwd=tmp_path)
        took = time.monotonic() - started
    err = result.stderr
    assert result.returncode == 1, err  # the missing sitemap is a failed input
    assert "sitemap " + o + "/laughs.xml: a sitemap with a DTD is refused" in err
    assert "sitemap " + o + "/bomb.xml.gz: over 50 MB uncompressed" in err
    assert "sitemap " + o + "/big.xml: more than 50,000 entries" in err
    assert "sitemap " + o + "/broken.xml: not well-formed XML" in err
    assert "sitemap " + o + "/missing.xml: failed: http_status: 404" in err
    assert "Traceback" not in err
    counts = summary(tmp_path / "out")
    assert counts["discovery"]["sitemaps_read"] == 4 and counts["discovery"]["sitemaps_failed"] == 1
    assert counts["urls"]["discovered"] == counts["records"] == 60  # max_urls
    assert counts["discovery"]["left_out_max_urls"] > 40_000 and took < 60


def test_a_killed_crawl_resumes_without_refetching_what_was_recorded(tmp_path: Path) -> None:
    routes: dict[str, Route] = {}
    with serve(routes) as site:
        for n in range(60):  # a chain of pages, two links each: 60 pages, depth up to 30
            routes[f"/n/{n}"] = page(f"N{n}", [f"/n/{m}" for m in (2 * n + 1, 2 * n + 2) if m < 60])
        config = tmp_path / "crawl.yaml"
        config.write_text(
            "sites:\n  - name: chain\n    match: {host: 127.0.0.1}\n"
            "    follow: 'a'\n    max_depth: 10\n",
            encoding="utf-8",
        )
        urls = write_list(tmp_path / "urls.txt", [f"{site.origin}/n/0"])
        args = [str(urls), "-c", str(config), "-o", "out", "--threads", "2"]
        slow = [*args, "--host-concurrency", "1", "--host-delay", "0.05"]
        proc = subprocess.Popen([*scrape_command(), *slow], cwd=tmp_path, stderr=subprocess.DEVNULL)
        part = tmp_path / "out"

        def recorded() -> int:
            files = list(part.glob("*.jsonl.part"))
            return len(files[0].read_text("utf-8").splitlines()) if files else 0

        wait_for(lambda: recorded() >= 15, "15 records before the kill")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        before = list(site.paths)
        done = {json.loads(x)["url"] for x in next(part.glob("*.part")).read_text().splitlines()}
        site.paths.clear()
        resumed = run_script([*args, "--resume", *UNLIMITED], cwd=tmp_path, polite=True)
        assert resumed.returncode == 0, resumed.stderr
    got = records(tmp_path / "out")
    urls = [r["url"].removeprefix(site.origin) for r in got]
    assert sorted(urls) == sorted(f"/n/{n}" for n in range(60))  # each page once
    refetched = {p for p in site.paths if p.startswith("/n/")} & {
        u.removeprefix(site.origin) for u in done
    }
    assert refetched == set(), refetched
    assert len(before) >= 15 and summary(tmp_path / "out")["resumed"] is True


def test_bad_discovery_settings_exit_2_before_any_request(tmp_path: Path) -> None:
    with serve({}) as site:
        bad_url = run_script(["--sitemap", "notaurl", "-o", "out"], cwd=tmp_path)
        config = tmp_path / "bad.yaml"
        config.write_text(
            "sites:\n  - name: s\n    match: '*'\n    follow: 'a[href'\n", encoding="utf-8"
        )
        bad_css = run_script(["--sitemap", f"{site.origin}/s.xml", "-c", str(config)], tmp_path)
        config.write_text(
            "sites:\n  - name: s\n    match: '*'\n    max_depth: 3\n    fields: {t: h1}\n",
            encoding="utf-8",
        )
        no_follow = run_script([f"{site.origin}/", "-c", str(config)], cwd=tmp_path)
        nothing = run_script(["-o", "out"], cwd=tmp_path)
        assert site.paths == []
    assert bad_url.returncode == 2 and "--sitemap: notaurl:" in bad_url.stderr
    assert bad_css.returncode == 2 and "site s: follow: css 'a[href'" in bad_css.stderr
    assert no_follow.returncode == 2 and "max_depth and same_host need follow" in no_follow.stderr
    assert nothing.returncode == 2 and "--sitemap URL" in nothing.stderr
    for result in (bad_url, bad_css, no_follow):
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_demo_serves_a_sitemap(tmp_path: Path) -> None:
    result = run_script(["demo", "--sitemap", "--pages", "120"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "120 records checked against the site's ground truth: all match" in result.stderr
    assert "0 listed, 120 discovered; 2 sitemaps read" in result.stderr


def test_scrape_try_shows_the_links_a_follow_rule_queues(tmp_path: Path) -> None:
    saved = tmp_path / "page.html"
    saved.write_text(
        '<html><body><nav><a href="/c/1">1</a><a href="/c/2#x">2</a></nav>'
        '<a href="/about">about</a><a href="https://other.example/c/3">3</a></body></html>',
        encoding="utf-8",
    )
    config = tmp_path / "crawl.yaml"
    config.write_text(
        "sites:\n  - name: s\n    match: {host: shop.example}\n    follow: 'nav a'\n",
        encoding="utf-8",
    )
    url = "https://shop.example/start"
    result = run_script(["try", str(saved), "-c", str(config), "--url", url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["follow"] == ["https://shop.example/c/1", "https://shop.example/c/2"]
    checked = run_script(["check", "-c", str(config)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "s (host shop.example): follows 1 rule(s) to depth 1, its own host" in checked.stdout


def test_csv_records_of_a_crawl_have_found_on_and_depth_columns(tmp_path: Path) -> None:
    import csv

    routes: dict[str, Route] = {"/": page("Home", ["/a"]), "/a": page("A")}
    with serve(routes) as site:
        config = tmp_path / "crawl.yaml"
        config.write_text("sites:\n  - name: s\n    match: '*'\n    follow: a\n", encoding="utf-8")
        urls = write_list(tmp_path / "urls.txt", [f"{site.origin}/"])
        args = [str(urls), "-c", str(config), "-o", "out", "--format", "csv"]
        result = run_script(args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    with (tmp_path / "out" / "latest.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:6] == ["line", "url", "found_on", "depth", "outcome", "attempts"]
    by_url = {row["url"].removeprefix(site.origin): row for row in rows}
    assert (by_url["/"]["line"], by_url["/"]["found_on"]) == ("1", "")
    assert (by_url["/a"]["line"], by_url["/a"]["found_on"], by_url["/a"]["depth"]) == (
        "",
        f"{site.origin}/",
        "1",
    )
