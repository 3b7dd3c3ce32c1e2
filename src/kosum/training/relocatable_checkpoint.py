"""A `ModelCheckpoint` whose record of the best checkpoint survives a moved or copied run folder.

A checkpoint stores the folder it was written to and the paths of the best and last files.
When a resumed run's folder differs (the outputs were moved to another disk, a sweep folder
was copied before resuming it), Lightning cannot tell a moved folder from an unrelated one and
drops the best score and paths: the resumed run then keeps whatever validates next as "best"
and tests those weights. Here the recorded paths are mapped to the same names in the current
folder when the recorded best file is there too, i.e. when the folder moved as a whole.

It also writes no step checkpoint (`every_n_train_steps`) after an epoch's last batch: Lightning
resumes such a checkpoint past that epoch's validation (the epoch's batches are done, so it
moves on), and the best checkpoint is then chosen without that validation. A run killed during
validation resumes from the step before instead: it retrains that last batch and validates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)

PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class RelocatableModelCheckpoint(ModelCheckpoint):
    def _generate_state_key(self, **kwargs: Any) -> str:
        """`ModelCheckpoint{...}`, Lightning's key for this callback's state in a checkpoint:
        checkpoints written with the plain `ModelCheckpoint` (before kosum used this class)
        keep resuming with their best checkpoint."""
        return f"{ModelCheckpoint.__qualname__}{kwargs!r}"

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._every_n_train_steps and batch_idx + 1 >= trainer.num_training_batches:
            return  # after the epoch's last batch: see the module's docstring
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        recorded = state_dict.get("dirpath")
        if recorded is not None and self.dirpath is not None and recorded != self.dirpath:
            moved = relocated(state_dict, Path(recorded), Path(self.dirpath))
            if moved is not None:
                log.info(
                    "run folder moved: checkpoint paths under %s read under %s",
                    recorded,
                    self.dirpath,
                )
                state_dict = moved
        super().load_state_dict(state_dict)


def relocated(state: dict[str, Any], recorded: Path, current: Path) -> dict[str, Any] | None:
    """`state` with every path under `recorded` moved under `current`, or None when the best
    checkpoint it names is not in `current` (another run's checkpoint, not a moved folder)."""

    def move(path: str) -> str:
        moved = Path(path)
        return (
            str(current / moved.relative_to(recorded)) if moved.is_relative_to(recorded) else path
        )

    best = state.get("best_model_path") or ""
    if not best or not Path(best).is_relative_to(recorded) or not Path(move(best)).is_file():
        return None
    return {
        **state,
        "dirpath": str(current),
        **{key: move(state[key]) for key in PATH_KEYS if state.get(key)},
        "best_k_models": {
            move(path): score for path, score in state.get("best_k_models", {}).items()
        },
    }
