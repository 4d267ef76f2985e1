"""scraper: a concurrent web scraper for the command line."""

__version__ = "0.1.0"
