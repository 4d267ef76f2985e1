"""No password in clear: not in records (url, final_url, links, canonical, text), messages,
logs, the summary, the state, saved HTML file names, nor `scrape try` output."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from scraper import cli
from tests.conftest import run_in_process, write_list
from tests.servers import redirect, send, serve, status

SECRETS = ("s3cret", "hunter2", "pw123")
PAGE = (
    b"<html><head><title>Private</title><link rel=canonical href='/canon'></head><body>"
    b"<a href='/next'>next</a> <a href='http://other:hunter2@127.0.0.1:9/x'>other</a>"
    b"<p>log in at http://admin:pw123@intranet.test/ please</p></body></html>"
)
ROUTES = {
    "/page": lambda h: send(h, 200, PAGE),
    "/go": redirect("/page"),
    "/missing": status(404),
}


def test_no_password_is_written_or_printed(tmp_path: Path) -> None:
    with serve(ROUTES) as site:
        host = site.origin.removeprefix("http://")
        lines = [f"http://user:s3cret@{host}/go", f"http://user:s3cret@{host}/missing"]
        log = tmp_path / "scrape.log"
        run = run_in_process(
            [
                str(write_list(tmp_path / "urls.txt", lines)),
                *("--retries", "0", "--host-delay", "0", "--save-html"),
                *("--log-file", str(log), "--no-obey-robots"),
            ],
            tmp_path / "out",
        )
        err = io.StringIO()
        out = io.StringIO()
        code = cli.main(["try", f"http://user:s3cret@{host}/page"], stdout=out, stderr=err)
    page, missing = run.by_line()[1], run.by_line()[2]
    assert page["outcome"] == "ok" and page["title"] == "Private"
    assert page["url"] == f"http://user:***@{host}/go"
    assert page["final_url"] == f"http://user:***@{host}/page"
    # links resolve against the page without its credentials; a link's own are masked
    assert page["links"] == [f"{site.origin}/next", "http://other:***@127.0.0.1:9/x"]
    assert page["canonical"] == f"{site.origin}/canon"
    assert "http://admin:***@intranet.test/" in page["text"]
    assert missing["final_url"] == f"http://user:***@{host}/missing"
    assert code == 0 and "Private" in out.getvalue()

    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    texts = [run.stderr, log.read_text(encoding="utf-8"), out.getvalue(), err.getvalue()]
    texts += [p.name for p in written]
    texts += [p.read_text(encoding="utf-8") for p in written if p.suffix in (".jsonl", ".json")]
    with sqlite3.connect(tmp_path / "out" / "state.sqlite") as db:
        texts += [repr(row) for row in db.execute("SELECT * FROM pages")]
        texts += [repr(row) for row in db.execute("SELECT * FROM runs")]
    assert any(p.suffix == ".html" for p in written)  # the saved page, under a masked name
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text[:300])
