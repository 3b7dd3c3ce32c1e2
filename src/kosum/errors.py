"""Problems with what the user gave (files, options): reported as one line, exit status 2."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra.errors import InstantiationException
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

SHOWN_ITEMS = 10


class InputError(ValueError):
    """A problem with the user's input, reported as one message (exit code 2, no traceback)."""


class ConfigError(InputError):
    """An invalid kosum configuration (raised before training starts)."""


class TrainingDiverged(RuntimeError):
    """Training stopped because its loss stopped being a number (reported in one line)."""


# What a write meets on a full disk, a read-only mount or a folder of someone else's.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES})


class WriteFailed(RuntimeError):
    """A file kosum writes could not be written (full disk, read-only or foreign folder); the
    message names the file and says what is left there (reported in one line)."""


# How writers in Rust (safetensors, tokenizers) report an I/O error: not as an OSError.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def naming_refused_writes(target: Path) -> Iterator[None]:
    """Inside the block, a write the environment refuses (see `WRITE_ERRNOS`) is raised as a
    `WriteFailed` that names `target` and says what is left there; anything else, including
    an error about a file the block only reads, passes unchanged with its own traceback."""
    existed = target.exists()
    try:
        yield
    except BaseException as error:
        refused = _refused_write(error, target, existed)
        if refused is None:
            raise
        raise refused from error


def _refused_write(error: BaseException, target: Path, existed: bool) -> WriteFailed | None:
    if isinstance(error, OSError):
        number, reason, filename = error.errno, error.strerror, error.filename
    elif match := _RUST_OS_ERROR.search(str(error)):
        number, filename = int(match.group(1)), None
        reason = os.strerror(number)
    else:
        return None
    if number not in WRITE_ERRNOS:
        return None
    if filename is not None:  # not a file reached through `target` (read by the caller)
        named = Path(filename)
        if named.parent != target.parent and named not in target.parents:
            return None
    left = f"the previous {target.name} is left as it was" if existed else "nothing was written"
    return WriteFailed(f"cannot write {target}: {reason}; {left}")


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
    either; so does a write the environment refused (`WriteFailed`, or an `OSError` such as a
    full disk from a writer that is not kosum's, whose message names the file)."""
    if isinstance(error, InstantiationException):
        return user_error(error.__cause__) if error.__cause__ is not None else None
    unset = MissingMandatoryValue | InterpolationResolutionError  # `???`, or a bad `${...}`
    known = InputError | FileNotFoundError | TrainingDiverged | WriteFailed | unset
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return error
    return error if isinstance(error, known) else None
