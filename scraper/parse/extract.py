"""Per-site field rules run on a parsed page, in the parse workers; compiled once per worker.

CSS is translated to XPath by cssselect and compiled by lxml once per worker: a compiled XPath
runs in C over the tree lxml already built. Selectors cssselect cannot translate (soupsieve
extensions such as `:-soup-contains()`, `:not(a, b)`, `:nth-child(2 of .x)`) run with
soupsieve on a BeautifulSoup tree, built only for the pages of a site that needs one.
No network, no files; config/sites.py has checked every rule before the run started.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scraper.parse.html import Document
from scraper.parse.rules import FieldRule, FollowRule, SiteRule, url_matcher
from scraper.parse.values import ValueProblem, convert

MAX_COLSPAN = 100  # a hostile colspan="1000000" must not build a million-key row
_PROBE_PAGE = (
    "<html><head><title>t</title></head><body><h1 class='a'>x</h1>"
    "<table><tr><th>h</th></tr><tr><td>1</td></tr></table></body></html>"
)


class SelectorProblem(Exception):
    """A selector that does not compile or cannot run (message says why)."""


class ExtractProblem(Exception):
    """A required field found nothing; carries the page's fields so far."""

    def __init__(self, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Selector:
    """A compiled selector: an lxml XPath, or a soupsieve pattern needing a BeautifulSoup tree."""

    on_soup: bool
    run: Callable[[Any], Any]


def compile_css(css: str) -> Selector:
    """cssselect's XPath when it can translate `css`, else soupsieve; raises SelectorProblem."""
    from cssselect import HTMLTranslator, SelectorError

    try:
        return compile_xpath(_faster(HTMLTranslator().css_to_xpath(css)))
    except (SelectorError, SelectorProblem):
        pass
    import soupsieve

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # soupsieve warns of deprecated :contains
            pattern = soupsieve.compile(css)
    except (soupsieve.SelectorSyntaxError, NotImplementedError, ValueError) as exc:
        raise SelectorProblem(" ".join(str(exc).split("\n", 1)[0].split())) from None
    return Selector(True, pattern.select)


# cssselect writes :first-child, :last-of-type and friends as `count(preceding-sibling::p) = 0`,
# which libxml2 evaluates by collecting every sibling: quadratic in a long list of paragraphs
# (230 µs a demo page for `main > p:first-of-type`). Asking for the nearest one only,
# `count(preceding-sibling::p[1]) = 0`, means the same and took 53 µs (measured).
_SIBLING_COUNT = re.compile(r"count\((preceding|following)-sibling::([\w*:-]+)\) = 0")


def _faster(xpath: str) -> str:
    return _SIBLING_COUNT.sub(r"count(\1-sibling::\2[1]) = 0", xpath)


def compile_xpath(xpath: str) -> Selector:
    from lxml import etree

    try:
        return Selector(False, etree.XPath(xpath, smart_strings=False))
    except etree.XPathError as exc:
        raise SelectorProblem(str(exc)) from None


def probe(selector: Selector) -> None:
    """Run `selector` once on a tiny page: unknown functions and prefixes fail here, not later."""
    from lxml import etree

    doc = Document(_PROBE_PAGE)
    try:
        selector.run(doc.soup() if selector.on_soup else doc.root())
    except etree.XPathError as exc:
        raise SelectorProblem(str(exc)) from None
    except Exception as exc:  # soupsieve reports some problems only when it runs
        raise SelectorProblem(f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _CompiledSite:
    rule: SiteRule
    matches: Callable[[str], Any]
    selectors: tuple[Selector, ...]
    patterns: tuple[re.Pattern[str] | None, ...]
    follow: tuple[tuple[FollowRule, Selector | re.Pattern[str]], ...] = ()


_COMPILED: dict[int, tuple[tuple[SiteRule, ...], list[_CompiledSite]]] = {}


def _compiled(sites: tuple[SiteRule, ...]) -> list[_CompiledSite]:
    """The sites' selectors and regexes, compiled on a worker's first page and kept."""
    cached = _COMPILED.get(id(sites))
    if cached is not None and cached[0] is sites:
        return cached[1]
    compiled = [
        _CompiledSite(
            site,
            url_matcher(site.match_kind, site.pattern),
            tuple(
                compile_css(f.css) if f.css is not None else compile_xpath(f.xpath or "")
                for f in site.fields
            ),
            tuple(re.compile(f.regex) if f.regex else None for f in site.fields),
            tuple((rule, _compile_follow(rule)) for rule in site.follow),
        )
        for site in sites
    ]
    _COMPILED[id(sites)] = (sites, compiled)
    return compiled


def _compile_follow(rule: FollowRule) -> Selector | re.Pattern[str]:
    if rule.kind == "regex":
        return re.compile(rule.pattern)
    return compile_css(rule.pattern) if rule.kind == "css" else compile_xpath(rule.pattern)


@dataclass(frozen=True, slots=True)
class FollowPlan:
    """The follow rules of the site a page belongs to, as the parse stage runs them."""

    site: _CompiledSite
    same_host: bool


def follow_plan(
    sites: tuple[SiteRule, ...], final_url: str, listed_url: str, depth: int
) -> FollowPlan | None:
    """The page's site's follow rules when its depth lets links be followed, else None."""
    site = _site(_compiled(sites), final_url, listed_url)
    if site is None or not site.follow or depth >= site.rule.max_depth:
        return None
    return FollowPlan(site, site.rule.same_host)


def follow_hrefs(plan: FollowPlan, doc: Document) -> list[str]:
    """The hrefs (as written) that the plan's CSS and XPath rules select in `doc`: each
    element's `attr` (css `::attr(x)`), else its href, else its src; an XPath's strings."""
    hrefs: list[str] = []
    for rule, compiled in plan.site.follow:
        if not isinstance(compiled, Selector):
            continue
        tree = doc.soup() if compiled.on_soup else doc.root()
        if tree is None:
            continue
        names = (rule.attr,) if rule.attr else ("href", "src")
        for node in _as_list(compiled.run(tree)):
            if isinstance(node, str):
                hrefs.append(str(node))
                continue
            get = getattr(node, "get", None)  # lxml and bs4 elements; not XPath numbers
            if get is None:
                continue
            for name in names:
                value = get(name)
                if value is not None:
                    hrefs.append(" ".join(value) if isinstance(value, list) else str(value))
                    break
    return hrefs


def follow_matching(plan: FollowPlan, links: list[str]) -> list[str]:
    """The page's links (absolute) that the plan's regex rules find."""
    patterns = [c for _, c in plan.site.follow if isinstance(c, re.Pattern)]
    return [link for link in links if any(p.search(link) for p in patterns)]


def site_for(sites: tuple[SiteRule, ...], final_url: str, listed_url: str) -> SiteRule | None:
    """The first site whose match fits the final URL, or failing that the URL as listed."""
    found = _site(_compiled(sites), final_url, listed_url)
    return found.rule if found is not None else None


def _site(compiled: list[_CompiledSite], final_url: str, listed_url: str) -> _CompiledSite | None:
    for url in (final_url, listed_url):
        for site in compiled:
            if site.matches(url):
                return site
    return None


def extract_fields(
    sites: tuple[SiteRule, ...], doc: Document, final_url: str, listed_url: str, base_url: str
) -> dict[str, Any]:
    """`site`, `data` (and `data_problems` if any) for the page; {} when no site matches.

    Raises ExtractProblem when a required field has no value.
    """
    site = _site(_compiled(sites), final_url, listed_url)
    if site is None:
        return {}
    data: dict[str, Any] = {}
    problems: list[str] = []
    missing: list[str] = []
    for rule, selector, pattern in zip(
        site.rule.fields, site.selectors, site.patterns, strict=True
    ):
        tree = doc.soup() if selector.on_soup else doc.root()
        found = _as_list(selector.run(tree)) if tree is not None else []
        value = _field_value(rule, found, pattern, base_url, problems)
        if value is None or value == []:
            if rule.required:
                missing.append(rule.name)
            value = list(rule.default) if isinstance(rule.default, tuple) else rule.default
            if value is None and rule.all:
                value = []
        data[rule.name] = value
    out: dict[str, Any] = {"site": site.rule.name, "data": data}
    if problems:
        out["data_problems"] = problems
    if missing:
        what = ", ".join(missing)
        raise ExtractProblem(f"site {site.rule.name}: required field(s) found nothing: {what}", out)
    return out


def _as_list(result: Any) -> list[Any]:
    return result if isinstance(result, list) else [result]


def _field_value(
    rule: FieldRule,
    found: list[Any],
    pattern: re.Pattern[str] | None,
    base_url: str,
    problems: list[str],
) -> Any:
    values: list[Any] = []
    for node in found:
        value: Any = None
        if rule.type == "table":
            value = table_rows(node) if _is_element(node) else None
        elif (text := _clean(rule, node, pattern)) is not None:
            try:
                value = convert(rule, text, base_url)
            except ValueProblem as exc:
                problems.append(f"{rule.name}: {exc}")
        if value is None:
            continue
        if not rule.all:
            return value
        values.append(value)
    if not rule.all:
        return None
    return rule.join.join(values) if rule.join is not None and values else values


def _clean(rule: FieldRule, node: Any, pattern: re.Pattern[str] | None) -> str | None:
    """The node's text (or attribute), white space collapsed, stripped, through the regex."""
    if rule.attr is not None and _is_element(node):
        text = _attribute(node, rule.attr)
    else:
        text = node_text(node)
    if text is None:
        return None
    if rule.strip is not False:
        text = " ".join(text.split())
        if isinstance(rule.strip, str):
            text = text.strip(rule.strip)
    if pattern is not None:
        match = pattern.search(text)
        if match is None:
            return None
        text = match.group(1) if pattern.groups else match.group(0)
    return text if text != "" else None


def _is_element(node: Any) -> bool:
    return _is_lxml(node) or _is_soup(node)


def _is_lxml(node: Any) -> bool:
    return isinstance(node, _element_classes()[0])


def _is_soup(node: Any) -> bool:
    # Not hasattr(): a BeautifulSoup tag answers any attribute name with a child tag or None.
    return isinstance(node, _element_classes()[1])


@lru_cache(maxsize=1)
def _element_classes() -> tuple[type, type]:
    from bs4 import Tag
    from lxml import etree

    return etree._Element, Tag


def node_text(node: Any) -> str | None:
    """Text of an element (lxml or bs4), string result, number or boolean of an XPath."""
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, float):
        return str(int(node)) if node.is_integer() else str(node)
    if _is_lxml(node):
        return "".join(node.itertext())
    if _is_soup(node):
        return str(node.get_text())
    return None


def _attribute(node: Any, name: str) -> str | None:
    value = node.get(name)
    if isinstance(value, list):  # BeautifulSoup gives class and rel as lists
        return " ".join(value)
    return value if value is None else str(value)


def table_rows(table: Any) -> list[dict[str, Any]]:
    """A table as row objects keyed by its header row (`thead`, or a first row of only `th`).

    Without a header the keys are column_1, column_2...; empty or repeated header cells get
    column_N or a _2 suffix; colspan repeats a cell (at most MAX_COLSPAN times).
    """
    rows = [_cells(row) for row in _rows(table)]
    rows = [row for row in rows if row]
    if not rows:
        return []
    header_row = 0 if rows[0][0] else None
    keys = _keys(rows[header_row][1] if header_row is not None else [])
    body = [cells for index, (_, cells) in enumerate(rows) if index != header_row and any(cells)]
    width = max((len(cells) for cells in body), default=0)
    keys += [f"column_{n}" for n in range(len(keys) + 1, width + 1)]
    return [
        {key: (cells[i] if i < len(cells) else None) for i, key in enumerate(keys)}
        for cells in body
    ]


def _rows(table: Any) -> Iterable[Any]:
    """The table's own rows in order: not those of a table nested in a cell."""
    if _is_lxml(table):
        for child in table.iterchildren("tr", "thead", "tbody", "tfoot"):
            yield from (child.iterchildren("tr") if child.tag != "tr" else (child,))
        return
    for child in table.find_all(["tr", "thead", "tbody", "tfoot"], recursive=False):
        yield from (child.find_all("tr", recursive=False) if child.name != "tr" else (child,))


def _cells(row: Any) -> tuple[bool, list[str | None]]:
    """(in thead or all th, the cells' texts with colspan repeated)"""
    lxml = _is_lxml(row)
    if lxml:
        cells = list(row.iterchildren("th", "td"))
    else:
        cells = row.find_all(["th", "td"], recursive=False)
    if not cells:
        return (False, [])
    parent = row.getparent() if lxml else row.parent
    parent_tag = (parent.tag if lxml else parent.name) if parent is not None else ""
    all_th = all((c.tag if lxml else c.name) == "th" for c in cells)
    texts: list[str | None] = []
    for cell in cells:
        text = " ".join((node_text(cell) or "").split()) or None
        try:
            span = max(1, min(int(str(cell.get("colspan") or 1)), MAX_COLSPAN))
        except ValueError:
            span = 1
        texts.extend([text] * span)
    return (parent_tag == "thead" or all_th, texts)


def _keys(header: list[str | None]) -> list[str]:
    keys: list[str] = []
    for number, text in enumerate(header, 1):
        key = text or f"column_{number}"
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys
