"""Settings: the only home of defaults; loading and validating the YAML file.

Order of precedence: `Settings` defaults, then the YAML file, then command-line flags. Everything
is validated here, before any request is sent; a problem raises `ConfigError` whose one-line
message names the file, the line and the key. This module never touches the network.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

from scraper import __version__
from scraper.config.sites import parse_sites
from scraper.errors import ConfigError
from scraper.parse.rules import SiteRule

DEFAULT_CONFIG_PATH = Path("config/scraper.yaml")
MAX_CONFIG_BYTES = 1024 * 1024  # a settings file is a few KB; refuse to parse a 50 MB one
PARSERS = ("lxml", "bs4")
FORMATS = ("jsonl", "csv", "sqlite")
LASTMOD_CHOICES = ("trust", "ignore")


def _setting(default: Any, help: str, **rules: Any) -> Any:
    """A Settings field whose metadata drives validation, the flags and the reference docs."""
    meta = {"help": help, **rules}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every setting: YAML key = field name = flag with dashes (unit suffix `_s` dropped)."""

    threads: int = _setting(
        16, "download threads (they share the connections kept alive per host)", min=1, max=1024
    )
    processes: int = _setting(0, "parse worker processes; 0 means one per CPU core", min=0, max=256)
    connect_timeout_s: float = _setting(5.0, "seconds to open a connection", min=0.01, max=600)
    read_timeout_s: float = _setting(
        15.0, "seconds to wait for the next bytes of a response", min=0.01, max=600
    )
    page_deadline_s: float = _setting(
        30.0,
        "seconds for a whole page, first request to last byte, redirects included",
        min=0.01,
        max=3600,
    )
    max_body_bytes: int = _setting(
        5_000_000, "largest body kept, counted after decompression", min=1024, max=1 << 31
    )
    max_redirects: int = _setting(10, "redirects followed before giving up", min=0, max=100)
    user_agent: str = _setting(
        f"scraper/{__version__}", "User-Agent header sent with every request"
    )
    headers: dict[str, str] = _setting({}, "extra request headers, name: value")
    parser: str = _setting(
        "lxml", "parse engine: lxml (fast) or bs4 (BeautifulSoup)", choices=PARSERS
    )
    parse_timeout_s: float = _setting(
        20.0, "seconds one page may take to parse before its worker is replaced", min=0.1, max=3600
    )
    max_text_chars: int = _setting(
        20_000, "visible text kept per page, in characters", min=0, max=100_000_000
    )
    host_concurrency: int = _setting(2, "requests in flight to one host at most", min=1, max=1000)
    host_delay_s: float = _setting(
        0.5, "seconds between the starts of two requests to one host", min=0, max=3600
    )
    host_delay_jitter_s: float = _setting(
        0.0, "up to this many seconds added at random to each host delay", min=0, max=3600
    )
    auto_throttle: bool = _setting(
        False, "per-host delay follows the host's latency and doubles on 429/503"
    )
    obey_robots: bool = _setting(True, "fetch and obey each host's robots.txt")
    retries: int = _setting(
        2, "retries of a failed request (so attempts = retries + 1)", min=0, max=20
    )
    retry_statuses: list[int] = _setting(
        [408, 429, 500, 502, 503, 504], "HTTP statuses that are retried"
    )
    retry_backoff_s: float = _setting(
        1.0, "first retry waits about this long, then 2x, 4x... (with jitter)", min=0, max=600
    )
    max_retry_wait_s: float = _setting(
        60.0, "cap on one retry's wait, Retry-After included", min=0, max=86400
    )
    proxy: str = _setting(
        "",
        "proxy URL (http://[user:password@]host:port) for http and https URLs (CONNECT); "
        "empty: HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment",
    )
    verify_tls: bool = _setting(
        True, "verify TLS certificates; false accepts any (one warning per run): testing only"
    )
    ca_bundle: str = _setting(
        "", "PEM file of the CA certificates to trust (a private CA); empty: requests' bundle"
    )
    system_ca: bool = _setting(
        False,
        "trust the system's CA store (as curl --ca-native) instead of requests' bundle; "
        "ca_bundle, when given, wins",
    )
    block_private_addresses: bool = _setting(
        False, "refuse URLs and redirects to loopback, private, link-local or metadata addresses"
    )
    max_pending_urls: int = _setting(
        10_000, "URLs read ahead and waiting for their host's turn", min=1, max=10_000_000
    )
    sitemaps: list[str] = _setting(
        [],
        "sitemap URLs (sitemaps.org; indexes and .xml.gz too) whose pages are fetched as well "
        "as the list's; --sitemap URL, repeatable",
    )
    sitemaps_from_robots: bool = _setting(
        False, "also read the sitemaps named by each listed host's robots.txt (Sitemap: lines)"
    )
    sitemap_lastmod: str = _setting(
        "trust",
        "trust: a sitemap URL whose <lastmod> is not newer than its last fetch is not "
        "requested (recorded unchanged); ignore: fetch it anyway (some sites' lastmod lies)",
        choices=LASTMOD_CHOICES,
    )
    max_urls: int = _setting(
        100_000,
        "discovered URLs (sitemaps, follow rules) queued in one run at most",
        min=1,
        max=1_000_000_000,
    )
    max_failure_ratio: float = _setting(
        0.0, "exit 1 only when more than this share of URL lines failed", min=0, max=1
    )
    output_dir: str = _setting("output", "folder for result files")
    state_file: str = _setting(
        "", "sqlite3 state (validators, run history, lock); empty: <output_dir>/state.sqlite"
    )
    changed_only: bool = _setting(False, "write records only for new and changed pages")
    max_run_time_s: float = _setting(
        0.0,
        "end the run after this many seconds, as SIGTERM would but at once: pages in flight "
        "cut, every line recorded, exit 124; 0: no limit",
        min=0,
        max=10_000_000,
    )
    keep_runs: int = _setting(
        0, "keep the newest N runs' files and delete older ones; 0: all", min=0, max=1_000_000
    )
    log_file: str = _setting("", "also log, with times, to this file (rotated by size)")
    log_max_bytes: int = _setting(
        10_000_000, "rotate log_file at this size (3 kept)", min=10_000, max=1 << 40
    )
    metrics_file: str = _setting(
        "", "write the run's figures here in Prometheus text format (node_exporter textfile)"
    )
    format: str = _setting(
        "jsonl",
        "record format: jsonl, csv, or sqlite (JSON lines plus a table upserted by URL)",
        choices=FORMATS,
    )
    sites: tuple[SiteRule, ...] = _setting(
        (), "per-site field rules (YAML only; see config/shop.yaml)", flag=False
    )
    structured_data: bool = _setting(
        False, "add the page's JSON-LD, OpenGraph and microdata to each record"
    )
    save_html: bool = _setting(False, "save each fetched page's HTML under <output_dir>/html/")
    cluster: str = _setting(
        "", "run on Dask: a scheduler address (tcp://host:8786) or local:N; empty: here"
    )
    quiet: bool = _setting(
        False,
        "for cron: nothing on stderr while all is well; a run that exits non-zero prints its "
        "summary and first failures",
    )
    # Not a setting: where each setting that was given came from ("config/x.yaml:3",
    # "command line: --output-dir"), for problems found after loading (the output folder's).
    origins: dict[str, str] = field(
        default_factory=dict, compare=False, repr=False, metadata={"setting": False}
    )
    # Not a setting either: the settings file this run read ("" for none), for the summary.
    config_file: str = field(default="", compare=False, metadata={"setting": False})

    def discovers(self) -> bool:
        """Whether the run finds URLs besides the list's: sitemaps or follow rules."""
        return bool(
            self.sitemaps or self.sitemaps_from_robots or any(site.follow for site in self.sites)
        )

    def effective_processes(self) -> int:
        """`processes`, with 0 resolved to the number of usable CPU cores."""
        return self.processes or usable_cores()


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


SETTING_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f for f in dataclasses.fields(Settings) if f.metadata.get("setting", True)
}


def flag_name(name: str) -> str:
    """The command-line flag of a setting: dashes, and the `_s` unit suffix dropped."""
    if name == "sitemaps":  # one URL a flag, repeatable
        return "--sitemap"
    base = name[:-2] if name.endswith("_s") else name
    return "--" + base.replace("_", "-")


def build_settings(path: Path | None, overrides: Mapping[str, Any]) -> Settings:
    """Defaults, then the YAML file at `path` (if any), then `overrides` (flags already typed)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        values.update(load_yaml_settings(path, origins))
    for name, value in overrides.items():
        origins[name] = "command line: " + flag_name(name)
        values[name] = check_value(name, value, where=origins[name])
    return Settings(**values, origins=origins, config_file=str(path) if path else "")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The settings file when -c is not given: $SCRAPER_CONFIG (a file it names must exist:
    reading it is then a config error), else ./config/scraper.yaml, else
    $XDG_CONFIG_HOME/scraper/config.yaml (~/.config/scraper/config.yaml when the variable is
    unset or not an absolute path, as the XDG spec says), the first that is set or exists."""
    env = os.environ if environ is None else environ
    if env.get("SCRAPER_CONFIG"):
        return Path(env["SCRAPER_CONFIG"])
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")  # falls back to the password database without HOME
        if home == "~":
            return None
        base = os.path.join(home, ".config")
    user = Path(base) / "scraper" / "config.yaml"
    return user if user.is_file() else None


def load_yaml_settings(path: Path, origins: dict[str, str] | None = None) -> dict[str, Any]:
    """Read, parse and validate one settings file; raises ConfigError naming file, line and key.
    `origins` gets `file:line` of each setting."""
    import yaml  # here, not at the top: parse workers import this module and never need it

    text = _read_config_text(path)
    root = _compose(path, text)
    if root is None:
        raise ConfigError(f"{path}: empty settings file; expected a mapping of settings")
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{_line(root)}: expected a mapping of settings at top level")
    _reject_aliases(path, root)
    loader = yaml.SafeLoader("")
    values: dict[str, Any] = {}
    for key_node, value_node in root.value:
        where = f"{path}:{_line(key_node)}"
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigError(f"{where}: setting names must be plain strings")
        key = key_node.value
        if key in values:
            raise ConfigError(f"{where}: {key}: duplicate setting")
        if key not in SETTING_FIELDS:
            raise ConfigError(f"{where}: {key}: unknown setting{_hint(key)}")
        if origins is not None:
            origins[key] = where
        if key == "sites":  # validated node by node, so that messages name site, field, line
            values[key] = parse_sites(path, value_node)
            continue
        try:
            value = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: {key}: {_problem(exc)}") from None
        values[key] = check_value(key, value, where=f"{where}: {key}")
    return values


def check_value(name: str, value: Any, where: str) -> Any:
    """Type- and range-check one setting's value; returns it (ints widened to float)."""
    spec = SETTING_FIELDS[name]
    kind = _type_of(spec)
    value = _check_type(kind, value, where)
    rules = spec.metadata
    if "choices" in rules and value not in rules["choices"]:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(rules['choices'])}")
    if "min" in rules and value < rules["min"]:
        raise ConfigError(f"{where}: {value!r} is below the minimum {rules['min']}")
    if "max" in rules and value > rules["max"]:
        raise ConfigError(f"{where}: {value!r} is above the maximum {rules['max']}")
    if name == "headers":
        _check_headers(value, where)
    if name == "retry_statuses":
        value = _check_statuses(value, where)
    if name == "sitemaps":
        value = _check_sitemaps(value, where)
    if name == "ca_bundle" and value:
        _check_ca_bundle(value, where)
    if name == "proxy" and value and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: expected an http:// or https:// proxy URL")
    return value


def _check_sitemaps(value: list[Any], where: str) -> list[str]:
    from scraper.urls import InvalidUrl, normalize_url

    urls = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: {item!r}: expected a sitemap URL")
        try:
            urls.append(normalize_url(item.strip()))
        except InvalidUrl as exc:
            raise ConfigError(f"{where}: {item.strip()[:100]}: {exc}") from None
    return list(dict.fromkeys(urls))


def _check_ca_bundle(path: str, where: str) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: cannot read: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise ConfigError(f"{where}: {path}: no PEM certificate in it")


def _type_of(spec: dataclasses.Field[Any]) -> type:
    names = {
        "int": int,
        "float": float,
        "str": str,
        "bool": bool,
        "dict[str, str]": dict,
        "list[int]": list,
        "list[str]": list,
    }
    return names[str(spec.type)]


def _check_type(kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool):
        hint = "; quote it if you mean text" if kind is str else ""
        raise ConfigError(f"{where}: expected {kind.__name__}, got a boolean{hint}")
    if kind is float and isinstance(value, int):
        return float(value)
    if kind is float and isinstance(value, float) and value != value:
        raise ConfigError(f"{where}: expected a number, got NaN")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _check_headers(value: dict[Any, Any], where: str) -> None:
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ConfigError(f"{where}: header names and values must be strings ({name!r})")
        if not name or any(c in name for c in ":\r\n ") or any(c in text for c in "\r\n"):
            raise ConfigError(f"{where}: invalid header {name!r}")


def _check_statuses(value: list[Any], where: str) -> list[int]:
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError(f"{where}: {status!r} is not an HTTP status (100-599)")
    return sorted(set(value))


def _read_config_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: settings file over {MAX_CONFIG_BYTES} bytes; refusing to parse")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: settings file is not UTF-8") from None


def _compose(path: Path, text: str) -> yaml.Node | None:
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def _reject_aliases(path: Path, root: yaml.Node) -> None:
    """Aliases (`*name`) make a node appear twice: refused, which also defuses alias bombs."""
    import yaml

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise ConfigError(f"{path}:{_line(node)}: YAML aliases are not supported in settings")
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    return " ".join(str(problem).split())


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, SETTING_FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
