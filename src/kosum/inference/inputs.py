"""Read the documents to summarise, keeping every row: a submission needs one row per input id.

Tables (CSV `id,text[,...]`, UTF-8 with or without BOM; JSONL objects with `id` and `text`) are
parsed by `kosum.data.tables.read_table` but not loaded with its `TableSource`, which skips rows
with an empty text, malformed lines and later duplicates of an id (right for training, a lost or
ambiguous row in a submission).
Texts go through the same `normalize_text` as training data. AI-Hub 582 folders, zips and JSON
files are read with `AihubSource` (passage id and passage; unreadable files are reported).

Problems that make the output ambiguous or impossible are an `InputError` naming the columns,
lines or ids: a missing id/text column, a malformed row, an empty id, duplicate ids. An empty
text is not an error: the row is kept and reported, and gets an empty summary.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kosum.data.aihub import AihubSource
from kosum.data.example import SkippedRecord
from kosum.data.normalize import normalize_text
from kosum.data.tables import TABLE_SUFFIXES, read_table
from kosum.errors import InputError, some


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
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"{path}: unsupported input (expected .csv, .jsonl, or an AI-Hub folder/.zip/.json)"
        )
    columns, rows = read_table(path)
    table = []
    for line, row in rows:  # every line must be a row: a skipped one would be a lost row
        if isinstance(row, str):
            raise InputError(f"{path}:{line}: {row}")
        table.append((line, row))
    return _documents(path, (columns, table), id_column, text_column)


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
        raise InputError(f"{path}: empty {id_column!r} on line(s) {some(empty_id_lines)}")
    lines_of: dict[str, list[int]] = defaultdict(list)
    for (line, _), doc_id in zip(rows, ids, strict=True):
        lines_of[doc_id].append(line)
    duplicates = [
        f"{doc_id!r} (lines {lines})" for doc_id, lines in lines_of.items() if len(lines) > 1
    ]
    if duplicates:
        raise InputError(
            f"{path}: {len(duplicates)} duplicate id(s), the submission would be ambiguous: "
            f"{some(duplicates)}"
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
