"""The checkpoint callback's record of the best checkpoint survives a moved run folder, and its
state is stored under Lightning's own key, so checkpoints of either class resume alike."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from kosum.training.relocatable_checkpoint import RelocatableModelCheckpoint

SETTINGS = {"filename": "best", "monitor": "val/rougeL", "mode": "max", "save_top_k": 1}


def test_state_key_is_model_checkpoints():
    assert RelocatableModelCheckpoint(**SETTINGS).state_key == ModelCheckpoint(**SETTINGS).state_key


def _state(folder: Path) -> dict:
    best = str(folder / "best.ckpt")
    return {
        "monitor": "val/rougeL",
        "best_model_score": torch.tensor(0.5),
        "best_model_path": best,
        "current_score": torch.tensor(0.4),
        "dirpath": str(folder),
        "best_k_models": {best: torch.tensor(0.5)},
        "kth_best_model_path": best,
        "kth_value": torch.tensor(0.5),
        "last_model_path": "",
    }


def test_paths_follow_a_moved_folder_and_not_another_runs(tmp_path: Path):
    moved = tmp_path / "new" / "checkpoints"
    moved.mkdir(parents=True)
    (moved / "best.ckpt").write_bytes(b"")
    callback = RelocatableModelCheckpoint(dirpath=moved, **SETTINGS)
    callback.load_state_dict(_state(tmp_path / "old" / "checkpoints"))
    assert callback.best_model_path == str(moved / "best.ckpt")
    assert callback.best_model_score == 0.5 and list(callback.best_k_models) == [
        str(moved / "best.ckpt")
    ]
    # another run's folder, whose best file is not here: Lightning's own handling
    other = RelocatableModelCheckpoint(dirpath=tmp_path / "elsewhere", **SETTINGS)
    other.load_state_dict(_state(tmp_path / "old" / "checkpoints"))
    assert other.best_model_score is None
