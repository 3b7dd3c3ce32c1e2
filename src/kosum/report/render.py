"""A report as a list of blocks (headings, paragraphs, tables, lists, images), rendered to
Markdown and to a self-contained HTML page (images referenced by relative path).

Inline text may use `code` and **bold**, the only Markdown carried over into HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class BulletList:
    items: Sequence[str]


@dataclass(frozen=True)
class Image:
    path: str
    caption: str


Block = Heading | Paragraph | Table | BulletList | Image

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code { background: #f5f5f5; padding: 0 0.2rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; }
"""


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        match block:
            case Heading(text, level):
                parts.append(f"{'#' * level} {text}")
            case Paragraph(text):
                parts.append(text)
            case Table(headers, rows):
                lines = [
                    "| " + " | ".join(map(_markdown_cell, headers)) + " |",
                    "|" + "---|" * len(headers),
                    *("| " + " | ".join(map(_markdown_cell, row)) + " |" for row in rows),
                ]
                parts.append("\n".join(lines))
            case BulletList(items):
                parts.append("\n".join(f"- {item}" for item in items))
            case Image(path, caption):
                parts.append(f"![{caption}]({path})")
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped).replace("\n", "<br>")


def _html_row(cells: Sequence[str], tag: str) -> str:
    return "<tr>" + "".join(f"<{tag}>{_inline_html(cell)}</{tag}>" for cell in cells) + "</tr>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    parts: list[str] = []
    for block in blocks:
        match block:
            case Heading(text, level):
                parts.append(f"<h{level}>{_inline_html(text)}</h{level}>")
            case Paragraph(text):
                parts.append(f"<p>{_inline_html(text)}</p>")
            case Table(headers, rows):
                body = "\n".join(_html_row(row, "td") for row in rows)
                parts.append(
                    f"<table>\n<thead>{_html_row(headers, 'th')}</thead>\n<tbody>\n{body}\n"
                    "</tbody>\n</table>"
                )
            case BulletList(items):
                parts.append(
                    "<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in items) + "</ul>"
                )
            case Image(path, caption):
                source, alt = html.escape(path), html.escape(caption)
                parts.append(
                    f'<figure><img src="{source}" alt="{alt}"><figcaption>{alt}</figcaption>'
                    "</figure>"
                )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )
