"""Problems with what the user gave (files, options): reported as one line, exit status 2."""

from __future__ import annotations

from collections.abc import Sequence

SHOWN_ITEMS = 10


class InputError(ValueError):
    """A problem with the user's input, reported as one message (exit code 2, no traceback)."""


def some(items: Sequence[str], shown: int = SHOWN_ITEMS) -> str:
    """The first `shown` items, comma-separated, and how many more there are."""
    listed = ", ".join(items[:shown])
    return listed + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")
