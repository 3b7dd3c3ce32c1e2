"""Atomic writes (`kosum.io`): a failure part-way leaves the previous file or folder, whole."""

from __future__ import annotations

from pathlib import Path

import pytest

import kosum.io as kosum_io
from kosum.errors import WriteFailed
from kosum.io import atomic_directory, atomic_open


class Interrupted(Exception):
    pass


def test_atomic_open_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(Interrupted), atomic_open(target) as handle:
        handle.write("half")
        raise Interrupted
    assert target.read_text(encoding="utf-8") == "old"
    with atomic_open(target) as handle:
        handle.write("new")
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


def test_atomic_directory_replaces_a_folder_only_once_complete(tmp_path: Path):
    target = tmp_path / "adapter"
    with atomic_directory(target) as staging:
        (staging / "config.json").write_text("{}", encoding="utf-8")
        (staging / "weights.safetensors").write_bytes(b"1")
        assert not target.exists()  # nothing at the final path while it is being written
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "weights.safetensors"]
    assert target.stat().st_mode & 0o777 == 0o777 & ~kosum_io._UMASK

    # a save that dies after config.json, before the weights (save_pretrained's order)
    with pytest.raises(Interrupted), atomic_directory(target) as staging:
        (staging / "config.json").write_text('{"new": 1}', encoding="utf-8")
        raise Interrupted
    assert (target / "weights.safetensors").read_bytes() == b"1"
    assert (target / "config.json").read_text(encoding="utf-8") == "{}"

    with atomic_directory(target) as staging:
        (staging / "config.json").write_text('{"v": 2}', encoding="utf-8")
    assert [p.name for p in target.iterdir()] == ["config.json"]  # the old files went with it
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # no staging or old folder left


def test_a_full_disk_is_reported_naming_the_file_and_what_is_left(tmp_path: Path):
    import errno
    import os

    target = tmp_path / "predictions.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(WriteFailed) as refused, atomic_open(target) as handle:
        handle.write("new\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(refused.value) == (
        f"cannot write {target}: No space left on device; "
        "the previous predictions.jsonl is left as it was"
    )
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]

    # safetensors (Rust) reports an I/O error as its own exception, with the OS error's number
    from safetensors import SafetensorError

    refused = pytest.raises(WriteFailed, match="adapter: No space left on device; nothing was")
    with refused, atomic_directory(tmp_path / "adapter"):
        raise SafetensorError("I/O error: No space left on device (os error 28)")
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


def test_an_error_reading_another_file_is_not_blamed_on_the_write(tmp_path: Path):
    """A permission error on a file the caller reads while writing keeps its own message."""
    import errno
    import os

    elsewhere = tmp_path / "inputs" / "data.csv"
    with pytest.raises(PermissionError) as raised, atomic_open(tmp_path / "out.json"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(elsewhere))
    assert raised.value.filename == str(elsewhere)
