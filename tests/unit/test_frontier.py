"""The frontier (pipeline/frontier.py) by building objects: once per URL, max_urls exactly,
breadth-first order, list lines claimed, resume, no credentials stored, a temporary file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from scraper.pipeline.frontier import MAX_SITEMAP_DEPTH, Frontier
from scraper.records import Found, UrlTask

SITE = "https://shop.example"


def listed(n: int, path: str) -> UrlTask:
    return UrlTask(n, SITE + path, SITE + path)


def test_each_url_is_queued_once_in_the_order_found(tmp_path: Path) -> None:
    frontier = Frontier(tmp_path / "state.sqlite", max_urls=100)
    start = listed(1, "/")
    assert frontier.listed([start]) == [True]
    frontier.offer(start, Found(pages=(SITE + "/a", SITE + "/b", SITE + "/")))
    frontier.offer(start, Found(pages=(SITE + "/b", SITE + "/c")))
    taken = frontier.take(10)
    assert [t.url for t in taken] == [SITE + "/a", SITE + "/b", SITE + "/c"]  # "/" is listed
    assert all(t.line_no < 0 and t.found_on == SITE + "/" and t.depth == 1 for t in taken)
    frontier.offer(taken[0], Found(pages=(SITE + "/d",)))
    assert [(t.url, t.depth) for t in frontier.take(10)] == [(SITE + "/d", 2)]
    assert frontier.take(10) == [] and frontier.counts.pages == 4
    frontier.close()


def test_max_urls_is_exact_and_what_is_left_out_is_counted(tmp_path: Path) -> None:
    frontier = Frontier(None, max_urls=5)
    start = listed(1, "/")
    frontier.listed([start])
    pages = tuple(f"{SITE}/p/{n}" for n in range(8))
    frontier.offer(start, Found(pages=(SITE + "/", *pages[:2], *pages)))  # dupes and "/"
    assert [t.url for t in frontier.take(100)] == list(pages[:5])
    assert frontier.counts.left_out == 3
    frontier.offer(start, Found(pages=(*pages, SITE + "/new")))  # one more left out, once
    assert frontier.counts.left_out == 4
    frontier.close()


def test_a_list_line_a_link_got_to_first_is_a_duplicate_unless_not_taken_yet(
    tmp_path: Path,
) -> None:
    frontier = Frontier(tmp_path / "state.sqlite", max_urls=100)
    start = listed(1, "/")
    frontier.listed([start])
    frontier.offer(start, Found(pages=(SITE + "/a", SITE + "/b")))
    assert [t.url for t in frontier.take(1)] == [SITE + "/a"]
    # /a is being fetched as a discovered URL; /b is not taken yet: the list gets it
    assert frontier.listed([listed(2, "/a"), listed(3, "/b")]) == [False, True]
    assert frontier.take(10) == []
    frontier.close()


def test_a_resumed_crawl_takes_again_what_the_killed_run_did_not_record(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    killed = Frontier(path, max_urls=100)
    start = listed(1, "/")
    killed.listed([start])
    killed.offer(start, Found(pages=tuple(f"{SITE}/{n}" for n in range(4))))
    assert len(killed.take(3)) == 3  # /0 /1 /2 taken; only /0 was recorded when killed
    killed._db.close()  # as a SIGKILL leaves it
    resumed = Frontier(path, max_urls=100, resume=True, recorded={SITE + "/0"})
    assert [t.url for t in resumed.take(10)] == [f"{SITE}/{n}" for n in (1, 2, 3)]
    resumed.close()
    fresh = Frontier(path, max_urls=100)  # a new run starts from nothing
    assert fresh.take(10) == []
    fresh.close()


def test_credentials_are_not_stored_and_seeds_keep_them_in_memory_only(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    frontier = Frontier(path, max_urls=100)
    [seed] = frontier.seed(["https://user:secret@shop.example/sitemap.xml"])
    assert seed.kind == "sitemap" and "secret" in seed.normalized_url and "secret" not in seed.url
    frontier.offer(seed, Found(pages=("https://user:secret@shop.example/a",)))
    [page] = frontier.take(10)
    assert page.url == page.normalized_url == SITE + "/a"
    frontier.close()
    rows = sqlite3.connect(path).execute("SELECT url, found_on FROM frontier").fetchall()
    assert not any("secret" in str(value) for row in rows for value in row)


def test_sitemap_indexes_nest_three_deep_at_most() -> None:
    frontier = Frontier(None, max_urls=100)
    [seed] = frontier.seed([SITE + "/sitemap.xml"])
    parent = seed
    for level in range(1, MAX_SITEMAP_DEPTH + 2):
        frontier.offer(parent, Found(sitemaps=(f"{SITE}/s{level}.xml",)))
        taken = frontier.take(10)
        if level > MAX_SITEMAP_DEPTH:
            assert taken == [] and frontier.counts.too_deep == 1
        else:
            assert [t.depth for t in taken] == [level]
            parent = taken[0]
    frontier.close()


def test_without_a_state_the_frontier_is_a_temporary_file_removed_at_close() -> None:
    frontier = Frontier(None, max_urls=10)
    temp = frontier._temp
    assert temp is not None and Path(temp).exists()
    frontier.close()
    assert not Path(temp).exists()


def test_hosts_are_taken_in_turn_so_one_big_sitemap_holds_no_other_host_back() -> None:
    frontier = Frontier(None, max_urls=10_000)
    [a, b] = frontier.seed([SITE + "/sitemap.xml", "https://news.example/sitemap.xml"])
    frontier.offer(a, Found(pages=tuple(f"{SITE}/p/{n}" for n in range(5000))))
    frontier.offer(b, Found(pages=tuple(f"https://news.example/a/{n}" for n in range(10))))
    first = frontier.take(20)
    assert sum(1 for t in first if t.url.startswith("https://news.example/")) == 10
    assert [t.url for t in first if t.url.startswith(SITE)] == [f"{SITE}/p/{n}" for n in range(10)]
    rest = frontier.take(10_000)
    assert len(rest) == 4990 and rest[0].url == f"{SITE}/p/10"  # oldest first within a host
    frontier.offer(b, Found(pages=("https://news.example/late",)))  # a host back in turn
    assert [t.url for t in frontier.take(5)] == ["https://news.example/late"]
    frontier.close()
