"""`scrape completion bash|zsh|fish` and `scrape man`: shell completion and a man page, both
from the same parsers as --help, so they never fall behind the flags.

Completion is argcomplete's (bash, zsh and fish from one library): the shell script it prints
calls `scrape` back with _ARGCOMPLETE set, and `complete()` answers from the parser of the
command being typed. The man page is argparse-manpage's rendering of every command's parser.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from scraper import __version__
from scraper.config.flags import Parser

SHELLS = ("bash", "zsh", "fish")


def commands() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    """Each sub-command's parser builder (imported late: --help must stay quick)."""
    from scraper.commands.bench import bench_parser
    from scraper.commands.demo import demo_parser
    from scraper.commands.history import history_parser
    from scraper.commands.tryout import check_parser, try_parser

    return {
        "demo": demo_parser,
        "bench": bench_parser,
        "history": lambda: history_parser("history"),
        "report": lambda: history_parser("report"),
        "check": check_parser,
        "try": try_parser,
        "completion": completion_parser,
        "man": man_parser,
    }


def completion_parser() -> Parser:
    parser = Parser(
        prog="scrape completion",
        description="Print the shell code that completes scrape's commands, flags and files. "
        'bash: eval "$(scrape completion bash)" in ~/.bashrc; zsh: the same in ~/.zshrc; '
        "fish: scrape completion fish > ~/.config/fish/completions/scrape.fish",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return parser


def man_parser() -> Parser:
    return Parser(
        prog="scrape man",
        description="Print scrape's manual page (roff): scrape man | man -l -  ; or save it as "
        "scrape.1 under a man1 folder of your MANPATH.",
    )


def run_completion(argv: Sequence[str], out: TextIO) -> int:
    import argcomplete

    args = completion_parser().parse_args(argv)
    out.write(argcomplete.shellcode(["scrape"], shell=args.shell))
    return 0


def run_man(
    argv: Sequence[str], out: TextIO, main_parser: Callable[[], argparse.ArgumentParser]
) -> int:
    """The page: `main_parser()` (cli's, given to keep commands/ below cli), then each
    command's options."""
    from argparse_manpage.manpage import Manpage

    man_parser().parse_args(argv)
    main = main_parser()
    subs = main.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name, build in commands().items():
        parser = build()
        subs.add_parser(
            name,
            parents=[parser],
            add_help=False,
            help=parser.description,
            description=parser.description,
            epilog=parser.epilog,
        )
    data = {
        "name": "scrape",
        "description": "a concurrent web scraper for the command line",
        "project_name": "scraper",
        "version": __version__,
    }
    out.write(str(Manpage(main, _data=data)))
    return 0


def complete(main: Callable[[], argparse.ArgumentParser]) -> None:
    """Answer the shell's completion request (_ARGCOMPLETE is set) and exit: the parser of
    the command on the line, with that word taken off the line argcomplete reads; for
    `scrape URL|LIST`, file names and the commands' names."""
    import argcomplete
    from argcomplete.completers import FilesCompleter

    line = os.environ.get("COMP_LINE", "")
    point = int(os.environ.get("COMP_POINT", len(line)))
    words = line[:point].split()
    builders = commands()
    typing_first = len(words) < 2 or (len(words) == 2 and not line[:point].endswith(" "))
    if not typing_first and words[1] in builders:
        parser = builders[words[1]]()
        cut = line.index(words[1]) + len(words[1])
        os.environ["COMP_LINE"] = line[: line.index(words[1])] + line[cut:].lstrip()
        os.environ["COMP_POINT"] = str(point - (len(line) - len(os.environ["COMP_LINE"])))
    else:
        parser = main()
        files = FilesCompleter()

        def urls_or_commands(prefix: str, **_: Any) -> list[str]:
            names = [name for name in builders if name.startswith(prefix)] if typing_first else []
            return names + list(files(prefix))

        for action in parser._actions:
            if action.dest == "urls":
                action.completer = urls_or_commands  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser)
