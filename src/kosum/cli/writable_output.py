"""A Hydra callback that refuses, in one line, an output folder kosum could not write to.

Hydra creates the run (or sweep) folder and writes its config there before the job starts;
on a read-only mount or in someone else's folder that fails with a traceback. This check runs
first, in `on_run_start` / `on_multirun_start`, by creating and removing a file where the
folder is (or would be created): file modes alone would not do, since root ignores them and a
read-only mount refuses root too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from kosum.errors import WRITE_ERRNOS


def unwritable_reason(folder: Path) -> str | None:
    """Why nothing can be written in `folder` (or created below its nearest existing
    ancestor), or None when a file can be created there."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".kosum-write-check.", dir=existing)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        return f"{existing}: {error.strerror}"
    os.close(handle)
    os.unlink(probe)
    return None


class WritableOutputCheck(Callback):
    """Stops the command before anything runs when its output folder is not writable."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        HydraConfig.instance().set_config(config)  # for ${hydra:runtime.cwd} in the folder
        folder = Path(str(OmegaConf.select(config, key))).absolute()
        reason = unwritable_reason(folder)
        if reason is not None:
            program = f"kosum-{config.get('task_name', 'train')}"
            print(
                f"{program}: error: cannot write the output folder {folder} ({reason}); "
                f"choose a writable one with {key}=<folder>",
                file=sys.stderr,
            )
            sys.exit(2)
