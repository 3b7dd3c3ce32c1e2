"""Instance patches that overlapping blocks share: applied when the first block enters, undone
when the last one exits.

`fast_t5_generation` and `fast_beam_sampling` change a model instance for the duration of a
block. Two blocks on one model (nested, interleaved, or in two threads) must not undo each
other's change while the other still runs, nor leave it behind after both have exited.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from transformers import PreTrainedModel

_lock = threading.Lock()
# owner -> patch name -> [blocks inside, undo]
_active: weakref.WeakKeyDictionary[object, dict[str, list]] = weakref.WeakKeyDictionary()


@contextmanager
def shared_patch(
    owner: object, name: str, apply: Callable[[], Callable[[], None]]
) -> Iterator[None]:
    """Within the block, `owner` carries the patch `name`: `apply()` makes it (and returns its
    undo) when no other block holds it already; the last block to exit undoes it."""
    with _lock:
        patches = _active.setdefault(owner, {})
        if name not in patches:
            patches[name] = [0, apply()]
        patches[name][0] += 1
    try:
        yield
    finally:
        with _lock:
            entry = patches[name]
            entry[0] -= 1
            if entry[0] == 0:
                del patches[name]
                entry[1]()


def generation_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a PEFT (or kosum method) wrapper, or `model` itself: the
    instance whose config, generation config and methods `generate()` uses, and so the one to
    patch."""
    if isinstance(model, PreTrainedModel):
        return model
    return model.get_base_model() if hasattr(model, "get_base_model") else model
