"""Extraction rules from the YAML `sites` list: what they may say, and their validation.

The rules are plain frozen data (parse/rules.py; they pickle into parse workers once);
compiling and running them is parse/extract.py's job. Everything a worker could trip on is
checked here, before any request: each selector is compiled and run once on a tiny document,
each regex compiled, each default converted to its field's type. A problem raises
ConfigError naming the file, the YAML line, the site and the field.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scraper.errors import ConfigError
from scraper.parse.rules import FieldRule, FollowRule, SiteRule

if TYPE_CHECKING:
    import yaml

TYPES = ("string", "int", "float", "date", "url", "table", "bool")
FIELD_OPTIONS = (
    "css",
    "xpath",
    "attr",
    "all",
    "required",
    "default",
    "type",
    "strip",
    "regex",
    "join",
    "format",
)
SITE_KEYS = ("name", "match", "fields", "follow", "max_depth", "same_host")
FOLLOW_KINDS = ("css", "xpath", "regex")
MAX_DEPTH = 1000
MATCH_KINDS = ("glob", "host", "regex")
# Scrapy-style pseudo-elements, accepted at the end of a CSS selector: `h1::text`, `a::attr(href)`.
_PSEUDO_ELEMENT = re.compile(r"::(text|attr\(\s*([^)\s]+)\s*\))\s*$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9\-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]*[a-z0-9])?)*$")


def parse_sites(path: Path, node: yaml.Node) -> tuple[SiteRule, ...]:
    """The `sites` setting from its YAML node; raises ConfigError."""
    import yaml

    where = f"{path}:{_line(node)}: sites"
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise ConfigError(f"{where}: expected a list of sites (each with name, match, fields)")
    sites = []
    names: set[str] = set()
    for index, site_node in enumerate(node.value):
        site = _parse_site(path, index, site_node)
        if site.name in names:
            raise ConfigError(f"{path}:{_line(site_node)}: site {site.name}: duplicate site name")
        names.add(site.name)
        sites.append(site)
    return tuple(sites)


def _parse_site(path: Path, index: int, node: yaml.Node) -> SiteRule:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{_line(node)}: sites[{index}]: expected a mapping")
    entries = _mapping(path, node, f"sites[{index}]", SITE_KEYS)
    name_value = _construct(path, entries, "name", f"sites[{index}]")
    name = name_value if name_value is not None else f"site{index + 1}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}:{_line(node)}: sites[{index}]: name: expected text")
    label = f"site {name}"
    if "match" not in entries:
        raise ConfigError(f"{path}:{_line(node)}: {label}: match: missing (a glob, host or regex)")
    kind, pattern = _parse_match(path, entries["match"][1], label)
    follow = _parse_follow(path, entries, label)
    max_depth = _construct(path, entries, "max_depth", label)
    same_host = _construct(path, entries, "same_host", label)
    where = f"{path}:{_line(node)}: {label}"
    if max_depth is None:
        max_depth = 1
    elif isinstance(max_depth, bool) or not isinstance(max_depth, int):
        raise ConfigError(f"{where}: max_depth: expected a whole number, got {max_depth!r}")
    elif not 0 <= max_depth <= MAX_DEPTH:
        raise ConfigError(f"{where}: max_depth: {max_depth} is not between 0 and {MAX_DEPTH}")
    if same_host is None:
        same_host = True
    elif not isinstance(same_host, bool):
        raise ConfigError(f"{where}: same_host: expected true or false, got {same_host!r}")
    if ("max_depth" in entries or "same_host" in entries) and not follow:
        raise ConfigError(f"{where}: max_depth and same_host need follow: (selectors or regexes)")
    if "fields" not in entries and follow:  # a site that only says which links to follow
        return SiteRule(name.strip(), kind, pattern, (), follow, max_depth, same_host)
    if "fields" not in entries:
        raise ConfigError(f"{path}:{_line(node)}: {label}: fields: missing")
    fields_node = entries["fields"][1]
    if not isinstance(fields_node, yaml.MappingNode) or not fields_node.value:
        where = f"{path}:{_line(fields_node)}: {label}: fields"
        raise ConfigError(f"{where}: expected a mapping of field names to rules")
    fields = []
    seen: set[str] = set()
    for key_node, value_node in fields_node.value:
        field_name = key_node.value if isinstance(key_node, yaml.ScalarNode) else ""
        field_label = f"{label}: field {field_name}"
        where = f"{path}:{_line(key_node)}: {field_label}"
        if not _FIELD_NAME.match(field_name):
            raise ConfigError(f"{where}: a field name is letters, digits, _ . - (no digit first)")
        if field_name in seen:
            raise ConfigError(f"{where}: duplicate field")
        seen.add(field_name)
        fields.append(_parse_field(path, field_name, value_node, field_label))
    return SiteRule(name.strip(), kind, pattern, tuple(fields), follow, max_depth, same_host)


def _parse_follow(
    path: Path, entries: dict[str, tuple[yaml.Node, yaml.Node]], label: str
) -> tuple[FollowRule, ...]:
    """`follow:` a selector or a list of them: a string is CSS; {xpath: ...}, {regex: ...}."""
    import yaml

    if "follow" not in entries:
        return ()
    node = entries["follow"][1]
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    rules = []
    for item in items:
        where = f"{path}:{_line(item)}: {label}: follow"
        if isinstance(item, yaml.ScalarNode) and item.tag == "tag:yaml.org,2002:str":
            kind, pattern = "css", item.value
        elif (
            isinstance(item, yaml.MappingNode)
            and len(item.value) == 1
            and isinstance(item.value[0][1], yaml.ScalarNode)
        ):
            kind, pattern = item.value[0][0].value, item.value[0][1].value
            if kind not in FOLLOW_KINDS:
                raise ConfigError(
                    f"{where}: {kind!r}: expected css, xpath or regex{_hint(kind, FOLLOW_KINDS)}"
                )
        else:
            raise ConfigError(f"{where}: expected a CSS selector, {{xpath: ...}} or {{regex: ...}}")
        if not pattern.strip():
            raise ConfigError(f"{where}: empty {kind}")
        attr = None
        if kind == "css":
            pattern, attr = _split_pseudo_element(pattern, None, where)
            check_css(pattern, where)
        elif kind == "xpath":
            check_xpath(pattern, where)
        else:
            _compile_regex(pattern, where)
        rules.append(FollowRule(kind, pattern, attr))
    if not rules:
        raise ConfigError(f"{path}:{_line(node)}: {label}: follow: empty list")
    return tuple(rules)


def _parse_match(path: Path, node: yaml.Node, label: str) -> tuple[str, str]:
    import yaml

    where = f"{path}:{_line(node)}: {label}: match"
    if isinstance(node, yaml.ScalarNode):
        kind, pattern = "glob", node.value
    elif isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        kind, pattern = node.value[0][0].value, node.value[0][1].value
        if kind not in MATCH_KINDS or not isinstance(pattern, str):
            raise ConfigError(f"{where}: expected a glob, {{host: NAME}} or {{regex: PATTERN}}")
    else:
        raise ConfigError(f"{where}: expected a glob, {{host: NAME}} or {{regex: PATTERN}}")
    if not pattern or not pattern.strip():
        raise ConfigError(f"{where}: empty pattern")
    if kind == "regex":
        _compile_regex(pattern, where)
    if kind == "host" and not _HOST.match(pattern.lower()):
        raise ConfigError(f"{where}: {pattern!r} is not a host name (such as shop.example.com)")
    return kind, pattern


def _parse_field(path: Path, name: str, node: yaml.Node, label: str) -> FieldRule:
    import yaml

    where = f"{path}:{_line(node)}: {label}"
    if isinstance(node, yaml.ScalarNode):  # shorthand: `title: h1.product-title`
        options: dict[str, Any] = {"css": node.value}
    elif isinstance(node, yaml.MappingNode):
        entries = _mapping(path, node, label, FIELD_OPTIONS)
        options = {key: _construct(path, entries, key, label) for key in entries}
    else:
        raise ConfigError(f"{where}: expected a CSS selector or a mapping of options")
    return check_field(name, options, where)


def check_field(name: str, options: dict[str, Any], where: str) -> FieldRule:
    """A FieldRule from its options, every one checked; raises ConfigError naming `where`."""
    if ("css" in options) == ("xpath" in options):
        raise ConfigError(f"{where}: give exactly one of css or xpath")
    for key in ("css", "xpath", "attr", "regex", "join", "format"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise ConfigError(f"{where}: {key}: expected non-empty text")
    for key in ("all", "required"):
        if key in options and not isinstance(options[key], bool):
            raise ConfigError(f"{where}: {key}: expected true or false")
    kind = options.get("type", "string")
    if kind not in TYPES:
        choices = ", ".join(TYPES)
        raise ConfigError(
            f"{where}: type: {kind!r} is not one of {choices}{_hint(str(kind), TYPES)}"
        )
    strip = options.get("strip", True)
    if not isinstance(strip, (bool, str)):
        raise ConfigError(f"{where}: strip: expected true, false or the characters to strip")
    css, attr = options.get("css"), options.get("attr")
    if css is not None:
        css, attr = _split_pseudo_element(css, attr, where)
        check_css(css, where)
    else:
        check_xpath(options["xpath"], where)
    regex = options.get("regex")
    if regex is not None and _compile_regex(regex, f"{where}: regex").groups > 1:
        raise ConfigError(f"{where}: regex: use at most one group (the value taken)")
    _check_combination(kind, attr, options, where)
    rule = FieldRule(
        name=name,
        css=css,
        xpath=options.get("xpath"),
        attr=attr,
        all=options.get("all", False),
        required=options.get("required", False),
        type=kind,
        strip=strip,
        regex=options.get("regex"),
        join=options.get("join"),
        format=options.get("format"),
        where=where,
    )
    if options.get("default") is not None:
        rule = _with_default(rule, options["default"], where)
    return rule


def _check_combination(kind: str, attr: str | None, options: dict[str, Any], where: str) -> None:
    if kind == "table" and (attr or options.get("regex") or options.get("join")):
        raise ConfigError(f"{where}: type table takes no attr, regex or join (a table is rows)")
    if options.get("join") is not None and not options.get("all"):
        raise ConfigError(f"{where}: join needs all: true (it joins the matches into one text)")
    if options.get("join") is not None and kind != "string":
        raise ConfigError(f"{where}: join makes text; it cannot be combined with type {kind}")
    if options.get("format") is not None and kind != "date":
        raise ConfigError(f"{where}: format is for type date only")
    if options.get("required") and "default" in options:
        raise ConfigError(f"{where}: a required field has no default (pick one)")


def _with_default(rule: FieldRule, default: Any, where: str) -> FieldRule:
    from dataclasses import replace

    from scraper.parse.values import ValueProblem, convert

    values = default if isinstance(default, list) else [default]
    if rule.type == "table" or (isinstance(default, list) and not rule.all):
        raise ConfigError(f"{where}: default: a list default needs all: true; tables take none")
    try:
        typed = tuple(
            v if rule.type == "string" and isinstance(v, str) else convert(rule, str(v), "")
            for v in values
        )
    except ValueProblem as exc:
        raise ConfigError(f"{where}: default: {exc}") from None
    return replace(rule, default=typed if rule.all else typed[0])


def _split_pseudo_element(css: str, attr: str | None, where: str) -> tuple[str, str | None]:
    match = _PSEUDO_ELEMENT.search(css)
    if not match:
        return css, attr
    if attr is not None:
        raise ConfigError(f"{where}: css ends in ::{match.group(1)} and attr is also given")
    css = css[: match.start()].strip() or "*"
    return css, match.group(2)  # None for ::text


def check_css(css: str, where: str) -> None:
    """Compile `css` as parse/extract.py will, and run it on a tiny page; raises ConfigError."""
    from scraper.parse.extract import SelectorProblem, compile_css, probe

    try:
        probe(compile_css(css))
    except SelectorProblem as exc:
        raise ConfigError(f"{where}: css {css!r}: {exc}") from None


def check_xpath(xpath: str, where: str) -> None:
    from scraper.parse.extract import SelectorProblem, compile_xpath, probe

    try:
        probe(compile_xpath(xpath))
    except SelectorProblem as exc:
        raise ConfigError(f"{where}: xpath {xpath!r}: {exc}") from None


def _compile_regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: invalid regex {pattern!r}: {exc}") from None


def _mapping(
    path: Path, node: yaml.MappingNode, label: str, allowed: tuple[str, ...]
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    import yaml

    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        at = f"{path}:{_line(key_node)}: {label}"
        if key not in allowed:
            raise ConfigError(
                f"{at}: unknown option {key!r}{_hint(str(key), allowed)}; "
                f"expected one of {', '.join(allowed)}"
            )
        if key in entries:
            raise ConfigError(f"{at}: {key}: given twice")
        entries[key] = (key_node, value_node)
    return entries


def _construct(
    path: Path, entries: dict[str, tuple[yaml.Node, yaml.Node]], key: str, label: str
) -> Any:
    import yaml

    if key not in entries:
        return None
    try:
        return yaml.SafeLoader("").construct_object(entries[key][1], deep=True)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:{_line(entries[key][0])}: {label}: {key}: {exc}") from None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _hint(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
