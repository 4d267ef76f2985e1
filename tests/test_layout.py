"""The layout as a test: which folder may import which, no import cycle (imports inside
functions count), no module over 500 lines, requests and urllib3 only in fetch/, empty
package __init__ files, and a spawned parse worker without the HTTP stack."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scraper"
MAX_LINES = 500
HTTP_STACK = frozenset({"requests", "urllib3"})
LEAVES = frozenset({"records", "errors", "urls"})  # the standard library and each other only
LEAF_LIBRARIES = frozenset({"ada_url"})  # and urls.py its WHATWG URL parser

# What each part of the package may import of the others (besides itself). A part is a
# top-level module or a sub-package; `scraper` is the package's __init__ (the version).
ALLOWED: dict[str, frozenset[str]] = {
    name: frozenset(parts)
    for name, parts in {
        "scraper": (),
        "records": (),
        "errors": ("records",),
        "urls": ("records",),
        "exit_codes": (),
        "console": (),
        "state": ("errors", "records"),
        "url_list": ("records", "urls"),
        "parse": ("errors", "records", "urls"),
        "config": ("scraper", "errors", "records", "urls", "parse"),
        "fetch": ("config", "errors", "records", "urls"),
        "output": ("errors", "records", "urls"),
        "pipeline": ("config", "errors", "records", "urls", "url_list", "fetch", "parse", "output"),
        "cluster": ("scraper", "config", "errors", "records", "urls", "url_list", "pipeline"),
        "run": (
            *("config", "console", "errors", "exit_codes", "records", "state", "url_list"),
            *("urls", "output", "pipeline", "cluster"),
        ),
        "demo": (),
        "bench": (
            *("config", "demo", "fetch", "output", "parse", "pipeline", "records", "state"),
            *("url_list", "urls"),
        ),
        "commands": (
            *("bench", "config", "demo", "errors", "exit_codes", "fetch", "parse", "records"),
            *("run", "state", "urls", "url_list", "scraper"),
        ),
        "cli": (
            *("scraper", "commands", "config", "errors", "exit_codes", "run"),
            *("console", "url_list", "urls"),  # verbosity levels; URL arguments and lists
        ),
        "__main__": ("cli",),
    }.items()
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module `path` imports, at any depth (function bodies and TYPE_CHECKING too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in known else node.module


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "scraper"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {m for m in imports_of(path, known) if m.split(".")[0] == "scraper"}
        for name, path in known.items()
    }


def test_every_part_is_in_the_table() -> None:
    assert {part(name) for name in modules()} == set(ALLOWED)


def test_parts_import_only_what_they_may() -> None:
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if part(target) != part(name) and part(target) not in ALLOWED[part(name)]
    )
    assert not wrong, "imports the layout does not allow:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("parse", "fetch"),  # a parse worker has no network
        ("fetch", "parse"),
        ("url_list", "fetch"),
        ("output", "pipeline"),  # a sink sees records only
        ("output", "parse"),
        *((stage, "console") for stage in ("fetch", "parse", "pipeline", "output", "cluster")),
        *((stage, "cli") for stage in ALLOWED if stage not in ("cli", "__main__")),
    ],
)
def test_never_arrows(source: str, target: str) -> None:
    assert target not in ALLOWED[source]
    offenders = [
        f"{name} -> {t}"
        for name, targets in graph().items()
        if part(name) == source
        for t in targets
        if part(t) == target
    ]
    assert not offenders


def test_leaves_import_only_the_standard_library_and_each_other() -> None:
    known = modules()
    for leaf in LEAVES:
        for module in imports_of(known[f"scraper.{leaf}"], known):
            top = module.split(".")[0]
            if top == "scraper":
                assert part(module) in LEAVES, f"{leaf} imports {module}"
            else:
                assert top in sys.stdlib_module_names | LEAF_LIBRARIES, f"{leaf} imports {module}"


def test_no_import_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(edges.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])


def test_http_stack_only_in_fetch() -> None:
    known = modules()
    outside = sorted(
        f"{name} imports {module}"
        for name, path in known.items()
        for module in imports_of(path, known)
        if module.split(".")[0] in HTTP_STACK and part(name) != "fetch"
    )
    assert not outside


def test_modules_are_small_and_inits_empty() -> None:
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= MAX_LINES, f"{name}: {lines} lines"
        if path.name == "__init__.py" and path.parent != PACKAGE:
            assert path.read_text(encoding="utf-8") == "", f"{name}/__init__.py is not empty"
    top = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(top) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_a_spawned_parse_worker_has_no_http_stack(tmp_path: Path) -> None:
    """Start a real parse worker (spawn) from a script that imports the CLI at the top, as the
    `scrape` console script does (the worker re-imports it), and ask what it has loaded."""
    script = tmp_path / "scrape_like.py"
    script.write_text(
        """
import scraper.cli  # what the console script imports; a spawned child imports it again

if __name__ == "__main__":
    from scraper.parse.page import ParseOptions
    from scraper.pipeline.workers import Job, Worker
    from scraper.records import FetchedPage, UrlTask
    from tests.pool_jobs import parse_then_report_modules

    worker = Worker(Job(parse_then_report_modules, ParseOptions()), "layout-check")
    worker.start()
    try:
        task = UrlTask(1, "http://127.0.0.1/", "http://127.0.0.1/")
        body = b"<title>t</title><a href='/x'>x</a>"
        headers = {"content-type": "text/html"}
        worker.send(1, FetchedPage(task, task.url, 200, headers, body, 1, 0.0))
        print(worker.receive(60))
    finally:
        worker.stop()
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    assert done.returncode == 0, done.stderr
    assert "'title': 't'" in done.stdout, done.stdout + done.stderr
    assert "requests: False, urllib3: False" in done.stdout, done.stdout
