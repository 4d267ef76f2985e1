"""One command-line flag per setting (`--threads`, `--page-deadline`, `-o/--output-dir`...),
named after its Settings field, and the Settings built from a settings file and the flags.
Shared by `scrape URLS` and `scrape demo`."""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any, NoReturn

from scraper.config.settings import (
    SETTING_FIELDS,
    Settings,
    build_settings,
    default_config_path,
    flag_name,
)
from scraper.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse as every scrape command uses it: no abbreviated flags (`--wait 1`, wget's
    pause, is not `--wait-lock 1`), and a did-you-mean for a flag it does not know."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        unknown = re.search(r"unrecognized arguments: (--[^\s=]+)", message)
        if unknown:
            flags = [flag for action in self._actions for flag in action.option_strings]
            close = difflib.get_close_matches(unknown.group(1), flags, n=1, cutoff=0.6)
            if close:
                message += f" (did you mean {close[0]}?)"
        super().error(message)


def add_setting_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per Settings field (but those in `skip`): `--threads`, `-o/--output-dir`..."""
    group = parser.add_argument_group("settings (each also a key in the YAML file)")
    short = {"output_dir": ["-o"], "quiet": ["-q"], "threads": ["-t"], "processes": ["-p"]}
    # Names wget and curl users reach for, where the meaning is the same.
    short |= {"user_agent": ["-U"]}
    aliases = {"host_delay_s": ["--wait"]}
    for name, spec in SETTING_FIELDS.items():
        if spec.metadata.get("flag") is False or name in skip:
            continue
        names = [*short.get(name, []), flag_name(name), *aliases.get(name, [])]
        help_text = f"{spec.metadata['help']} (default: {_shown_default(spec)})"
        kind = str(spec.type)
        if name == "quiet":  # -q: the setting; -qq: not even a failed run's report
            group.add_argument(
                *names,
                dest=name,
                action="count",
                default=None,
                help=f"{help_text}; -qq: nothing at all",
            )
        elif kind == "bool":  # --obey-robots / --no-obey-robots
            group.add_argument(
                *names,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif name == "sitemaps":
            group.add_argument(
                "--sitemap",
                dest=name,
                action="append",
                default=None,
                metavar="URL",
                help=f"{spec.metadata['help'].split(';')[0]}; repeatable; then the list may be "
                "left out",
            )
        elif kind == "list[int]":
            group.add_argument(
                *names, dest=name, type=_int_list, default=None, metavar="N,N,...", help=help_text
            )
        elif kind == "dict[str, str]":
            group.add_argument(
                "-H",
                "--header",
                dest=name,
                action="append",
                default=None,
                metavar="'NAME: VALUE'",
                help="extra request header (repeatable)",
            )
        else:
            metavar = (
                "|".join(spec.metadata["choices"])
                if "choices" in spec.metadata
                else (
                    "SECONDS"
                    if name.endswith("_s")
                    else {"int": "N", "float": "X"}.get(kind, "TEXT")
                )
            )
            group.add_argument(
                *names,
                dest=name,
                default=None,
                metavar=metavar,
                type={"int": int, "float": float}.get(kind, str),
                help=help_text,
            )

    group.add_argument(
        "-T",
        "--timeout",
        dest="timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="connect_timeout_s and read_timeout_s together (as wget -T), unless given apart",
    )


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def _shown_default(spec: Any) -> str:
    if callable(spec.default_factory):
        value = spec.default_factory()
        return ",".join(map(str, value)) if isinstance(value, list) else str(value or "none")
    return str(spec.default) if spec.default != "" else "none"


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the config file and the flags; raises ConfigError."""
    overrides: dict[str, Any] = {}
    timeout = getattr(args, "timeout", None)
    if timeout is not None:
        overrides = {"connect_timeout_s": timeout, "read_timeout_s": timeout}
    for name in SETTING_FIELDS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "headers":
            value = _parse_headers(value)
        if name == "quiet":
            value = bool(value)
        overrides[name] = value
    path = args.config if args.config is not None else default_config_path()
    return build_settings(path, overrides)


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for text in values:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"command line: --header {text!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers
