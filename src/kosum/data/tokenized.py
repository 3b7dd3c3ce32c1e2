"""Tokenised splits held as flat int32 arrays, and their on-disk cache.

A split is stored as one `.npz` (token ids concatenated, plus offsets; read back with
`allow_pickle=False`, so a cache file can never run code) and one compact JSON with the ids,
references and categories. What the cache is keyed by is decided in `kosum.data.datamodule`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from kosum.io import atomic_open

ARRAYS = ("source_tokens", "source_offsets", "target_tokens", "target_offsets")


@dataclass
class TokenizedSplit(Dataset):
    """One split: token arrays plus what evaluation needs to score and report each example.

    Example `i`'s source tokens are `source_tokens[source_offsets[i]:source_offsets[i + 1]]`
    (likewise for targets), so a split of 160k documents is four arrays, not 320k lists.
    """

    source_tokens: np.ndarray
    source_offsets: np.ndarray
    target_tokens: np.ndarray
    target_offsets: np.ndarray
    ids: list[str]
    references: list[str]
    categories: list[str | None]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.source_tokens[self.source_offsets[index] : self.source_offsets[index + 1]]
        target = self.target_tokens[self.target_offsets[index] : self.target_offsets[index + 1]]
        return {"index": index, "input_ids": source, "labels": target}

    def source_lengths(self) -> np.ndarray:
        return np.diff(self.source_offsets)

    def target_lengths(self) -> np.ndarray:
        return np.diff(self.target_offsets)

    def save(self, stem: Path) -> None:
        with atomic_open(stem.with_suffix(".npz"), "wb") as handle:
            np.savez(handle, **{name: getattr(self, name) for name in ARRAYS})
        meta = {"ids": self.ids, "references": self.references, "categories": self.categories}
        with atomic_open(stem.with_suffix(".json")) as handle:
            json.dump(meta, handle, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, stem: Path) -> TokenizedSplit:
        """Read a saved split; OSError, ValueError, KeyError or zipfile.BadZipFile when a file is
        missing or damaged."""
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as arrays:
            tokens = {name: arrays[name] for name in ARRAYS}
        meta = json.loads(stem.with_suffix(".json").read_bytes())
        split = cls(
            **tokens, ids=meta["ids"], references=meta["references"], categories=meta["categories"]
        )
        if not len(split.ids) + 1 == len(split.source_offsets) == len(split.target_offsets):
            raise ValueError(f"{stem}: token offsets do not match the {len(split.ids)} ids")
        return split


def pack(chunks: Iterable[Sequence[Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
    """Token rows, given chunk by chunk, as (flat int32 tokens, int64 offsets).

    Taking chunks lets the caller tokenise lazily, so only one chunk's Python lists (28+ bytes
    per token) are alive at a time rather than the whole corpus's.
    """
    flat: list[np.ndarray] = []
    lengths: list[int] = []
    for rows in chunks:
        lengths.extend(len(row) for row in rows)
        flat.append(np.fromiter(chain.from_iterable(rows), dtype=np.int32))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int32)
    return tokens, offsets
