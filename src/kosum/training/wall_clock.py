"""A run's wall time across resumed sessions, carried in its checkpoints."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class WallClock(Callback):
    """Seconds since `started` (a `time.perf_counter()` value), plus the time of the sessions
    before a resume. Lightning saves callback state in every checkpoint and restores it only
    when `fit` resumes from one, so testing on the best checkpoint does not change the count."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.earlier_sessions_s = 0.0

    def elapsed_s(self) -> float:
        return self.earlier_sessions_s + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed_s()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier_sessions_s = float(state_dict.get("elapsed_s", 0.0))
