"""`python -m scraper` is the same as the `scrape` command."""

import sys

from scraper.cli import main

if __name__ == "__main__":
    sys.exit(main())
