"""Run a kosum command with one fault injected, in a process of its own:

    python tests/fault_injection.py full-disk NAME   MODULE ARGS...
    python tests/fault_injection.py kill-in-write N  MODULE ARGS...

`full-disk NAME`: every write of a file named NAME fails with ENOSPC, as on a full disk: the
fsync of kosum's atomic writes (`kosum.io`), or the checkpoint's safetensors write, which
reports it as safetensors does. `kill-in-write N`: the N-th checkpoint this process writes is
cut off halfway and the process SIGKILLed there, as a kill mid-write would leave it.
The faults are in the writers kosum calls, not in kosum's own code: what kosum does about them
is what the tests check.
"""

from __future__ import annotations

import errno
import os
import runpy
import signal
import sys
import tempfile
from pathlib import Path

import safetensors.torch
from safetensors import SafetensorError

import kosum.training.checkpoint_io as checkpoint_io

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_disk_for(name: str) -> None:
    staged: dict[int, str] = {}
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync

    def mkstemp(*args, **kwargs):
        handle, path = real_mkstemp(*args, **kwargs)
        staged[handle] = path
        return handle, path

    def fsync(handle: int) -> None:
        if Path(staged.get(handle, "")).name.startswith(f".{name}."):
            raise ENOSPC
        real_fsync(handle)

    def save_file(tensors, path, metadata=None) -> None:
        if Path(path).name.startswith(f".{name}."):
            Path(path).write_bytes(b"\0" * 64)  # what fitted before the disk filled
            raise SafetensorError(
                "Error while serializing: I/O error: No space left on device (os error 28)"
            )
        safetensors.torch.save_file(tensors, path, metadata=metadata)

    tempfile.mkstemp, os.fsync = mkstemp, fsync
    checkpoint_io.save_file = save_file


def kill_in_write(n: int) -> None:
    writes = 0

    def save_file(tensors, path, metadata=None) -> None:
        nonlocal writes
        writes += 1
        safetensors.torch.save_file(tensors, path, metadata=metadata)
        if writes == n:
            with open(path, "r+b") as handle:
                handle.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint_io.save_file = save_file


if __name__ == "__main__":
    fault, argument, module, *args = sys.argv[1:]
    {"full-disk": full_disk_for, "kill-in-write": lambda n: kill_in_write(int(n))}[fault](argument)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
