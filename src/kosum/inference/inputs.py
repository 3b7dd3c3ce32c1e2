"""Read the documents to summarise, keeping every row: a submission needs one row per input id.

Tables (CSV `id,text[,...]`, UTF-8 with or without BOM; JSONL objects with `id` and `text`) are
read here rather than with `kosum.data.tables.TableSource`, which drops rows with an empty text
and later duplicates of an id (right for training, a lost or ambiguous row in a submission).
Texts go through the same `normalize_text` as training data. AI-Hub 582 folders, zips and JSON
files are read with `AihubSource` (passage id and passage; unreadable files are reported).

Problems that make the output ambiguous or impossible are an `InputError` naming the columns,
lines or ids: a missing id/text column, a malformed row, an empty id, duplicate ids. An empty
text is not an error: the row is kept and reported, and gets an empty summary.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kosum.data.aihub import AihubSource
from kosum.data.example import SkippedRecord
from kosum.data.normalize import normalize_text
from kosum.io import parse_jsonl

_SHOWN = 10


class InputError(ValueError):
    """A problem with the user's input, reported as one message (exit code 2, no traceback)."""


@dataclass
class InputDocuments:
    """Documents in input order. `texts[i]` is normalised and may be "" (empty input text)."""

    path: Path
    ids: list[str]
    texts: list[str]
    skipped: list[SkippedRecord] = field(default_factory=list)

    @property
    def empty_ids(self) -> list[str]:
        return [doc_id for doc_id, text in zip(self.ids, self.texts, strict=True) if not text]


def read_inputs(
    path: str | Path, id_column: str = "id", text_column: str = "text"
) -> InputDocuments:
    """Read a CSV/JSONL table or an AI-Hub folder/zip/JSON file (by its suffix or kind)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".zip", ".json"):
        return _read_aihub(path)
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InputError(
            f"{path}: unsupported input (expected .csv, .jsonl, or an AI-Hub folder/.zip/.json)"
        )
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {error.start})") from None
    rows = _csv_rows(path, content) if suffix == ".csv" else _jsonl_rows(path, content)
    return _documents(path, rows, id_column, text_column)


def _csv_rows(path: Path, content: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = [column.strip() for column in next(reader, [])]
        rows = []
        while True:
            line = reader.line_num + 1  # a quoted field may span lines: report where it starts
            cells = next(reader, None)
            if cells is None:
                break
            if not cells:  # blank line
                continue
            if len(cells) != len(header):
                raise InputError(
                    f"{path}:{line}: expected {len(header)} fields ({header}), found {len(cells)}"
                )
            rows.append((line, dict(zip(header, cells, strict=True))))
    except csv.Error as error:
        raise InputError(f"{path}:{reader.line_num}: malformed CSV: {error}") from None
    return header, rows


def _jsonl_rows(path: Path, content: str) -> tuple[list[str], list[tuple[int, dict]]]:
    columns: dict[str, None] = {}
    rows = []
    for number, value in parse_jsonl(content):
        if isinstance(value, str):
            raise InputError(f"{path}:{number}: {value}")
        columns.update(dict.fromkeys(value))
        rows.append((number, value))
    return list(columns), rows


def _cell(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return normalize_text(str(value))


def _documents(
    path: Path,
    table: tuple[list[str], list[tuple[int, dict]]],
    id_column: str,
    text_column: str,
) -> InputDocuments:
    columns, rows = table
    missing = [c for c in (id_column, text_column) if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; columns found: {columns}")
    if not rows:
        raise InputError(f"{path}: no rows")
    ids = [_cell(row.get(id_column)) for _, row in rows]
    empty_id_lines = [str(line) for (line, _), doc_id in zip(rows, ids, strict=True) if not doc_id]
    if empty_id_lines:
        raise InputError(f"{path}: empty {id_column!r} on line(s) {_some(empty_id_lines)}")
    lines_of: dict[str, list[int]] = defaultdict(list)
    for (line, _), doc_id in zip(rows, ids, strict=True):
        lines_of[doc_id].append(line)
    duplicates = [
        f"{doc_id!r} (lines {lines})" for doc_id, lines in lines_of.items() if len(lines) > 1
    ]
    if duplicates:
        raise InputError(
            f"{path}: {len(duplicates)} duplicate id(s), the submission would be ambiguous: "
            f"{_some(duplicates)}"
        )
    texts = [_cell(row.get(text_column)) for _, row in rows]
    return InputDocuments(path=path, ids=ids, texts=texts)


def _read_aihub(path: Path) -> InputDocuments:
    try:
        result = AihubSource(path, require_summary=False).load()  # a test set has none
    except ValueError as error:  # NoDocumentsError included: nothing readable under `path`
        raise InputError(str(error)) from None
    return InputDocuments(
        path=path,
        ids=[e.id for e in result.examples],
        texts=[e.text for e in result.examples],
        skipped=list(result.skipped),
    )


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
