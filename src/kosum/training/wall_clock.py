"""A run's wall time across resumed sessions, carried in its checkpoints."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class WallClock(Callback):
    """Seconds since `started` (a `time.perf_counter()` value), plus the time of the sessions
    before a resume. Lightning saves callback state in every checkpoint and restores it
    whenever it loads one, `trainer.test(ckpt_path="best")` included: only a restore for `fit`
    (a resume) is taken, or the time up to the best checkpoint would be counted twice."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.earlier_sessions_s = 0.0
        self.stage: str | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.stage = stage  # runs before Lightning restores a checkpoint

    def elapsed_s(self) -> float:
        return self.earlier_sessions_s + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed_s()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.stage == "fit":
            self.earlier_sessions_s = float(state_dict.get("elapsed_s", 0.0))
