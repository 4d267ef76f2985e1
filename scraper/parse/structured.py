"""Structured data a page carries for machines: JSON-LD, OpenGraph and microdata.

Runs in the parse workers on the lxml tree, before the parse stage strips scripts. Malformed
data is skipped and named in the result's `problems`; it never fails the page. No network.
"""

from __future__ import annotations

import json
from typing import Any

from scraper.urls import web_url

MAX_JSON_LD_BYTES = 1_000_000  # one script element; bigger ones are skipped, not parsed
MAX_ITEM_DEPTH = 20  # microdata items nested deeper are cut off (a hostile page nests forever)
# Where a microdata property's value comes from (WHATWG HTML, "Microdata", values).
URL_ATTRS = {
    "a": "href",
    "area": "href",
    "link": "href",
    "audio": "src",
    "embed": "src",
    "iframe": "src",
    "img": "src",
    "source": "src",
    "track": "src",
    "video": "src",
    "object": "data",
}
VALUE_ATTRS = {"meta": "content", "data": "value", "meter": "value", "time": "datetime"}


def structured_data(root: Any, base_url: str) -> dict[str, Any]:
    """{json_ld: [...], opengraph: {...}, microdata: [...]} (and problems when any)."""
    problems: list[str] = []
    out: dict[str, Any] = {
        "json_ld": _json_ld(root, problems),
        "opengraph": _opengraph(root),
        "microdata": _microdata(root, base_url),
    }
    if problems:
        out["problems"] = problems
    return out


def _json_ld(root: Any, problems: list[str]) -> list[Any]:
    items: list[Any] = []
    for script in root.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        text = (script.text or "").strip()
        if len(text) > MAX_JSON_LD_BYTES:
            problems.append(f"json_ld: a script of {len(text)} characters skipped")
            continue
        # Pages wrap JSON-LD in HTML comments or CDATA markers to hide it from old browsers.
        for wrapper in (("<!--", "-->"), ("<![CDATA[", "]]>"), ("//<![CDATA[", "//]]>")):
            if text.startswith(wrapper[0]) and text.endswith(wrapper[1]):
                text = text[len(wrapper[0]) : -len(wrapper[1])].strip()
        if not text:
            continue
        try:
            value = lenient_json(text)
        except (ValueError, RecursionError) as exc:
            problems.append(f"json_ld: invalid JSON: {str(exc)[:120]}")
            continue
        items.extend(value if isinstance(value, list) else [value])
    return items


def lenient_json(text: str) -> Any:
    """JSON as search engines and extruct read JSON-LD from real pages: raw control
    characters (newlines, tabs) inside strings, `//` and `/* */` comments, and trailing
    commas are forgiven; anything else invalid still raises ValueError. (Not JSON5: single
    quotes and bare keys are not JSON-LD, and no reader of it takes them.)"""
    try:
        return json.loads(text, strict=False)  # raw control characters in strings: allowed
    except ValueError:
        pass
    return json.loads(_without_comments_and_trailing_commas(text), strict=False)


def _without_comments_and_trailing_commas(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif c in "]}":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":  # a trailing comma
                out.pop()
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _opengraph(root: Any) -> dict[str, Any]:
    """`og:*` meta properties without the prefix; a property given twice becomes a list."""
    found: dict[str, Any] = {}
    for meta in root.iter("meta"):
        prop = (meta.get("property") or "").strip()
        content = meta.get("content")
        if not prop.lower().startswith("og:") or content is None:
            continue
        key = prop[3:]
        if key in found:
            previous = found[key]
            found[key] = [*previous, content] if isinstance(previous, list) else [previous, content]
        else:
            found[key] = content
    return found


def _microdata(root: Any, base_url: str) -> list[dict[str, Any]]:
    """Top-level items (itemscope without itemprop), as {type, id, properties}."""
    document = _Document(root)
    return [
        _item(element, base_url, 0, document)
        for element in root.iter()
        if isinstance(element.tag, str)
        and element.get("itemscope") is not None
        and element.get("itemprop") is None
    ]


class _Document:
    """What `itemref` needs of the page, built only when an item uses it: elements by id
    (the first of an id wins, as getElementById) and the tree order."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self._ids: dict[str, Any] | None = None
        self._order: dict[Any, int] | None = None

    def by_id(self, name: str) -> Any:
        if self._ids is None:
            self._ids = {}
            for element in self.root.iter():
                if isinstance(element.tag, str) and element.get("id") is not None:
                    self._ids.setdefault(element.get("id"), element)
        return self._ids.get(name)

    def order(self, element: Any) -> int:
        if self._order is None:
            self._order = {e: n for n, e in enumerate(self.root.iter())}
        return self._order.get(element, -1)


def _item(element: Any, base_url: str, depth: int, document: _Document) -> dict[str, Any]:
    item: dict[str, Any] = {}
    types = (element.get("itemtype") or "").split()
    if types:
        item["type"] = types[0] if len(types) == 1 else types
    if element.get("itemid"):
        item["id"] = web_url(element.get("itemid").strip(), base_url) or ""
    properties: dict[str, Any] = {}
    for prop in _properties(element, document):
        value: Any
        if prop.get("itemscope") is not None:
            value = _item(prop, base_url, depth + 1, document) if depth < MAX_ITEM_DEPTH else None
        else:
            value = _value(prop, base_url)
        for name in (prop.get("itemprop") or "").split():
            properties.setdefault(name, []).append(value)
    item["properties"] = {k: v[0] if len(v) == 1 else v for k, v in properties.items()}
    return item


def _properties(scope: Any, document: _Document) -> list[Any]:
    """The HTML standard's "properties of an item": elements with itemprop under `scope` and
    under the elements its `itemref` names, not descending into nested items, each once
    (an itemref loop, or one back to the item itself, is cut), in tree order."""
    pending = [c for c in scope if isinstance(c.tag, str)]
    refs = (scope.get("itemref") or "").split()
    pending += [e for e in map(document.by_id, refs) if e is not None]
    found: list[Any] = []
    memory = {scope}
    stack = list(reversed(pending))
    while stack:
        element = stack.pop()
        if element in memory:  # a microdata error: seen already (an itemref loop)
            continue
        memory.add(element)
        if element.get("itemscope") is None:
            stack.extend(reversed([c for c in element if isinstance(c.tag, str)]))
        if element.get("itemprop") is not None:
            found.append(element)
    if refs:
        found.sort(key=document.order)
    return found


def _value(element: Any, base_url: str) -> str:
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if tag in URL_ATTRS:
        raw = element.get(URL_ATTRS[tag])
        return (web_url(raw.strip(), base_url) or "") if raw else ""
    if tag in VALUE_ATTRS and element.get(VALUE_ATTRS[tag]) is not None:
        return str(element.get(VALUE_ATTRS[tag]))
    return " ".join("".join(element.itertext()).split())
