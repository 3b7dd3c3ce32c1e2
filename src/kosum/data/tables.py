"""Reader for flat tables of documents: CSV (RFC 4180, UTF-8 with or without BOM) and JSONL.

The competition files are CSV (`id,text[,summary]`); JSONL rows are objects with the same keys.
Text and summary go through the same normalisation as AI-Hub passages, so a model sees identical
input whichever form the data came in. Bad rows (empty id or text, empty summary when one is
required, duplicate id, unparsable JSONL line) are reported as `path:line` in
`LoadResult.skipped`; a missing required column is an `InputError` naming the columns found.

Not for: AI-Hub JSON folders/zips (see `kosum.data.aihub`), writing predictions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from kosum.data.aihub import NoDocumentsError, doc_id_from_passage_id
from kosum.data.example import LoadResult, SkippedRecord, SummaryExample
from kosum.data.normalize import NORMALIZATION_VERSION, normalize_text
from kosum.errors import InputError
from kosum.io import parse_jsonl

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = CSV_SUFFIXES + JSONL_SUFFIXES
_LOADER_VERSION = "2"  # 2: doc_id from AI-Hub passage ids

# (line number, row as {column: value}) or (line number, reason the line is unusable).
Row = tuple[int, dict[str, object] | str]


class TableSource:
    """A CSV or JSONL file of documents, as an `ExampleSource`.

    `require_summary=False` accepts tables without a summary column (inference inputs such as the
    competition test file); their examples have `summary == ""`. The optional `category` and
    `doc_id` columns are used when present (`doc_id` groups passages of one article for the
    split; without it, an AI-Hub passage id `<type>-<category>-<article>-<passage>` with one of
    the ten categories names its article, and any other id is its own document).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        text_column: str = "text",
        summary_column: str = "summary",
        id_column: str = "id",
        category_column: str = "category",
        doc_id_column: str = "doc_id",
        require_summary: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"table file does not exist: {self.path}")
        if self.path.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(
                f"{self.path}: unsupported table type (expected {', '.join(TABLE_SUFFIXES)})"
            )
        self.text_column = text_column
        self.summary_column = summary_column
        self.id_column = id_column
        self.category_column = category_column
        self.doc_id_column = doc_id_column
        self.require_summary = require_summary

    def describe(self) -> str:
        """The file and its columns, as shown in errors and logs."""
        return f"{self.path} (columns {self.id_column}, {self.text_column}, {self.summary_column})"

    def fingerprint(self) -> str:
        """Hash of the options and the file's path, size and mtime (no parsing)."""
        stat = self.path.stat()
        options = {
            "source": "table",
            "loader": _LOADER_VERSION,
            "normalization": NORMALIZATION_VERSION,
            "path": str(self.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "columns": [
                self.id_column,
                self.text_column,
                self.summary_column,
                self.category_column,
                self.doc_id_column,
            ],
            "require_summary": self.require_summary,
        }
        return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()

    def load(self) -> LoadResult:
        """Read, validate and normalise every row; raise NoDocumentsError if none is usable."""
        columns, rows = read_table(self.path)
        self._check_columns(columns)
        result = LoadResult(examples=[])
        first_line: dict[str, int] = {}
        for line, row in rows:
            if isinstance(row, str):
                reason = row
            elif (reason := self._problem(example := self._example(row))) is None:
                first = first_line.setdefault(example.id, line)
                if first == line:
                    result.examples.append(example)
                    continue
                reason = f"duplicate id {example.id!r} (first at line {first})"
            result.skipped.append(SkippedRecord(f"{self.path}:{line}", reason))
        if not result.examples:
            skipped = f": {result.skip_summary(limit=5)}" if result.skipped else " (no rows)"
            raise NoDocumentsError(f"no documents in {self.path}{skipped}")
        return result

    def _check_columns(self, columns: list[str]) -> None:
        required = [self.id_column, self.text_column]
        if self.require_summary:
            required.append(self.summary_column)
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputError(
                f"{self.path}: missing required column(s) {missing}; columns found: {columns}"
            )

    def _problem(self, example: SummaryExample) -> str | None:
        """Why a (normalised) row cannot be used, or None."""
        if not example.id:
            return f"empty {self.id_column!r}"
        if not example.text:
            return f"empty {self.text_column!r}"
        if self.require_summary and not example.summary:
            return f"empty {self.summary_column!r}"
        return None

    def _example(self, row: dict[str, object]) -> SummaryExample:
        example_id = _cell(row, self.id_column)
        # Without a doc_id column, AI-Hub passage ids (the competition's) still name their
        # article, so the split keeps an article's passages together as the AI-Hub loader does.
        doc_id = _cell(row, self.doc_id_column) or doc_id_from_passage_id(example_id)
        return SummaryExample(
            id=example_id,
            text=_cell(row, self.text_column),
            summary=_cell(row, self.summary_column),
            category=_cell(row, self.category_column) or None,
            doc_id=doc_id,
        )


def _cell(row: dict[str, object], column: str) -> str:
    """A normalised string cell; numbers (JSONL ids) become strings, null/absent becomes ""."""
    value = row.get(column)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return normalize_text(value) if isinstance(value, str) else ""


def read_table(path: Path) -> tuple[list[str], Iterable[Row]]:
    """The columns and rows of a CSV/JSONL file (by suffix; UTF-8, with or without BOM): each
    row is `(line, {column: value})`, or `(line, reason)` for a line that is not a row (wrong
    number of CSV fields, invalid JSON). Whether such a line is skipped and counted (training
    data) or refused (inference input, scoring) is the caller's choice; an unreadable file or
    CSV header is an `InputError`."""
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {exc.start})") from None
    if not content.strip():
        raise InputError(f"{path}: empty file")
    if path.suffix.lower() in CSV_SUFFIXES:
        return _read_csv(path, content)
    return _read_jsonl(content)


def _read_csv(path: Path, content: str) -> tuple[list[str], Iterable[Row]]:
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise InputError(f"{path}: unreadable CSV header: {exc}") from None
    columns = [c.strip() for c in header]

    def rows() -> Iterator[Row]:
        while True:
            line = reader.line_num + 1  # a quoted field may span lines: report where it starts
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(f"{path}:{line}: malformed CSV: {exc}") from None
            if not cells:  # blank line
                continue
            if len(cells) != len(columns):
                yield line, f"expected {len(columns)} fields ({columns}), found {len(cells)}"
            else:
                yield line, dict(zip(columns, cells, strict=True))

    return columns, rows()


def _read_jsonl(content: str) -> tuple[list[str], list[Row]]:
    """All rows, and the union of their keys (a column exists if any row has it)."""
    rows: list[Row] = []
    columns: dict[str, None] = {}
    for number, value in parse_jsonl(content):
        if isinstance(value, dict):
            columns.update(dict.fromkeys(value))
        rows.append((number, value))
    return list(columns), rows
