"""Problems with what the user gave (files, options): reported as one line, exit status 2."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.errors import InstantiationException
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

SHOWN_ITEMS = 10


class InputError(ValueError):
    """A problem with the user's input, reported as one message (exit code 2, no traceback)."""


class ConfigError(InputError):
    """An invalid kosum configuration (raised before training starts)."""


class TrainingDiverged(RuntimeError):
    """Training stopped because its loss stopped being a number (reported in one line)."""


def some(items: Sequence[str], shown: int = SHOWN_ITEMS) -> str:
    """The first `shown` items, comma-separated, and how many more there are."""
    listed = ", ".join(items[:shown])
    return listed + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


def user_error(error: BaseException) -> BaseException | None:
    """The missing file, bad value or unset option behind `error` (Hydra wraps what an object
    raises while it is built), or None for anything else, a bug whose traceback must show.
    kosum raises `InputError` (and its `ConfigError`) for what the user gave; an option left
    at `???`, such as `data.path`, or an interpolation that does not resolve is OmegaConf's.
    A run that diverged (`TrainingDiverged`) says why in its message, so it needs no traceback
    either."""
    if isinstance(error, InstantiationException):
        return user_error(error.__cause__) if error.__cause__ is not None else None
    unset = MissingMandatoryValue | InterpolationResolutionError  # `???`, or a bad `${...}`
    known = InputError | FileNotFoundError | TrainingDiverged | unset
    return error if isinstance(error, known) else None
