"""Extraction end to end: the `scrape` console script against real servers on 127.0.0.1,
with the example configs, every output format, saved HTML and `scrape try`."""

import csv
import json
import sqlite3
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from scraper.demo.fixtures import check_fixture_records, fixture_url_lines, product_page
from scraper.demo.server import DemoServer
from tests.conftest import FAST, run_script, write_list
from tests.servers import send, serve

REPO = Path(__file__).resolve().parents[2]
SHOP = str(REPO / "config" / "shop.yaml")
NEWS = str(REPO / "config" / "news.yaml")


def records_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_the_example_configs_extract_every_field_of_the_demo_fixtures(tmp_path: Path) -> None:
    with DemoServer(n_pages=10) as demo:
        for kind, config in (("shop", SHOP), ("news", NEWS)):
            urls = tmp_path / f"{kind}.txt"
            urls.write_bytes(b"".join(fixture_url_lines(demo.url, kind, 120)))
            result = run_script(
                [str(urls), "-c", config, "-o", "out", "--format", "jsonl", *FAST], cwd=tmp_path
            )
            assert result.returncode == 1, result.stderr  # pages without the required field
            records = records_in(tmp_path / "out" / "latest.jsonl")
            assert len(records) == 120
            assert check_fixture_records(kind, demo.url, records) == []
            failed = [r for r in records if r["outcome"] == "failed"]
            assert len(failed) == (4 if kind == "shop" else 6)
            assert all("required field(s) found nothing" in r["error"]["message"] for r in failed)
            assert all(r["data"] for r in failed)  # what was found is kept, for debugging
            ok = [r for r in records if r["outcome"] == "ok"]
            assert all(r["structured"]["opengraph"]["title"] for r in ok)
            if kind == "shop":
                assert all(r["structured"]["json_ld"][0]["@type"] == "Product" for r in ok)
                no_price = [r for r in ok if r["data"]["price"] is None]
                assert len(no_price) == 10  # 12 without a price, 2 of which lack the title too
                assert all("holds no number" in r["data_problems"][0] for r in no_price)


def test_scrape_demo_checks_the_example_configs(tmp_path: Path) -> None:
    for kind, config in (("shop", SHOP), ("news", NEWS)):
        result = run_script(
            ["demo", "--site", kind, "-c", config, "--pages", "60", "-o", "out", "-q"], cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
    missing = run_script(["demo", "--site", "shop", "-o", "out"], cwd=tmp_path)
    assert missing.returncode == 2 and "-c config/shop.yaml" in missing.stderr


def test_csv_columns_follow_the_config_and_nested_values_are_json(tmp_path: Path) -> None:
    with DemoServer(n_pages=10) as demo:
        urls = tmp_path / "news.txt"
        urls.write_bytes(b"".join(fixture_url_lines(demo.url, "news", 25)))
        result = run_script([str(urls), "-c", NEWS, "-o", "out", *FAST], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    with (tmp_path / "out" / "latest.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = reader.fieldnames
    assert columns is not None
    assert columns[:13] == [
        "line",
        "url",
        "outcome",
        "attempts",
        "site",
        "data.headline",
        "data.author",
        "data.published",
        "data.summary",
        "data.body",
        "data.tags",
        "data.comments",
        "data.results",
    ]
    assert len(rows) == 25
    first = next(r for r in rows if r["line"] == "1")
    assert json.loads(first["data.results"])[0].keys() == {"Team", "Score", "Score_2"}
    assert json.loads(first["structured"])["microdata"][0]["type"].endswith("NewsArticle")
    assert first["data.body"].count("\n") == 1  # multi-line text survives CSV quoting


def test_the_sqlite_table_keeps_one_current_row_per_url(tmp_path: Path) -> None:
    broken = {"now": False}
    body, want = product_page(1)

    def product(handler: BaseHTTPRequestHandler) -> None:
        if broken["now"]:
            send(handler, 500, b"down", "text/plain")
        else:
            send(handler, 200, body, headers={"ETag": '"v1"'})

    with serve({"/shop/product/1": product}) as served:
        urls = write_list(
            tmp_path / "urls.txt",
            [served.origin + "/shop/product/1", served.origin + "/shop/product/1", "nonsense"],
        )
        args = [str(urls), "-c", SHOP, "-o", "out", "--format", "sqlite", *FAST]
        assert run_script(args, cwd=tmp_path).returncode == 1  # the invalid line
        db = tmp_path / "out" / "records.sqlite"

        def rows() -> list[dict]:
            with sqlite3.connect(db) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute("SELECT * FROM records")]

        first = rows()
        assert len(first) == 1  # duplicate and invalid lines are not pages
        assert first[0]["outcome"] == "ok" and first[0]["data.title"] == want["title"]
        assert first[0]["data.price"] == want["price"]
        assert json.loads(first[0]["data.specs"]) == want["specs"]
        assert len(records_in(tmp_path / "out" / "latest.jsonl")) == 3  # the run file as usual

        run_script(args, cwd=tmp_path)  # 304: unchanged keeps the data
        second = rows()
        assert second[0]["outcome"] == "unchanged" and second[0]["data.title"] == want["title"]
        assert second[0]["run_id"] != first[0]["run_id"]

        broken["now"] = True
        run_script([*args, "--full"], cwd=tmp_path)
        third = rows()
        assert len(third) == 1
        assert (third[0]["outcome"], third[0]["error_kind"], third[0]["status"]) == (
            "failed",
            "http_status",
            500,
        )
        assert third[0]["data.title"] == want["title"]  # the last good data stays

        more = tmp_path / "more.yaml"
        more.write_text(
            Path(SHOP).read_text() + "      brand: {css: '.brand', default: none}\n", "utf-8"
        )
        broken["now"] = False
        run_script(
            [str(urls), "-c", str(more), "-o", "out", "--format", "sqlite", "--full", *FAST],
            cwd=tmp_path,
        )
        assert rows()[0]["data.brand"] == "none"  # a new field became a new column


HOSTILE_PATHS = [
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/secret",
    "/a/" + "x" * 3000,
    "/caf%C3%A9/%E6%9D%B1",
    "/q?next=/../../x&y=a/b",
    "/.hidden",
    "/",
]


def test_saved_html_stays_in_its_folder_with_one_file_per_url(tmp_path: Path) -> None:
    def echo(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, f"<html><body><p>{handler.path}</p></body></html>".encode())

    class AnyPath(dict):
        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            return echo

    with serve(AnyPath()) as served:
        urls = write_list(tmp_path / "urls.txt", [served.origin + p for p in HOSTILE_PATHS])
        result = run_script([str(urls), "-o", "out", "--save-html", *FAST], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html_dir = tmp_path / "out" / "html"
    files = sorted(p for p in html_dir.iterdir())
    assert len(files) == len(HOSTILE_PATHS)
    assert all(p.parent == html_dir and not p.name.startswith(".") for p in files)
    assert all(len(p.name) < 130 for p in files)
    for record in records_in(tmp_path / "out" / "latest.jsonl"):
        saved = (tmp_path / "out" / record["html_file"]).resolve()
        assert saved.parent == html_dir.resolve()
        assert saved.read_bytes().startswith(b"<html><body><p>/")
    assert not any(p.name in ("passwd", "secret") for p in tmp_path.rglob("*"))


def test_scrape_try_prints_the_record_of_one_url_or_file(tmp_path: Path) -> None:
    body, want = product_page(7)

    def product(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, body)

    with serve({"/shop/product/7": product}) as served:
        url = served.origin + "/shop/product/7"
        result = run_script(["try", url, "-c", SHOP], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["data"]["title"] == want["title"]
        assert record["data"]["images"][0] == served.origin + want["images"][0]
        assert len(served.paths) == 1  # one request, nothing else
        gone = run_script(["try", served.origin + "/nothing", "-c", SHOP], cwd=tmp_path)
        assert gone.returncode == 1 and "HTTP 404" in gone.stderr
    saved = tmp_path / "page.html"
    saved.write_bytes(product_page(24)[0])  # the product page without a title
    result = run_script(
        ["try", str(saved), "-c", SHOP, "--url", "https://shop.example/shop/product/24"],
        cwd=tmp_path,
    )
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["error"]["kind"] == "extract" and record["data"]["sku"] == "SKU-00024"
    unmatched = run_script(["try", str(saved), "-c", SHOP], cwd=tmp_path)
    assert unmatched.returncode == 0 and "no site matches file://" in unmatched.stderr
    assert not (tmp_path / "output").exists()  # try writes no files


def test_rules_read_undeclared_legacy_pages_and_malformed_html(tmp_path: Path) -> None:
    legacy = (
        "<title>x</title><h1 class=product-title>Caf\xe9 cr\xe8me<p class=price>"
        "<span class=amount>€ 12,50"
    ).encode("cp1252")

    def product(handler: BaseHTTPRequestHandler) -> None:
        send(handler, 200, legacy, content_type="text/html")

    with serve({"/shop/product/1": product}) as served:
        urls = write_list(tmp_path / "urls.txt", [served.origin + "/shop/product/1"])
        result = run_script([str(urls), "-c", SHOP, "-o", "out", *FAST], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = records_in(tmp_path / "out" / "latest.jsonl")[0]["data"]
    assert (data["title"], data["price"], data["images"]) == ("Café crème", 12.5, [])
