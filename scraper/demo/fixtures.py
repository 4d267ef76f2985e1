"""Demo pages for the extraction rules: shop products and news articles, with what
config/shop.yaml and config/news.yaml must extract from each.

`/shop/product/<i>` and `/news/<i>` on the demo site. Each page is the same bytes on every run
(seeded by `i`) and varies the way real pages do: three price formats, relative and absolute
image URLs, a spec table, JSON-LD, OpenGraph, microdata, and now and then a page without a
required field or a price. No network here; demo.py serves these bytes.
"""

from __future__ import annotations

import html
import json
import random
from typing import Any

ADJECTIVES = ["Copper", "Walnut", "Linen", "Granite", "Velvet", "Cedar", "Amber", "Slate"]
NOUNS = ["Kettle", "Lamp", "Chair", "Backpack", "Teapot", "Clock", "Blanket", "Bicycle"]
TAGS = ["new", "sale", "eco", "bestseller", "gift", "limited", "café", "outdoor"]
AUTHORS = ["Ada Byron", "Grace Hopper", "Zoë Müller", "José Núñez", "Li Wei"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
NO_PRICE_EVERY, NO_PRICE_AT = 10, 9  # "Price on request": price is null, with a data problem
NO_TITLE_EVERY, NO_TITLE_AT = 25, 24  # no h1: the required title fails the record (extract)
NO_HEADLINE_EVERY, NO_HEADLINE_AT = 20, 19


def product_page(i: int) -> tuple[bytes, dict[str, Any] | None]:
    """Page bytes, and config/shop.yaml's expected `data` (None: the record must fail)."""
    rng = random.Random(i * 104_729 + 3)
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}"
    cents = rng.randint(199, 250_000)
    price_text = _price_text(i, cents)
    images = [f"/img/p{i}-{n}.jpg" if n % 2 else f"img/p{i}-{n}.jpg" for n in range(1, 2 + i % 4)]
    tags = rng.sample(TAGS, 1 + i % 3)
    specs = [
        ("Weight", f"{rng.randint(1, 90) / 10} kg"),
        ("Colour", rng.choice(["red", "blue"])),
        ("Material", rng.choice(["oak", "steel", "wool"])),
    ]
    updated = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
    in_stock = i % 3 != 0
    stock_text = "In stock" if in_stock else "Sold out"
    rating = round(1 + (i % 40) / 10, 1)
    has_title = i % NO_TITLE_EVERY != NO_TITLE_AT
    json_ld = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": name,
        "sku": f"SKU-{i:05d}",
        "offers": {"@type": "Offer", "price": f"{cents / 100:.2f}", "priceCurrency": "EUR"},
    }
    title_html = f'<h1 class="product-title">\n   {html.escape(name)}\n  </h1>' if has_title else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)} | Demo Shop</title>
<meta property="og:title" content="{html.escape(name)}">
<meta property="og:type" content="product">
<meta property="og:image" content="/img/p{i}-1.jpg">
<script type="application/ld+json">{json.dumps(json_ld)}</script>
</head><body>
<nav class="breadcrumb"><a href="/shop/">Shop</a> <a href="/shop/{tags[0]}">{tags[0]}</a></nav>
<div class="product">
{title_html}
<p class="sku">SKU: <span>SKU-{i:05d}</span></p>
<p class="price"><span class="amount">{html.escape(price_text)}</span></p>
<p class="stock" data-available="{str(in_stock).lower()}">{stock_text}</p>
<div class="rating" data-rating="{rating}">{"★" * int(rating)}</div>
{"".join(f'<img class="gallery" src="{src}" alt="">' for src in images)}
<ul class="tags">{"".join(f"<li> {html.escape(t)} </li>" for t in tags)}</ul>
<table class="specs"><thead><tr><th>Property</th><th>Value</th></tr></thead><tbody>
{"".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in specs)}
</tbody></table>
<p>Last update: <time itemprop="dateModified" datetime="{updated}">{updated}</time></p>
</div></body></html>
"""
    if not has_title:
        return page.encode(), None
    return page.encode(), {
        "title": name,
        "sku": f"SKU-{i:05d}",
        "price": None if i % NO_PRICE_EVERY == NO_PRICE_AT else cents / 100,
        "in_stock": in_stock,
        "rating": rating,
        "images": [_absolute(f"/shop/product/{i}", src) for src in images],
        "tags": tags,
        "specs": [{"Property": k, "Value": v} for k, v in specs],
        "updated": updated,
    }


def _price_text(i: int, cents: int) -> str:
    if i % NO_PRICE_EVERY == NO_PRICE_AT:
        return "Price on request"
    euros, rest = divmod(cents, 100)
    styles = [
        f"€ {euros:,}".replace(",", ".") + f",{rest:02d}",  # German: € 1.299,00
        f"${euros:,}.{rest:02d}",  # US: $1,299.00
        f"{euros}.{rest:02d} EUR",
    ]
    return styles[i % 3]


def _absolute(page_path: str, src: str) -> str:
    """The path an img src resolves to from `page_path` (the origin is added by the caller)."""
    return src if src.startswith("/") else page_path.rsplit("/", 1)[0] + "/" + src


def article_page(i: int) -> tuple[bytes, dict[str, Any] | None]:
    """Page bytes, and config/news.yaml's expected `data` (None: the record must fail)."""
    rng = random.Random(i * 7_919 + 11)
    headline = f"Report {i}: {rng.choice(ADJECTIVES)} {rng.choice(NOUNS).lower()}s are back"
    author = rng.choice(AUTHORS)
    day, month = 1 + i % 28, 1 + i % 12
    published_text = f"{day} {MONTHS[month - 1]} 2026"
    tags = rng.sample(TAGS, 2 + i % 3)
    comments = rng.randint(0, 5000)
    teams = rng.sample(["Lions", "Owls", "Foxes", "Bears"], 3)
    has_headline = i % NO_HEADLINE_EVERY != NO_HEADLINE_AT
    headline_html = (
        f'<h1 class="headline" itemprop="headline">{html.escape(headline)}</h1>'
        if has_headline
        else ""
    )
    rows = "".join(
        f"<tr><td>{team}</td><td>{10 - n}</td><td>{n}</td></tr>" for n, team in enumerate(teams)
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(headline)}</title>
<meta property="og:title" content="{html.escape(headline)}">
<meta property="og:type" content="article">
<meta property="article:tag" content="{tags[0]}">
</head><body>
<article itemscope itemtype="https://schema.org/NewsArticle">
{headline_html}
<p class="byline">By <span itemprop="author" itemscope itemtype="https://schema.org/Person">
<span itemprop="name"><a rel="author" href="/authors/{i % 5}">{html.escape(author)}</a></span>
</span>, <time class="published" itemprop="datePublished"
 datetime="2026-{month:02d}-{day:02d}">{published_text}</time></p>
<p class="summary">Summary: {html.escape(headline.split(": ", 1)[1])}.</p>
<div class="body"><p>First paragraph of report {i}.</p><p>Second   paragraph,
with a line break.</p></div>
<table class="results"><thead><tr><th>Team</th><th colspan="2">Score</th></tr></thead>
<tbody>{rows}</tbody></table>
<p class="tags">{"".join(f'<a href="/tag/{t}">{html.escape(t)}</a> ' for t in tags)}</p>
<p class="comments">{comments} comments</p>
</article></body></html>
"""
    if not has_headline:
        return page.encode(), None
    return page.encode(), {
        "headline": headline,
        "author": author,
        "published": f"2026-{month:02d}-{day:02d}",
        "summary": headline.split(": ", 1)[1],
        "body": f"First paragraph of report {i}.\nSecond paragraph, with a line break.",
        "tags": ", ".join(tags),
        "comments": comments,
        "results": [
            {"Team": team, "Score": str(10 - n), "Score_2": str(n)} for n, team in enumerate(teams)
        ],
    }


FIXTURE_PATHS = {"shop": "/shop/product/{}", "news": "/news/{}"}


def fixture_url_lines(origin: str, kind: str, count: int) -> list[bytes]:
    """The URL list of `scrape demo --site shop|news`."""
    return [f"{origin}{FIXTURE_PATHS[kind].format(i)}\n".encode() for i in range(count)]


def check_fixture_records(kind: str, origin: str, records: list[dict[str, Any]]) -> list[str]:
    """Compare records with what the example config must extract; one line per mismatch."""
    make = product_page if kind == "shop" else article_page
    problems = []
    for record in records:
        i = int(record["url"].rsplit("/", 1)[1])
        want = make(i)[1]
        if want is None:
            if record["outcome"] != "failed" or record.get("error", {}).get("kind") != "extract":
                problems.append(f"line {record['line']}: expected an extract error, got {record}")
            continue
        if "images" in want:
            want["images"] = [origin + path for path in want["images"]]
        if record["outcome"] != "ok" or record.get("data") != want:
            got = record.get("data") or record.get("error")
            problems.append(f"line {record['line']}: got {got}, want {want}")
    return problems
