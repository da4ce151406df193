"""Markup: the report as blocks, and how they become report.md and report.html.

A section is a list of blocks: a `str` is one line of a small Markdown subset (`#` headings,
`- ` items, paragraphs with `code`), a DataFrame is a table and a `Figure` an image (HTML
only: report.md keeps to the numbers). The text helpers below format a table cell the same
way in every section.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import TypeAlias

import pandas as pd


@dataclass(frozen=True)
class Figure:
    png: bytes | None  # None: nothing to plot, and the section says why in words instead
    alt: str  # the title drawn in the image, so a reader of the HTML (and a test) sees what it shows
    caption: str = ""  # above the image, so it is read with this figure and not the next


Block: TypeAlias = str | pd.DataFrame | Figure


def mean_sd(values: pd.Series, digits: int) -> str:
    """'0.712 ± 0.004' over seeds, the value alone for one seed, '–' for none."""
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def number(value: float, spec: str) -> str:
    """`value` formatted by `spec`, or '–' where it is missing."""
    return "–" if pd.isna(value) else format(value, spec)


def plural(n: int, noun: str) -> str:
    """'1 cell', '3 cells'."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(_markdown_cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _markdown_cell(value) -> str:
    """A table cell as text: names come from the user (a corpus is any folder path), so a `<`
    or `&` must not become HTML where the Markdown is rendered, nor a `|` a new column."""
    return html.escape(str(value), quote=False).replace("|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    """report.md: it keeps to the numbers; the figures are in report.html."""
    return "\n".join(_markdown(b) if isinstance(b, pd.DataFrame) else b for b in blocks if not isinstance(b, Figure))


def anchor(heading: str) -> str:
    """The `#fragment` GitHub gives a Markdown heading: lower case, punctuation dropped, spaces
    to hyphens. report.html gives its headings the same ids, so one link serves both files."""
    return "#" + re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def contents(blocks: list[Block]) -> list[Block]:
    """A table of contents of the `## ` sections among `blocks`: one linked item each (the
    heading up to its first parenthesis or colon), to the ids `_block_html` gives them."""
    headings = [block[3:].strip() for block in blocks if isinstance(block, str) and block.startswith("## ")]
    return ["## Contents", "", *[f"- [{_short(heading)}]({anchor(heading)})" for heading in headings], ""]


def _short(heading: str) -> str:
    """'Perplexity' of 'Perplexity (per word, lower is better; ...)'; a heading naming its
    corpus keeps the name, so two sections of one kind stay apart."""
    short = re.split(r" \(|: ", heading, maxsplit=1)[0]
    corpus = re.search(r"\(corpus (`[^`]+`)\)", heading)
    return f"{short}, {corpus.group(1)}" if corpus else short


def _inline_html(text: str) -> str:
    """Markdown's inline code and in-page links (`[text](#fragment)`) as HTML."""
    linked = re.sub(r"\[([^\]]+)\]\((#[\w\-]+)\)", r'<a href="\2">\1</a>', html.escape(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", linked)


def _block_html(block: Block) -> str:
    if isinstance(block, pd.DataFrame):
        return block.to_html(index=False, border=0, na_rep="–")
    if isinstance(block, Figure):
        assert block.png is not None, "to_html drops the figures with nothing to plot"
        data = base64.b64encode(block.png).decode("ascii")
        image = f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
        return f"<figure><figcaption>{_inline_html(block.caption)}</figcaption>{image}</figure>" if block.caption \
            else image
    level = len(block) - len(block.lstrip("#"))
    if level:
        heading = block[level:].strip()
        return f'<h{level} id="{anchor(heading)[1:]}">{_inline_html(heading)}</h{level}>'
    if block.startswith("- "):
        return f"<li>{_inline_html(block[2:])}</li>"
    return f"<p>{_inline_html(block)}</p>"


# After every image has had its chance to load, the page records how many did and the
# smallest one's size: a headless browser (tests/test_report_html.py) reads them from the DOM.
HTML_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lm-lineage report</title>
<style>
body { font-family: sans-serif; max-width: 75em; margin: 1em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.15em 0.5em; text-align: right; white-space: nowrap; }
img { display: block; max-width: 100%; margin: 0.5em 0; }
figure { margin: 0.5em 0 1em; }
figcaption { font-size: 0.85em; color: #555; }
</style>
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.dataset.imagesTotal = images.length;
  // The smallest decoded figure: a broken or empty plot would be a few pixels.
  document.body.dataset.imagesMinWidth = Math.min(...images.map((image) => image.naturalWidth));
  document.body.dataset.imagesMinHeight = Math.min(...images.map((image) => image.naturalHeight));
});
</script>
</head><body>
"""


def to_html(blocks: list[Block]) -> str:
    """report.html: the blocks in order (a run of `- ` items as one list), less blank lines and
    figures with nothing to plot."""
    parts, in_list = [HTML_HEAD], False
    for block in blocks:
        if (isinstance(block, Figure) and block.png is None) or (isinstance(block, str) and not block):
            continue
        item = isinstance(block, str) and block.startswith("- ")
        if item != in_list:
            parts.append("<ul>" if item else "</ul>")
            in_list = item
        parts.append(_block_html(block))
    parts.append("</ul>\n</body></html>\n" if in_list else "</body></html>\n")
    return "\n".join(parts)
