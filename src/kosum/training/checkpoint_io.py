"""Lightning checkpoints as safetensors: nothing kosum writes is a pickle.

A Lightning checkpoint is a nested structure of tensors (trainable weights, optimiser moments)
and plain values (loop counters, scheduler state, callback state). This plugin stores every
tensor in a safetensors file and the structure around them as JSON in its metadata, so loading
a checkpoint never unpickles anything. Combined with `SummarizationModule.on_save_checkpoint`,
a checkpoint holds only the trainable weights plus optimiser/scheduler/loop state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors.torch import load_file, save_file

from kosum.errors import naming_refused_writes

_TENSOR, _TUPLE, _PAIRS = "__tensor__", "__tuple__", "__pairs__"
META_KEY = "kosum_checkpoint"
_STAGING = ".{name}.{pid}.tmp"  # beside the checkpoint being written


class CheckpointEncodingError(TypeError):
    """A checkpoint value that is neither a tensor nor plain data."""


class _Encoder:
    """Splits a checkpoint into a JSON skeleton and a flat table of tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._views: dict[tuple, str] = {}

    def tensor(self, value: torch.Tensor) -> dict[str, str]:
        tensor = value.detach().cpu()
        # safetensors refuses tensors that share memory: one entry per identical view, and a
        # private copy for any other view of storage already written.
        storage = tensor.untyped_storage().data_ptr()
        view = (
            storage,
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if view not in self._views:
            shared = tensor.numel() > 0 and any(key[0] == storage for key in self._views)
            name = f"t{len(self._views)}"
            self._views[view] = name
            self.tensors[name] = tensor.clone() if shared else tensor.contiguous()
        return {_TENSOR: self._views[view]}

    def encode(self, value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            return self.tensor(value)
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value):
                return {key: self.encode(item, f"{where}.{key}") for key, item in value.items()}
            return {
                _PAIRS: [
                    [self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(item, where) for item in value]}
        if isinstance(value, list):
            return [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise CheckpointEncodingError(
            f"checkpoint entry {where} is a {type(value).__name__}, which kosum does not store "
            "(only tensors and plain data are written, never pickles)"
        )


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _TUPLE in value:
            return tuple(_decode(item, tensors) for item in value[_TUPLE])
        if _PAIRS in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value[_PAIRS]}
        return {key: _decode(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    return value


def cut_short_writes(folder: Path) -> list[Path]:
    """The staging files (`.last.ckpt.<pid>.tmp`) that writes killed midway left in `folder`."""
    return sorted(folder.glob(_STAGING.format(name="*.ckpt", pid="*")))


class SafetensorsCheckpointIO(CheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        encoder = _Encoder()
        skeleton = encoder.encode(checkpoint, "checkpoint")
        target = Path(path)
        # Written beside the target and renamed over it: a kill mid-write keeps the old file.
        staging = target.with_name(_STAGING.format(name=target.name, pid=os.getpid()))
        with naming_refused_writes(target):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                save_file(encoder.tensors, staging, metadata={META_KEY: json.dumps(skeleton)})
                os.replace(staging, target)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
        if META_KEY not in metadata:
            raise ValueError(
                f"{path} is not a kosum safetensors checkpoint (no {META_KEY!r} metadata)"
            )
        tensors = load_file(str(path), device="cpu")
        return _decode(json.loads(metadata[META_KEY]), tensors)

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        Path(path).unlink(missing_ok=True)
