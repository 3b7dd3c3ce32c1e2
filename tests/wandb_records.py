"""Reading what an offline W&B run recorded, from its .wandb file (for tests)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2


def wandb_records(run_dir: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Records of the offline W&B run under `run_dir` (the .wandb file: a 7-byte header, then
    LevelDB-log chunks of protobuf Records in 32 KiB blocks)."""
    [path] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, position, pending = path.read_bytes(), 7, b""
    assert data.startswith(b":W&B")
    while position + 7 <= len(data):
        if (left := 32768 - position % 32768) < 7:
            position += left
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4) and pending:  # a full record, or the last chunk of one
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""
