"""The HTML trees of a page: one lxml parser per process, and Document, which builds the
lxml and BeautifulSoup trees of a page on demand."""

from __future__ import annotations

from typing import Any

_PARSER: Any = None


def html_parser() -> Any:
    """One lxml HTML parser per process (parsers are reusable, not thread-safe)."""
    global _PARSER
    if _PARSER is None:
        from lxml import etree

        _PARSER = etree.HTMLParser(remove_comments=False, remove_pis=True)
    return _PARSER


class Document:
    """One page's text, and the trees built from it on demand (lxml, BeautifulSoup)."""

    def __init__(self, text: str, root: Any = None, soup: Any = None) -> None:
        self.text, self._root, self._soup = text, root, soup

    def root(self) -> Any:
        if self._root is None:
            from lxml import etree

            self._root = etree.fromstring(self.text, html_parser())
        return self._root

    def soup(self) -> Any:
        if self._soup is None:
            from bs4 import BeautifulSoup

            self._soup = BeautifulSoup(self.text, "lxml")
        return self._soup
