"""Atomic writes: a crash never leaves a half-written result, prediction, report or model folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kosum.errors import naming_refused_writes


def _process_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _process_umask()  # read once: setting it to read it is not thread-safe


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`. A write the
    environment refuses (full disk, read-only folder) raises `WriteFailed` naming `path`, which
    keeps its previous content."""
    target = Path(path)
    tmp_name = None
    with naming_refused_writes(target):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
            binary = "b" in mode
            with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide it from other users
            os.replace(tmp_name, target)
        except BaseException:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
            raise


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A staging folder beside `path` to write into; on success it takes `path`'s place.

    For folders written by `save_pretrained`, which writes `config.json` first and the weights
    last: a run killed in between would leave a folder that looks complete. Here a crash leaves
    the previous folder (or none); between the two renames the previous one is kept as
    `.<name>.*.old`. A write the environment refuses raises `WriteFailed`, as `atomic_open`.
    """
    target = Path(path)
    staging = previous = None
    with naming_refused_writes(target):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            )
            yield staging
            os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700 would hide it from other users
            if target.exists():
                previous = tempfile.mkdtemp(
                    prefix=f".{target.name}.", suffix=".old", dir=target.parent
                )
                os.replace(target, previous)  # rename(2) replaces the empty placeholder
            os.replace(staging, target)
        except BaseException:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2, sort_keys=False)
        handle.write("\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def parse_jsonl(content: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object) for each non-blank line of JSONL text, or (line number, reason)
    for a line that is not a JSON object; callers decide whether that skips or stops a load.

    Splits on "\n" only: str.splitlines() would also break at U+2028 inside JSON strings.
    """
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, f"invalid JSON ({error.msg}, column {error.colno})"
            continue
        yield number, value if isinstance(value, dict) else "not a JSON object"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
